//! Raising the argon2 cost does not let Login timing tell dormant accounts
//! (hashes made with the old parameters) from names that do not exist.

use std::time::{Duration, Instant};

use tonic::Code;

use crate::helpers::{PASSWORD, TestServer, test_config};

/// Large enough that hashing, not the database, dominates a failed Login.
const MEMORY_KIB: u32 = 19_456;
const ROUNDS: usize = 21;
const WARM_UP: usize = 2;

fn median<T: PartialOrd + Copy>(mut samples: Vec<T>) -> T {
    samples.sort_by(|a, b| a.partial_cmp(b).expect("comparable"));
    samples[samples.len() / 2]
}

async fn failed_login_time(server: &mut TestServer, username: &str) -> Duration {
    let started = Instant::now();
    let status = server
        .login(username, "not the password")
        .await
        .expect_err("wrong password refused");
    let took = started.elapsed();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    took
}

#[tokio::test]
async fn raising_iterations_does_not_make_dormant_names_answer_faster() {
    // Arrange: an account hashed with t=2, then the server restarted with t=4
    // on the same database (the stored hash stays t=2: nobody logs in).
    let lenient = 1_000;
    let mut server = TestServer::start_with(|c| {
        c.hashing.memory_kib = MEMORY_KIB;
        c.hashing.iterations = 2;
        c.lockout.threshold = lenient;
    })
    .await;
    server.register("dormant", PASSWORD).await;
    let db = server.stop().await;
    let mut config = test_config(&db);
    config.hashing.memory_kib = MEMORY_KIB;
    config.hashing.iterations = 4;
    config.lockout.threshold = lenient;
    let mut server = TestServer::start_on(db, config).await;

    // Act: interleave the two kinds of call, alternating which goes first,
    // so load from other tests falls on both alike.
    let (mut existing, mut unknown) = (Vec::new(), Vec::new());
    for round in 0..WARM_UP + ROUNDS {
        let (e, u) = if round % 2 == 0 {
            let e = failed_login_time(&mut server, "dormant").await;
            (e, failed_login_time(&mut server, "nobody").await)
        } else {
            let u = failed_login_time(&mut server, "nobody").await;
            (failed_login_time(&mut server, "dormant").await, u)
        };
        if round >= WARM_UP {
            existing.push(e);
            unknown.push(u);
        }
    }

    // Assert: the two cost the same (without equalisation the dormant name
    // costs about half). Each round's pair ran back to back, so the median
    // of the per-round ratios shrugs off bursts of load from other tests.
    let ratio = median(
        existing
            .iter()
            .zip(&unknown)
            .map(|(e, u)| e.as_secs_f64() / u.as_secs_f64())
            .collect(),
    );
    let (existing, unknown) = (median(existing), median(unknown));
    println!(
        "Login medians after t=2 → t=4 (m={MEMORY_KIB} KiB): dormant name {existing:?}, unknown name {unknown:?}, median ratio {ratio:.2}"
    );
    assert!(
        (0.7..=1.43).contains(&ratio),
        "dormant {existing:?} vs unknown {unknown:?} (median ratio {ratio:.2})"
    );
}

async fn refused_login_time(server: &mut TestServer, username: &str) -> Duration {
    let started = Instant::now();
    let status = server
        .login(username, PASSWORD)
        .await
        .expect_err("login refused");
    let took = started.elapsed();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    took
}

#[tokio::test]
async fn a_disabled_accounts_login_costs_what_an_unknown_names_does() {
    // Arrange: a disabled account, logged in with its right password.
    let mut server = TestServer::start_with(|c| {
        crate::helpers::with_admin(c);
        c.hashing.memory_kib = MEMORY_KIB;
        c.lockout.threshold = 1_000;
    })
    .await;
    let id = server.register("disabled", PASSWORD).await;
    server
        .admin()
        .await
        .disable_user(warden::grpc::pb::DisableUserRequest { user_id: id })
        .await
        .expect("disable");

    // Act: interleaved as above.
    let (mut disabled, mut unknown) = (Vec::new(), Vec::new());
    for round in 0..WARM_UP + ROUNDS {
        let (d, u) = if round % 2 == 0 {
            let d = refused_login_time(&mut server, "disabled").await;
            (d, refused_login_time(&mut server, "nobody").await)
        } else {
            let u = refused_login_time(&mut server, "nobody").await;
            (refused_login_time(&mut server, "disabled").await, u)
        };
        if round >= WARM_UP {
            disabled.push(d);
            unknown.push(u);
        }
    }

    // Assert: both verify one hash (the dummy), so they cost the same; the
    // bound is loose on purpose, the ratio is what the run reports.
    let ratio = median(
        disabled
            .iter()
            .zip(&unknown)
            .map(|(d, u)| d.as_secs_f64() / u.as_secs_f64())
            .collect(),
    );
    let (disabled, unknown) = (median(disabled), median(unknown));
    println!(
        "Login medians (m={MEMORY_KIB} KiB): disabled account {disabled:?}, unknown name {unknown:?}, median ratio {ratio:.2}"
    );
    assert!(
        (0.5..=2.0).contains(&ratio),
        "disabled {disabled:?} vs unknown {unknown:?} (median ratio {ratio:.2})"
    );
}
