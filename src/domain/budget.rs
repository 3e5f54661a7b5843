//! The per-account-name failure budget, and [`Attempt`]: the one way a
//! credential check uses it.
//!
//! Every credential check reserves an attempt first, so N concurrent guesses
//! get at most the remaining budget, not N. The budget lives in the database
//! (see `FailureBudgetStore::reserve_attempt`), identically for names that
//! do not exist, so it tells nothing about which accounts exist. A check of a
//! login challenge's code also takes one of the challenge's five tries with
//! its attempt, and gives it back when it ends unjudged.
//!
//! Failures and checks in flight are kept apart: a reservation is not a
//! failure. A call that finds the budget used up only by other calls still in
//! flight waits for them to settle instead of answering ACCOUNT_LOCKED, so any
//! number of concurrent right answers all succeed.
//!
//! An [`Attempt`] settles itself exactly once however the call ends: with a
//! verdict ([`Attempt::fail`], [`Attempt::refund`], or a store transaction
//! that consumed it, [`Attempt::consumed`]); or, when it is dropped unsettled
//! (the client's deadline or cancellation, the server's time limit,
//! OVERLOADED, a storage error, an early `?`), by a release handed to a task
//! that outlives the request. Settlement with a verdict also runs in such a
//! task, so a request dropped mid-settlement still settles. A process that
//! dies holding a reservation leaves a row whose lease runs out on its own.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::audit::{self, AuditEvent, Outcome};
use crate::domain::clock::{Clock, to_time};
use crate::domain::error::AuthError;
use crate::domain::ids::{AttemptId, UserId};
use crate::domain::store::{
    BudgetGate, ChallengeTry, LockRule, Refusal, Reservation, SettledAttempt, Store,
};
use crate::domain::username::Username;

/// What kind of credential failed; decides how the lock grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A wrong password: locks stay at the base length, so strangers who only
    /// know the name cannot extend them.
    Password,
    /// A wrong second factor (the password was right): locks double.
    SecondFactor,
}

/// Budget settings.
#[derive(Debug, Clone, Copy)]
pub struct BudgetPolicy {
    /// Failures that lock a name.
    pub threshold: u32,
    /// Length of a password lock, and of the first second-factor lock.
    pub lock: Duration,
    /// The longest second-factor lock.
    pub max_lock: Duration,
    /// How long an unsettled reservation counts: a few times the longest
    /// credential check, so one left by a crashed process stops counting.
    pub lease: Duration,
}

/// The first wait between two tries of a busy budget; doubles up to
/// [`MAX_BUSY_WAIT`]. Polling the database (not an in-process signal) makes
/// the wait work across replicas.
const FIRST_BUSY_WAIT: Duration = Duration::from_millis(5);
/// The longest wait between two tries of a busy budget.
const MAX_BUSY_WAIT: Duration = Duration::from_millis(100);

/// How long until `until`, in whole seconds rounded up (at least one), so
/// RetryInfo never says "now" while the lock still holds.
fn retry_after(until: OffsetDateTime, now: OffsetDateTime) -> Duration {
    let left = Duration::try_from(until - now).unwrap_or_default();
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

impl BudgetPolicy {
    fn rule(&self, kind: FailureKind) -> LockRule {
        LockRule {
            threshold: self.threshold,
            base: to_time(self.lock),
            doubling: kind == FailureKind::SecondFactor,
            max: to_time(self.max_lock),
        }
    }

    fn locked(until: OffsetDateTime, now: OffsetDateTime, user: Option<UserId>) -> AuthError {
        audit::record(AuditEvent::LoginLocked, Outcome::Failure, user);
        AuthError::AccountLocked {
            retry_after: retry_after(until, now),
        }
    }

    /// Reserves an attempt for `name` (the account `user`, if it exists),
    /// and for a second-factor check one try of its `challenge`. Waits while
    /// only checks in flight use up the budget (bounded by the call's own
    /// time limit, which drops this future); answers ACCOUNT_LOCKED, with
    /// the lock's end, when the name is locked, and CHALLENGE_INVALID when
    /// the challenge has no try left.
    pub async fn reserve<S: Store>(
        &self,
        store: &S,
        clock: &Arc<dyn Clock>,
        name: &Username,
        user: Option<UserId>,
        challenge: Option<ChallengeTry>,
    ) -> Result<Attempt<S>, AuthError> {
        let mut wait = FIRST_BUSY_WAIT;
        loop {
            let id = AttemptId::generate();
            let now = clock.now();
            let lease_until = now + to_time(self.lease);
            match store
                .reserve_attempt(name, id, challenge, now, lease_until, self.threshold)
                .await?
            {
                Reservation::Granted => {
                    return Ok(Attempt {
                        store: store.clone(),
                        clock: clock.clone(),
                        policy: *self,
                        id,
                        name: name.clone(),
                        user,
                        gate: None,
                        armed: true,
                    });
                }
                Reservation::Locked { until } => return Err(Self::locked(until, now, user)),
                Reservation::ChallengeGone => return Err(AuthError::ChallengeInvalid),
                Reservation::Busy => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_BUSY_WAIT);
                }
            }
        }
    }

    /// An attempt judged before anything is written (a login challenge's
    /// code): its verdict's transaction checks the budget itself (see
    /// [`BudgetGate`]), so a right code costs one write transaction instead
    /// of two, and a wrong one too. What a reservation
    /// guarantees still holds: the verdict only counts, and is only
    /// answered, if the budget would have granted the reservation at that
    /// moment; a locked name answers ACCOUNT_LOCKED whatever the code was.
    /// When checks in flight make the budget busy, the attempt falls back to
    /// a reservation (waiting as [`BudgetPolicy::reserve`] does).
    pub fn gated<S: Store>(
        &self,
        store: &S,
        clock: &Arc<dyn Clock>,
        name: &Username,
        user: Option<UserId>,
        challenge: Option<ChallengeTry>,
    ) -> Attempt<S> {
        Attempt {
            store: store.clone(),
            clock: clock.clone(),
            policy: *self,
            id: AttemptId::generate(),
            name: name.clone(),
            user,
            gate: Some(BudgetGate {
                challenge,
                threshold: self.threshold,
            }),
            // Nothing reserved, nothing to give back.
            armed: false,
        }
    }

    /// Answers ACCOUNT_LOCKED while `name` is locked, without reserving:
    /// for checks whose failures do not count (confirming an enrolment).
    pub async fn ensure_unlocked<S: Store>(
        &self,
        store: &S,
        clock: &Arc<dyn Clock>,
        name: &Username,
        user: Option<UserId>,
    ) -> Result<(), AuthError> {
        let now = clock.now();
        match store.locked_until(name, now).await? {
            Some(until) => Err(Self::locked(until, now, user)),
            None => Ok(()),
        }
    }
}

/// One reserved credential check, from reservation to verdict. Settles
/// itself exactly once, whatever ends the call (see the module docs).
#[must_use = "an attempt settles when dropped: give it a verdict"]
pub struct Attempt<S: Store> {
    store: S,
    clock: Arc<dyn Clock>,
    policy: BudgetPolicy,
    id: AttemptId,
    name: Username,
    user: Option<UserId>,
    /// Set while the attempt is judged without a reservation.
    gate: Option<BudgetGate>,
    /// Whether dropping it still has to release the reservation.
    armed: bool,
}

impl<S: Store> std::fmt::Debug for Attempt<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempt")
            .field("id", &self.id)
            .field("armed", &self.armed)
            .finish_non_exhaustive()
    }
}

impl<S: Store> Attempt<S> {
    /// What a store transaction that settles this attempt as a success
    /// (a session issued, a step-up action applied) needs to know.
    pub fn settlement(&self) -> SettledAttempt {
        SettledAttempt {
            attempt: self.id,
            name: self.name.clone(),
            gate: self.gate,
        }
    }

    /// A gated settlement was refused: ACCOUNT_LOCKED or CHALLENGE_INVALID
    /// as a reservation would have answered, or — when only checks in
    /// flight fill the budget — this attempt reserved after all, to settle
    /// again. Called only for refusals of this attempt's own gate.
    pub async fn refused(self, refusal: Refusal) -> Result<Self, AuthError> {
        match refusal {
            Refusal::Locked { until } => {
                Err(BudgetPolicy::locked(until, self.clock.now(), self.user))
            }
            Refusal::ChallengeGone => Err(AuthError::ChallengeInvalid),
            Refusal::Busy => {
                let challenge = self.gate.and_then(|gate| gate.challenge);
                self.policy
                    .reserve(&self.store, &self.clock, &self.name, self.user, challenge)
                    .await
            }
        }
    }

    /// The reservation's id.
    pub fn id(&self) -> AttemptId {
        self.id
    }

    /// The store transaction that removes the reservation committed.
    pub fn consumed(mut self) {
        self.armed = false;
    }

    /// The credential was right but nothing that resets the budget was
    /// issued (a challenge opened, an enrolment started): give the attempt
    /// back. A failure to do so is only logged; the lease ends it anyway.
    pub async fn refund(mut self) {
        self.armed = false;
        if let Some(release) = self.spawn_release() {
            let _ = release.await;
        }
    }

    /// Gives the reservation back in a task that outlives the request; a
    /// failure is only logged, since the lease ends the reservation anyway.
    /// Without a runtime (shutdown) there is nothing to spawn on, and the
    /// lease alone ends it.
    fn spawn_release(&self) -> Option<tokio::task::JoinHandle<()>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let store = self.store.clone();
        let id = self.id;
        Some(runtime.spawn(async move {
            if let Err(e) = store.release_attempt(id).await {
                tracing::warn!(error = %e, "budget release failed; the lease will end it");
            }
        }))
    }

    /// The credential was wrong: keeps the attempt as a failure (possibly
    /// locking the name; a challenge try it holds stays spent). Returns the
    /// error the call answers with: INVALID_CREDENTIALS once the failure is
    /// recorded.
    pub async fn fail(mut self, kind: FailureKind) -> AuthError {
        self.armed = false;
        let store = self.store.clone();
        let (id, name, rule) = (self.id, self.name.clone(), self.policy.rule(kind));
        let now = self.clock.now();
        let Some(gate) = self.gate else {
            // In a task of its own: the failure is recorded even if the
            // request is dropped while this runs.
            let record =
                tokio::spawn(async move { store.record_failure(id, &name, now, rule).await });
            return match record.await {
                Ok(Ok(_)) => AuthError::InvalidCredentials,
                Ok(Err(e)) => e.into(),
                Err(e) => AuthError::internal("record failure", e),
            };
        };
        let record =
            tokio::spawn(async move { store.record_gated_failure(&name, gate, now, rule).await });
        match record.await {
            Ok(Ok(Ok(_))) => AuthError::InvalidCredentials,
            Ok(Ok(Err(refusal))) => match self.refused(refusal).await {
                // Reserved now (no gate): this recursion ends at once.
                Ok(reserved) => Box::pin(reserved.fail(kind)).await,
                Err(answer) => answer,
            },
            Ok(Err(e)) => e.into(),
            Err(e) => AuthError::internal("record failure", e),
        }
    }
}

impl<S: Store> Drop for Attempt<S> {
    fn drop(&mut self) {
        // No verdict: the reservation is given back by a task that outlives
        // the request.
        if self.armed {
            let _ = self.spawn_release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_never_says_now() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let at = |ms: i64| now + time::Duration::milliseconds(ms);
        assert_eq!(retry_after(at(900_000), now), Duration::from_secs(900));
        assert_eq!(retry_after(at(1_500), now), Duration::from_secs(2));
        assert_eq!(retry_after(at(1), now), Duration::from_secs(1));
        assert_eq!(retry_after(now, now), Duration::from_secs(1));
    }
}
