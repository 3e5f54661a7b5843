//! Maintenance: housekeeping of expired rows and re-encryption of TOTP
//! secrets under the primary key.

use crate::domain::clock::to_time;
use crate::domain::error::AuthError;
use crate::domain::store::Store;
use crate::domain::{AuthService, totp_aad};

impl<S: Store> AuthService<S> {
    /// Deletes up to `batch` expired sessions, challenges and pending secrets,
    /// and stale failure-budget rows.
    pub async fn purge_expired(&self, batch: u64) -> Result<u64, AuthError> {
        let now = self.clock.now();
        let idle_cutoff = now - to_time(self.settings.session_idle_timeout);
        // A name's budget row is dropped once it has been left alone for the
        // longest lock; that bounds the table when strangers try many names.
        let budget_cutoff = now - to_time(self.settings.budget.max_lock);
        Ok(self
            .store
            .purge_expired(now, idle_cutoff, budget_cutoff, batch)
            .await?)
    }

    /// Re-encrypts every TOTP secret not yet under the primary key, each with
    /// a conditional write; returns how many rows changed.
    pub async fn rotate_keys(&self) -> Result<u64, AuthError> {
        let mut changed = 0;
        let mut after = None;
        loop {
            let page = self.store.sealed_secrets(after, 200).await?;
            let Some(last) = page.last() else { break };
            after = Some((last.user, last.purpose));
            for secret in &page {
                if secret.sealed.key_id == self.keys.primary_id() {
                    continue;
                }
                let aad = totp_aad(secret.user, secret.purpose);
                let plain = self
                    .keys
                    .open(&secret.sealed, &aad)
                    .map_err(|e| AuthError::internal("decrypt TOTP secret for rotation", e))?;
                let resealed = self.keys.seal(&plain, &aad);
                if self.store.reseal(secret, &resealed).await? {
                    changed += 1;
                }
            }
        }
        Ok(changed)
    }
}
