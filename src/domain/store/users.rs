//! The user aggregate: accounts as stored.

use std::future::Future;

use time::OffsetDateTime;

use super::StoreResult;
use crate::domain::ids::UserId;
use crate::domain::username::Username;

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

/// Accounts: create, find, upgrade a password hash.
pub trait UserStore: Send + Sync {
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
}
