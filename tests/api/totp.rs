//! TOTP enrolment, confirmation, two-step login and secrets at rest.

use std::time::Duration;

use tonic::Code;
use warden::grpc::pb;

use crate::helpers::{
    PASSWORD, TestServer, assert_invalid, assert_status, audit_events, bearer, contains, count,
    execute_sql, independent_totp, race, raw_database, retry_secs, wrong_code,
};

const STEP: Duration = Duration::from_secs(30);

#[tokio::test]
async fn the_full_two_factor_flow_works_and_codes_work_once() {
    let mut server = TestServer::start().await;
    let (user_id, token) = server.signed_in("alice", PASSWORD).await;

    let (secret, recovery_codes) = server.enable_totp(&token, PASSWORD).await;
    let confirming_code = independent_totp(&secret, server.now());
    server
        .client
        .logout(bearer(pb::LogoutRequest {}, &token))
        .await
        .unwrap();
    let challenge = server.login_challenge("alice", PASSWORD).await;
    let reused = server
        .verify_challenge(&challenge.challenge_token, &confirming_code)
        .await
        .unwrap_err();
    server.clock.advance(STEP);
    let next_code = independent_totp(&secret, server.now());
    let session = server
        .verify_challenge(&challenge.challenge_token, &next_code)
        .await
        .unwrap();
    let valid = server
        .client
        .validate_session(pb::ValidateSessionRequest {
            token: session.token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let second = server.login_challenge("alice", PASSWORD).await;
    let replayed = server
        .verify_challenge(&second.challenge_token, &next_code)
        .await
        .unwrap_err();

    assert_eq!(recovery_codes.len(), 10);
    assert!(
        recovery_codes
            .iter()
            .all(|c| c.len() == 19 && c.chars().filter(|&ch| ch == '-').count() == 3)
    );
    assert_eq!(
        challenge.methods,
        vec!["totp".to_owned(), "recovery_code".to_owned()]
    );
    assert!(challenge.expires_at.is_some());
    assert_status(&reused, Code::Unauthenticated, "INVALID_CREDENTIALS");
    assert_eq!(session.user_id, user_id);
    let mut amr = valid.amr.clone();
    amr.sort();
    assert_eq!(amr, ["mfa", "otp", "pwd"]);
    assert_status(&replayed, Code::Unauthenticated, "INVALID_CREDENTIALS");
    assert_eq!(replayed.message(), reused.message());
    server.stop().await;
}

#[tokio::test]
async fn the_server_accepts_exactly_the_codes_of_an_independent_implementation() {
    let mut server = TestServer::start_with(|c| c.totp.skew = 0).await;
    let (_, token) = server.signed_in("bob", PASSWORD).await;
    let (secret, _) = server.enable_totp(&token, PASSWORD).await;

    for _ in 0..3 {
        server.clock.advance(STEP * 7 + Duration::from_secs(11));
        let challenge = server.login_challenge("bob", PASSWORD).await;
        // At skew 0 the codes of the neighbouring steps are refused.
        for neighbour in [server.now() - 30, server.now() + 30] {
            let refused = server
                .verify_challenge(
                    &challenge.challenge_token,
                    &independent_totp(&secret, neighbour),
                )
                .await
                .unwrap_err();
            assert_status(&refused, Code::Unauthenticated, "INVALID_CREDENTIALS");
        }
        let session = server
            .verify_challenge(
                &challenge.challenge_token,
                &independent_totp(&secret, server.now()),
            )
            .await;
        assert!(session.is_ok(), "the independent code is accepted");
    }
    server.stop().await;
}

#[tokio::test]
async fn codes_older_than_the_last_accepted_step_or_outside_the_skew_are_refused() {
    let mut server = TestServer::start().await;
    let (_, token) = server.signed_in("carol", PASSWORD).await;
    let (secret, _) = server.enable_totp(&token, PASSWORD).await;
    server.clock.advance(STEP * 10);
    let now = server.now();

    let first = server.login_challenge("carol", PASSWORD).await;
    server
        .verify_challenge(&first.challenge_token, &independent_totp(&secret, now))
        .await
        .unwrap();
    let second = server.login_challenge("carol", PASSWORD).await;
    let previous_step = server
        .verify_challenge(
            &second.challenge_token,
            &independent_totp(&secret, now - 30),
        )
        .await
        .unwrap_err();
    let too_far_ahead = server
        .verify_challenge(
            &second.challenge_token,
            &independent_totp(&secret, now + 60),
        )
        .await
        .unwrap_err();
    server.clock.advance(STEP * 3);
    let too_old = server
        .verify_challenge(
            &second.challenge_token,
            &independent_totp(&secret, server.now() - 60),
        )
        .await
        .unwrap_err();
    let next_step = server
        .verify_challenge(
            &second.challenge_token,
            &independent_totp(&secret, server.now() + 30),
        )
        .await;

    assert_status(&previous_step, Code::Unauthenticated, "INVALID_CREDENTIALS");
    assert_status(&too_far_ahead, Code::Unauthenticated, "INVALID_CREDENTIALS");
    assert_status(&too_old, Code::Unauthenticated, "INVALID_CREDENTIALS");
    assert!(
        next_step.is_ok(),
        "one step ahead is inside the default skew"
    );
    server.stop().await;
}

#[tokio::test]
async fn codes_must_be_exactly_six_ascii_digits() {
    let mut server = TestServer::start().await;
    let (_, token) = server.signed_in("dave", PASSWORD).await;
    server.enable_totp(&token, PASSWORD).await;
    let challenge = server.login_challenge("dave", PASSWORD).await;

    for code in [
        "",
        "12345",
        "1234567",
        "+12345",
        "12 345",
        "１２３４５６",
        "abcdef",
    ] {
        let err = server
            .verify_challenge(&challenge.challenge_token, code)
            .await
            .unwrap_err();
        assert_invalid(&err, "code");
        let err = server.confirm(&token, code).await.unwrap_err();
        assert_invalid(&err, "code");
    }
    server.stop().await;
}

/// VerifyTotp on a challenge.
fn on_challenge(challenge: &str, code: &str) -> pb::VerifyTotpRequest {
    pb::VerifyTotpRequest {
        code: code.into(),
        purpose: Some(pb::verify_totp_request::Purpose::ChallengeToken(
            challenge.into(),
        )),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_use_of_one_code_on_many_challenges_succeeds_once() {
    let mut server = TestServer::start_with(|c| c.lockout.threshold = 100).await;
    let (user_id, token) = server.signed_in("erin", PASSWORD).await;
    let (secret, _) = server.enable_totp(&token, PASSWORD).await;
    server.clock.advance(STEP);
    let mut challenges = Vec::new();
    for _ in 0..20 {
        challenges.push(
            server
                .login_challenge("erin", PASSWORD)
                .await
                .challenge_token,
        );
    }
    let code = independent_totp(&secret, server.now());

    let answers = race(server.channels(20).await, move |mut client, i| {
        let request = on_challenge(&challenges[i], &code);
        async move { client.verify_totp(request).await }
    })
    .await;

    let wins = answers.iter().filter(|a| a.is_ok()).count();
    for status in answers.iter().filter_map(|a| a.as_ref().err()) {
        assert_status(status, Code::Unauthenticated, "INVALID_CREDENTIALS");
    }
    assert_eq!(wins, 1, "one code, one session");
    assert_eq!(
        count(
            &server.db,
            &format!("SELECT count(*) FROM sessions WHERE user_id = '{user_id}'")
        )
        .await,
        2,
        "the enrolling session and the winner's"
    );
    assert_eq!(
        audit_events("login.succeeded", &user_id),
        2,
        "one login.succeeded for the enrolling session, one for the winner"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_challenge_answered_by_totp_and_a_recovery_code_at_once_issues_one_session() {
    let mut server = TestServer::start_with(|c| c.lockout.threshold = 100).await;
    let (user_id, token) = server.signed_in("olga", PASSWORD).await;
    let (secret, codes) = server.enable_totp(&token, PASSWORD).await;
    for (round, recovery) in codes.iter().take(4).enumerate() {
        server.clock.advance(STEP);
        let challenge = server
            .login_challenge("olga", PASSWORD)
            .await
            .challenge_token;
        let totp = independent_totp(&secret, server.now());
        let recovery = recovery.clone();
        let before = server.account(&token).await.remaining_recovery_codes;

        let answers = race(server.channels(8).await, move |mut client, i| {
            let (challenge, totp, recovery) = (challenge.clone(), totp.clone(), recovery.clone());
            async move {
                if i % 2 == 0 {
                    client
                        .verify_totp(on_challenge(&challenge, &totp))
                        .await
                        .map(|r| r.into_inner().session.unwrap().token)
                } else {
                    client
                        .use_recovery_code(pb::UseRecoveryCodeRequest {
                            challenge_token: challenge,
                            code: recovery,
                            ..Default::default()
                        })
                        .await
                        .map(|r| r.into_inner().session.unwrap().token)
                }
            }
        })
        .await;

        let winners: Vec<usize> = (0..answers.len()).filter(|&i| answers[i].is_ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {answers:?}");
        for status in answers.iter().filter_map(|a| a.as_ref().err()) {
            // The challenge is gone, or the same factor was spent meanwhile.
            let reason = tonic_types::StatusExt::get_error_details(status)
                .error_info()
                .map(|i| i.reason.clone());
            assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
            assert!(
                matches!(
                    reason.as_deref(),
                    Some("CHALLENGE_INVALID" | "INVALID_CREDENTIALS")
                ),
                "{status:?}"
            );
        }
        let recovery_won = winners[0] % 2 == 1;
        let after = server.account(&token).await.remaining_recovery_codes;
        assert_eq!(
            before - after,
            u32::from(recovery_won),
            "round {round}: only a winning recovery code is spent"
        );
    }
    assert_eq!(
        count(
            &server.db,
            &format!("SELECT count(*) FROM sessions WHERE user_id = '{user_id}'")
        )
        .await,
        5,
        "the enrolling session and one per challenge"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_wrong_codes_on_one_challenge_are_judged_within_the_budget() {
    let mut server = TestServer::start().await;
    let (user_id, token) = server.signed_in("pia", PASSWORD).await;
    let (secret, _) = server.enable_totp(&token, PASSWORD).await;
    server.clock.advance(STEP);
    let challenge = server
        .login_challenge("pia", PASSWORD)
        .await
        .challenge_token;
    let right = independent_totp(&secret, server.now());
    let wrong = wrong_code(&right);

    let racing = challenge.clone();
    let answers = race(server.channels(16).await, move |mut client, _| {
        let request = on_challenge(&racing, wrong);
        async move { client.verify_totp(request).await }
    })
    .await;
    let after = server
        .verify_challenge(&challenge, &right)
        .await
        .unwrap_err();

    let mut evaluated = 0;
    for answer in &answers {
        let status = answer.as_ref().expect_err("a wrong code never signs in");
        let reason = tonic_types::StatusExt::get_error_details(status)
            .error_info()
            .map(|i| i.reason.clone())
            .unwrap_or_default();
        match reason.as_str() {
            "INVALID_CREDENTIALS" => evaluated += 1,
            // Arrived once the budget was spent, or once the challenge had
            // died of its five failures.
            "ACCOUNT_LOCKED" => {
                assert_eq!(status.code(), Code::ResourceExhausted);
                assert_eq!(retry_secs(status), Some(900), "{status:?}");
            }
            "CHALLENGE_INVALID" => assert_eq!(status.code(), Code::Unauthenticated),
            _ => panic!("unexpected answer {status:?}"),
        }
    }
    assert_eq!(evaluated, 5, "exactly the budget is judged");
    assert_eq!(audit_events("totp.failed", &user_id), 5);
    assert_status(&after, Code::Unauthenticated, "CHALLENGE_INVALID");
    assert_status(
        &server.login("pia", PASSWORD).await.unwrap_err(),
        Code::ResourceExhausted,
        "ACCOUNT_LOCKED",
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_wrong_codes_kill_a_challenge_after_five_whatever_the_budget() {
    let mut server = TestServer::start_with(|c| c.lockout.threshold = 100).await;
    let (_, token) = server.signed_in("quin", PASSWORD).await;
    let (secret, _) = server.enable_totp(&token, PASSWORD).await;
    server.clock.advance(STEP);
    let challenge = server
        .login_challenge("quin", PASSWORD)
        .await
        .challenge_token;
    let right = independent_totp(&secret, server.now());
    let wrong = wrong_code(&right);

    let racing = challenge.clone();
    let answers = race(server.channels(16).await, move |mut client, _| {
        let request = on_challenge(&racing, wrong);
        async move { client.verify_totp(request).await }
    })
    .await;
    let after = server
        .verify_challenge(&challenge, &right)
        .await
        .unwrap_err();

    let evaluated = answers
        .iter()
        .map(|a| a.as_ref().expect_err("a wrong code never signs in"))
        .filter(|status| {
            assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
            tonic_types::StatusExt::get_error_details(*status)
                .error_info()
                .is_some_and(|i| i.reason == "INVALID_CREDENTIALS")
        })
        .count();
    for status in answers.iter().filter_map(|a| a.as_ref().err()) {
        let reason = tonic_types::StatusExt::get_error_details(status)
            .error_info()
            .map(|i| i.reason.clone())
            .unwrap_or_default();
        assert!(
            ["INVALID_CREDENTIALS", "CHALLENGE_INVALID"].contains(&reason.as_str()),
            "{status:?}"
        );
    }
    assert_status(&after, Code::Unauthenticated, "CHALLENGE_INVALID");
    assert_eq!(evaluated, 5, "a challenge dies after 5 wrong codes");
    server.stop().await;
}

#[tokio::test]
async fn enrolment_returns_a_scannable_qr_code_of_the_uri() {
    let mut server = TestServer::start_with(|c| c.totp.issuer = "Acme Corp".into()).await;
    let (_, token) = server.signed_in("frank", PASSWORD).await;

    let enrollment = server.enroll(&token, PASSWORD).await;

    let secret = data_encoding::BASE32_NOPAD
        .decode(enrollment.secret_base32.as_bytes())
        .unwrap();
    assert_eq!(secret.len(), 20, "160-bit secret");
    assert_eq!(
        enrollment.otpauth_uri,
        format!(
            "otpauth://totp/Acme%20Corp:frank?secret={}&issuer=Acme%20Corp&algorithm=SHA1&digits=6&period=30",
            enrollment.secret_base32
        )
    );
    let image = image::load_from_memory(&enrollment.qr_png)
        .unwrap()
        .to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1);
    let (_, payload) = grids[0].decode().unwrap();
    assert_eq!(payload, enrollment.otpauth_uri);
    let svg = roxmltree::Document::parse(&enrollment.qr_svg).expect("well-formed SVG");
    assert_eq!(svg.root_element().tag_name().name(), "svg");
    server.stop().await;
}

#[tokio::test]
async fn enrolment_states_show_in_get_account_and_follow_the_contract() {
    let mut server = TestServer::start_with(|c| c.totp.enrollment_ttl_secs = 120).await;
    let (_, token) = server.signed_in("grace", PASSWORD).await;
    let account = |server: &mut TestServer, token: String| {
        let mut client = server.client.clone();
        async move {
            client
                .get_account(bearer(pb::GetAccountRequest {}, &token))
                .await
                .unwrap()
                .into_inner()
        }
    };

    let nothing_pending = server.confirm(&token, "123456").await.unwrap_err();
    let first = server.enroll(&token, PASSWORD).await;
    let pending = account(&mut server, token.clone()).await;
    // The pending secret belongs to the user, not the session.
    server
        .client
        .logout(bearer(pb::LogoutRequest {}, &token))
        .await
        .unwrap();
    let token = server.login_session("grace", PASSWORD).await.token;
    let second = server.enroll(&token, PASSWORD).await;
    let first_secret = data_encoding::BASE32_NOPAD
        .decode(first.secret_base32.as_bytes())
        .unwrap();
    let replaced = server
        .confirm(&token, &independent_totp(&first_secret, server.now()))
        .await
        .unwrap_err();
    server.clock.advance(Duration::from_secs(121));
    let expired_view = account(&mut server, token.clone()).await;
    let second_secret = data_encoding::BASE32_NOPAD
        .decode(second.secret_base32.as_bytes())
        .unwrap();
    let expired = server
        .confirm(&token, &independent_totp(&second_secret, server.now()))
        .await
        .unwrap_err();
    let (_, codes) = server.enable_totp(&token, PASSWORD).await;
    let enabled = account(&mut server, token.clone()).await;
    let again = server
        .client
        .enroll_totp(bearer(
            pb::EnrollTotpRequest {
                password: PASSWORD.into(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    let confirm_again = server.confirm(&token, "123456").await.unwrap_err();

    assert_status(
        &nothing_pending,
        Code::FailedPrecondition,
        "NO_PENDING_ENROLLMENT",
    );
    assert!(!pending.totp_enabled && pending.totp_enrollment_pending);
    assert_status(&replaced, Code::Unauthenticated, "INVALID_CREDENTIALS");
    assert!(
        !expired_view.totp_enrollment_pending,
        "an expired secret is not pending"
    );
    assert_status(&expired, Code::FailedPrecondition, "NO_PENDING_ENROLLMENT");
    assert_eq!(codes.len(), 10);
    assert!(enabled.totp_enabled && !enabled.totp_enrollment_pending);
    assert_eq!(enabled.remaining_recovery_codes, 10);
    assert_status(&again, Code::FailedPrecondition, "TOTP_ALREADY_ENABLED");
    assert_status(
        &confirm_again,
        Code::FailedPrecondition,
        "TOTP_ALREADY_ENABLED",
    );
    server.stop().await;
}

#[tokio::test]
async fn enrolment_needs_a_session_and_the_password() {
    let mut server = TestServer::start().await;
    let (_, token) = server.signed_in("heidi", PASSWORD).await;
    let (_, other_token) = server.signed_in("ivan", PASSWORD).await;
    server.enable_totp(&other_token, PASSWORD).await;
    let challenge = server
        .login_challenge("ivan", PASSWORD)
        .await
        .challenge_token;

    let no_bearer = server
        .client
        .enroll_totp(pb::EnrollTotpRequest {
            password: PASSWORD.into(),
        })
        .await
        .unwrap_err();
    let challenge_as_bearer = server
        .client
        .enroll_totp(bearer(
            pb::EnrollTotpRequest {
                password: PASSWORD.into(),
            },
            &challenge,
        ))
        .await
        .unwrap_err();
    let empty_password = server
        .client
        .enroll_totp(bearer(
            pb::EnrollTotpRequest {
                password: String::new(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    let wrong_password = server
        .client
        .enroll_totp(bearer(
            pb::EnrollTotpRequest {
                password: "not it at all".into(),
            },
            &token,
        ))
        .await
        .unwrap_err();

    assert_status(&no_bearer, Code::Unauthenticated, "SESSION_INVALID");
    assert_status(
        &challenge_as_bearer,
        Code::Unauthenticated,
        "SESSION_INVALID",
    );
    assert_invalid(&empty_password, "password");
    assert_status(
        &wrong_password,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    server.stop().await;
}

#[tokio::test]
async fn challenges_are_not_sessions_and_die_after_five_wrong_codes() {
    let mut server = TestServer::start_with(|c| c.lockout.threshold = 100).await;
    let (_, token) = server.signed_in("judy", PASSWORD).await;
    let (secret, _) = server.enable_totp(&token, PASSWORD).await;
    server.clock.advance(STEP);
    let challenge = server
        .login_challenge("judy", PASSWORD)
        .await
        .challenge_token;

    let session_as_challenge = server.verify_challenge(&token, "123456").await.unwrap_err();
    let unknown = server
        .verify_challenge("wsc_nope", "123456")
        .await
        .unwrap_err();
    let no_purpose = server
        .client
        .verify_totp(pb::VerifyTotpRequest {
            code: "123456".into(),
            purpose: None,
            ..Default::default()
        })
        .await
        .unwrap_err();
    let as_session = server
        .client
        .validate_session(pb::ValidateSessionRequest {
            token: challenge.clone(),
        })
        .await
        .unwrap_err();
    let right = independent_totp(&secret, server.now());
    let wrong = wrong_code(&right);
    for _ in 0..5 {
        let err = server
            .verify_challenge(&challenge, wrong)
            .await
            .unwrap_err();
        assert_status(&err, Code::Unauthenticated, "INVALID_CREDENTIALS");
    }
    let dead = server
        .verify_challenge(&challenge, &right)
        .await
        .unwrap_err();
    server.clock.advance(Duration::from_secs(301));
    let expired_challenge = server
        .login_challenge("judy", PASSWORD)
        .await
        .challenge_token;
    server.clock.advance(Duration::from_secs(301));
    let expired = server
        .verify_challenge(&expired_challenge, &independent_totp(&secret, server.now()))
        .await
        .unwrap_err();

    assert_status(
        &session_as_challenge,
        Code::Unauthenticated,
        "CHALLENGE_INVALID",
    );
    assert_status(&unknown, Code::Unauthenticated, "CHALLENGE_INVALID");
    assert_invalid(&no_purpose, "purpose");
    assert_status(&as_session, Code::Unauthenticated, "SESSION_INVALID");
    assert_status(&dead, Code::Unauthenticated, "CHALLENGE_INVALID");
    assert_status(&expired, Code::Unauthenticated, "CHALLENGE_INVALID");
    server.stop().await;
}

#[tokio::test]
async fn four_wrong_codes_leave_a_challenge_alive_and_badly_shaped_ones_cost_nothing() {
    // The default budget of 5: malformed codes must use neither it nor the
    // challenge's five tries.
    let mut server = TestServer::start().await;
    let (_, token) = server.signed_in("kate", PASSWORD).await;
    let (secret, _) = server.enable_totp(&token, PASSWORD).await;
    server.clock.advance(STEP);
    let challenge = server
        .login_challenge("kate", PASSWORD)
        .await
        .challenge_token;
    let right = independent_totp(&secret, server.now());
    let wrong = wrong_code(&right);

    for _ in 0..3 {
        for code in ["12345", "+12345", "１２３４５６", ""] {
            let err = server.verify_challenge(&challenge, code).await.unwrap_err();
            assert_invalid(&err, "code");
        }
        for code in ["!!!!-!!!!-!!!!-!!!!", "123456", "UUUU-UUUU-UUUU-UUUU"] {
            let err = server
                .use_recovery_code(&challenge, code)
                .await
                .unwrap_err();
            assert_invalid(&err, "code");
        }
    }
    for _ in 0..4 {
        let err = server
            .verify_challenge(&challenge, wrong)
            .await
            .unwrap_err();
        assert_status(&err, Code::Unauthenticated, "INVALID_CREDENTIALS");
    }
    let session = server.verify_challenge(&challenge, &right).await;

    assert!(
        session.is_ok(),
        "4 wrong codes and any number of malformed ones leave the challenge alive: {session:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_database_holds_no_secret_code_or_token_in_clear() {
    let mut server = TestServer::start().await;
    let (_, token) = server.signed_in("kim", PASSWORD).await;
    let enrollment = server.enroll(&token, PASSWORD).await;
    let secret = data_encoding::BASE32_NOPAD
        .decode(enrollment.secret_base32.as_bytes())
        .unwrap();
    let codes = server
        .confirm(&token, &independent_totp(&secret, server.now()))
        .await
        .unwrap();
    server.clock.advance(STEP);
    let challenge = server
        .login_challenge("kim", PASSWORD)
        .await
        .challenge_token;
    let session = server
        .verify_challenge(&challenge, &independent_totp(&secret, server.now()))
        .await
        .unwrap();
    let db = server.stop().await;

    let raw = raw_database(&db).await;
    let hex_secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    assert!(contains(&raw, b"kim"), "the dump sees the data");
    for needle in [
        enrollment.secret_base32.as_bytes(),
        &secret,
        hex_secret.as_bytes(),
        token.as_bytes(),
        challenge.as_bytes(),
        session.token.as_bytes(),
        PASSWORD.as_bytes(),
    ] {
        assert!(!contains(&raw, needle), "a secret is stored in clear");
    }
    for code in &codes {
        assert!(
            !contains(&raw, code.as_bytes()) && !contains(&raw, code.replace('-', "").as_bytes())
        );
    }
}

#[tokio::test]
async fn a_secret_moved_to_another_row_or_purpose_does_not_decrypt() {
    let mut server = TestServer::start_with(|c| c.lockout.threshold = 100).await;
    let (victim, victim_token) = server.signed_in("victim", PASSWORD).await;
    let (attacker, attacker_token) = server.signed_in("attacker", PASSWORD).await;
    let (victim_secret, _) = server.enable_totp(&victim_token, PASSWORD).await;
    server.enable_totp(&attacker_token, PASSWORD).await;

    // Copy the victim's active ciphertext over the attacker's.
    execute_sql(
        &server.db,
        &format!(
            "UPDATE totp_secrets SET key_id = (SELECT key_id FROM totp_secrets WHERE user_id = '{victim}' AND purpose = 'active'), \
             nonce = (SELECT nonce FROM totp_secrets WHERE user_id = '{victim}' AND purpose = 'active'), \
             ciphertext = (SELECT ciphertext FROM totp_secrets WHERE user_id = '{victim}' AND purpose = 'active') \
             WHERE user_id = '{attacker}' AND purpose = 'active'"
        ),
    )
    .await;
    server.clock.advance(STEP);
    let challenge = server
        .login_challenge("attacker", PASSWORD)
        .await
        .challenge_token;
    let moved = server
        .verify_challenge(&challenge, &independent_totp(&victim_secret, server.now()))
        .await
        .unwrap_err();

    assert_eq!(moved.code(), Code::Internal);
    assert_eq!(moved.message(), "internal error");
    server.stop().await;
}

#[tokio::test]
async fn a_pending_secret_moved_to_active_does_not_decrypt() {
    let mut server = TestServer::start().await;
    let (user, token) = server.signed_in("mallory", PASSWORD).await;
    let enrollment = server.enroll(&token, PASSWORD).await;
    let secret = data_encoding::BASE32_NOPAD
        .decode(enrollment.secret_base32.as_bytes())
        .unwrap();

    execute_sql(
        &server.db,
        &format!(
            "UPDATE totp_secrets SET purpose = 'active', expires_at = NULL WHERE user_id = '{user}'"
        ),
    )
    .await;
    server.clock.advance(STEP);
    let challenge = server
        .login_challenge("mallory", PASSWORD)
        .await
        .challenge_token;
    let moved = server
        .verify_challenge(&challenge, &independent_totp(&secret, server.now()))
        .await
        .unwrap_err();

    assert_eq!(moved.code(), Code::Internal);
    server.stop().await;
}
