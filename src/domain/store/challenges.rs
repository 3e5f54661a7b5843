//! The challenge aggregate: the open second step of a login.

use std::future::Future;

use time::OffsetDateTime;

use super::{CompletionError, StoreResult};
use crate::crypto::tokens::TokenHash;
use crate::domain::ids::{ChallengeId, UserId};
use crate::domain::username::Username;

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

/// Login challenges: opened after a right password, found by token.
pub trait ChallengeStore: Send + Sync {
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
}
