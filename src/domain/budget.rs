//! The per-account-name failure budget: every credential check reserves an
//! attempt first, so N concurrent guesses get at most the budget, not N.
//! Kept in the database (see `Store::reserve_attempt`), identically for names
//! that do not exist, so it tells nothing about which accounts exist.

use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::audit::{self, AuditEvent, Outcome};
use crate::domain::error::AuthError;
use crate::domain::ids::UserId;
use crate::domain::store::{LockRule, Reservation, Store};
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
}

impl BudgetPolicy {
    fn rule(&self, kind: FailureKind) -> LockRule {
        let to_time = |d: Duration| time::Duration::try_from(d).unwrap_or(time::Duration::DAY);
        LockRule {
            threshold: self.threshold,
            base: to_time(self.lock),
            doubling: kind == FailureKind::SecondFactor,
            max: to_time(self.max_lock),
        }
    }

    /// Reserves an attempt for `name` (the account `user`, if it exists), or
    /// answers ACCOUNT_LOCKED.
    pub async fn reserve<S: Store>(
        &self,
        store: &S,
        name: &Username,
        user: Option<UserId>,
        now: OffsetDateTime,
    ) -> Result<(), AuthError> {
        match store.reserve_attempt(name, now, self.threshold).await? {
            Reservation::Granted => Ok(()),
            Reservation::Refused { locked_until } => {
                audit::record(AuditEvent::LoginLocked, Outcome::Failure, user);
                Err(AuthError::AccountLocked {
                    retry_after: locked_until
                        .map(|until| until - now)
                        .and_then(|left| Duration::try_from(left).ok())
                        .filter(|left| !left.is_zero()),
                })
            }
        }
    }

    /// Gives the reserved attempt back.
    pub async fn refund<S: Store>(
        &self,
        store: &S,
        name: &Username,
        now: OffsetDateTime,
    ) -> Result<(), AuthError> {
        Ok(store.refund_attempt(name, now).await?)
    }

    /// Settles a reserved attempt whose call failed: a wrong second factor
    /// is kept as a failure; anything else (overload, storage) was no
    /// verdict on the credential, so the attempt is given back.
    pub async fn settle_error<S: Store>(
        &self,
        store: &S,
        name: &Username,
        now: OffsetDateTime,
        error: AuthError,
    ) -> AuthError {
        match error {
            AuthError::InvalidCredentials => {
                match self.fail(store, name, now, FailureKind::SecondFactor).await {
                    Ok(()) => AuthError::InvalidCredentials,
                    Err(unrecorded) => unrecorded,
                }
            }
            other => {
                let _ = self.refund(store, name, now).await;
                other
            }
        }
    }

    /// Keeps the reserved attempt as a failure (possibly locking the name).
    pub async fn fail<S: Store>(
        &self,
        store: &S,
        name: &Username,
        now: OffsetDateTime,
        kind: FailureKind,
    ) -> Result<(), AuthError> {
        store.record_failure(name, now, self.rule(kind)).await?;
        Ok(())
    }
}
