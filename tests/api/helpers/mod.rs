//! The test harness: starts the real server on 127.0.0.1:0 with its own
//! database and a manual clock, and hands out a generated tonic client.
//!
//! Backend: SQLite in a temporary directory by default; PostgreSQL when
//! `WARDEN_TEST_DATABASE_URL` names a server (each test gets a fresh database,
//! dropped afterwards).
//!
//! One module per job: [`server`] (the server under test, replicas),
//! [`admin`] (its admin listener), [`process`] (the real binary), [`database`], [`collector`] (logs and
//! spans), [`inspect`], [`raw`] (a pass-through codec), [`calls`] and
//! [`flows`]. Everything is re-exported here, so tests write
//! `use crate::helpers::…`.

mod admin;
mod calls;
mod collector;
mod database;
mod flows;
mod inspect;
mod process;
mod raw;
mod server;

pub use admin::*;
pub use calls::*;
pub use collector::*;
pub use database::*;
pub use inspect::*;
pub use process::*;
pub use raw::*;
pub use server::*;
