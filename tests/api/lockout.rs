//! The per-account-name failure budget.

use std::time::Duration;

use tonic::{Code, Status};
use warden::grpc::pb;

use crate::helpers::{
    PASSWORD, TestServer, assert_status, independent_totp, retry_secs, wrong_code,
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

#[tokio::test]
async fn concurrent_wrong_guesses_get_at_most_the_budget() {
    let mut server = TestServer::start().await;
    server.register("bob", PASSWORD).await;

    let mut calls = Vec::new();
    for _ in 0..10 {
        let mut client = pb::auth_service_client::AuthServiceClient::new(server.channel().await);
        calls.push(tokio::spawn(async move {
            client
                .login(pb::LoginRequest {
                    username: "bob".into(),
                    password: "wrong guess".into(),
                })
                .await
        }));
    }
    let mut evaluated = 0;
    let mut locked = 0;
    for call in calls {
        let status = call.await.unwrap().unwrap_err();
        match status.code() {
            Code::Unauthenticated => evaluated += 1,
            Code::ResourceExhausted => locked += 1,
            other => panic!("unexpected {other:?}"),
        }
    }

    assert!(evaluated <= 5, "{evaluated} guesses were evaluated");
    assert_eq!(evaluated + locked, 10);
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
    assert_eq!(
        retry_secs(&first),
        retry_secs(&second),
        "password locks stay at the base length"
    );
    server.stop().await;
}
