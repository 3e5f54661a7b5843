//! Service logic: Warden's use-cases and the types they speak. Nothing here
//! imports gRPC or ORM types; `grpc/` and `storage/` convert at the edges.

pub mod audit;
pub mod budget;
pub mod clock;
pub mod error;
pub mod ids;
pub mod password_policy;
pub mod second_factor;
pub mod service;
pub mod step_up;
pub mod store;
pub mod username;

pub use error::AuthError;
pub use service::{AuthService, Settings};
