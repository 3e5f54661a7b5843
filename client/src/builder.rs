//! Settings for a [`WardenClient`]: TLS, timeouts, the session cache and
//! what an access token must say.

use std::sync::Arc;
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::access::Expectations;
use crate::clock::{Clock, SystemClock};
use crate::{ClientError, WardenClient};

/// How long a positive answer is reused by default.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5);
/// How many tokens the cache holds by default.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;
/// Default time limit for establishing a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time limit for one call to Warden.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The `iss` Warden puts in access tokens unless configured otherwise.
pub const DEFAULT_ISSUER: &str = "warden";
/// Default tolerance for clock differences on `exp` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(10);
/// How long a fetched key set is used before it is fetched again.
pub const DEFAULT_JWKS_TTL: Duration = Duration::from_secs(300);
/// The least time between two key fetches (unknown `kid`s, failures).
pub const DEFAULT_JWKS_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// What the client is assembled from.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub cache_ttl: Duration,
    pub cache_capacity: usize,
    pub jwks_ttl: Duration,
    pub jwks_min_refresh_interval: Duration,
    pub expect: Expectations,
}

/// Settings for a [`WardenClient`].
#[derive(Clone)]
pub struct WardenClientBuilder {
    endpoint: String,
    ca_pem: Option<Vec<u8>>,
    identity_pem: Option<(Vec<u8>, Vec<u8>)>,
    domain_name: Option<String>,
    connect_timeout: Duration,
    request_timeout: Duration,
    settings: Settings,
    clock: Arc<dyn Clock>,
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
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl WardenClientBuilder {
    pub(crate) fn new(endpoint: String) -> Self {
        Self {
            endpoint,
            ca_pem: None,
            identity_pem: None,
            domain_name: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            settings: Settings {
                cache_ttl: DEFAULT_CACHE_TTL,
                cache_capacity: DEFAULT_CACHE_CAPACITY,
                jwks_ttl: DEFAULT_JWKS_TTL,
                jwks_min_refresh_interval: DEFAULT_JWKS_MIN_REFRESH_INTERVAL,
                expect: Expectations {
                    issuer: DEFAULT_ISSUER.to_owned(),
                    audience: None,
                    leeway: DEFAULT_LEEWAY,
                },
            },
            clock: Arc::new(SystemClock),
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

    /// Time limit for each call (default 5 s); past it, the call fails with
    /// [`ClientError::Unavailable`].
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long a positive ValidateSession answer is reused (default 5 s;
    /// zero disables the cache). Revocations take up to this long to be
    /// seen.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.settings.cache_ttl = ttl;
        self
    }

    /// How many tokens the cache holds at most (default 10 000).
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.settings.cache_capacity = capacity;
        self
    }

    /// The `iss` access tokens must carry: Warden's `WARDEN_ISSUER`
    /// (default `warden`).
    pub fn access_token_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.settings.expect.issuer = issuer.into();
        self
    }

    /// The `aud` access tokens must name: Warden's
    /// `WARDEN_ACCESS_TOKEN_AUDIENCE`. Unset (the default), tokens that name
    /// any audience are refused.
    pub fn access_token_audience(mut self, audience: impl Into<String>) -> Self {
        self.settings.expect.audience = Some(audience.into());
        self
    }

    /// Tolerance for clock differences with Warden when checking `exp` and
    /// `iat` (default 10 s).
    pub fn access_token_leeway(mut self, leeway: Duration) -> Self {
        self.settings.expect.leeway = leeway;
        self
    }

    /// How long a fetched key set is used before it is fetched again
    /// (default 300 s): a key Warden stops publishing stops verifying
    /// within this time.
    pub fn jwks_ttl(mut self, ttl: Duration) -> Self {
        self.settings.jwks_ttl = ttl;
        self
    }

    /// The least time between two key fetches (default 10 s, at most the
    /// JWKS TTL), which bounds what tokens with invented `kid`s cost Warden.
    pub fn jwks_min_refresh_interval(mut self, interval: Duration) -> Self {
        self.settings.jwks_min_refresh_interval = interval;
        self
    }

    /// The clock for cache lifetimes and token expiry (default: the
    /// system's); tests pass a [`ManualClock`](crate::clock::ManualClock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
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
        WardenClient::assemble(channel, &self.settings, self.clock.clone())
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
