//! The errors of Warden's use-cases. The gRPC layer maps each variant to a
//! status in one place; nothing here knows about gRPC.

use std::time::Duration;

use crate::crypto::password::HashError;
use crate::domain::store::{CompletionError, StoreError};

/// Why a use-case refused or failed. Display texts are for the server log.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A field is missing, malformed, oversized, or breaks a policy.
    #[error("invalid request field {field}: {description}")]
    InvalidRequest {
        /// The request field at fault.
        field: &'static str,
        /// A human description; never contains the submitted value.
        description: &'static str,
    },
    /// A step-up call without `code` while TOTP is enabled.
    #[error("a second factor is required")]
    SecondFactorRequired,
    /// Register with a name already in use.
    #[error("username taken")]
    UsernameTaken,
    /// Wrong password, unknown user, wrong, expired or replayed code.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The Bearer or validated token is not a live session.
    #[error("session invalid")]
    SessionInvalid,
    /// The challenge token is not a live challenge.
    #[error("challenge invalid")]
    ChallengeInvalid,
    /// EnrollTotp while TOTP is enabled.
    #[error("TOTP already enabled")]
    TotpAlreadyEnabled,
    /// Confirmation without a live pending secret.
    #[error("no pending TOTP enrollment")]
    NoPendingEnrollment,
    /// A TOTP operation on an account without TOTP.
    #[error("TOTP not enabled")]
    TotpNotEnabled,
    /// The required-TOTP policy is on and the account has no TOTP yet: the
    /// session may only enrol.
    #[error("TOTP enrolment required")]
    TotpEnrollmentRequired,
    /// The account name's failure budget is spent.
    #[error("account locked")]
    AccountLocked {
        /// How long until the lock ends (every lock has an end).
        retry_after: Duration,
    },
    /// An admin call without the admin token, or with a wrong one.
    #[error("admin token missing or wrong")]
    AdminUnauthenticated,
    /// An admin call named a user id or name that no account has.
    #[error("user not found")]
    UserNotFound,
    /// An admin call named a session id that no live session has.
    #[error("session not found")]
    SessionNotFound,
    /// The password-hashing queue is full.
    #[error("overloaded")]
    Overloaded,
    /// The database could not be reached, or a commit's outcome is unknown.
    #[error("database unavailable")]
    DatabaseUnavailable(#[source] anyhow::Error),
    /// Anything else; details only in the server log.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AuthError {
    /// An internal failure with context for the log.
    pub fn internal(context: &'static str, source: impl Into<anyhow::Error>) -> Self {
        Self::Internal(source.into().context(context))
    }
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(source) => Self::DatabaseUnavailable(source),
            StoreError::UniqueViolation => {
                Self::Internal(anyhow::anyhow!("unexpected unique violation"))
            }
            StoreError::Other(source) => Self::Internal(source),
        }
    }
}

impl From<CompletionError> for AuthError {
    fn from(e: CompletionError) -> Self {
        match e {
            // Losers of a single-use race are answered like a wrong code.
            CompletionError::ChallengeGone
            | CompletionError::StepUsed
            | CompletionError::CodeUsed
            | CompletionError::DeviceGone => Self::InvalidCredentials,
            CompletionError::PendingGone => Self::NoPendingEnrollment,
            // The password checked is no longer the account's.
            CompletionError::CredentialsChanged => Self::InvalidCredentials,
            // `Attempt::refused` answers every refusal of its own gate before
            // an error is made of it; reaching here is a bug, not a verdict.
            CompletionError::Refused(refusal) => {
                Self::Internal(anyhow::anyhow!("unhandled budget refusal {refusal:?}"))
            }
            CompletionError::Store(e) => e.into(),
        }
    }
}

impl From<HashError> for AuthError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Overloaded => Self::Overloaded,
            HashError::Failed(msg) => Self::Internal(anyhow::anyhow!(msg).context("argon2")),
        }
    }
}
