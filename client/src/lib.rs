//! A client for Warden, for backends that delegate
//! authentication to it.
//!
//! - [`WardenClient`] calls `warden.v1.AuthService/ValidateSession` and keeps
//!   positive answers in a small, bounded cache (at most
//!   [`WardenClientBuilder::cache_ttl`], 5 s by default, and never past the
//!   session's `expires_at`; failures are never cached; tokens are cached
//!   under their SHA-256 digest, never in clear).
//! - [`WardenClient::verify_access_token`] checks Warden's short-lived
//!   access tokens (EdDSA JWS) locally against the keys Warden publishes
//!   (GetJwks, cached, refreshed once for an unknown `kid`, rate-limited).
//! - [`RequireSession`] is a [`tower::Layer`] for tonic and HTTP servers: it
//!   reads `authorization: Bearer`, takes either kind of token, puts the
//!   [`Identity`] into the request's extensions, or answers UNAUTHENTICATED
//!   (gRPC) / 401 (HTTP) — and UNAVAILABLE / 503 when Warden cannot answer.
//! - [`ClientError`] tells "the token is refused"
//!   ([`ClientError::is_rejected`]) from "no answer" (everything else), so
//!   callers fail closed.
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

mod access;
mod builder;
mod cache;
mod client;
pub mod clock;
mod error;
mod identity;
mod jwks;
mod layer;

pub use access::{AccessClaims, AccessTokenError};
pub use builder::{
    DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL, DEFAULT_CONNECT_TIMEOUT, DEFAULT_ISSUER,
    DEFAULT_JWKS_MIN_REFRESH_INTERVAL, DEFAULT_JWKS_TTL, DEFAULT_LEEWAY, DEFAULT_REQUEST_TIMEOUT,
    WardenClientBuilder,
};
pub use client::WardenClient;
pub use error::ClientError;
pub use identity::{Credential, Identity};
pub use layer::{Accept, RequireSession, RequireSessionService, WhenUnavailable};

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

#[cfg(test)]
mod test_keys;
