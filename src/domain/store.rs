//! The storage port: what the use-cases need from persistence. Each method
//! is atomic on its own; methods that change several rows run them in one
//! transaction and make every single-use rule a conditional write, so the
//! rules hold across replicas and restarts.

use std::future::Future;

use time::OffsetDateTime;

use crate::crypto::keyring::Sealed;
use crate::crypto::tokens::TokenHash;
use crate::domain::ids::{AttemptId, ChallengeId, RecoveryCodeId, SessionId, UserId};
use crate::domain::second_factor::SecondFactorProof;
use crate::domain::username::Username;

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

/// An account as stored.
#[derive(Debug, Clone)]
pub struct UserRecord {
    /// Immutable id.
    pub id: UserId,
    /// Canonical name.
    pub username: Username,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// When the account was created.
    pub created_at: OffsetDateTime,
    /// Set when an administrator disabled the account.
    pub disabled_at: Option<OffsetDateTime>,
}

/// Who is calling, recorded with each session.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The rate-limit key address of the end user.
    pub address: Option<String>,
    /// The `user-agent` the client sent.
    pub user_agent: Option<String>,
}

/// A session about to be stored.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Public id.
    pub id: SessionId,
    /// Owner.
    pub user_id: UserId,
    /// Keyed hash of the token.
    pub token_hash: TokenHash,
    /// Issue time: also `authenticated_at` and the first `last_used_at`.
    pub created_at: OffsetDateTime,
    /// Absolute end.
    pub expires_at: OffsetDateTime,
    /// RFC 8176 method references.
    pub amr: Vec<String>,
    /// Caller details.
    pub client: ClientInfo,
}

/// A stored session with its owner's name.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// Public id.
    pub id: SessionId,
    /// Owner.
    pub user_id: UserId,
    /// Owner's canonical name.
    pub username: Username,
    /// When the session was last used (coarsely refreshed).
    pub last_used_at: OffsetDateTime,
    /// When it was issued.
    pub authenticated_at: OffsetDateTime,
    /// Absolute end.
    pub expires_at: OffsetDateTime,
    /// RFC 8176 method references.
    pub amr: Vec<String>,
}

/// A login challenge about to be stored.
#[derive(Debug, Clone)]
pub struct NewChallenge {
    /// Internal id.
    pub id: ChallengeId,
    /// The user whose password was verified.
    pub user_id: UserId,
    /// Keyed hash of the token.
    pub token_hash: TokenHash,
    /// Issue time.
    pub created_at: OffsetDateTime,
    /// End of life.
    pub expires_at: OffsetDateTime,
}

/// A live login challenge.
#[derive(Debug, Clone)]
pub struct ChallengeRecord {
    /// Internal id.
    pub id: ChallengeId,
    /// The user it is bound to.
    pub user_id: UserId,
    /// That user's canonical name (the failure budget's key).
    pub username: Username,
}

/// The TOTP state of one user.
#[derive(Debug, Clone, Default)]
pub struct SecondFactorState {
    /// The active secret, when TOTP is enabled.
    pub active: Option<Sealed>,
    /// A pending secret that has not expired.
    pub pending: Option<Sealed>,
    /// The last accepted TOTP time step (kept across re-enrolment).
    pub last_step: Option<u64>,
    /// Unused recovery codes.
    pub unused_recovery_codes: u32,
}

/// A sealed TOTP secret with the row it belongs to.
#[derive(Debug, Clone)]
pub struct StoredSecret {
    /// Owner.
    pub user: UserId,
    /// `active` or `pending`.
    pub purpose: String,
    /// The ciphertext.
    pub sealed: Sealed,
}

/// What proves the second step of a login, checked atomically with issuing
/// the session.
#[derive(Debug, Clone)]
pub enum LoginProof {
    /// A password alone (no second factor enabled), checked against this
    /// stored hash: the session is refused if the hash changed meanwhile
    /// (a ChangePassword committed while the password was being verified).
    Password {
        /// The PHC string the password was verified against.
        verified_hash: String,
    },
    /// A second factor answered challenge `challenge`.
    SecondFactor {
        /// The challenge being completed.
        challenge: ChallengeId,
        /// The factor, spent with the session.
        proof: SecondFactorProof,
    },
}

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
    /// A pending enrolment was replaced, confirmed or expired meanwhile.
    #[error("pending secret gone")]
    PendingGone,
    /// The password was changed, or the account disabled or deleted, after
    /// the password was verified.
    #[error("credentials changed meanwhile")]
    CredentialsChanged,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a step-up call changes, committed with the proof that allowed it.
#[derive(Debug, Clone)]
pub enum StepUpAction {
    /// Delete the TOTP secret, any pending secret and every recovery code,
    /// and end the user's other sessions and open challenges.
    DisableTotp {
        /// The caller's session, which survives.
        keep: SessionId,
    },
    /// Replace every recovery code.
    ReplaceRecoveryCodes {
        /// Hashes of the new codes.
        hashes: Vec<String>,
    },
    /// Set a new password hash and end the other sessions and open challenges.
    ChangePassword {
        /// The new PHC string.
        hash: String,
        /// The caller's session, which survives.
        keep: SessionId,
    },
    /// Remove the user, everything that belongs to them, and the failure
    /// budget of their name.
    DeleteAccount,
}

/// The answer to an attempt reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// The attempt was reserved under the id the caller chose.
    Granted,
    /// Not locked, but failures and checks still in flight use up the
    /// budget: the caller waits for those to settle.
    Busy,
    /// The name is locked until then.
    Locked {
        /// End of the lock (always in the future).
        until: OffsetDateTime,
    },
}

/// The budget attempt a completing transaction settles as a success.
#[derive(Debug, Clone)]
pub struct SettledAttempt {
    /// The reservation to remove.
    pub attempt: AttemptId,
    /// The budget's name.
    pub name: Username,
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

/// Persistence for Warden's use-cases.
pub trait Store: Clone + Send + Sync + 'static {
    /// Creates a user; `UniqueViolation` when the name is taken.
    fn insert_user(&self, user: &UserRecord) -> impl Future<Output = StoreResult<()>> + Send;
    /// Finds a user by canonical name.
    fn user_by_name(
        &self,
        name: &Username,
    ) -> impl Future<Output = StoreResult<Option<UserRecord>>> + Send;
    /// Finds a user by id.
    fn user_by_id(
        &self,
        id: UserId,
    ) -> impl Future<Output = StoreResult<Option<UserRecord>>> + Send;
    /// Replaces a password hash made with old parameters, only if unchanged.
    fn upgrade_password_hash(
        &self,
        id: UserId,
        old: &str,
        new: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// In one transaction: checks and spends `proof`, stores the session,
    /// ends the oldest sessions beyond `max_sessions` (serialised per user,
    /// so the cap holds under concurrent logins), records the login, removes
    /// the attempt's reservation and resets its name's failure budget and
    /// lock level.
    fn complete_login(
        &self,
        session: &NewSession,
        proof: &LoginProof,
        attempt: &SettledAttempt,
        max_sessions: u32,
    ) -> impl Future<Output = Result<(), CompletionError>> + Send;
    /// Finds a session by token hash (with its owner, unless disabled).
    fn session_by_hash(
        &self,
        hash: &TokenHash,
    ) -> impl Future<Output = StoreResult<Option<SessionRecord>>> + Send;
    /// Sets `last_used_at = now` only where it is older than `stale_before`.
    fn touch_session(
        &self,
        id: SessionId,
        now: OffsetDateTime,
        stale_before: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Deletes a session; false when it was already gone.
    fn revoke_session(&self, id: SessionId) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Stores a login challenge, only while the user's password hash is
    /// still `verified_hash` and the account is enabled.
    fn insert_challenge(
        &self,
        challenge: &NewChallenge,
        verified_hash: &str,
    ) -> impl Future<Output = Result<(), CompletionError>> + Send;
    /// Finds a live challenge (unexpired, fewer than `max_failures` failures).
    fn challenge_by_hash(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
        max_failures: u32,
    ) -> impl Future<Output = StoreResult<Option<ChallengeRecord>>> + Send;
    /// The user's TOTP state as of `now`.
    fn second_factor(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<SecondFactorState>> + Send;
    /// Stores a pending secret, replacing any earlier one.
    fn put_pending_totp(
        &self,
        user: UserId,
        sealed: &Sealed,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// In one transaction: removes the pending secret (only if it is still
    /// `pending`), spends `step`, stores `active`, and replaces the recovery
    /// codes with `recovery_hashes`.
    fn confirm_totp(
        &self,
        user: UserId,
        pending: &Sealed,
        active: &Sealed,
        step: u64,
        recovery_hashes: &[String],
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), CompletionError>> + Send;

    /// The user's unused recovery codes: row ids and hashes.
    fn unused_recovery_codes(
        &self,
        user: UserId,
    ) -> impl Future<Output = StoreResult<Vec<(RecoveryCodeId, String)>>> + Send;
    /// In one transaction: spends `proof` (if any), applies `action` and
    /// removes the attempt's reservation (the credentials were right);
    /// returns how many sessions it ended.
    fn commit_step_up(
        &self,
        user: UserId,
        proof: Option<&SecondFactorProof>,
        action: &StepUpAction,
        attempt: AttemptId,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<u64, CompletionError>> + Send;

    /// Reserves one attempt of `name`'s failure budget under `attempt`,
    /// leased until `lease_until`: granted only while the name is not
    /// locked and its failures plus unexpired reservations stay below
    /// `threshold`. Atomic per name across connections and replicas.
    fn reserve_attempt(
        &self,
        name: &Username,
        attempt: AttemptId,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        threshold: u32,
    ) -> impl Future<Output = StoreResult<Reservation>> + Send;
    /// Removes a reservation with no verdict (right credential before
    /// anything was issued, cancellation, overload, a storage error).
    fn release_attempt(&self, attempt: AttemptId) -> impl Future<Output = StoreResult<()>> + Send;
    /// In one transaction: removes the reservation, counts a failure for
    /// `name` (locking it per `rule` when the budget is spent) and, for a
    /// wrong code on a challenge, counts it against `challenge`. Returns the
    /// new lock's end, if this failure set one.
    fn record_failure(
        &self,
        attempt: AttemptId,
        name: &Username,
        challenge: Option<ChallengeId>,
        now: OffsetDateTime,
        rule: LockRule,
    ) -> impl Future<Output = StoreResult<Option<OffsetDateTime>>> + Send;
    /// The end of `name`'s lock, if it is locked at `now`.
    fn locked_until(
        &self,
        name: &Username,
        now: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<Option<OffsetDateTime>>> + Send;

    /// Sealed TOTP secrets after `after` (user id, purpose), in key order.
    fn sealed_secrets(
        &self,
        after: Option<(UserId, String)>,
        limit: u64,
    ) -> impl Future<Output = StoreResult<Vec<StoredSecret>>> + Send;
    /// Replaces a sealed secret only if its ciphertext is still `old`.
    fn reseal(
        &self,
        secret: &StoredSecret,
        new: &Sealed,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Deletes up to `batch` expired sessions (absolute end, or last used
    /// before `idle_cutoff`), challenges, pending secrets and budget
    /// reservations whose lease ended, and budget rows not locked, at lock
    /// level 0 (a raised level is reset only by a completed login) and
    /// untouched since `budget_cutoff`; returns how many rows went.
    fn purge_expired(
        &self,
        now: OffsetDateTime,
        idle_cutoff: OffsetDateTime,
        budget_cutoff: OffsetDateTime,
        batch: u64,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
}

impl From<StoreError> for crate::domain::AuthError {
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

impl From<CompletionError> for crate::domain::AuthError {
    fn from(e: CompletionError) -> Self {
        match e {
            // Losers of a single-use race are answered like a wrong code.
            CompletionError::ChallengeGone
            | CompletionError::StepUsed
            | CompletionError::CodeUsed => Self::InvalidCredentials,
            CompletionError::PendingGone => Self::NoPendingEnrollment,
            // The password checked is no longer the account's.
            CompletionError::CredentialsChanged => Self::InvalidCredentials,
            CompletionError::Store(e) => e.into(),
        }
    }
}
