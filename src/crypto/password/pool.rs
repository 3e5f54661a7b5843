//! The fixed set of hashing threads, each with its own argon2 memory, and
//! their bounded queue.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::Block;
use tokio::sync::oneshot;

use super::{HashError, failed};

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
    /// Jobs a worker is computing now.
    running: Arc<AtomicUsize>,
    /// Jobs refused because workers and queue were full, since the start.
    rejected: AtomicU64,
    /// Workers plus queue places.
    capacity: usize,
    pub(super) memory_kib: u32,
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
                .spawn(move || {
                    super::priority::lower_this_thread();
                    work(&receiver, &mut memory)
                })
                .map_err(|e| failed(format!("start hashing worker: {e}")))?;
        }
        Ok(Arc::new(Self {
            queue: sender,
            admitted: Arc::new(AtomicUsize::new(0)),
            running: Arc::new(AtomicUsize::new(0)),
            rejected: AtomicU64::new(0),
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
    pub(super) async fn run<T, F>(&self, job: F) -> Result<T, HashError>
    where
        F: FnOnce(&mut [Block]) -> Result<T, HashError> + Send + 'static,
        T: Send + 'static,
    {
        let admission = Admission::enter(self).inspect_err(|_| self.count_rejected())?;
        let (answer, answered) = oneshot::channel();
        let span = tracing::Span::current();
        let running = self.running.clone();
        let task: Task = Box::new(move |memory| {
            // The job holds its place until it is done or skipped, even when
            // its caller has gone.
            let _admission = admission;
            // The caller gave up (cancelled, timed out, disconnected) while
            // the job waited: skip it, so abandoned calls cost nothing.
            if answer.is_closed() {
                return;
            }
            let _running = Running::start(&running);
            let _ = answer.send(span.in_scope(|| job(memory)));
        });
        self.queue.try_send(task).map_err(|e| match e {
            TrySendError::Full(_) => {
                self.count_rejected();
                HashError::Overloaded
            }
            TrySendError::Disconnected(_) => failed("hashing workers stopped"),
        })?;
        answered
            .await
            .map_err(|_| failed("hashing worker dropped the job"))?
    }
}

impl HashingPool {
    fn count_rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// What the pool is doing now, for metrics.
    pub fn stats(&self) -> PoolStats {
        let running = self.running.load(Ordering::Acquire);
        let admitted = self.admitted.load(Ordering::Acquire).min(self.capacity);
        PoolStats {
            running,
            queued: admitted.saturating_sub(running),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of the pool's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Jobs being computed.
    pub running: usize,
    /// Jobs admitted and waiting for a worker.
    pub queued: usize,
    /// Jobs refused (workers and queue full) since the start.
    pub rejected: u64,
}

/// Counts a job while a worker computes it.
struct Running<'a>(&'a AtomicUsize);

impl<'a> Running<'a> {
    fn start(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
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
