//! Step-up calls: DisableTotp, RegenerateRecoveryCodes, ChangePassword and
//! DeleteAccount, in the contract's order of checks, and their effects.

use std::time::Duration;

use tonic::{Code, Request, Status};
use warden::grpc::pb;

use crate::helpers::{
    PASSWORD, TestServer, assert_invalid, assert_status, bearer, count, independent_totp,
    wrong_code,
};

const STEP: Duration = Duration::from_secs(30);
const NEW_PASSWORD: &str = "a brand new passphrase";

#[derive(Debug, Clone, Copy)]
enum Action {
    Disable,
    Regenerate,
    Change,
    Delete,
}

const ACTIONS: [Action; 4] = [
    Action::Disable,
    Action::Regenerate,
    Action::Change,
    Action::Delete,
];

/// Calls `action` with the given credentials; `token` None sends no Bearer.
async fn call(
    server: &mut TestServer,
    action: Action,
    token: Option<&str>,
    password: &str,
    code: &str,
) -> Result<Vec<String>, Status> {
    fn wrap<T>(message: T, token: Option<&str>) -> Request<T> {
        match token {
            Some(token) => bearer(message, token),
            None => Request::new(message),
        }
    }
    let (password, code) = (password.to_owned(), code.to_owned());
    let client = &mut server.client;
    match action {
        Action::Disable => client
            .disable_totp(wrap(pb::DisableTotpRequest { password, code }, token))
            .await
            .map(|_| vec![]),
        Action::Regenerate => client
            .regenerate_recovery_codes(wrap(
                pb::RegenerateRecoveryCodesRequest { password, code },
                token,
            ))
            .await
            .map(|r| r.into_inner().recovery_codes),
        Action::Change => client
            .change_password(wrap(
                pb::ChangePasswordRequest {
                    current_password: password,
                    new_password: NEW_PASSWORD.into(),
                    code,
                },
                token,
            ))
            .await
            .map(|_| vec![]),
        Action::Delete => client
            .delete_account(wrap(pb::DeleteAccountRequest { password, code }, token))
            .await
            .map(|_| vec![]),
    }
}

/// A user with TOTP on: (session token, secret, recovery codes).
async fn user_with_totp(server: &mut TestServer, name: &str) -> (String, Vec<u8>, Vec<String>) {
    let (_, token) = server.signed_in(name, PASSWORD).await;
    let (secret, codes) = server.enable_totp(&token, PASSWORD).await;
    (token, secret, codes)
}

#[tokio::test]
async fn every_step_up_call_refuses_bad_credentials_in_order_and_changes_nothing() {
    let mut server = TestServer::start_with(|c| c.lockout.threshold = 100).await;
    for (i, action) in ACTIONS.into_iter().enumerate() {
        let name = format!("user{i}");
        let (token, secret, codes) = user_with_totp(&mut server, &name).await;
        let confirming_code = independent_totp(&secret, server.now());
        server.clock.advance(STEP);
        let challenge = server
            .login_challenge(&name, PASSWORD)
            .await
            .challenge_token;
        let used = server
            .use_recovery_code(&challenge, &codes[0])
            .await
            .unwrap();
        let fresh = independent_totp(&secret, server.now());
        let wrong = wrong_code(&fresh);
        let too_long = "x".repeat(1025);

        let cases: Vec<(Option<&str>, &str, &str, Code, &str)> = vec![
            (
                None,
                PASSWORD,
                &fresh,
                Code::Unauthenticated,
                "SESSION_INVALID",
            ),
            (
                Some(&challenge),
                PASSWORD,
                &fresh,
                Code::Unauthenticated,
                "SESSION_INVALID",
            ),
            (
                Some(&token),
                PASSWORD,
                "",
                Code::InvalidArgument,
                "SECOND_FACTOR_REQUIRED",
            ),
            (
                Some(&token),
                "not the password",
                &fresh,
                Code::Unauthenticated,
                "INVALID_CREDENTIALS",
            ),
            (
                Some(&token),
                PASSWORD,
                wrong,
                Code::Unauthenticated,
                "INVALID_CREDENTIALS",
            ),
            (
                Some(&token),
                "not the password",
                wrong,
                Code::Unauthenticated,
                "INVALID_CREDENTIALS",
            ),
            (
                Some(&token),
                PASSWORD,
                &confirming_code,
                Code::Unauthenticated,
                "INVALID_CREDENTIALS",
            ),
            (
                Some(&token),
                PASSWORD,
                &codes[0],
                Code::Unauthenticated,
                "INVALID_CREDENTIALS",
            ),
            // Two faults: the earlier check in the contract's order answers.
            (
                None,
                PASSWORD,
                "12345",
                Code::Unauthenticated,
                "SESSION_INVALID",
            ),
            (None, "", "", Code::Unauthenticated, "SESSION_INVALID"),
            (
                Some(&challenge),
                "not the password",
                "12345",
                Code::Unauthenticated,
                "SESSION_INVALID",
            ),
            (
                Some(&token),
                "not the password",
                "",
                Code::InvalidArgument,
                "SECOND_FACTOR_REQUIRED",
            ),
            (
                Some(&token),
                "not the password",
                "12345",
                Code::InvalidArgument,
                "INVALID_REQUEST",
            ),
            (
                Some(&token),
                &too_long,
                "",
                Code::InvalidArgument,
                "INVALID_REQUEST",
            ),
        ];
        for (bearer_token, password, code, status, reason) in cases {
            let err = call(&mut server, action, bearer_token, password, code)
                .await
                .unwrap_err();
            assert_status(&err, status, reason);
        }
        let shape = call(&mut server, action, Some(&token), PASSWORD, "12345")
            .await
            .unwrap_err();
        let empty_password = call(&mut server, action, Some(&token), "", &fresh)
            .await
            .unwrap_err();
        let account = server.account(&token).await;

        assert_invalid(&shape, "code");
        assert_invalid(
            &empty_password,
            if matches!(action, Action::Change) {
                "current_password"
            } else {
                "password"
            },
        );
        assert!(account.totp_enabled, "{action:?} changed nothing");
        assert_eq!(
            account.remaining_recovery_codes, used.remaining_recovery_codes,
            "{action:?} spent no code"
        );

        // Then success, with a TOTP code or a recovery code.
        let code = if i % 2 == 0 {
            fresh.clone()
        } else {
            codes[1].clone()
        };
        call(&mut server, action, Some(&token), PASSWORD, &code)
            .await
            .unwrap();
    }
    server.stop().await;
}

#[tokio::test]
async fn disable_totp_and_change_password_end_other_sessions_but_not_the_callers() {
    let mut server = TestServer::start_with(|c| c.lockout.threshold = 100).await;
    for action in [Action::Disable, Action::Change, Action::Regenerate] {
        let name = format!("{action:?}").to_lowercase();
        let (token, secret, _) = user_with_totp(&mut server, &name).await;
        server.clock.advance(STEP);
        let challenge = server
            .login_challenge(&name, PASSWORD)
            .await
            .challenge_token;
        let other = server
            .verify_challenge(&challenge, &independent_totp(&secret, server.now()))
            .await
            .unwrap()
            .token;
        let open = server
            .login_challenge(&name, PASSWORD)
            .await
            .challenge_token;
        server.clock.advance(STEP);

        let code = independent_totp(&secret, server.now());
        call(&mut server, action, Some(&token), PASSWORD, &code)
            .await
            .unwrap();
        let open_after = server
            .verify_challenge(&open, &independent_totp(&secret, server.now() + 30))
            .await;

        assert!(
            server.is_live(&token).await,
            "{action:?} keeps the caller's session"
        );
        if matches!(action, Action::Regenerate) {
            assert!(
                server.is_live(&other).await,
                "regenerating codes ends no session"
            );
        } else {
            assert!(
                !server.is_live(&other).await,
                "{action:?} ends other sessions"
            );
            assert_status(
                &open_after.unwrap_err(),
                Code::Unauthenticated,
                "CHALLENGE_INVALID",
            );
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn regenerated_codes_replace_the_old_ones() {
    let mut server = TestServer::start_with(|c| c.lockout.threshold = 100).await;
    let (token, _, old) = user_with_totp(&mut server, "alice").await;

    let new = call(
        &mut server,
        Action::Regenerate,
        Some(&token),
        PASSWORD,
        &old[0],
    )
    .await
    .unwrap();
    let challenge = server
        .login_challenge("alice", PASSWORD)
        .await
        .challenge_token;
    let old_code = server
        .use_recovery_code(&challenge, &old[1])
        .await
        .unwrap_err();
    let new_code = server.use_recovery_code(&challenge, &new[0]).await.unwrap();

    assert_eq!(new.len(), 10);
    assert!(new.iter().all(|c| !old.contains(c)));
    assert_status(&old_code, Code::Unauthenticated, "INVALID_CREDENTIALS");
    assert_eq!(new_code.remaining_recovery_codes, 9);
    server.stop().await;
}

#[tokio::test]
async fn change_password_enforces_the_policy_and_swaps_the_password() {
    let mut server = TestServer::start().await;
    let (_, token) = server.signed_in("bob", PASSWORD).await;

    let weak = server
        .client
        .change_password(bearer(
            pb::ChangePasswordRequest {
                current_password: PASSWORD.into(),
                new_password: "password1".into(),
                code: String::new(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    // With TOTP off the code is not needed.
    call(&mut server, Action::Change, Some(&token), PASSWORD, "")
        .await
        .unwrap();
    let old = server.login("bob", PASSWORD).await.unwrap_err();
    let new = server.login("bob", NEW_PASSWORD).await;

    assert_invalid(&weak, "new_password");
    assert_status(&old, Code::Unauthenticated, "INVALID_CREDENTIALS");
    assert!(new.is_ok());
    server.stop().await;
}

#[tokio::test]
async fn totp_actions_need_totp_enabled() {
    let mut server = TestServer::start().await;
    let (_, token) = server.signed_in("carol", PASSWORD).await;

    let disable = call(&mut server, Action::Disable, Some(&token), PASSWORD, "")
        .await
        .unwrap_err();
    let regenerate = call(&mut server, Action::Regenerate, Some(&token), PASSWORD, "")
        .await
        .unwrap_err();

    assert_status(&disable, Code::FailedPrecondition, "TOTP_NOT_ENABLED");
    assert_status(&regenerate, Code::FailedPrecondition, "TOTP_NOT_ENABLED");
    server.stop().await;
}

#[tokio::test]
async fn disable_totp_and_delete_account_leave_nothing_behind() {
    let mut server = TestServer::start_with(|c| c.lockout.threshold = 100).await;
    let (disabler, _) = server.signed_in("dave", PASSWORD).await;
    let dave = server.login_session("dave", PASSWORD).await.token;
    let (dave_secret, _) = server.enable_totp(&dave, PASSWORD).await;
    let (deleted, erin) = server.signed_in("erin", PASSWORD).await;
    let (erin_secret, _) = server.enable_totp(&erin, PASSWORD).await;
    let _ = server.login("erin", "wrong password here").await;
    server.clock.advance(STEP);

    let (dave_code, erin_code) = (
        independent_totp(&dave_secret, server.now()),
        independent_totp(&erin_secret, server.now()),
    );
    let dave_rows = async |db: &crate::helpers::TestDatabase| {
        (
            count(
                db,
                &format!("SELECT count(*) FROM totp_secrets WHERE user_id = '{disabler}'"),
            )
            .await,
            count(
                db,
                &format!("SELECT count(*) FROM recovery_codes WHERE user_id = '{disabler}'"),
            )
            .await,
        )
    };
    let erin_rows = async |db: &crate::helpers::TestDatabase| {
        let mut rows = Vec::new();
        for table in [
            "sessions",
            "login_challenges",
            "totp_secrets",
            "recovery_codes",
        ] {
            rows.push(
                count(
                    db,
                    &format!("SELECT count(*) FROM {table} WHERE user_id = '{deleted}'"),
                )
                .await,
            );
        }
        rows.push(
            count(
                db,
                &format!("SELECT count(*) FROM users WHERE id = '{deleted}' OR username = 'erin'"),
            )
            .await,
        );
        rows.push(
            count(
                db,
                "SELECT count(*) FROM failure_budgets WHERE name = 'erin'",
            )
            .await,
        );
        rows
    };
    server.login_challenge("erin", PASSWORD).await;
    let dave_before = dave_rows(&server.db).await;
    let erin_before = erin_rows(&server.db).await;
    call(
        &mut server,
        Action::Disable,
        Some(&dave),
        PASSWORD,
        &dave_code,
    )
    .await
    .unwrap();
    call(
        &mut server,
        Action::Delete,
        Some(&erin),
        PASSWORD,
        &erin_code,
    )
    .await
    .unwrap();
    let dave_after = dave_rows(&server.db).await;
    let erin_after = erin_rows(&server.db).await;
    let gone = server.login("erin", PASSWORD).await.unwrap_err();

    assert_eq!(dave_before, (1, 10), "dave had a secret and codes");
    assert_eq!(
        erin_before,
        [1, 1, 1, 10, 1, 1],
        "erin had a row of every kind"
    );
    assert_eq!(dave_after, (0, 0));
    assert!(!server.account(&dave).await.totp_enabled);
    assert_eq!(erin_after, [0; 6], "no row of the deleted user remains");
    assert_status(&gone, Code::Unauthenticated, "INVALID_CREDENTIALS");
    assert!(!server.is_live(&erin).await);
    server.stop().await;
}

#[tokio::test]
async fn the_lost_device_path_works() {
    let mut server = TestServer::start().await;
    let (_, token) = server.signed_in("frank", PASSWORD).await;
    let (_, codes) = server.enable_totp(&token, PASSWORD).await;
    server
        .client
        .logout(bearer(pb::LogoutRequest {}, &token))
        .await
        .unwrap();

    // The phone is gone: sign in with one recovery code…
    let challenge = server
        .login_challenge("frank", PASSWORD)
        .await
        .challenge_token;
    let session = server
        .use_recovery_code(&challenge, &codes[3])
        .await
        .unwrap()
        .session
        .unwrap()
        .token;
    // …turn TOTP off with the password and another…
    call(
        &mut server,
        Action::Disable,
        Some(&session),
        PASSWORD,
        &codes[4],
    )
    .await
    .unwrap();
    // …and enrol the new device.
    server.clock.advance(STEP);
    let (secret, new_codes) = server.enable_totp(&session, PASSWORD).await;
    server.clock.advance(STEP);
    let challenge = server
        .login_challenge("frank", PASSWORD)
        .await
        .challenge_token;
    let login = server
        .verify_challenge(&challenge, &independent_totp(&secret, server.now()))
        .await;

    assert_eq!(new_codes.len(), 10);
    assert!(login.is_ok());
    server.stop().await;
}
