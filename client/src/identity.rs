//! Who the caller is, whichever kind of token proved it.

use std::time::SystemTime;

use crate::{AccessClaims, ClientError, pb};

/// Who a request's bearer token belongs to: the answer of ValidateSession
/// for a session token, or the claims of a verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The account's immutable id; key on this, never on the username.
    pub user_id: String,
    /// The account's current username, as ValidateSession reports it.
    /// `None` for an access token, which carries no username: look it up by
    /// `user_id` if you need it, and never key on it.
    pub username: Option<String>,
    /// The session's public id (not a secret). For an access token, the
    /// session it was issued for.
    pub session_id: String,
    /// How the user authenticated (compare as a set): `["pwd"]`, or with a
    /// second factor `"mfa"` and `"otp"` / `"recovery_code"`. Require
    /// `"mfa"` for sensitive actions.
    pub amr: Vec<String>,
    /// When this identity stops being good: the session's absolute end for a
    /// session token, the token's `exp` for an access token.
    pub expires_at: SystemTime,
    /// When the user last proved who they are.
    pub authenticated_at: SystemTime,
    /// Which kind of token proved it.
    pub credential: Credential,
}

/// The kind of bearer token an [`Identity`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Credential {
    /// A session token checked with Warden's ValidateSession (possibly a
    /// cached answer, at most the client's `cache_ttl` old).
    SessionToken,
    /// A signed access token verified locally against Warden's published
    /// keys; a revoked session's token stays good until its `exp`.
    AccessToken,
}

impl Identity {
    /// Whether the session was completed with a second factor.
    pub fn has_mfa(&self) -> bool {
        self.amr.iter().any(|m| m == "mfa")
    }

    pub(crate) fn from_response(r: pb::ValidateSessionResponse) -> Result<Self, ClientError> {
        let time = |t: Option<prost_types::Timestamp>, what| {
            t.and_then(|t| SystemTime::try_from(t).ok())
                .ok_or(ClientError::Protocol(what))
        };
        if r.user_id.is_empty() {
            return Err(ClientError::Protocol("user_id missing"));
        }
        Ok(Self {
            expires_at: time(r.expires_at, "expires_at missing or invalid")?,
            authenticated_at: time(r.authenticated_at, "authenticated_at missing or invalid")?,
            user_id: r.user_id,
            username: Some(r.username),
            session_id: r.session_id,
            amr: r.amr,
            credential: Credential::SessionToken,
        })
    }
}

impl From<AccessClaims> for Identity {
    fn from(claims: AccessClaims) -> Self {
        Self {
            user_id: claims.user_id,
            username: None,
            session_id: claims.session_id,
            amr: claims.amr,
            expires_at: claims.expires_at,
            authenticated_at: claims.auth_time,
            credential: Credential::AccessToken,
        }
    }
}
