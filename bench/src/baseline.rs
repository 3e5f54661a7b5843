//! The limits each scenario is compared with, measured in the same run:
//! compute-only argon2id and a raw one-row database commit. (The third,
//! `echo`, is a load scenario: grpc.health.v1 Health/Check on the server.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait as _, Database, TransactionTrait as _};

use crate::server::ServerArgon2;

/// Writers the commit baseline runs.
pub const COMMIT_WRITERS: usize = 8;

/// A measured rate.
#[derive(Debug, Clone)]
pub struct Rate {
    /// Operations per second.
    pub per_sec: f64,
    /// Operations counted.
    pub count: u64,
    /// Threads or writers used.
    pub workers: usize,
}

/// The hash concurrency a server started with this environment uses:
/// `WARDEN_HASH_CONCURRENCY`, or the CPU count as the server defaults.
pub fn hash_concurrency() -> anyhow::Result<usize> {
    match std::env::var("WARDEN_HASH_CONCURRENCY") {
        Ok(v) => v
            .parse()
            .with_context(|| format!("WARDEN_HASH_CONCURRENCY={v}")),
        Err(_) => Ok(std::thread::available_parallelism().map_or(1, usize::from)),
    }
}

/// Compute-only argon2id verifies per second: `threads` OS threads, each
/// hashing a 28-byte password into its own preallocated block buffer (what
/// verifying a PHC string costs, minus the allocation and page faults of a
/// fresh 19 MiB buffer per call).
pub fn argon2(params: ServerArgon2, threads: usize, duration: Duration) -> anyhow::Result<Rate> {
    let params = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(32),
    )
    .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..threads.max(1) {
        let (params, stop, count) = (params.clone(), Arc::clone(&stop), Arc::clone(&count));
        handles.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
            let mut blocks = vec![Block::default(); params.block_count()];
            let mut out = [0u8; 32];
            let salt = *b"sixteen-byte-slt";
            while !stop.load(Ordering::Relaxed) {
                argon2
                    .hash_password_into_with_memory(
                        b"correct horse battery staple",
                        &salt,
                        &mut out,
                        &mut blocks,
                    )
                    .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("argon2 thread panicked"))??;
    }
    // Hashes finishing after the stop flag are counted against the longer
    // elapsed time, so the rate stays honest.
    let elapsed = started.elapsed();
    let n = count.load(Ordering::Relaxed);
    Ok(Rate {
        per_sec: rate(n, elapsed),
        count: n,
        workers: threads.max(1),
    })
}

#[allow(clippy::cast_precision_loss)]
fn rate(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

/// Raw one-row write transactions per second on `url` (BEGIN, INSERT,
/// COMMIT) from [`COMMIT_WRITERS`] writers, through SeaORM/sqlx with the
/// server's SQLite settings (WAL, `synchronous=FULL`, 10 s busy timeout).
/// Uses a table of its own, dropped afterwards.
pub async fn db_commit(url: &str, duration: Duration) -> anyhow::Result<Rate> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .max_connections(u32::try_from(COMMIT_WRITERS)?)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
        });
    let db = Database::connect(options)
        .await
        .context("connect for the commit baseline")?;
    db.execute_unprepared("DROP TABLE IF EXISTS bench_commit")
        .await
        .context("drop bench_commit")?;
    db.execute_unprepared(
        "CREATE TABLE bench_commit (writer INTEGER NOT NULL, seq INTEGER NOT NULL, \
         at BIGINT NOT NULL, PRIMARY KEY (writer, seq))",
    )
    .await
    .context("create bench_commit")?;
    let stop_at = Instant::now() + duration;
    let started = Instant::now();
    let mut writers = Vec::new();
    for writer in 0..COMMIT_WRITERS {
        let db = db.clone();
        writers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < stop_at {
                let tx = db.begin().await.context("begin")?;
                tx.execute_unprepared(&format!(
                    "INSERT INTO bench_commit (writer, seq, at) VALUES ({writer}, {n}, {})",
                    started.elapsed().as_micros()
                ))
                .await
                .context("insert")?;
                tx.commit().await.context("commit")?;
                n += 1;
            }
            anyhow::Ok(n)
        }));
    }
    let mut total = 0;
    for w in writers {
        total += w.await??;
    }
    let elapsed = started.elapsed();
    db.execute_unprepared("DROP TABLE bench_commit")
        .await
        .context("drop bench_commit")?;
    db.close().await.context("close")?;
    Ok(Rate {
        per_sec: rate(total, elapsed),
        count: total,
        workers: COMMIT_WRITERS,
    })
}
