//! Argon2id costs for passwords, and the workers that compute them.

use clap::Args;

use super::{ConfigError, within};

/// Caps on the costs and the queue: each far above any real deployment, and
/// low enough that the sums and products built from them (`8 × lanes`,
/// `concurrency + queue`) cannot overflow.
const MAX_ARGON2_MEMORY_KIB: u32 = 4 * 1024 * 1024;
const MAX_ARGON2_ITERATIONS: u32 = 1_000;
const MAX_ARGON2_PARALLELISM: u32 = 64;
const MAX_HASH_QUEUE: usize = 1_000_000;

/// The CPUs this process may use (its cgroup or affinity limit), or 1 when
/// that cannot be read.
pub fn cpu_limit() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The hashing settings.
#[derive(Debug, Clone, Args)]
pub struct HashingSettings {
    /// Argon2id memory cost in KiB.
    #[arg(
        long = "argon2-memory-kib",
        value_name = "ARGON2_MEMORY_KIB",
        env = "WARDEN_ARGON2_MEMORY_KIB",
        default_value_t = 19_456,
        global = true
    )]
    pub memory_kib: u32,
    /// Argon2id iterations.
    #[arg(
        long = "argon2-iterations",
        value_name = "ARGON2_ITERATIONS",
        env = "WARDEN_ARGON2_ITERATIONS",
        default_value_t = 2,
        global = true
    )]
    pub iterations: u32,
    /// Argon2id lanes.
    #[arg(
        long = "argon2-parallelism",
        value_name = "ARGON2_PARALLELISM",
        env = "WARDEN_ARGON2_PARALLELISM",
        default_value_t = 1,
        global = true
    )]
    pub parallelism: u32,
    /// Hashes computed at once (default: CPU count).
    #[arg(
        long = "hash-concurrency",
        value_name = "HASH_CONCURRENCY",
        env = "WARDEN_HASH_CONCURRENCY",
        global = true
    )]
    pub concurrency: Option<usize>,
    /// Hashing jobs allowed to wait; beyond this calls get UNAVAILABLE OVERLOADED.
    #[arg(
        long = "hash-queue",
        value_name = "HASH_QUEUE",
        env = "WARDEN_HASH_QUEUE",
        default_value_t = 64,
        global = true
    )]
    pub queue: usize,
}

impl HashingSettings {
    /// Costs argon2 accepts, no more workers than CPUs, a queue of at least one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        within(
            "WARDEN_ARGON2_PARALLELISM",
            self.parallelism,
            1,
            MAX_ARGON2_PARALLELISM,
        )?;
        // argon2 needs 8 KiB per lane; parallelism is capped above, so the
        // product cannot overflow.
        within(
            "WARDEN_ARGON2_MEMORY_KIB",
            self.memory_kib,
            8 * self.parallelism,
            MAX_ARGON2_MEMORY_KIB,
        )?;
        within(
            "WARDEN_ARGON2_ITERATIONS",
            self.iterations,
            1,
            MAX_ARGON2_ITERATIONS,
        )?;
        if let Some(concurrency) = self.concurrency {
            // More hashing threads than CPUs only adds memory, not speed.
            within("WARDEN_HASH_CONCURRENCY", concurrency, 1, cpu_limit())?;
        }
        within("WARDEN_HASH_QUEUE", self.queue, 1, MAX_HASH_QUEUE)
    }

    /// The hashing workers: as configured, or one per CPU.
    pub fn workers(&self) -> usize {
        self.concurrency.unwrap_or_else(cpu_limit)
    }
}
