//! The failure budget under overlap: concurrent right and wrong answers,
//! cancellation mid-check, a full hashing queue, replicas, and a process
//! killed while holding reservations.

use std::time::{Duration, Instant};

use tonic::{Code, Request, Status};
use warden::grpc::pb::{self, login_response::Outcome};

use crate::helpers::{
    PASSWORD, ServerProcess, TestDatabase, TestServer, assert_status, audit_events, bearer, count,
    independent_totp, race, raw_connect, retry_secs, test_config, wrong_code,
};

const LOCK: u64 = 900;

fn login(username: &str, password: &str) -> pb::LoginRequest {
    pb::LoginRequest {
        username: username.into(),
        password: password.into(),
        ..Default::default()
    }
}

/// The ErrorInfo reason of a status.
fn reason(status: &Status) -> String {
    use tonic_types::StatusExt as _;
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

/// Polls `sql` (a count) on `conn` until `done` holds, for at most
/// `limit`.
async fn count_until(
    conn: &sea_orm::DatabaseConnection,
    sql: &str,
    limit: Duration,
    done: impl Fn(i64) -> bool,
) -> i64 {
    use sea_orm::ConnectionTrait as _;
    let deadline = Instant::now() + limit;
    loop {
        let statement = sea_orm::Statement::from_string(conn.get_database_backend(), sql);
        let row = conn.query_one_raw(statement).await.unwrap().unwrap();
        let n: i64 = row.try_get_by_index(0).unwrap();
        if done(n) || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sorts wrong-guess answers: evaluated ones are INVALID_CREDENTIALS, the
/// rest must be ACCOUNT_LOCKED with RetryInfo (or OVERLOADED when allowed).
fn tally(
    answers: &[Result<tonic::Response<pb::LoginResponse>, Status>],
    overload_ok: bool,
) -> (usize, usize, usize) {
    let (mut evaluated, mut locked, mut overloaded) = (0, 0, 0);
    for answer in answers {
        let status = answer.as_ref().expect_err("a wrong guess never signs in");
        match status.code() {
            Code::Unauthenticated => {
                assert_status(status, Code::Unauthenticated, "INVALID_CREDENTIALS");
                evaluated += 1;
            }
            Code::ResourceExhausted => {
                assert_status(status, Code::ResourceExhausted, "ACCOUNT_LOCKED");
                assert!(
                    retry_secs(status).is_some_and(|s| s > 0),
                    "RetryInfo: {status:?}"
                );
                locked += 1;
            }
            Code::Unavailable if overload_ok => {
                assert_status(status, Code::Unavailable, "OVERLOADED");
                overloaded += 1;
            }
            _ => panic!("unexpected answer {status:?}"),
        }
    }
    (evaluated, locked, overloaded)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_right_logins_all_get_sessions() {
    let mut server = TestServer::start().await;
    server.register("svc", PASSWORD).await;

    let answers = race(server.channels(24).await, |mut client, _| async move {
        client.login(login("svc", PASSWORD)).await
    })
    .await;

    for answer in &answers {
        let outcome = answer.as_ref().map(|r| r.get_ref().outcome.clone());
        assert!(
            matches!(outcome, Ok(Some(Outcome::Session(_)))),
            "{answer:?}"
        );
    }
    assert_eq!(count(&server.db, "SELECT count(*) FROM sessions").await, 24);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_enrolments_with_the_right_password_all_succeed() {
    let mut server = TestServer::start().await;
    let (_, token) = server.signed_in("erin", PASSWORD).await;

    let answers = race(server.channels(8).await, move |mut client, _| {
        let token = token.clone();
        async move {
            let request = pb::EnrollTotpRequest {
                password: PASSWORD.into(),
            };
            client.enroll_totp(bearer(request, &token)).await
        }
    })
    .await;

    for answer in &answers {
        assert!(answer.is_ok(), "{answer:?}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_confirmations_of_one_secret_succeed_once_and_lock_nobody() {
    let mut server = TestServer::start().await;
    let (_, token) = server.signed_in("fay", PASSWORD).await;
    let enrollment = server.enroll(&token, PASSWORD).await;
    let secret = data_encoding::BASE32_NOPAD
        .decode(enrollment.secret_base32.as_bytes())
        .unwrap();
    let code = independent_totp(&secret, server.now());

    let answers = race(server.channels(16).await, move |mut client, _| {
        let (token, code) = (token.clone(), code.clone());
        async move {
            let request = pb::VerifyTotpRequest {
                code,
                purpose: Some(pb::verify_totp_request::Purpose::ConfirmEnrollment(())),
                ..Default::default()
            };
            client.verify_totp(bearer(request, &token)).await
        }
    })
    .await;

    let wins = answers.iter().filter(|a| a.is_ok()).count();
    for status in answers.iter().filter_map(|a| a.as_ref().err()) {
        let reason = reason(status);
        assert!(
            [
                "NO_PENDING_ENROLLMENT",
                "INVALID_CREDENTIALS",
                "TOTP_ALREADY_ENABLED"
            ]
            .contains(&reason.as_str()),
            "loser answered {status:?}"
        );
    }
    assert_eq!(wins, 1, "exactly one confirmation wins");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_guesses_evaluate_exactly_the_budget() {
    let mut server = TestServer::start().await;
    let user_id = server.register("gus", PASSWORD).await;

    let answers = race(server.channels(32).await, |mut client, _| async move {
        client.login(login("gus", "wrong guess")).await
    })
    .await;
    let (evaluated, locked, _) = tally(&answers, false);

    assert_eq!(evaluated, 5, "exactly the budget is evaluated");
    assert_eq!(locked, 27);
    assert_eq!(
        audit_events("login.failed", &user_id),
        5,
        "one login.failed per evaluated guess"
    );
    for status in answers.iter().filter_map(|a| a.as_ref().err()) {
        if status.code() == Code::ResourceExhausted {
            assert!((LOCK - 1..=LOCK).contains(&retry_secs(status).unwrap()));
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_share_one_budget_for_right_and_wrong_answers() {
    let mut server = TestServer::start().await;
    let replica = server.replica(test_config(&server.db)).await;
    server.register("hal", PASSWORD).await;
    server.register("ivy", PASSWORD).await;
    let mut channels = server.channels(12).await;
    for _ in 0..12 {
        channels.push(replica.channel().await);
    }

    let right = race(channels.clone(), |mut client, _| async move {
        client.login(login("hal", PASSWORD)).await
    })
    .await;
    let wrong = race(channels, |mut client, _| async move {
        client.login(login("ivy", "wrong guess")).await
    })
    .await;
    let (evaluated, locked, _) = tally(&wrong, false);

    assert!(right.iter().all(Result::is_ok), "{right:?}");
    assert_eq!((evaluated, locked), (5, 19));
    replica.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_cancelled_mid_check_gives_its_attempt_back() {
    // A slow hash, so the cancellation lands while the password is checked.
    let mut server = TestServer::start_with(|c| {
        c.hashing.memory_kib = 65_536;
        c.hashing.iterations = 4;
        c.lockout.duration_secs = 60;
    })
    .await;
    server.register("joe", PASSWORD).await;
    let mut fastest = Duration::MAX;
    for _ in 0..4 {
        let started = Instant::now();
        server.login("joe", "wrong").await.unwrap_err();
        fastest = fastest.min(started.elapsed());
    }
    let reservations = "SELECT count(*) FROM budget_reservations";
    let inspect = raw_connect(&server.db.url).await;

    let mut client = server.client.clone();
    let cancelled = tokio::spawn(async move {
        let mut request = Request::new(login("joe", "wrong again"));
        request.set_timeout(fastest / 2);
        tokio::time::timeout(fastest / 2, client.login(request)).await
    });
    let in_flight = count_until(&inspect, reservations, Duration::from_secs(5), |n| n > 0).await;
    let _ = cancelled.await.unwrap();
    let settled = count_until(&inspect, reservations, Duration::from_secs(5), |n| n == 0).await;
    let failures = count(
        &server.db,
        "SELECT count(*) FROM failure_budgets WHERE failures = 4",
    )
    .await;
    let fifth = server.login("joe", "wrong").await.unwrap_err();
    let during = server.login("joe", PASSWORD).await.unwrap_err();
    server.clock.advance(Duration::from_secs(61));
    let after = server.login("joe", PASSWORD).await;

    assert_eq!(in_flight, 1, "the cancelled call had reserved an attempt");
    assert_eq!(settled, 0, "the cancelled call's reservation was released");
    assert_eq!(failures, 1, "the cancelled call counted as no failure");
    assert_status(&fifth, Code::Unauthenticated, "INVALID_CREDENTIALS");
    assert_status(&during, Code::ResourceExhausted, "ACCOUNT_LOCKED");
    assert_eq!(retry_secs(&during), Some(60));
    assert!(after.is_ok(), "the lock ended: {after:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_a_full_hashing_queue_logins_are_sessions_or_overloaded_and_leak_nothing() {
    let mut server = TestServer::start_with(|c| {
        c.hashing.concurrency = Some(1);
        c.hashing.queue = 1;
        c.hashing.memory_kib = 8_192;
    })
    .await;
    let names = ["kay-a", "kay-b", "kay-c", "kay-d", "kay-e"];
    for name in names {
        server.register(name, PASSWORD).await;
    }
    let wrong_id = server.register("kay-w", PASSWORD).await;
    let inspect = raw_connect(&server.db.url).await;

    let right = race(server.channels(30).await, move |mut client, i| async move {
        client.login(login(names[i % names.len()], PASSWORD)).await
    })
    .await;
    let wrong = race(server.channels(30).await, |mut client, _| async move {
        client.login(login("kay-w", "wrong guess")).await
    })
    .await;
    let (evaluated, _, _) = tally(&wrong, true);
    let leaked = count_until(
        &inspect,
        "SELECT count(*) FROM budget_reservations",
        Duration::from_secs(5),
        |n| n == 0,
    )
    .await;
    let mut afterwards = Vec::new();
    for name in names {
        afterwards.push(server.login(name, PASSWORD).await);
    }

    for answer in &right {
        match answer {
            Ok(r) => assert!(matches!(r.get_ref().outcome, Some(Outcome::Session(_)))),
            Err(status) => assert_status(status, Code::Unavailable, "OVERLOADED"),
        }
    }
    assert!(right.iter().any(Result::is_ok), "some logins got through");
    assert!(evaluated <= 5, "{evaluated} wrong guesses evaluated");
    assert_eq!(
        audit_events("login.failed", &wrong_id),
        evaluated,
        "overloaded calls are no failures"
    );
    assert_eq!(leaked, 0, "every reservation was settled");
    assert!(afterwards.iter().all(Result::is_ok), "{afterwards:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reservation_left_by_a_killed_process_stops_counting_after_its_lease() {
    let db = TestDatabase::create().await;
    // One slow hashing slot: five wrong logins all reserve, one hashes, four
    // queue. A 1 s time limit gives a 3 s lease.
    let slow = [
        ("WARDEN_REQUEST_TIMEOUT_SECS", "1"),
        ("WARDEN_HASH_CONCURRENCY", "1"),
        ("WARDEN_ARGON2_MEMORY_KIB", "65536"),
        ("WARDEN_ARGON2_ITERATIONS", "6"),
    ];
    let first = ServerProcess::start(&db, &slow);
    let inspect = raw_connect(&db.url).await;
    let mut client = first.client().await;
    client
        .register(pb::RegisterRequest {
            username: "leo".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    let mut calls = Vec::new();
    for _ in 0..5 {
        let mut client = client.clone();
        calls.push(tokio::spawn(async move {
            client.login(login("leo", "wrong")).await
        }));
    }
    let reservations = "SELECT count(*) FROM budget_reservations";
    let held = count_until(&inspect, reservations, Duration::from_secs(5), |n| n == 5).await;
    let failures_at_kill = count(
        &db,
        "SELECT count(*) FROM failure_budgets WHERE failures > 0",
    )
    .await;
    first.kill();
    for call in calls {
        let _ = call.await;
    }

    // The same argon2 memory: the stored hash needs it.
    let second = ServerProcess::start(
        &db,
        &[
            ("WARDEN_REQUEST_TIMEOUT_SECS", "1"),
            ("WARDEN_ARGON2_MEMORY_KIB", "65536"),
        ],
    );
    let mut client = second.client().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut answers = Vec::new();
    let signed_in = loop {
        let answer = client.login(login("leo", PASSWORD)).await;
        let ok = answer.is_ok();
        answers.push(answer.map(|_| ()));
        if ok || Instant::now() > deadline {
            break ok;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    assert_eq!(held, 5, "the killed process held five reservations");
    assert_eq!(failures_at_kill, 0, "none of them was judged");
    assert!(
        signed_in,
        "the owner signs in once the lease ends: {answers:?}"
    );
    for status in answers.iter().filter_map(|a| a.as_ref().err()) {
        // While the dead reservations count, the login waits for them.
        assert_status(status, Code::DeadlineExceeded, "TIMEOUT");
    }
}

#[tokio::test]
async fn housekeeping_keeps_a_raised_lock_level_until_a_completed_login() {
    let mut server = TestServer::start_with(|c| c.database.housekeeping_interval_secs = 1).await;
    let (_, token) = server.signed_in("mia", PASSWORD).await;
    let (secret, _) = server.enable_totp(&token, PASSWORD).await;
    let wrong_codes = async |server: &mut TestServer, n: usize| {
        let wrong = wrong_code(&independent_totp(&secret, server.now()));
        for _ in 0..n {
            let challenge = server
                .login_challenge("mia", PASSWORD)
                .await
                .challenge_token;
            server
                .verify_challenge(&challenge, wrong)
                .await
                .unwrap_err();
        }
        server.login("mia", PASSWORD).await.unwrap_err()
    };
    let first = wrong_codes(&mut server, 5).await;
    let inspect = raw_connect(&server.db.url).await;
    // Past the lock and past the longest lock: housekeeping's staleness.
    server.clock.advance(Duration::from_secs(86_400 + LOCK + 1));
    let swept = count_until(
        &inspect,
        "SELECT count(*) FROM sessions",
        Duration::from_secs(30),
        |n| n == 0,
    )
    .await;
    let kept = count(
        &server.db,
        "SELECT count(*) FROM failure_budgets WHERE lock_level = 1",
    )
    .await;
    // The first failure after a lock locks again, at the next level.
    let second = wrong_codes(&mut server, 1).await;

    assert_eq!(swept, 0, "a sweep ran");
    assert_eq!(kept, 1, "the sweep kept the raised lock level");
    assert_eq!(retry_secs(&first), Some(LOCK));
    assert_eq!(
        retry_secs(&second),
        Some(2 * LOCK),
        "the second lock doubles"
    );
    server.stop().await;
}
