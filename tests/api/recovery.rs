//! UseRecoveryCode: each code once, any spelling, exactly one winner.

use tonic::Code;
use warden::grpc::pb;

use crate::helpers::{
    PASSWORD, TestServer, assert_invalid, assert_status, audit_events, count, race, test_config,
};

/// Other accepted spellings of a displayed code `XXXX-XXXX-XXXX-XXXX`.
fn spelling(code: &str, variant: usize) -> String {
    match variant % 5 {
        0 => code.to_owned(),
        1 => code.to_lowercase(),
        2 => code.replace('-', ""),
        3 => code.replace('-', " ").to_lowercase(),
        _ => code.replace('1', "l").replace('0', "O").replace('-', " - "),
    }
}

#[tokio::test]
async fn each_recovery_code_works_once_in_any_spelling_and_the_count_falls() {
    let mut server = TestServer::start_with(|c| c.lockout.threshold = 100).await;
    let (user_id, token) = server.signed_in("alice", PASSWORD).await;
    let (_, codes) = server.enable_totp(&token, PASSWORD).await;

    for (i, code) in codes.iter().enumerate() {
        let challenge = server.login_challenge("alice", PASSWORD).await;
        assert!(challenge.methods.contains(&"recovery_code".to_owned()));
        let used = server
            .use_recovery_code(&challenge.challenge_token, &spelling(code, i))
            .await
            .unwrap();
        let session = used.session.unwrap();
        assert_eq!(session.user_id, user_id);
        assert_eq!(used.remaining_recovery_codes, u32::try_from(9 - i).unwrap());
        let mut amr = server
            .client
            .validate_session(pb::ValidateSessionRequest {
                token: session.token,
            })
            .await
            .unwrap()
            .into_inner()
            .amr;
        amr.sort();
        assert_eq!(amr, ["mfa", "pwd", "recovery_code"]);

        let again = server
            .login_challenge("alice", PASSWORD)
            .await
            .challenge_token;
        let reused = server.use_recovery_code(&again, code).await.unwrap_err();
        assert_status(&reused, Code::Unauthenticated, "INVALID_CREDENTIALS");
    }
    let last = server.login_challenge("alice", PASSWORD).await;

    assert_eq!(last.methods, vec!["totp".to_owned()]);
    assert_eq!(server.account(&token).await.remaining_recovery_codes, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_use_of_one_recovery_code_from_two_replicas_succeeds_once() {
    let mut server = TestServer::start_with(|c| c.lockout.threshold = 100).await;
    let mut config = test_config(&server.db);
    config.lockout.threshold = 100;
    let replica = server.replica(config).await;
    let (user_id, token) = server.signed_in("bob", PASSWORD).await;
    let (_, codes) = server.enable_totp(&token, PASSWORD).await;
    let mut challenges = Vec::new();
    for _ in 0..20 {
        challenges.push(
            server
                .login_challenge("bob", PASSWORD)
                .await
                .challenge_token,
        );
    }
    let mut channels = server.channels(10).await;
    for _ in 0..10 {
        channels.push(replica.channel().await);
    }
    let code = codes[0].clone();

    let answers = race(channels, move |mut client, i| {
        let request = pb::UseRecoveryCodeRequest {
            challenge_token: challenges[i].clone(),
            code: spelling(&code, i),
            ..Default::default()
        };
        async move { client.use_recovery_code(request).await }
    })
    .await;

    let winners: Vec<_> = answers.iter().filter_map(|a| a.as_ref().ok()).collect();
    for status in answers.iter().filter_map(|a| a.as_ref().err()) {
        assert_status(status, Code::Unauthenticated, "INVALID_CREDENTIALS");
    }
    assert_eq!(winners.len(), 1, "one code, one session");
    assert_eq!(winners[0].get_ref().remaining_recovery_codes, 9);
    assert_eq!(server.account(&token).await.remaining_recovery_codes, 9);
    assert_eq!(audit_events("recovery_code.used", &user_id), 1);
    assert_eq!(
        count(
            &server.db,
            &format!("SELECT count(*) FROM sessions WHERE user_id = '{user_id}'")
        )
        .await,
        2,
        "the enrolling session and the winner's"
    );
    replica.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn recovery_codes_are_checked_in_the_contract_order_and_only_for_their_owner() {
    let mut server = TestServer::start_with(|c| c.lockout.threshold = 100).await;
    let (_, alice) = server.signed_in("alice", PASSWORD).await;
    let (_, bob) = server.signed_in("bob", PASSWORD).await;
    server.enable_totp(&alice, PASSWORD).await;
    let (_, bob_codes) = server.enable_totp(&bob, PASSWORD).await;
    let challenge = server
        .login_challenge("alice", PASSWORD)
        .await
        .challenge_token;

    let bad_challenge = server
        .use_recovery_code("nonsense", "also nonsense")
        .await
        .unwrap_err();
    let session_as_challenge = server
        .use_recovery_code(&alice, &bob_codes[0])
        .await
        .unwrap_err();
    let six_digits = server
        .use_recovery_code(&challenge, "123456")
        .await
        .unwrap_err();
    let bad_alphabet = server
        .use_recovery_code(&challenge, "UUUU-UUUU-UUUU-UUUU")
        .await
        .unwrap_err();
    let too_long = server
        .use_recovery_code(&challenge, "0000-0000-0000-0000-0")
        .await
        .unwrap_err();
    let someone_elses = server
        .use_recovery_code(&challenge, &bob_codes[0])
        .await
        .unwrap_err();

    assert_status(&bad_challenge, Code::Unauthenticated, "CHALLENGE_INVALID");
    assert_status(
        &session_as_challenge,
        Code::Unauthenticated,
        "CHALLENGE_INVALID",
    );
    assert_invalid(&six_digits, "code");
    assert_invalid(&bad_alphabet, "code");
    assert_invalid(&too_long, "code");
    assert_status(&someone_elses, Code::Unauthenticated, "INVALID_CREDENTIALS");
    assert_eq!(
        server.account(&bob).await.remaining_recovery_codes,
        10,
        "bob's code was not spent"
    );
    server.stop().await;
}
