//! Black-box tests: the real server on 127.0.0.1:0, called with the
//! generated tonic client. One binary; a module per feature.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod abuse;
mod access_tokens;
mod accounts;
mod audit;
mod budget;
mod commands;
mod dev_keys;
mod fuzz;
mod hash_timing;
mod health;
mod helpers;
mod housekeeping;
mod hygiene;
mod lockout;
mod operations;
mod outage;
mod rate_limits;
mod recovery;
mod replicas;
mod secrets;
mod sessions;
mod settings;
mod signing_keys;
mod step_up;
mod totp;
mod transport;
