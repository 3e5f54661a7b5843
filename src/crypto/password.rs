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
//! logins can neither starve other RPCs nor queue without end.
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

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq as _;
use tokio::sync::oneshot;
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

/// One job for a worker: computes in the worker's argon2 memory and answers
/// its caller itself.
type Task = Box<dyn FnOnce(&mut [Block]) + Send>;

/// The fixed set of threads every argon2 job runs on (passwords and recovery
/// codes), each with a preallocated buffer of `memory_kib` KiB.
#[derive(Debug)]
pub struct HashingPool {
    queue: SyncSender<Task>,
    /// Jobs queued or running.
    admitted: Arc<AtomicUsize>,
    /// Workers plus queue places.
    capacity: usize,
    memory_kib: u32,
}

impl HashingPool {
    /// Starts `concurrency` worker threads, each with `memory_kib` KiB of
    /// argon2 memory (at least the largest memory cost it will be given),
    /// with room for `queue` more jobs to wait.
    ///
    /// The buffers are allocated and touched here, so a memory limit too
    /// small for them fails at start, not under the first load.
    pub fn new(concurrency: usize, queue: usize, memory_kib: u32) -> Result<Arc<Self>, HashError> {
        let concurrency = concurrency.max(1);
        let capacity = concurrency.saturating_add(queue);
        // Admission counts every job until it is done, so the channel never
        // holds more than `capacity` and is never what refuses a job.
        let (sender, receiver) = mpsc::sync_channel::<Task>(capacity);
        let receiver = Arc::new(Mutex::new(receiver));
        let blocks = usize::try_from(memory_kib).map_err(failed)?;
        for n in 0..concurrency {
            let mut memory = Vec::new();
            memory
                .try_reserve_exact(blocks)
                .map_err(|e| failed(format!("argon2 memory ({memory_kib} KiB): {e}")))?;
            memory.resize(blocks, Block::new());
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("warden-hash-{n}"))
                .spawn(move || work(&receiver, &mut memory))
                .map_err(|e| failed(format!("start hashing worker: {e}")))?;
        }
        Ok(Arc::new(Self {
            queue: sender,
            admitted: Arc::new(AtomicUsize::new(0)),
            capacity,
            memory_kib,
        }))
    }

    /// Queues `job` for a worker and waits for its answer, or refuses at
    /// once when every worker is busy and the queue is full.
    ///
    /// Dropping the returned future before a worker starts the job means the
    /// job never runs; once started, it finishes on its worker (argon2 cannot
    /// be interrupted) but still occupies that worker, so the number of
    /// computations never exceeds the number of workers.
    async fn run<T, F>(&self, job: F) -> Result<T, HashError>
    where
        F: FnOnce(&mut [Block]) -> Result<T, HashError> + Send + 'static,
        T: Send + 'static,
    {
        let admission = Admission::enter(self)?;
        let (answer, answered) = oneshot::channel();
        let span = tracing::Span::current();
        let task: Task = Box::new(move |memory| {
            // The job holds its place until it is done or skipped, even when
            // its caller has gone.
            let _admission = admission;
            // The caller gave up (cancelled, timed out, disconnected) while
            // the job waited: skip it, so abandoned calls cost nothing.
            if answer.is_closed() {
                return;
            }
            let _ = answer.send(span.in_scope(|| job(memory)));
        });
        self.queue.try_send(task).map_err(|e| match e {
            TrySendError::Full(_) => HashError::Overloaded,
            TrySendError::Disconnected(_) => failed("hashing workers stopped"),
        })?;
        answered
            .await
            .map_err(|_| failed("hashing worker dropped the job"))?
    }
}

/// Counts a job from admission until it is done, so the queue bound holds.
struct Admission(Arc<AtomicUsize>);

impl Admission {
    fn enter(pool: &HashingPool) -> Result<Self, HashError> {
        let before = pool.admitted.fetch_add(1, Ordering::AcqRel);
        let admission = Self(pool.admitted.clone());
        if before >= pool.capacity {
            return Err(HashError::Overloaded);
        }
        Ok(admission)
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A worker's loop: takes jobs until the pool is dropped.
fn work(jobs: &Mutex<Receiver<Task>>, memory: &mut [Block]) {
    loop {
        // The lock is held only while waiting for the next job; idle workers
        // queue on it, busy ones do not hold it.
        let next = match jobs.lock() {
            Ok(receiver) => receiver.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(task) = next else {
            return;
        };
        // A panic inside a job must not cost the pool a worker; the caller
        // sees its answer channel closed. The memory is scratch, so reusing
        // it after an unwind is sound.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| task(memory)));
    }
}

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
        let salt = super::random_bytes::<SALT_LEN>();
        let output = super::random_bytes::<OUTPUT_LEN>();
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

/// The PHC string `$argon2id$v=19$m=…,t=…,p=…$salt$output`, as the argon2
/// crate's own `PasswordHasher` writes it.
fn phc_string(params: &Params, salt: &[u8], output: &[u8]) -> Result<String, HashError> {
    Ok(PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(failed)?,
        salt: Some(Salt::new(salt).map_err(failed)?),
        hash: Some(Output::new(output).map_err(failed)?),
    }
    .to_string())
}

/// The part of the worker's memory `params` use, or an error when they need
/// more than it has.
fn blocks_for<'m>(memory: &'m mut [Block], params: &Params) -> Result<&'m mut [Block], HashError> {
    let available = memory.len();
    memory.get_mut(..params.block_count()).ok_or_else(|| {
        failed(format!(
            "argon2 memory {} KiB exceeds the hashing workers' {available} KiB",
            params.m_cost()
        ))
    })
}

/// Argon2's work: every pass fills every block once.
fn work_of(params: &Params) -> u64 {
    u64::try_from(params.block_count())
        .unwrap_or(u64::MAX)
        .saturating_mul(u64::from(params.t_cost()))
}

fn hash_in(memory: &mut [Block], params: Argon2Params, secret: &[u8]) -> Result<String, HashError> {
    let params = params.params()?;
    let salt = super::random_bytes::<SALT_LEN>();
    let mut output = Zeroizing::new([0u8; OUTPUT_LEN]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(
            secret,
            &salt[..],
            &mut output[..],
            blocks_for(memory, &params)?,
        )
        .map_err(failed)?;
    phc_string(&params, &salt[..], &output[..])
}

/// Recomputes `phc` for `secret` with the parameters it names and compares
/// in constant time; then pads the work up to `current`'s.
fn verify_in(
    memory: &mut [Block],
    current: Argon2Params,
    secret: &[u8],
    phc: &str,
) -> Result<bool, HashError> {
    let hash = PasswordHash::new(phc).map_err(failed)?;
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return Err(failed("stored hash has no salt or output"));
    };
    let algorithm = Algorithm::try_from(hash.algorithm.as_str()).map_err(failed)?;
    let version = hash
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(failed)?
        .unwrap_or_default();
    // The parameters (and the output length) come from the PHC string.
    let params = Params::try_from(&hash).map_err(failed)?;
    let mut buffer = Zeroizing::new([0u8; Output::MAX_LENGTH]);
    let computed = buffer
        .get_mut(..expected.len())
        .ok_or_else(|| failed("stored hash output too long"))?;
    Argon2::new(algorithm, version, params.clone())
        .hash_password_into_with_memory(secret, salt, &mut *computed, blocks_for(memory, &params)?)
        .map_err(failed)?;
    let matched = bool::from(computed.ct_eq(expected.as_bytes()));
    if let Some(padding) = padding(work_of(&params), &current.params()?)? {
        pad_in(memory, &padding)?;
    }
    Ok(matched)
}

/// The parameters of a computation that makes up the work `target` does
/// beyond `spent`, within `target`'s memory size; `None` when nothing is
/// missing.
fn padding(spent: u64, target: &Params) -> Result<Option<Params>, HashError> {
    let missing = work_of(target).saturating_sub(spent);
    // Below argon2's minimum of 8 blocks the difference is noise.
    if missing < 8 {
        return Ok(None);
    }
    let widest = u64::try_from(target.block_count()).map_err(failed)?.max(8);
    let passes = missing.div_ceil(widest);
    let blocks = (missing / passes).max(8);
    let params = Params::new(
        u32::try_from(blocks).map_err(failed)?,
        u32::try_from(passes).map_err(failed)?,
        1,
        None,
    )
    .map_err(failed)?;
    Ok(Some(params))
}

/// Burns `params`' worth of argon2 work in the worker's memory.
fn pad_in(memory: &mut [Block], params: &Params) -> Result<(), HashError> {
    let mut output = [0u8; OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(
            &[],
            &[0u8; SALT_LEN],
            &mut output,
            blocks_for(memory, params)?,
        )
        .map_err(failed)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

    use super::*;

    const CHEAP: Argon2Params = Argon2Params {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    fn pool(concurrency: usize, queue: usize) -> Arc<HashingPool> {
        HashingPool::new(concurrency, queue, 256).unwrap_or_else(|e| unreachable!("{e}"))
    }

    fn hasher() -> SecretHasher {
        SecretHasher::new(pool(2, 4), CHEAP).unwrap_or_else(|e| unreachable!("{e}"))
    }

    fn secret(s: &str) -> Zeroizing<String> {
        Zeroizing::new(s.into())
    }

    #[tokio::test]
    async fn verifies_its_own_hashes_and_rejects_others() -> Result<(), HashError> {
        let h = hasher();
        let phc = h.hash(secret("correct horse")).await?;
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(h.verify(secret("correct horse"), Some(phc.clone())).await?);
        assert!(!h.verify(secret("Correct horse"), Some(phc)).await?);
        assert!(!h.verify(secret("anything"), None).await?);
        Ok(())
    }

    #[tokio::test]
    async fn its_hashes_verify_with_the_argon2_crate() -> Result<(), HashError> {
        let phc = hasher().hash(secret("correct horse")).await?;
        let parsed = PasswordHash::new(&phc).map_err(failed)?;
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
        Ok(())
    }

    #[tokio::test]
    async fn hashes_made_by_the_argon2_crate_verify_here() -> Result<(), HashError> {
        let h = hasher();
        // Other parameters than the hasher's, and another variant, too.
        for (algorithm, m, t, p) in [
            (Algorithm::Argon2id, 64, 1, 1),
            (Algorithm::Argon2id, 128, 3, 2),
            (Algorithm::Argon2i, 32, 2, 1),
        ] {
            let params = Params::new(m, t, p, None).map_err(failed)?;
            let phc = Argon2::new(algorithm, Version::V0x13, params)
                .hash_password(b"correct horse")
                .map_err(failed)?
                .to_string();
            assert!(h.verify(secret("correct horse"), Some(phc.clone())).await?);
            assert!(!h.verify(secret("correct horsE"), Some(phc)).await?);
        }
        Ok(())
    }

    #[tokio::test]
    async fn finds_the_matching_code_among_several() -> Result<(), HashError> {
        let h = hasher();
        let mut stored = Vec::new();
        for code in ["one", "two", "three"] {
            stored.push(h.hash(secret(code)).await?);
        }
        assert_eq!(h.find_match(secret("two"), stored.clone()).await?, Some(1));
        assert_eq!(h.find_match(secret("four"), stored).await?, None);
        Ok(())
    }

    #[tokio::test]
    async fn refuses_a_stored_hash_larger_than_the_workers_memory() -> Result<(), HashError> {
        let params = Params::new(1024, 1, 1, None).map_err(failed)?;
        let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"pw")
            .map_err(failed)?
            .to_string();
        assert!(matches!(
            hasher().verify(secret("pw"), Some(phc)).await,
            Err(HashError::Failed(_))
        ));
        assert!(matches!(
            SecretHasher::new(
                pool(1, 1),
                Argon2Params {
                    memory_kib: 1024,
                    ..CHEAP
                }
            ),
            Err(HashError::Failed(_))
        ));
        Ok(())
    }

    #[tokio::test]
    async fn flags_hashes_made_with_other_parameters() -> Result<(), HashError> {
        let h = hasher();
        let phc = h.hash(secret("pw")).await?;
        assert!(!h.needs_rehash(&phc));
        let other = SecretHasher::new(
            pool(1, 1),
            Argon2Params {
                memory_kib: 128,
                ..CHEAP
            },
        )?;
        assert!(other.needs_rehash(&phc));
        Ok(())
    }

    #[test]
    fn padding_makes_up_the_missing_work_within_the_current_memory() -> Result<(), HashError> {
        let current = Params::new(19_456, 4, 1, None).map_err(failed)?;
        // Stored with t=2: two more full passes.
        let pad = padding(19_456 * 2, &current)?.ok_or_else(|| failed("no padding"))?;
        assert_eq!((pad.m_cost(), pad.t_cost()), (19_456, 2));
        // Stored with less memory: the difference, never wider than m.
        let pad = padding(4096 * 2, &current)?.ok_or_else(|| failed("no padding"))?;
        assert!(pad.m_cost() <= 19_456);
        let made_up = work_of(&pad) + 4096 * 2;
        assert!(made_up.abs_diff(work_of(&current)) <= u64::from(pad.t_cost()) * 4);
        // As costly or costlier: nothing to add.
        assert!(padding(work_of(&current), &current)?.is_none());
        assert!(padding(work_of(&current) * 2, &current)?.is_none());
        Ok(())
    }

    #[tokio::test]
    async fn refuses_work_beyond_the_queue() -> Result<(), HashError> {
        let pool = pool(1, 0);
        let (started_tx, started) = oneshot::channel();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let busy = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(move |_| {
                    let _ = started_tx.send(());
                    let _ = wait.recv();
                    Ok(())
                })
                .await
            })
        };
        let _ = started.await;
        assert!(matches!(
            pool.run(|_| Ok(())).await,
            Err(HashError::Overloaded)
        ));
        let _ = release.send(());
        assert!(matches!(busy.await, Ok(Ok(()))));
        Ok(())
    }

    #[tokio::test]
    async fn a_job_whose_caller_left_never_runs() -> Result<(), HashError> {
        let pool = pool(1, 4);
        let (started_tx, started) = oneshot::channel();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let busy = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(move |_| {
                    let _ = started_tx.send(());
                    let _ = wait.recv();
                    Ok(())
                })
                .await
            })
        };
        let _ = started.await;
        // Queued behind the busy worker; the caller gives up before it starts.
        let ran = Arc::new(AtomicBool::new(false));
        let abandoned = {
            let ran = ran.clone();
            pool.run(move |_| {
                ran.store(true, Ordering::SeqCst);
                Ok(())
            })
        };
        assert!(
            tokio::time::timeout(Duration::from_millis(20), abandoned)
                .await
                .is_err()
        );
        let _ = release.send(());
        assert!(matches!(busy.await, Ok(Ok(()))));
        // The queue is first in, first out: once this one has run, the
        // abandoned job has been taken, and skipped.
        pool.run(|_| Ok(())).await?;
        assert!(!ran.load(Ordering::SeqCst));
        Ok(())
    }

    #[tokio::test]
    async fn never_runs_more_jobs_at_once_than_workers_even_when_callers_leave() {
        let pool = pool(2, 64);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut calls = Vec::new();
        for i in 0..24 {
            let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
            calls.push(tokio::spawn(async move {
                let call = pool.run(move |_| {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                });
                // Every other caller gives up almost at once, mostly while
                // its job is already running.
                let patience = Duration::from_millis(if i % 2 == 0 { 1 } else { 10_000 });
                let _ = tokio::time::timeout(patience, call).await;
            }));
        }
        for call in calls {
            let _ = call.await;
        }
        // Let any job a leaving caller started finish.
        let _ = pool.run(|_| Ok(())).await;
        let _ = pool.run(|_| Ok(())).await;
        assert!(most.load(Ordering::SeqCst) <= 2, "{most:?} at once");
        assert!(most.load(Ordering::SeqCst) >= 1);
    }
}
