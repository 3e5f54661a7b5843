//! Step-up effects: what a step-up call changes, committed atomically with
//! the proof that allowed it.

use std::future::Future;

use time::OffsetDateTime;

use super::CompletionError;
use crate::domain::ids::{AttemptId, SessionId, UserId};
use crate::domain::second_factor::SecondFactorProof;

/// One change a step-up call makes. Which changes an action makes is the
/// domain's decision (`domain::step_up`); the store applies them, in order,
/// in one transaction with the proof that allowed them.
#[derive(Debug, Clone)]
pub enum StepUpEffect {
    /// Delete the TOTP secrets, active and pending.
    DeleteTotpSecrets,
    /// Replace every recovery code with these hashes (none: delete them).
    ReplaceRecoveryCodes(Vec<String>),
    /// Set a new password hash (and the time it changed).
    SetPasswordHash(String),
    /// Revoke every remembered device of the user.
    RevokeTrustedDevices,
    /// End every session of the user but `keep`, and every open challenge.
    EndOtherSessions {
        /// The caller's session, which survives.
        keep: SessionId,
    },
    /// Remove the user, everything that belongs to them, and the failure
    /// budget of their name.
    DeleteAccount,
}

/// What applying step-up effects ended, for the audit trail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepUpApplied {
    /// Sessions ended.
    pub sessions_ended: u64,
    /// Live remembered devices revoked.
    pub devices_revoked: u64,
}

/// Applies step-up effects.
pub trait StepUpStore: Send + Sync {
    /// In one transaction: spends `proof` (if any), applies `effects` and
    /// removes the attempt's reservation (the credentials were right);
    /// returns what it ended.
    fn commit_step_up(
        &self,
        user: UserId,
        proof: Option<&SecondFactorProof>,
        effects: &[StepUpEffect],
        attempt: AttemptId,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<StepUpApplied, CompletionError>> + Send;
}
