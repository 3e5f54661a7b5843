//! VerifyTotp's gated attempt: a TOTP code is judged first and settled in
//! one write, with the budget checked inside that write. It must answer
//! exactly as a reserved attempt would: locked names answer ACCOUNT_LOCKED
//! whatever the code, a budget filled by checks in flight makes a right
//! code wait rather than fail, and a challenge's tries bound wrong codes.

use std::time::Duration;

use tonic::Code;
use warden::grpc::pb::{self, login_response::Outcome};

use crate::budget::count_until;
use crate::helpers::{
    PASSWORD, TestServer, assert_status, audit_events, independent_totp, race, raw_connect,
    wrong_code,
};

fn on_challenge(challenge: &str, code: &str) -> pb::VerifyTotpRequest {
    pb::VerifyTotpRequest {
        code: code.into(),
        purpose: Some(pb::verify_totp_request::Purpose::ChallengeToken(
            challenge.into(),
        )),
        ..Default::default()
    }
}

fn login(username: &str, password: &str) -> pb::LoginRequest {
    pb::LoginRequest {
        username: username.into(),
        password: password.into(),
        ..Default::default()
    }
}

/// A user with TOTP on; returns (user id, raw secret).
async fn totp_user(server: &mut TestServer, name: &str) -> (String, Vec<u8>) {
    let (id, token) = server.signed_in(name, PASSWORD).await;
    let (secret, _) = server.enable_totp(&token, PASSWORD).await;
    // The next code must be for a later step than the confirming one.
    server.clock.advance(Duration::from_secs(30));
    (id, secret)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_right_code_waits_for_a_check_in_flight_that_fills_the_budget() {
    // Slow hashing so a Login stays in flight long enough; a budget of two.
    let mut server = TestServer::start_with(|c| {
        c.hashing.memory_kib = 65536;
        c.hashing.iterations = 6;
        c.lockout.threshold = 2;
        c.rate_limits.enabled = false;
    })
    .await;
    let (_, secret) = totp_user(&mut server, "ivy").await;
    let challenge = server
        .login_challenge("ivy", PASSWORD)
        .await
        .challenge_token;
    let failed = server
        .client
        .login(login("ivy", "wrong"))
        .await
        .unwrap_err();
    assert_status(&failed, Code::Unauthenticated, "INVALID_CREDENTIALS");

    // One failure and one right password in flight fill the budget of two.
    let mut other = server.client.clone();
    let in_flight = tokio::spawn(async move { other.login(login("ivy", PASSWORD)).await });
    let inspect = raw_connect(&server.db.url).await;
    let held = count_until(
        &inspect,
        "SELECT count(*) FROM budget_reservations",
        Duration::from_secs(5),
        |n| n == 1,
    )
    .await;
    let code = independent_totp(&secret, server.now());
    let verified = server
        .client
        .verify_totp(on_challenge(&challenge, &code))
        .await;

    assert_eq!(held, 1, "the Login held its reservation");
    let session = verified
        .expect("the right code waits, then wins")
        .into_inner();
    assert!(session.session.is_some());
    let other = in_flight.await.unwrap().unwrap().into_inner();
    assert!(matches!(other.outcome, Some(Outcome::MfaRequired(_))));
}

#[tokio::test]
async fn on_a_locked_name_a_right_code_is_not_judged_and_the_challenge_survives_the_lock() {
    let mut server = TestServer::start_with(|c| c.rate_limits.enabled = false).await;
    let (id, secret) = totp_user(&mut server, "jack").await;
    let challenge = server
        .login_challenge("jack", PASSWORD)
        .await
        .challenge_token;
    for _ in 0..5 {
        let _ = server.client.login(login("jack", "wrong")).await;
    }

    let code = independent_totp(&secret, server.now());
    let locked = server
        .client
        .verify_totp(on_challenge(&challenge, &code))
        .await
        .unwrap_err();
    let wrong = server
        .client
        .verify_totp(on_challenge(&challenge, wrong_code(&code)))
        .await
        .unwrap_err();

    assert_status(&locked, Code::ResourceExhausted, "ACCOUNT_LOCKED");
    assert_status(&wrong, Code::ResourceExhausted, "ACCOUNT_LOCKED");
    // Neither code was judged, so neither was logged as one.
    assert_eq!(audit_events("totp.failed", &id), 0);
    assert_eq!(audit_events("totp.verified", &id), 0);
    // A password lock lasts 15 minutes; the challenge lives 5, so start a
    // new login after it and finish it with the next code.
    server.clock.advance(Duration::from_secs(901));
    let challenge = server
        .login_challenge("jack", PASSWORD)
        .await
        .challenge_token;
    let code = independent_totp(&secret, server.now());
    server
        .client
        .verify_totp(on_challenge(&challenge, &code))
        .await
        .expect("the owner finishes after the lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_codes_on_one_challenge_judge_at_most_its_tries_and_one_right_code_wins() {
    let mut server = TestServer::start_with(|c| {
        c.rate_limits.enabled = false;
        c.lockout.threshold = 50;
    })
    .await;
    let (id, secret) = totp_user(&mut server, "kim").await;
    let challenge = server
        .login_challenge("kim", PASSWORD)
        .await
        .challenge_token;
    let right = independent_totp(&secret, server.now());
    let wrong = wrong_code(&right).to_owned();

    let answers = race(server.channels(24).await, move |mut client, i| {
        let code = if i % 3 == 0 {
            right.clone()
        } else {
            wrong.clone()
        };
        let challenge = challenge.clone();
        async move { client.verify_totp(on_challenge(&challenge, &code)).await }
    })
    .await;

    let wins = answers.iter().filter(|a| a.is_ok()).count();
    let mut judged_wrong = 0;
    for status in answers.iter().filter_map(|a| a.as_ref().err()) {
        match status.code() {
            Code::Unauthenticated if status.message() == "invalid credentials" => {
                judged_wrong += 1;
            }
            _ => assert_status(status, Code::Unauthenticated, "CHALLENGE_INVALID"),
        }
    }
    // A challenge has five tries, the winning one among them: at most four
    // wrong codes are judged next to it, and each judged one is logged once.
    assert!(wins <= 1, "{wins} sessions from one challenge");
    assert!(
        judged_wrong + wins <= 5,
        "{judged_wrong} wrong codes judged"
    );
    assert_eq!(
        audit_events("totp.failed", &id) + audit_events("totp.replay_rejected", &id),
        judged_wrong
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recovery_codes_refused_by_a_full_hashing_queue_count_nothing() {
    // One hashing thread and a queue of one: most of the concurrent codes
    // are refused OVERLOADED before anything is judged.
    let mut server = TestServer::start_with(|c| {
        c.rate_limits.enabled = false;
        c.hashing.concurrency = Some(1);
        c.hashing.queue = 1;
    })
    .await;
    let (id, token) = server.signed_in("lou", PASSWORD).await;
    let (_, codes) = server.enable_totp(&token, PASSWORD).await;
    let mut challenges = Vec::new();
    for _ in 0..12 {
        challenges.push(
            server
                .login_challenge("lou", PASSWORD)
                .await
                .challenge_token,
        );
    }

    let answers = race(server.channels(12).await, move |mut client, i| {
        let challenge = challenges[i].clone();
        async move {
            client
                .use_recovery_code(pb::UseRecoveryCodeRequest {
                    challenge_token: challenge,
                    code: "AAAA-BBBB-CCCC-DDDD".into(),
                    ..Default::default()
                })
                .await
        }
    })
    .await;

    let (mut judged, mut overloaded) = (0, 0);
    for status in answers.iter().map(|a| a.as_ref().unwrap_err()) {
        match status.code() {
            Code::Unavailable => {
                assert_status(status, Code::Unavailable, "OVERLOADED");
                overloaded += 1;
            }
            Code::ResourceExhausted => {
                assert_status(status, Code::ResourceExhausted, "ACCOUNT_LOCKED")
            }
            _ => {
                assert_status(status, Code::Unauthenticated, "INVALID_CREDENTIALS");
                judged += 1;
            }
        }
    }
    assert!(overloaded > 0, "the queue was never full");
    assert!(judged <= 5, "{judged} codes judged beyond the budget");
    assert_eq!(audit_events("recovery_code.failed", &id), judged);
    if judged < 5 {
        // What the refused calls did not spend is still there for the owner.
        let challenge = server
            .login_challenge("lou", PASSWORD)
            .await
            .challenge_token;
        server
            .client
            .use_recovery_code(pb::UseRecoveryCodeRequest {
                challenge_token: challenge,
                code: codes[0].clone(),
                ..Default::default()
            })
            .await
            .expect("the owner's right code still works");
    }
}
