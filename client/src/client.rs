//! The connection to Warden and ValidateSession with its cache.

use std::sync::Arc;
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::cache::{self, Cache};
use crate::pb::auth_service_client::AuthServiceClient;
use crate::{ClientError, Identity, pb};

/// How long a positive answer is reused by default.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5);
/// How many tokens the cache holds by default.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;
/// Default time limit for establishing a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time limit for one ValidateSession call.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle on Warden; cheap to clone (clones share the connection and the
/// cache).
#[derive(Clone)]
pub struct WardenClient {
    grpc: AuthServiceClient<Channel>,
    cache: Arc<Cache>,
    ttl: Duration,
}

impl std::fmt::Debug for WardenClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WardenClient")
            .field("cache_ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl WardenClient {
    /// Connects to `endpoint` (e.g. `http://127.0.0.1:50051`) with the
    /// default settings. Use [`WardenClient::builder`] for TLS, timeouts
    /// and the cache.
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self, ClientError> {
        Self::builder(endpoint).connect().await
    }

    /// Settings for a connection to `endpoint`.
    pub fn builder(endpoint: impl Into<String>) -> WardenClientBuilder {
        WardenClientBuilder::new(endpoint.into())
    }

    /// The generated gRPC client on this client's connection, for the other
    /// RPCs.
    pub fn grpc(&self) -> AuthServiceClient<Channel> {
        self.grpc.clone()
    }

    /// Asks Warden who `token` belongs to, reusing a positive answer for at
    /// most the cache TTL and never past the session's end.
    ///
    /// [`ClientError::Rejected`] means not signed in; any other error means
    /// Warden gave no answer and the caller must fail closed.
    pub async fn validate(&self, token: &str) -> Result<Identity, ClientError> {
        if token.is_empty() {
            return Err(ClientError::Rejected {
                reason: "INVALID_REQUEST".into(),
            });
        }
        self.cache
            .get_or_fetch(cache::key(token), self.ttl, || {
                self.validate_uncached(token)
            })
            .await
    }

    /// Asks Warden, bypassing the cache (and leaving it unchanged).
    pub async fn validate_uncached(&self, token: &str) -> Result<Identity, ClientError> {
        let mut grpc = self.grpc.clone();
        let response = grpc
            .validate_session(pb::ValidateSessionRequest {
                token: token.to_owned(),
            })
            .await
            .map_err(|status| ClientError::from_status(&status))?;
        Identity::from_response(response.into_inner())
    }

    /// Drops any cached answer for `token` (e.g. after the backend itself
    /// logged the user out).
    pub fn forget(&self, token: &str) {
        self.cache.remove(&cache::key(token));
    }
}

/// Settings for a [`WardenClient`]: TLS, timeouts and the cache.
#[derive(Clone)]
pub struct WardenClientBuilder {
    endpoint: String,
    ca_pem: Option<Vec<u8>>,
    identity_pem: Option<(Vec<u8>, Vec<u8>)>,
    domain_name: Option<String>,
    connect_timeout: Duration,
    request_timeout: Duration,
    cache_ttl: Duration,
    cache_capacity: usize,
}

impl std::fmt::Debug for WardenClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client key stays out of logs.
        f.debug_struct("WardenClientBuilder")
            .field("endpoint", &self.endpoint)
            .field("ca_certificate", &self.ca_pem.is_some())
            .field("client_identity", &self.identity_pem.is_some())
            .field("domain_name", &self.domain_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("cache_ttl", &self.cache_ttl)
            .field("cache_capacity", &self.cache_capacity)
            .finish()
    }
}

impl WardenClientBuilder {
    fn new(endpoint: String) -> Self {
        Self {
            endpoint,
            ca_pem: None,
            identity_pem: None,
            domain_name: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            cache_ttl: DEFAULT_CACHE_TTL,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
        }
    }

    /// Trusts this CA (PEM) for Warden's server certificate; turns TLS on.
    pub fn ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Presents this client certificate and key (PEM) for mTLS; turns TLS on.
    pub fn client_identity(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.identity_pem = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// The name to verify Warden's certificate against, when it differs
    /// from the endpoint's host.
    pub fn tls_domain_name(mut self, name: impl Into<String>) -> Self {
        self.domain_name = Some(name.into());
        self
    }

    /// Time limit for establishing a connection (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time limit for each call (default 5 s); past it, `validate` returns
    /// [`ClientError::Unavailable`].
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long a positive answer is reused (default 5 s; zero disables the
    /// cache). Revocations take up to this long to be seen.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// How many tokens the cache holds at most (default 10 000).
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    fn endpoint(&self) -> Result<Endpoint, ClientError> {
        let mut endpoint = Endpoint::from_shared(self.endpoint.clone())
            .map_err(|e| ClientError::Config(format!("endpoint: {e}")))?
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout);
        let tls = self.ca_pem.is_some()
            || self.identity_pem.is_some()
            || self.endpoint.starts_with("https://");
        if tls {
            // Uses any root store tonic was built with, plus the given CA.
            let mut config = ClientTlsConfig::new().with_enabled_roots();
            if let Some(pem) = &self.ca_pem {
                config = config.ca_certificate(Certificate::from_pem(pem));
            }
            if let Some((cert, key)) = &self.identity_pem {
                config = config.identity(tonic::transport::Identity::from_pem(cert, key));
            }
            if let Some(name) = &self.domain_name {
                config = config.domain_name(name.clone());
            }
            endpoint = endpoint
                .tls_config(config)
                .map_err(|e| ClientError::Config(format!("TLS: {e}")))?;
        }
        Ok(endpoint)
    }

    fn finish(&self, channel: Channel) -> WardenClient {
        WardenClient {
            grpc: AuthServiceClient::new(channel),
            cache: Arc::new(Cache::new(self.cache_capacity)),
            ttl: self.cache_ttl,
        }
    }

    /// Connects now; [`ClientError::Unavailable`] if Warden cannot be
    /// reached. The connection is re-established as needed afterwards.
    pub async fn connect(self) -> Result<WardenClient, ClientError> {
        let channel = self.endpoint()?.connect().await.map_err(|e| {
            tracing::debug!(error = %e, "cannot connect to Warden");
            ClientError::Unavailable {
                code: tonic::Code::Unavailable,
                reason: String::new(),
            }
        })?;
        Ok(self.finish(channel))
    }

    /// Connects on first use, so a backend can start while Warden is down
    /// (its requests then fail closed until Warden answers).
    pub fn connect_lazy(self) -> Result<WardenClient, ClientError> {
        let channel = self.endpoint()?.connect_lazy();
        Ok(self.finish(channel))
    }
}
