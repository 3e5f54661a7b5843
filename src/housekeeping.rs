//! Periodic deletion of expired rows in small batches. Every replica may run
//! it: each sweep is a set of idempotent deletes.

use std::sync::Arc;
use std::time::Duration;

use crate::domain::AuthService;
use crate::domain::store::Store;

/// Rows deleted per statement, so a sweep never holds long locks.
const BATCH: u64 = 500;

/// Sweeps every `interval` until the task is dropped.
pub async fn run<S: Store>(service: Arc<AuthService<S>>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        loop {
            match service.purge_expired(BATCH).await {
                Ok(n) if n >= BATCH => continue,
                Ok(n) => {
                    if n > 0 {
                        tracing::debug!(rows = n, "housekeeping removed expired rows");
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "housekeeping sweep failed");
                    break;
                }
            }
        }
    }
}
