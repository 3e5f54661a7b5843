//! Trusted devices under overlap: many Logins with one device token, many
//! wrong passwords with it, concurrent remembers against the cap, a Login
//! cancelled by its deadline, and a device used across replicas.

use std::time::{Duration, Instant};

use tonic::{Code, Request};
use warden::grpc::pb::{self, login_response::Outcome};

use crate::devices::{amr, device_works, enrolled, remember, with_device};
use crate::helpers::{PASSWORD, TestServer, assert_status, count, race, raw_connect, test_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_logins_with_one_device_token_all_succeed() {
    let mut server = TestServer::start().await;
    let amy = enrolled(&mut server, "amy").await;
    let (_, device) = remember(&mut server, "amy", &amy.secret).await;

    let answers = race(server.channels(16).await, move |mut client, _| {
        let request = with_device("amy", PASSWORD, &device);
        async move { client.login(request).await }
    })
    .await;

    let mut tokens = Vec::new();
    for answer in answers {
        match answer.unwrap().into_inner().outcome {
            Some(Outcome::Session(s)) => tokens.push(s.token),
            other => panic!("expected a session, got {other:?}"),
        }
    }
    assert_eq!(tokens.len(), 16);
    for token in &tokens {
        assert_eq!(amr(&mut server, token).await, ["pwd", "trusted_device"]);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_passwords_with_a_device_token_get_only_the_budget() {
    let mut server = TestServer::start().await;
    let ben = enrolled(&mut server, "ben").await;
    let (_, device) = remember(&mut server, "ben", &ben.secret).await;

    let wrong = race(server.channels(12).await, {
        let device = device.clone();
        move |mut client, _| {
            let request = with_device("ben", "not the password", &device);
            async move { client.login(request).await }
        }
    })
    .await;
    let right = server
        .client
        .login(with_device("ben", PASSWORD, &device))
        .await
        .unwrap_err();

    let mut evaluated = 0;
    for answer in &wrong {
        let status = answer.as_ref().unwrap_err();
        if status.code() == Code::Unauthenticated {
            assert_status(status, Code::Unauthenticated, "INVALID_CREDENTIALS");
            evaluated += 1;
        } else {
            assert_status(status, Code::ResourceExhausted, "ACCOUNT_LOCKED");
        }
    }
    assert_eq!(
        evaluated, 5,
        "at most the budget of wrong guesses is judged"
    );
    assert_status(&right, Code::ResourceExhausted, "ACCOUNT_LOCKED");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_remembers_stay_at_the_cap_and_every_kept_token_works() {
    let mut server = TestServer::start_with(|c| {
        c.trusted_devices.max_per_user = 3;
        c.lockout.threshold = 100;
    })
    .await;
    let cal = enrolled(&mut server, "cal").await;
    let mut requests = Vec::new();
    for code in &cal.codes {
        let challenge = server.login_challenge("cal", PASSWORD).await;
        requests.push(pb::UseRecoveryCodeRequest {
            challenge_token: challenge.challenge_token,
            code: code.clone(),
            remember_device: true,
        });
    }

    let answers = race(server.channels(10).await, move |mut client, i| {
        let request = requests[i].clone();
        async move { client.use_recovery_code(request).await }
    })
    .await;
    let devices: Vec<String> = answers
        .into_iter()
        .map(|a| a.unwrap().into_inner().device_token)
        .collect();
    let mut working = 0;
    for device in &devices {
        assert!(device.starts_with("wdt_"));
        working += usize::from(device_works(&mut server, "cal", PASSWORD, device).await);
    }

    assert_eq!(working, 3, "exactly the cap of devices stays live");
    assert_eq!(server.account(&cal.session).await.trusted_devices, 3);
    assert_eq!(
        count(&server.db, "SELECT count(*) FROM trusted_devices").await,
        3
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_login_cancelled_by_its_deadline_leaves_nothing_inconsistent() {
    // A slow hash, so the cancellation lands while the password is checked.
    let mut server = TestServer::start_with(|c| {
        c.hashing.memory_kib = 65_536;
        c.hashing.iterations = 4;
    })
    .await;
    let dot = enrolled(&mut server, "dot").await;
    let (_, device) = remember(&mut server, "dot", &dot.secret).await;
    let mut fastest = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        assert!(device_works(&mut server, "dot", PASSWORD, &device).await);
        fastest = fastest.min(started.elapsed());
    }
    let sessions = "SELECT count(*) FROM sessions";
    let before = count(&server.db, sessions).await;
    let inspect = raw_connect(&server.db.url).await;

    let mut client = server.client.clone();
    let request = with_device("dot", PASSWORD, &device);
    let cancelled = tokio::spawn(async move {
        let mut request = Request::new(request);
        request.set_timeout(fastest / 2);
        tokio::time::timeout(fastest / 2, client.login(request)).await
    });
    let answer = cancelled.await.unwrap();
    let released = wait_for_zero(&inspect, "SELECT count(*) FROM budget_reservations").await;
    let after = count(&server.db, sessions).await;
    let failures = count(
        &server.db,
        "SELECT count(*) FROM failure_budgets WHERE failures > 0",
    )
    .await;

    assert!(
        !matches!(answer, Ok(Ok(_))),
        "the call was cut off: {answer:?}"
    );
    assert!(released, "the cancelled call's reservation was released");
    assert_eq!(failures, 0, "a cancelled right password is no failure");
    assert!(after == before || after == before + 1, "no stray sessions");
    assert!(device_works(&mut server, "dot", PASSWORD, &device).await);
    assert_eq!(server.account(&dot.session).await.trusted_devices, 1);
    server.stop().await;
}

/// Polls `sql` until it counts 0 (at most five seconds).
async fn wait_for_zero(conn: &sea_orm::DatabaseConnection, sql: &str) -> bool {
    use sea_orm::ConnectionTrait as _;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let statement = sea_orm::Statement::from_string(conn.get_database_backend(), sql);
        let row = conn.query_one_raw(statement).await.unwrap().unwrap();
        let n: i64 = row.try_get_by_index(0).unwrap();
        if n == 0 {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_remembered_on_one_replica_works_on_another() {
    let mut server = TestServer::start().await;
    let replica = server.replica(test_config(&server.db)).await;
    let eve = enrolled(&mut server, "eve").await;
    let (_, device) = remember(&mut server, "eve", &eve.secret).await;
    let mut channels = server.channels(6).await;
    for _ in 0..6 {
        channels.push(replica.channel().await);
    }

    let answers = race(channels, {
        let device = device.clone();
        move |mut client, _| {
            let request = with_device("eve", PASSWORD, &device);
            async move { client.login(request).await }
        }
    })
    .await;
    let mut on_replica = pb::auth_service_client::AuthServiceClient::new(replica.channel().await);
    let forgotten = on_replica
        .forget_trusted_devices(crate::helpers::bearer(
            pb::ForgetTrustedDevicesRequest {},
            &eve.session,
        ))
        .await
        .unwrap()
        .into_inner();

    for answer in answers {
        let outcome = answer.unwrap().into_inner().outcome;
        assert!(matches!(outcome, Some(Outcome::Session(_))), "{outcome:?}");
    }
    assert_eq!(forgotten.revoked, 1);
    assert!(!device_works(&mut server, "eve", PASSWORD, &device).await);
    replica.stop().await;
    server.stop().await;
}
