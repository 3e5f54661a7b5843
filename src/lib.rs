//! Warden: a gRPC authentication service — password login, TOTP two-factor
//! authentication and sessions.
//!
//! Layers: `grpc` (protocol) → `domain` (use-cases) → `storage`
//! (persistence), with `crypto` and `config` beside them; `app` assembles.

pub mod app;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod grpc;
pub mod housekeeping;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod net;
pub mod storage;
pub mod telemetry;
pub mod tls;
