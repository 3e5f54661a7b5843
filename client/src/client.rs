//! The connection to Warden: ValidateSession with its cache, and local
//! verification of access tokens.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tonic::transport::Channel;

use crate::access::{self, Expectations};
use crate::cache::{self, Cache};
use crate::clock::Clock;
use crate::jwks::{Jwks, JwksSource};
use crate::pb::auth_service_client::AuthServiceClient;
use crate::{AccessClaims, ClientError, Identity, pb};

/// A handle on Warden; cheap to clone (clones share the connection, the
/// session cache and the signing keys).
#[derive(Clone)]
pub struct WardenClient {
    grpc: AuthServiceClient<Channel>,
    cache: Arc<Cache>,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    jwks: Arc<Jwks>,
    expect: Arc<Expectations>,
}

impl std::fmt::Debug for WardenClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WardenClient")
            .field("cache_ttl", &self.ttl)
            .field("expectations", &self.expect)
            .finish_non_exhaustive()
    }
}

/// GetJwks on the client's own connection.
struct GetJwks(AuthServiceClient<Channel>);

impl JwksSource for GetJwks {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<String, ClientError>> + Send + '_>> {
        let mut grpc = self.0.clone();
        Box::pin(async move {
            let response = grpc
                .get_jwks(pb::GetJwksRequest {})
                .await
                .map_err(|status| match ClientError::from_status(&status) {
                    // GetJwks takes no credential: any "no" is a broken
                    // answer, not a verdict on the caller's token.
                    ClientError::Rejected { reason } => ClientError::Unavailable {
                        code: status.code(),
                        reason,
                    },
                    other => other,
                })?;
            Ok(response.into_inner().jwks_json)
        })
    }
}

impl WardenClient {
    /// Connects to `endpoint` (e.g. `http://127.0.0.1:50051`) with the
    /// default settings. Use [`WardenClient::builder`] for TLS, timeouts,
    /// the cache and access-token expectations.
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self, ClientError> {
        Self::builder(endpoint).connect().await
    }

    /// Settings for a connection to `endpoint`.
    pub fn builder(endpoint: impl Into<String>) -> crate::WardenClientBuilder {
        crate::WardenClientBuilder::new(endpoint.into())
    }

    pub(crate) fn assemble(
        channel: Channel,
        settings: &crate::builder::Settings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let grpc = AuthServiceClient::new(channel);
        let jwks = Jwks::new(
            Box::new(GetJwks(grpc.clone())),
            clock.clone(),
            settings.jwks_ttl,
            settings.jwks_min_refresh_interval,
        );
        Self {
            cache: Arc::new(Cache::new(settings.cache_capacity)),
            ttl: settings.cache_ttl,
            jwks: Arc::new(jwks),
            expect: Arc::new(settings.expect.clone()),
            clock,
            grpc,
        }
    }

    /// The generated gRPC client on this client's connection, for the other
    /// RPCs.
    pub fn grpc(&self) -> AuthServiceClient<Channel> {
        self.grpc.clone()
    }

    /// Who a bearer token belongs to, whichever kind it is: a compact JWS
    /// (three dot-separated base64url parts) is verified locally as an
    /// access token ([`WardenClient::verify_access_token`]); anything else
    /// is asked of Warden as a session token ([`WardenClient::validate`]).
    pub async fn authenticate(&self, token: &str) -> Result<Identity, ClientError> {
        if access::looks_like_jws(token) {
            Ok(self.verify_access_token(token).await?.into())
        } else {
            self.validate(token).await
        }
    }

    /// Asks Warden who the session `token` belongs to, reusing a positive
    /// answer for at most the cache TTL and never past the session's end.
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
            .get_or_fetch(cache::key(token), self.ttl, &*self.clock, || {
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

    /// Verifies a Warden access token locally: `alg` `EdDSA` only, the
    /// signature against Warden's published keys (fetched with GetJwks,
    /// cached, refreshed once for an unknown `kid`), then `iss`, `aud` and
    /// `exp` (with the configured leeway).
    ///
    /// [`ClientError::AccessToken`] says why a token was refused;
    /// [`ClientError::Unavailable`] means the keys could not be fetched.
    /// A revoked session's access tokens verify until they expire: call
    /// [`WardenClient::validate`] where revocation must count at once.
    pub async fn verify_access_token(&self, token: &str) -> Result<AccessClaims, ClientError> {
        let unverified = access::parse(token)?;
        let key = self.jwks.key(&unverified.kid).await?;
        Ok(unverified.verify(&key, &self.expect, self.clock.wall())?)
    }

    /// Drops any cached answer for `token` (e.g. after the backend itself
    /// logged the user out).
    pub fn forget(&self, token: &str) {
        self.cache.remove(&cache::key(token));
    }
}
