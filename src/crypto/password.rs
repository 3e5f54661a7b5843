//! Argon2id password hashing on a bounded blocking pool.
//!
//! Hashing is CPU- and memory-heavy on purpose, so it never runs on the async
//! runtime: at most `concurrency` hashes run at once on tokio's blocking pool,
//! at most `queue` more wait, and anything beyond that is refused at once so a
//! flood of logins can neither starve other RPCs nor exhaust memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use tokio::sync::Semaphore;
use tracing::Instrument as _;
use zeroize::Zeroizing;

/// Why a hashing job did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The queue is full; the caller should retry later.
    #[error("hashing queue full")]
    Overloaded,
    /// The hasher itself failed (bad parameters, a corrupt stored hash).
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Argon2Params {
    /// The cheaper parameters for 80-bit random recovery codes: m=4096 KiB, t=1, p=1.
    pub const RECOVERY_CODE: Self = Self {
        memory_kib: 4096,
        iterations: 1,
        parallelism: 1,
    };

    fn argon2(self) -> Result<Argon2<'static>, HashError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| HashError::Failed(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// The bounded pool every argon2 job runs on (passwords and recovery codes).
#[derive(Debug)]
pub struct HashingPool {
    permits: Semaphore,
    admitted: AtomicUsize,
    capacity: usize,
}

impl HashingPool {
    /// A pool running `concurrency` jobs at once with `queue` more waiting.
    pub fn new(concurrency: usize, queue: usize) -> Arc<Self> {
        let concurrency = concurrency.max(1);
        Arc::new(Self {
            permits: Semaphore::new(concurrency),
            admitted: AtomicUsize::new(0),
            capacity: concurrency + queue,
        })
    }

    /// Runs `job` on the blocking pool inside the caller's span, or refuses
    /// at once when the pool and its queue are full.
    pub async fn run<T, F>(&self, job: F) -> Result<T, HashError>
    where
        F: FnOnce() -> Result<T, HashError> + Send + 'static,
        T: Send + 'static,
    {
        let _admission = Admission::enter(self)?;
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| HashError::Failed("hashing pool closed".into()))?;
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(job))
            .instrument(tracing::Span::current())
            .await
            .map_err(|e| HashError::Failed(format!("hashing task failed: {e}")))?
    }
}

/// Counts a job from admission until it finishes, so the queue bound holds.
struct Admission<'a>(&'a HashingPool);

impl<'a> Admission<'a> {
    fn enter(pool: &'a HashingPool) -> Result<Self, HashError> {
        let before = pool.admitted.fetch_add(1, Ordering::AcqRel);
        let admission = Self(pool);
        if before >= pool.capacity {
            return Err(HashError::Overloaded);
        }
        Ok(admission)
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Hashes and verifies secrets as argon2id PHC strings with fixed parameters.
#[derive(Debug, Clone)]
pub struct SecretHasher {
    pool: Arc<HashingPool>,
    params: Argon2Params,
    /// A hash of a random secret, verified against when there is no real hash
    /// so unknown users cost the same time as real ones.
    dummy: Arc<str>,
}

impl SecretHasher {
    /// A hasher with `params`; computes its dummy hash once, synchronously.
    pub fn new(pool: Arc<HashingPool>, params: Argon2Params) -> Result<Self, HashError> {
        let random = super::random_bytes::<32>();
        let dummy = hash_now(params, &random[..])?;
        Ok(Self {
            pool,
            params,
            dummy: dummy.into(),
        })
    }

    /// Hashes `secret` with a fresh salt.
    pub async fn hash(&self, secret: Zeroizing<String>) -> Result<String, HashError> {
        let params = self.params;
        self.pool
            .run(move || hash_now(params, secret.as_bytes()))
            .await
    }

    /// Checks `secret` against `stored`; with no stored hash, checks against
    /// the dummy and answers false.
    pub async fn verify(
        &self,
        secret: Zeroizing<String>,
        stored: Option<String>,
    ) -> Result<bool, HashError> {
        let real = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.dummy.to_string());
        let matched = self
            .pool
            .run(move || verify_now(secret.as_bytes(), &phc))
            .await?;
        Ok(real && matched)
    }

    /// Checks `secret` against several stored hashes (a user's recovery codes)
    /// in one pool job, returning the index of the match.
    pub async fn find_match(
        &self,
        secret: Zeroizing<String>,
        stored: Vec<String>,
    ) -> Result<Option<usize>, HashError> {
        self.pool
            .run(move || {
                let mut found = None;
                // Check every hash, not just up to the match, so the time taken
                // does not tell which code matched.
                for (i, phc) in stored.iter().enumerate() {
                    if verify_now(secret.as_bytes(), phc)? && found.is_none() {
                        found = Some(i);
                    }
                }
                Ok(found)
            })
            .await
    }

    /// Whether `stored` was made with other parameters than the configured
    /// ones, and so should be re-hashed at the next successful login.
    pub fn needs_rehash(&self, stored: &str) -> bool {
        let Ok(hash) = PasswordHash::new(stored) else {
            return true;
        };
        let Ok(params) = Params::try_from(&hash) else {
            return true;
        };
        hash.algorithm.as_str() != "argon2id"
            || params.m_cost() != self.params.memory_kib
            || params.t_cost() != self.params.iterations
            || params.p_cost() != self.params.parallelism
    }
}

fn hash_now(params: Argon2Params, secret: &[u8]) -> Result<String, HashError> {
    params
        .argon2()?
        .hash_password(secret)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Failed(e.to_string()))
}

fn verify_now(secret: &[u8], phc: &str) -> Result<bool, HashError> {
    let hash = PasswordHash::new(phc).map_err(|e| HashError::Failed(e.to_string()))?;
    // The parameters come from the PHC string itself.
    match Argon2::default().verify_password(secret, &hash) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(HashError::Failed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: Argon2Params = Argon2Params {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    fn hasher() -> SecretHasher {
        SecretHasher::new(HashingPool::new(2, 4), CHEAP).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[tokio::test]
    async fn verifies_its_own_hashes_and_rejects_others() -> Result<(), HashError> {
        let h = hasher();
        let phc = h.hash(Zeroizing::new("correct horse".into())).await?;
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(
            h.verify(Zeroizing::new("correct horse".into()), Some(phc.clone()))
                .await?
        );
        assert!(
            !h.verify(Zeroizing::new("Correct horse".into()), Some(phc))
                .await?
        );
        assert!(!h.verify(Zeroizing::new("anything".into()), None).await?);
        Ok(())
    }

    #[tokio::test]
    async fn flags_hashes_made_with_other_parameters() -> Result<(), HashError> {
        let h = hasher();
        let phc = h.hash(Zeroizing::new("pw".into())).await?;
        assert!(!h.needs_rehash(&phc));
        let other = SecretHasher::new(
            HashingPool::new(1, 1),
            Argon2Params {
                memory_kib: 128,
                ..CHEAP
            },
        )?;
        assert!(other.needs_rehash(&phc));
        Ok(())
    }

    #[tokio::test]
    async fn refuses_work_beyond_the_queue() {
        let pool = HashingPool::new(1, 0);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let busy = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(move || {
                    let _ = rx.recv();
                    Ok(())
                })
                .await
            })
        };
        while pool.admitted.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            pool.run(|| Ok(())).await,
            Err(HashError::Overloaded)
        ));
        let _ = tx.send(());
        assert!(matches!(busy.await, Ok(Ok(()))));
    }
}
