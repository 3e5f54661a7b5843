//! The failure-budget aggregate: failures, locks and the checks in flight
//! of one account name.

use std::future::Future;

use time::OffsetDateTime;

use super::StoreResult;
use crate::domain::ids::{AttemptId, ChallengeId};
use crate::domain::username::Username;

/// The answer to an attempt reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// The attempt was reserved under the id the caller chose.
    Granted,
    /// Not locked, but failures and checks still in flight use up the
    /// budget: the caller waits for those to settle.
    Busy,
    /// The challenge the check is for has no try left (five wrong codes,
    /// judged or in flight), or has expired or been used.
    ChallengeGone,
    /// The name is locked until then.
    Locked {
        /// End of the lock (always in the future).
        until: OffsetDateTime,
    },
}

/// Why a check judged without a reservation was not counted (the same
/// answers a reservation gets, less `Granted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Failures and checks in flight use up the budget.
    Busy,
    /// The challenge has no try left, or has expired or been used.
    ChallengeGone,
    /// The name is locked until then.
    Locked {
        /// End of the lock (always in the future).
        until: OffsetDateTime,
    },
}

/// The budget check a transaction runs itself for a credential judged
/// before any reservation was made (a TOTP code, which costs microseconds):
/// the conditions `reserve_attempt` would have checked, taken in the same
/// transaction as the verdict's effect, so one write does both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetGate {
    /// The challenge try the check takes, as a reservation would.
    pub challenge: Option<ChallengeTry>,
    /// Failures that lock the name.
    pub threshold: u32,
}

/// The budget attempt a completing transaction settles as a success.
#[derive(Debug, Clone)]
pub struct SettledAttempt {
    /// The reservation to remove (none exists when `gate` is set).
    pub attempt: AttemptId,
    /// The budget's name.
    pub name: Username,
    /// Set for an attempt judged without a reservation: the transaction
    /// checks the budget itself and refuses with `CompletionError::Refused`.
    pub gate: Option<BudgetGate>,
}

/// How a failure that spends the budget locks the name.
#[derive(Debug, Clone, Copy)]
pub struct LockRule {
    /// Failures that lock the name.
    pub threshold: u32,
    /// First lock length.
    pub base: time::Duration,
    /// Whether each lock doubles the next (second-factor failures).
    pub doubling: bool,
    /// The longest lock.
    pub max: time::Duration,
}

impl LockRule {
    /// The length of the lock a failure reaching the threshold sets, at lock
    /// level `level` (how many doubling locks came before it since the last
    /// completed login): doubling from `base` up to `max` for second-factor
    /// failures, always `base` for password failures.
    pub fn lock_length(&self, level: i32) -> time::Duration {
        if !self.doubling {
            return self.base;
        }
        let factor = 1i32
            .checked_shl(u32::try_from(level).unwrap_or(0))
            .unwrap_or(i32::MAX);
        self.base
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The lock level after a lock at `level`.
    pub fn next_level(&self, level: i32) -> i32 {
        level.saturating_add(i32::from(self.doubling))
    }
}

/// The per-name failure budget, atomic per name across replicas.
/// The try of a login challenge that a second-factor check holds. It is
/// taken with the budget attempt, so concurrent wrong codes never get more
/// than a challenge's tries; a check that ends unjudged gives it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChallengeTry {
    /// The challenge being answered.
    pub challenge: ChallengeId,
    /// Tries a challenge has (wrong codes that kill it).
    pub max_failures: u32,
}

pub trait FailureBudgetStore: Send + Sync {
    /// Reserves one attempt of `name`'s failure budget under `attempt`,
    /// leased until `lease_until`: granted only while the name is not
    /// locked and its failures plus unexpired reservations stay below
    /// `threshold`, and — for a challenge — while the challenge is live with
    /// a try left, which the reservation then holds. Atomic per name (and
    /// challenge) across connections and replicas.
    fn reserve_attempt(
        &self,
        name: &Username,
        attempt: AttemptId,
        challenge: Option<ChallengeTry>,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        threshold: u32,
    ) -> impl Future<Output = StoreResult<Reservation>> + Send;
    /// Removes a reservation with no verdict (right credential before
    /// anything was issued, cancellation, overload, a storage error),
    /// giving back the challenge try it held.
    fn release_attempt(&self, attempt: AttemptId) -> impl Future<Output = StoreResult<()>> + Send;
    /// In one transaction: removes the reservation (a challenge try it
    /// held stays spent) and counts a failure for `name`, locking it per
    /// `rule` when the budget is spent. Returns the new lock's end, if this
    /// failure set one.
    fn record_failure(
        &self,
        attempt: AttemptId,
        name: &Username,
        now: OffsetDateTime,
        rule: LockRule,
    ) -> impl Future<Output = StoreResult<Option<OffsetDateTime>>> + Send;
    /// In one transaction, for a wrong credential judged without a
    /// reservation: checks `gate` (taking its challenge try) and, when it
    /// passes, counts a failure for `name` as `record_failure` does.
    fn record_gated_failure(
        &self,
        name: &Username,
        gate: BudgetGate,
        now: OffsetDateTime,
        rule: LockRule,
    ) -> impl Future<Output = StoreResult<Result<Option<OffsetDateTime>, Refusal>>> + Send;
    /// The end of `name`'s lock, if it is locked at `now`.
    fn locked_until(
        &self,
        name: &Username,
        now: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<Option<OffsetDateTime>>> + Send;
}
