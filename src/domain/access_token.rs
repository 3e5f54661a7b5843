//! IssueAccessToken and GetJwks: short-lived signed tokens that backends
//! verify locally against the published keys, instead of calling
//! ValidateSession on every request.
//!
//! An access token cannot be revoked: it is a copy of the session's facts
//! that stays true until it expires. So its lifetime is short, and it never
//! outlives what the session could still be at the moment of issue: not its
//! absolute end, and not its idle end (the call itself counts as a use of
//! the session, so a client that keeps fetching fresh tokens keeps its
//! session alive, and one that stops lets both lapse together).

use std::time::Duration;

use secrecy::SecretString;
use time::OffsetDateTime;

use crate::crypto::jws::{self, AccessClaims};
use crate::domain::AuthService;
use crate::domain::audit::{self, AuditEvent, Outcome};
use crate::domain::clock::to_time;
use crate::domain::error::AuthError;
use crate::domain::store::Store;

/// What access tokens say and how long they live.
#[derive(Debug, Clone)]
pub struct AccessTokenPolicy {
    /// The `iss` claim.
    pub issuer: String,
    /// The `aud` claim, when configured.
    pub audience: Option<String>,
    /// Lifetime, before the session's own ends cut it short.
    pub ttl: Duration,
}

/// A freshly signed access token.
pub struct IssuedAccessToken {
    /// The compact JWS; a secret.
    pub token: SecretString,
    /// Its `exp`, as a time.
    pub expires_at: OffsetDateTime,
}

impl<S: Store> AuthService<S> {
    /// IssueAccessToken: a signed token for the caller's live session. The
    /// bearer is resolved by [`AuthService::authenticate`], like every other
    /// Bearer call, so whatever that refuses gets no token either.
    pub async fn issue_access_token(
        &self,
        bearer: Option<&str>,
    ) -> Result<IssuedAccessToken, AuthError> {
        let session = self.authenticate(bearer).await?;
        let policy = &self.settings.access_tokens;
        let now = self.clock.now();
        let idle_end = session.last_used_at + to_time(self.settings.session_idle_timeout);
        let end = (now + to_time(policy.ttl))
            .min(session.expires_at)
            .min(idle_end);
        // NumericDate is whole seconds; rounding `exp` down keeps it within
        // the session's ends.
        let (iat, exp) = (now.unix_timestamp(), end.unix_timestamp());
        if exp <= iat {
            // The session ends within the second: nothing left to hand out.
            return Err(AuthError::SessionInvalid);
        }
        let expires_at = OffsetDateTime::from_unix_timestamp(exp)
            .map_err(|e| AuthError::internal("access token expiry", e))?;
        let claims = AccessClaims {
            iss: &policy.issuer,
            sub: session.user_id.to_string(),
            aud: policy.audience.as_deref(),
            sid: session.id.to_string(),
            amr: &session.amr,
            auth_time: session.authenticated_at.unix_timestamp(),
            iat,
            exp,
            jti: jws::token_id(),
        };
        let token = jws::sign(&self.signing, &claims);
        audit::record(
            AuditEvent::AccessTokenIssued,
            Outcome::Success,
            Some(session.user_id),
        );
        Ok(IssuedAccessToken { token, expires_at })
    }

    /// GetJwks: the JWK Set of every configured signing key.
    pub fn jwks_json(&self) -> &str {
        self.signing.jwks_json()
    }

    /// The JWK Set's entity tag, for HTTP caching.
    pub fn jwks_etag(&self) -> &str {
        self.signing.jwks_etag()
    }
}
