//! Register: creates an account. Issues no session.

use crate::domain::AuthService;
use crate::domain::audit::{self, AuditEvent, Outcome};
use crate::domain::error::AuthError;
use crate::domain::ids::UserId;
use crate::domain::store::{Store, StoreError, UserRecord};
use crate::domain::username::Username;

impl<S: Store> AuthService<S> {
    /// Creates an account. Issues no session.
    pub async fn register(&self, username: &str, password: &str) -> Result<UserId, AuthError> {
        let username = Username::parse(username)?;
        let password = self
            .settings
            .password_policy
            .check_new(password, "password")?;
        let password_hash = self.passwords.hash(password).await?;
        let now = self.clock.now();
        let user = UserRecord {
            id: UserId::generate(),
            username,
            password_hash,
            created_at: now,
            disabled_at: None,
        };
        match self.store.insert_user(&user).await {
            Ok(()) => {
                audit::record(AuditEvent::UserRegistered, Outcome::Success, Some(user.id));
                Ok(user.id)
            }
            Err(StoreError::UniqueViolation) => Err(AuthError::UsernameTaken),
            Err(e) => Err(e.into()),
        }
    }
}
