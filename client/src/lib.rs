//! A client for Warden, for backends that delegate
//! authentication to it.
//!
//! - [`WardenClient`] calls `warden.v1.AuthService/ValidateSession` and keeps
//!   positive answers in a small, bounded cache (at most
//!   [`WardenClientBuilder::cache_ttl`], 5 s by default, and never past the
//!   session's `expires_at`; failures are never cached; tokens are cached
//!   under their SHA-256 digest, never in clear).
//! - [`RequireSession`] is a [`tower::Layer`] for tonic and HTTP servers: it
//!   reads `authorization: Bearer <token>`, validates it and puts the
//!   [`Identity`] into the request's extensions, or answers UNAUTHENTICATED
//!   (gRPC) / 401 (HTTP) — and UNAVAILABLE / 503 when Warden cannot answer.
//! - [`ClientError`] tells "Warden said no" ([`ClientError::Rejected`]) from
//!   "no answer" (everything else), so callers fail closed.
//!
//! ```no_run
//! # async fn run() -> Result<(), warden_client::ClientError> {
//! use std::time::Duration;
//! use warden_client::WardenClient;
//!
//! let warden = WardenClient::builder("https://warden.internal:50051")
//!     .ca_certificate(std::fs::read("ca.pem").unwrap_or_default())
//!     .request_timeout(Duration::from_secs(2))
//!     .connect()
//!     .await?;
//! match warden.validate("token-from-the-request").await {
//!     Ok(identity) => println!("signed in as {}", identity.user_id),
//!     Err(e) if e.is_rejected() => println!("401: {e}"),
//!     Err(e) => println!("503, fail closed: {e}"),
//! }
//! # Ok(()) }
//! ```

mod cache;
mod client;
mod error;
mod layer;

use std::time::SystemTime;

pub use client::{WardenClient, WardenClientBuilder};
pub use error::ClientError;
pub use layer::{RequireSession, RequireSessionService};

/// The generated gRPC client and messages of `warden.v1` (no server code).
pub mod pb {
    #![allow(
        missing_docs,
        clippy::all,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )]
    tonic::include_proto!("warden.v1");
}

/// Who a valid session token belongs to, as ValidateSession says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The account's immutable id; key on this, never on the username.
    pub user_id: String,
    /// The account's current username.
    pub username: String,
    /// The session's public id (not a secret).
    pub session_id: String,
    /// How the user authenticated (compare as a set): `["pwd"]`, or with a
    /// second factor `"mfa"` and `"otp"` / `"recovery_code"`. Require
    /// `"mfa"` for sensitive actions.
    pub amr: Vec<String>,
    /// The session's absolute end.
    pub expires_at: SystemTime,
    /// When the user last proved who they are.
    pub authenticated_at: SystemTime,
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
            username: r.username,
            session_id: r.session_id,
            amr: r.amr,
        })
    }
}
