//! Unit tests of the hashing pool and the argon2 computations.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Version};

use super::compute::{padding, work_of};
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

/// Starts a job that holds a worker until `release` is sent; returns once
/// it is running.
async fn occupy_worker(
    pool: &Arc<HashingPool>,
) -> (
    tokio::task::JoinHandle<Result<(), HashError>>,
    std::sync::mpsc::Sender<()>,
) {
    let (started_tx, started) = tokio::sync::oneshot::channel();
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
    (busy, release)
}

#[tokio::test]
async fn refuses_work_beyond_the_queue() -> Result<(), HashError> {
    let pool = pool(1, 0);
    let (busy, release) = occupy_worker(&pool).await;
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
    let (busy, release) = occupy_worker(&pool).await;
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
