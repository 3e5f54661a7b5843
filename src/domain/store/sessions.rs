//! The session aggregate: issuing (the last step of every login), finding,
//! refreshing and ending sessions.

use std::future::Future;

use time::OffsetDateTime;

use super::{CompletionError, NewTrustedDevice, SettledAttempt, StoreResult};
use crate::crypto::tokens::TokenHash;
use crate::domain::ids::{ChallengeId, SessionId, UserId};
use crate::domain::second_factor::SecondFactorProof;
use crate::domain::username::Username;

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
    /// A device remembered with this session: stored in the same
    /// transaction, so there is never a device without its session nor a
    /// session whose device was lost.
    pub remember: Option<NewTrustedDevice>,
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
    /// Whether the owner has TOTP on now (not when the session was issued):
    /// the required-TOTP policy follows the account's current state.
    pub owner_totp_enabled: bool,
}

/// A restricted session lifted by the TOTP confirmation made on it: its
/// method references are rewritten in the confirming transaction.
#[derive(Debug, Clone)]
pub struct SessionUpgrade {
    /// The session that confirmed.
    pub session: SessionId,
    /// Its method references from now on.
    pub amr: Vec<String>,
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
    /// A password together with a second factor presented with it (a
    /// remembered device at Login): the hash is checked as for `Password`
    /// and the factor is spent with the session.
    PasswordAnd {
        /// The PHC string the password was verified against.
        verified_hash: String,
        /// The factor presented with the password.
        proof: SecondFactorProof,
    },
    /// A second factor answered challenge `challenge`.
    SecondFactor {
        /// The challenge being completed.
        challenge: ChallengeId,
        /// The factor, spent with the session.
        proof: SecondFactorProof,
    },
}

/// Sessions: issued atomically with the proof that earned them.
pub trait SessionStore: Send + Sync {
    /// In one transaction: checks and spends `proof`, stores the session
    /// (and the device it remembers, ending the oldest devices beyond that
    /// device's cap), ends the oldest sessions beyond `max_sessions`
    /// (serialised per user, so the caps hold under concurrent logins),
    /// records the login, removes
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
}
