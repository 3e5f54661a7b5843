//! Argon2id hashing on a fixed set of worker threads, each with its own
//! preallocated argon2 memory.
//!
//! # Memory
//!
//! Hashing is CPU- and memory-heavy on purpose, so it never runs on the async
//! runtime. It runs on `concurrency` dedicated threads ([`HashingPool`]);
//! each allocates one buffer of argon2 blocks at start, sized for the largest
//! parameters the server uses, and computes every job in it: password hashes,
//! password verifies (the dummy verify for unknown names included) and
//! recovery-code checks. Nothing allocates argon2 memory per call, so peak
//! memory is `concurrency × buffer` plus the rest of the server, under any
//! load.
//!
//! The earlier design (one `spawn_blocking` task per hash under a semaphore,
//! each allocating its 19 MiB and freeing it afterwards) grew without bound
//! in practice: glibc raises its mmap threshold to the size of the first
//! large block freed, so every later 19 MiB buffer came from a malloc arena
//! instead of a fresh mapping; each of tokio's many blocking threads got an
//! arena of its own (up to 8 per core), and freed arena memory below the
//! raised trim threshold is kept, not returned. Cancelled calls made it
//! worse: dropping the future released the semaphore permit while the
//! blocking task went on hashing, so more than `concurrency` buffers were
//! live at once. Here a job whose caller has gone before a worker reaches it
//! is skipped, and at most `concurrency` computations ever run.
//!
//! A full queue is refused at once ([`HashError::Overloaded`]), so a flood of
//! logins can neither starve other RPCs nor queue without end; and the
//! hashing threads run at a lower CPU priority ([`priority`]), so a flood
//! that keeps them busy does not slow the calls served beside it.
//!
//! A stored hash asking for more memory than the buffer holds (the memory
//! cost was lowered after it was made, or the row is corrupt) is refused
//! rather than given a one-off allocation: a hostile or damaged hash must not
//! be able to make the server allocate gigabytes.
//!
//! # Timing
//!
//! A verify costs what the *current* parameters cost, whatever the stored
//! hash was made with. After checking a stored hash whose work
//! (blocks × passes) is less than the current parameters', the same worker
//! runs a padding argon2 computation, within the current memory size, that
//! makes up the difference. Without it, raising the iterations would make
//! dormant accounts (old, cheaper hashes) answer faster than unknown names
//! (the dummy uses the new parameters), telling an observer which names
//! exist. Padding was chosen over re-hashing every stored hash by wrapping
//! because it needs no migration and no change to the stored format; a
//! stored hash is still upgraded for real at its owner's next successful
//! login. Lowering the parameters is not equalised (stored hashes then cost
//! more than unknown names until re-hashed); raise them, do not lower them.

mod compute;
mod pool;
mod priority;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use argon2::Params;
use argon2::password_hash::phc::PasswordHash;
use zeroize::Zeroizing;

use compute::{hash_in, phc_string, verify_in};
pub use pool::{HashingPool, PoolStats};

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

fn failed(e: impl std::fmt::Display) -> HashError {
    HashError::Failed(e.to_string())
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

    fn params(self) -> Result<Params, HashError> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None).map_err(failed)
    }
}

/// Length of the salt in hashes made here (the argon2 crate's recommendation).
const SALT_LEN: usize = 16;
/// Length of the hash output in hashes made here (the argon2 crate's default).
const OUTPUT_LEN: usize = 32;

/// Hashes and verifies secrets as argon2id PHC strings with fixed parameters.
#[derive(Debug, Clone)]
pub struct SecretHasher {
    pool: Arc<HashingPool>,
    params: Argon2Params,
    /// A hash with the current parameters, random salt and random output,
    /// verified against when there is no real hash so unknown users cost the
    /// same time as real ones (and never match).
    dummy: Arc<str>,
}

impl SecretHasher {
    /// A hasher with `params`, which must fit the pool's memory.
    pub fn new(pool: Arc<HashingPool>, params: Argon2Params) -> Result<Self, HashError> {
        let argon2_params = params.params()?;
        if params.memory_kib > pool.memory_kib {
            return Err(failed(format!(
                "argon2 memory {} KiB exceeds the hashing workers' {} KiB",
                params.memory_kib, pool.memory_kib
            )));
        }
        let salt = crate::crypto::random_bytes::<SALT_LEN>();
        let output = crate::crypto::random_bytes::<OUTPUT_LEN>();
        let dummy = phc_string(&argon2_params, &salt[..], &output[..])?;
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
            .run(move |memory| hash_in(memory, params, secret.as_bytes()))
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
        let params = self.params;
        let matched = self
            .pool
            .run(move |memory| verify_in(memory, params, secret.as_bytes(), &phc))
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
        let params = self.params;
        self.pool
            .run(move |memory| {
                let mut found = None;
                // Check every hash, not just up to the match, so the time taken
                // does not tell which code matched.
                for (i, phc) in stored.iter().enumerate() {
                    if verify_in(memory, params, secret.as_bytes(), phc)? && found.is_none() {
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
