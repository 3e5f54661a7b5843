//! The storage ports: what the use-cases need from persistence, one trait
//! per aggregate (users, sessions, challenges, second factors, trusted
//! devices, step-up effects, the failure budget, maintenance, the operator's
//! view), each beside its records and composed into [`Store`]. Each method
//! is atomic on its own; methods that
//! change several rows run them in one transaction and make every single-use
//! rule a conditional write, so the rules hold across replicas and restarts.

mod admin;
mod budget;
mod challenges;
mod maintenance;
mod second_factors;
mod sessions;
mod step_up;
mod trusted_devices;
mod users;

pub use admin::*;
pub use budget::*;
pub use challenges::*;
pub use maintenance::*;
pub use second_factors::*;
pub use sessions::*;
pub use step_up::*;
pub use trusted_devices::*;
pub use users::*;

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write (e.g. a taken username).
    #[error("unique constraint violated")]
    UniqueViolation,
    /// The database could not be reached, or a commit's outcome is unknown.
    #[error("database unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else.
    #[error("storage failure")]
    Other(#[source] anyhow::Error),
}

/// Shorthand for storage results.
pub type StoreResult<T> = Result<T, StoreError>;

/// Why an atomic completion did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CompletionError {
    /// The challenge was used, expired or killed meanwhile.
    #[error("challenge gone")]
    ChallengeGone,
    /// The TOTP step was accepted meanwhile (a replay or a lost race).
    #[error("time step already used")]
    StepUsed,
    /// The recovery code was used meanwhile.
    #[error("recovery code already used")]
    CodeUsed,
    /// The remembered device was revoked or expired meanwhile.
    #[error("trusted device gone")]
    DeviceGone,
    /// A pending enrolment was replaced, confirmed or expired meanwhile.
    #[error("pending secret gone")]
    PendingGone,
    /// The password was changed, or the account disabled or deleted, after
    /// the password was verified.
    #[error("credentials changed meanwhile")]
    CredentialsChanged,
    /// A gated attempt's budget check refused (see `BudgetGate`).
    #[error("budget check refused: {0:?}")]
    Refused(Refusal),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Persistence for Warden's use-cases: every port at once. Implemented for
/// any type that implements them all.
pub trait Store:
    AdminStore
    + UserStore
    + SessionStore
    + ChallengeStore
    + SecondFactorStore
    + TrustedDeviceStore
    + StepUpStore
    + FailureBudgetStore
    + MaintenanceStore
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: AdminStore
        + UserStore
        + SessionStore
        + ChallengeStore
        + SecondFactorStore
        + TrustedDeviceStore
        + StepUpStore
        + FailureBudgetStore
        + MaintenanceStore
        + Clone
        + Send
        + Sync
        + 'static
{
}
