//! Maintenance: key rotation and housekeeping.

use std::future::Future;

use time::OffsetDateTime;

use super::{SecretPurpose, StoreResult};
use crate::crypto::keyring::Sealed;
use crate::domain::ids::UserId;

/// A sealed TOTP secret with the row it belongs to.
#[derive(Debug, Clone)]
pub struct StoredSecret {
    /// Owner.
    pub user: UserId,
    /// What it is for.
    pub purpose: SecretPurpose,
    /// The ciphertext.
    pub sealed: Sealed,
}

/// Re-encryption of sealed secrets and deletion of expired rows.
pub trait MaintenanceStore: Send + Sync {
    /// Sealed TOTP secrets after `after` (user id, purpose), in key order.
    fn sealed_secrets(
        &self,
        after: Option<(UserId, SecretPurpose)>,
        limit: u64,
    ) -> impl Future<Output = StoreResult<Vec<StoredSecret>>> + Send;
    /// Replaces a sealed secret only if its ciphertext is still `old`.
    fn reseal(
        &self,
        secret: &StoredSecret,
        new: &Sealed,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Deletes up to `batch` expired sessions (absolute end, or last used
    /// before `idle_cutoff`), challenges, pending secrets, remembered
    /// devices past their end, budget reservations whose lease ended, and
    /// budget rows not locked, at lock level 0 (a raised level is reset only
    /// by a completed login) and untouched since `budget_cutoff`; returns
    /// how many rows went.
    fn purge_expired(
        &self,
        now: OffsetDateTime,
        idle_cutoff: OffsetDateTime,
        budget_cutoff: OffsetDateTime,
        batch: u64,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
}
