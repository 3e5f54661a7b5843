//! Service logic: Warden's use-cases and the types they speak. Nothing here
//! imports gRPC or ORM types; `grpc/` and `storage/` convert at the edges.
//!
//! [`AuthService`] is defined here and each use-case adds its methods in a
//! module of its own: [`register`], [`login`], [`sessions`], [`enrollment`]
//! (TOTP), [`challenge`] (the second step of a login), [`step_up`],
//! [`access_token`] (signed tokens for local validation) and
//! [`maintenance`]. [`second_factor`] is the seam every second factor plugs
//! into, [`budget`] the failure budget every credential check goes through,
//! and [`store`] the storage ports.

pub mod access_token;
pub mod audit;
pub mod budget;
pub mod challenge;
pub mod clock;
pub mod enrollment;
pub mod error;
pub mod ids;
pub mod login;
pub mod maintenance;
pub mod password_policy;
pub mod register;
pub mod second_factor;
pub mod sessions;
pub mod step_up;
pub mod store;
pub mod username;

use std::sync::Arc;
use std::time::Duration;

use crate::crypto::Keys;
use crate::crypto::keyring::{KeyRing, Sealed};
use crate::crypto::password::SecretHasher;
use crate::crypto::signing::SigningKeys;
use crate::crypto::tokens::TokenKey;
use crate::crypto::totp::TotpSecret;
use crate::domain::access_token::AccessTokenPolicy;
use crate::domain::budget::{Attempt, BudgetPolicy};
use crate::domain::clock::Clock;
use crate::domain::ids::UserId;
use crate::domain::password_policy::PasswordPolicy;
use crate::domain::store::{SecretPurpose, Store, UserRecord};

pub use error::AuthError;

/// Tunables of the use-cases, from configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Absolute session lifetime.
    pub session_ttl: Duration,
    /// Idle timeout.
    pub session_idle_timeout: Duration,
    /// Login challenge lifetime.
    pub challenge_ttl: Duration,
    /// Pending TOTP secret lifetime.
    pub enrollment_ttl: Duration,
    /// Live sessions a user may hold; issuing one more ends the oldest.
    pub max_sessions_per_user: u32,
    /// Issuer shown by authenticator apps.
    pub totp_issuer: String,
    /// Accepted TOTP steps either side of now.
    pub totp_skew: u64,
    /// Rules for new passwords.
    pub password_policy: PasswordPolicy,
    /// The failure budget.
    pub budget: BudgetPolicy,
    /// What access tokens say and how long they live.
    pub access_tokens: AccessTokenPolicy,
}

/// The use-cases, over a store.
pub struct AuthService<S> {
    store: S,
    clock: Arc<dyn Clock>,
    passwords: SecretHasher,
    recovery_codes: SecretHasher,
    tokens: TokenKey,
    keys: KeyRing,
    signing: SigningKeys,
    settings: Settings,
}

/// Associated data binding a sealed TOTP secret to its user and purpose, so
/// a ciphertext moved to another row or purpose does not decrypt.
fn totp_aad(user: UserId, purpose: SecretPurpose) -> Vec<u8> {
    format!("warden/totp/{}/{user}", purpose.as_str()).into_bytes()
}

impl<S: Store> AuthService<S> {
    /// Assembles the use-cases.
    pub fn new(
        store: S,
        clock: Arc<dyn Clock>,
        passwords: SecretHasher,
        recovery_codes: SecretHasher,
        keys: Keys,
        settings: Settings,
    ) -> Self {
        let Keys {
            ring,
            token,
            signing,
        } = keys;
        Self {
            store,
            clock,
            passwords,
            recovery_codes,
            tokens: token,
            keys: ring,
            signing,
            settings,
        }
    }

    /// Reserves an attempt of `user`'s failure budget.
    pub(crate) async fn reserve_attempt(&self, user: &UserRecord) -> Result<Attempt<S>, AuthError> {
        self.settings
            .budget
            .reserve(
                &self.store,
                &self.clock,
                &user.username,
                Some(user.id),
                None,
            )
            .await
    }

    pub(crate) fn open_secret(
        &self,
        user: UserId,
        purpose: SecretPurpose,
        sealed: &Sealed,
    ) -> Result<TotpSecret, AuthError> {
        self.keys
            .open(sealed, &totp_aad(user, purpose))
            .map(TotpSecret::from_bytes)
            .map_err(|e| AuthError::internal("decrypt TOTP secret", e))
    }

    pub(crate) fn unix_now(&self) -> u64 {
        u64::try_from(self.clock.now().unix_timestamp()).unwrap_or(0)
    }
}
