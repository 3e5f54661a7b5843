//! The per-account-name failure budget.

use std::time::Duration;

use tonic::{Code, Status};
use warden::grpc::pb;

use crate::helpers::{
    PASSWORD, TestServer, assert_status, audit_events, independent_totp, race, retry_secs,
    wrong_code,
};

const LOCK: u64 = 900;

/// Runs the lockout sequence against `username`: 5 wrong passwords, the right
/// one during the lock, then the right one after it. Returns every answer.
async fn lockout_sequence(server: &mut TestServer, username: &str) -> Vec<Result<(), Status>> {
    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(server.login(username, "definitely wrong").await.map(|_| ()));
    }
    answers.push(server.login(username, PASSWORD).await.map(|_| ()));
    server.clock.advance(Duration::from_secs(LOCK + 1));
    answers.push(server.login(username, "still wrong").await.map(|_| ()));
    answers.push(server.login(username, PASSWORD).await.map(|_| ()));
    answers
}

#[tokio::test]
async fn five_wrong_passwords_lock_the_name_and_unknown_names_behave_the_same() {
    let mut server = TestServer::start().await;
    server.register("alice", PASSWORD).await;

    let real = lockout_sequence(&mut server, "alice").await;
    server.clock.advance(Duration::from_secs(LOCK + 1));
    let ok_after = server.login("alice", PASSWORD).await;
    let ghost = lockout_sequence(&mut server, "ghost").await;

    for answers in [&real, &ghost] {
        for wrong in &answers[..5] {
            assert_status(
                wrong.as_ref().unwrap_err(),
                Code::Unauthenticated,
                "INVALID_CREDENTIALS",
            );
        }
        let locked = answers[5].as_ref().unwrap_err();
        assert_status(locked, Code::ResourceExhausted, "ACCOUNT_LOCKED");
        assert!((LOCK - 1..=LOCK).contains(&retry_secs(locked).unwrap()));
        // The first failure after a lock ends starts the next lock at once.
        assert_status(
            answers[6].as_ref().unwrap_err(),
            Code::Unauthenticated,
            "INVALID_CREDENTIALS",
        );
        assert_status(
            answers[7].as_ref().unwrap_err(),
            Code::ResourceExhausted,
            "ACCOUNT_LOCKED",
        );
    }
    for (a, b) in real.iter().zip(&ghost) {
        let (a, b) = (a.as_ref().unwrap_err(), b.as_ref().unwrap_err());
        assert_eq!((a.code(), a.message()), (b.code(), b.message()));
    }
    assert!(
        ok_after.is_ok(),
        "the right password works once the lock is over"
    );
    server.stop().await;
}

// Concurrent wrong passwords are budget.rs's; this is the second factor.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_codes_on_many_challenges_evaluate_exactly_the_budget() {
    let mut server = TestServer::start().await;
    let (user_id, token) = server.signed_in("bob", PASSWORD).await;
    let (secret, _) = server.enable_totp(&token, PASSWORD).await;
    server.clock.advance(Duration::from_secs(30));
    let mut challenges = Vec::new();
    for _ in 0..12 {
        challenges.push(
            server
                .login_challenge("bob", PASSWORD)
                .await
                .challenge_token,
        );
    }
    let right = independent_totp(&secret, server.now());
    let wrong = wrong_code(&right);

    let answers = race(server.channels(12).await, move |mut client, i| {
        let request = pb::VerifyTotpRequest {
            code: wrong.into(),
            purpose: Some(pb::verify_totp_request::Purpose::ChallengeToken(
                challenges[i].clone(),
            )),
            ..Default::default()
        };
        async move { client.verify_totp(request).await }
    })
    .await;
    let after = server.login("bob", PASSWORD).await.unwrap_err();

    let (mut evaluated, mut locked) = (0, 0);
    for answer in &answers {
        let status = answer.as_ref().expect_err("a wrong code never signs in");
        if status.code() == Code::Unauthenticated {
            assert_status(status, Code::Unauthenticated, "INVALID_CREDENTIALS");
            evaluated += 1;
        } else {
            assert_status(status, Code::ResourceExhausted, "ACCOUNT_LOCKED");
            assert!(
                (LOCK - 1..=LOCK).contains(&retry_secs(status).unwrap()),
                "{status:?}"
            );
            locked += 1;
        }
    }
    assert_eq!((evaluated, locked), (5, 7));
    assert_eq!(audit_events("totp.failed", &user_id), 5);
    assert_status(&after, Code::ResourceExhausted, "ACCOUNT_LOCKED");
    assert_eq!(retry_secs(&after), Some(LOCK));
    server.stop().await;
}

#[tokio::test]
async fn second_factor_failures_lock_with_doubling_and_refuse_open_challenges() {
    let mut server = TestServer::start().await;
    let (_, token) = server.signed_in("carol", PASSWORD).await;
    let (secret, _) = server.enable_totp(&token, PASSWORD).await;
    server.clock.advance(Duration::from_secs(30));
    let right = independent_totp(&secret, server.now());
    let wrong = wrong_code(&right);

    let spare = server
        .login_challenge("carol", PASSWORD)
        .await
        .challenge_token;
    for _ in 0..5 {
        let challenge = server
            .login_challenge("carol", PASSWORD)
            .await
            .challenge_token;
        server
            .verify_challenge(&challenge, wrong)
            .await
            .unwrap_err();
    }
    let sixth_login = server.login("carol", PASSWORD).await.unwrap_err();
    let open_challenge = server.verify_challenge(&spare, &right).await.unwrap_err();
    server.clock.advance(Duration::from_secs(LOCK + 1));
    let challenge = server
        .login_challenge("carol", PASSWORD)
        .await
        .challenge_token;
    server
        .verify_challenge(&challenge, wrong)
        .await
        .unwrap_err();
    let second_lock = server.login("carol", PASSWORD).await.unwrap_err();

    assert_status(&sixth_login, Code::ResourceExhausted, "ACCOUNT_LOCKED");
    assert_status(&open_challenge, Code::ResourceExhausted, "ACCOUNT_LOCKED");
    assert!((LOCK - 1..=LOCK).contains(&retry_secs(&sixth_login).unwrap()));
    assert_status(&second_lock, Code::ResourceExhausted, "ACCOUNT_LOCKED");
    assert!(
        (2 * LOCK - 1..=2 * LOCK).contains(&retry_secs(&second_lock).unwrap()),
        "the second lock doubles"
    );
    server.stop().await;
}

#[tokio::test]
async fn password_locks_do_not_grow_and_a_completed_login_resets_the_count() {
    let mut server = TestServer::start().await;
    server.register("dave", PASSWORD).await;

    for _ in 0..4 {
        server.login("dave", "wrong").await.unwrap_err();
    }
    server.login_session("dave", PASSWORD).await;
    for _ in 0..4 {
        server.login("dave", "wrong").await.unwrap_err();
    }
    let still_open = server.login("dave", PASSWORD).await;
    for _ in 0..5 {
        server.login("dave", "wrong").await.unwrap_err();
    }
    let first = server.login("dave", PASSWORD).await.unwrap_err();
    server.clock.advance(Duration::from_secs(LOCK + 1));
    server.login("dave", "wrong").await.unwrap_err();
    let second = server.login("dave", PASSWORD).await.unwrap_err();

    assert!(still_open.is_ok(), "the completed login reset the count");
    assert_status(&first, Code::ResourceExhausted, "ACCOUNT_LOCKED");
    assert_status(&second, Code::ResourceExhausted, "ACCOUNT_LOCKED");
    assert_eq!(retry_secs(&first), Some(LOCK));
    assert_eq!(
        retry_secs(&second),
        Some(LOCK),
        "password locks stay at the base length"
    );
    server.stop().await;
}
