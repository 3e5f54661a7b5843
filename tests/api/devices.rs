//! Trusted devices ("remember this device"): remembered by TOTP or by a
//! recovery code, used at Login with the right password in place of the
//! second factor, ignored silently in every other case, and revoked by
//! ForgetTrustedDevices and the step-up calls that end other sessions.
//! Races, cancellation and replicas are in `device_races`.

use std::time::Duration;

use tonic::{Code, Status};
use warden::grpc::pb::{self, login_response::Outcome, verify_totp_request::Purpose};

use crate::helpers::{
    PASSWORD, TestServer, assert_status, audit_events, bearer, count, independent_totp, retry_secs,
};

/// A signed-in user with TOTP on.
pub struct Enrolled {
    pub user_id: String,
    pub session: String,
    pub secret: Vec<u8>,
    pub codes: Vec<String>,
}

/// Registers `name`, signs in and turns TOTP on.
pub async fn enrolled(server: &mut TestServer, name: &str) -> Enrolled {
    let (user_id, session) = server.signed_in(name, PASSWORD).await;
    let (secret, codes) = server.enable_totp(&session, PASSWORD).await;
    Enrolled {
        user_id,
        session,
        secret,
        codes,
    }
}

/// Logs `name` in and answers the challenge with the next TOTP step,
/// asking to remember the device; returns the session and the device token.
pub async fn remember(server: &mut TestServer, name: &str, secret: &[u8]) -> (pb::Session, String) {
    server.clock.advance(Duration::from_secs(30));
    let challenge = server.login_challenge(name, PASSWORD).await;
    let answer = server
        .client
        .verify_totp(pb::VerifyTotpRequest {
            code: independent_totp(secret, server.now()),
            purpose: Some(Purpose::ChallengeToken(challenge.challenge_token)),
            remember_device: true,
        })
        .await
        .unwrap()
        .into_inner();
    (answer.session.unwrap(), answer.device_token)
}

/// A Login request presenting `device`.
pub fn with_device(name: &str, password: &str, device: &str) -> pb::LoginRequest {
    pb::LoginRequest {
        username: name.into(),
        password: password.into(),
        device_token: device.into(),
    }
}

/// Logs in presenting `device`.
pub async fn login_with(
    server: &mut TestServer,
    name: &str,
    password: &str,
    device: &str,
) -> Result<Outcome, Status> {
    server
        .client
        .login(with_device(name, password, device))
        .await
        .map(|r| r.into_inner().outcome.unwrap())
}

/// The sorted amr of a live session.
pub async fn amr(server: &mut TestServer, token: &str) -> Vec<String> {
    let mut amr = server
        .client
        .validate_session(pb::ValidateSessionRequest {
            token: token.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .amr;
    amr.sort();
    amr
}

/// Whether a Login with `device` skips the challenge.
pub async fn device_works(
    server: &mut TestServer,
    name: &str,
    password: &str,
    device: &str,
) -> bool {
    match login_with(server, name, password, device).await.unwrap() {
        Outcome::Session(_) => true,
        Outcome::MfaRequired(_) => false,
    }
}

/// Every trusted-device row in the database.
async fn device_rows(server: &TestServer) -> i64 {
    count(&server.db, "SELECT count(*) FROM trusted_devices").await
}

#[tokio::test]
async fn a_device_remembered_with_totp_skips_only_the_second_factor() {
    let mut server = TestServer::start().await;
    let alice = enrolled(&mut server, "alice").await;

    let (session, device) = remember(&mut server, "alice", &alice.secret).await;
    let issued_at = server.now();
    server.clock.advance(Duration::from_secs(5));
    let outcome = login_with(&mut server, "alice", PASSWORD, &device)
        .await
        .unwrap();
    let Outcome::Session(by_device) = outcome else {
        panic!("expected a session, got {outcome:?}")
    };
    let validated = server
        .client
        .validate_session(pb::ValidateSessionRequest {
            token: by_device.token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let again = device_works(&mut server, "alice", PASSWORD, &device).await;

    assert!(
        device.starts_with("wdt_"),
        "opaque, typed: {}",
        device.len()
    );
    assert!(device.len() <= 256);
    assert_eq!(
        amr(&mut server, &session.token).await,
        ["mfa", "otp", "pwd"]
    );
    assert_eq!(by_device.user_id, alice.user_id);
    assert_eq!(
        amr(&mut server, &by_device.token).await,
        ["pwd", "trusted_device"]
    );
    assert_eq!(
        validated.authenticated_at.map(|t| t.seconds),
        Some(i64::try_from(issued_at + 5).unwrap()),
        "authenticated_at is when the device login issued the session"
    );
    assert!(again, "a device token is not single-use");
    assert_eq!(server.account(&alice.session).await.trusted_devices, 1);
    assert_eq!(audit_events("trusted_device.remembered", &alice.user_id), 1);
    assert_eq!(audit_events("trusted_device.used", &alice.user_id), 2);
    let last_used = count(
        &server.db,
        "SELECT count(*) FROM trusted_devices WHERE last_used_at IS NOT NULL",
    )
    .await;
    assert_eq!(last_used, 1, "its last use is recorded");
    server.stop().await;
}

#[tokio::test]
async fn a_device_remembered_with_a_recovery_code_works_too() {
    let mut server = TestServer::start().await;
    let bob = enrolled(&mut server, "bob").await;

    let challenge = server.login_challenge("bob", PASSWORD).await;
    let used = server
        .client
        .use_recovery_code(pb::UseRecoveryCodeRequest {
            challenge_token: challenge.challenge_token,
            code: bob.codes[0].clone(),
            remember_device: true,
        })
        .await
        .unwrap()
        .into_inner();
    let works = device_works(&mut server, "bob", PASSWORD, &used.device_token).await;

    assert_eq!(used.remaining_recovery_codes, 9);
    assert!(used.device_token.starts_with("wdt_"));
    assert!(works);
    assert_eq!(server.account(&bob.session).await.trusted_devices, 1);
    server.stop().await;
}

#[tokio::test]
async fn without_remember_device_no_token_is_issued_and_confirming_enrolment_ignores_it() {
    let mut server = TestServer::start().await;
    let (_, session) = server.signed_in("cleo", PASSWORD).await;
    let enrollment = server.enroll(&session, PASSWORD).await;
    let secret = data_encoding::BASE32_NOPAD
        .decode(enrollment.secret_base32.as_bytes())
        .unwrap();

    let confirmed = server
        .client
        .verify_totp(bearer(
            pb::VerifyTotpRequest {
                code: independent_totp(&secret, server.now()),
                purpose: Some(Purpose::ConfirmEnrollment(())),
                remember_device: true,
            },
            &session,
        ))
        .await
        .unwrap()
        .into_inner();
    server.clock.advance(Duration::from_secs(30));
    let challenge = server.login_challenge("cleo", PASSWORD).await;
    let plain = server
        .client
        .verify_totp(pb::VerifyTotpRequest {
            code: independent_totp(&secret, server.now()),
            purpose: Some(Purpose::ChallengeToken(challenge.challenge_token)),
            remember_device: false,
        })
        .await
        .unwrap()
        .into_inner();

    assert_eq!(confirmed.recovery_codes.len(), 10);
    assert_eq!(confirmed.device_token, "");
    assert!(plain.session.is_some());
    assert_eq!(plain.device_token, "");
    assert_eq!(device_rows(&server).await, 0);
    server.stop().await;
}

#[tokio::test]
async fn a_ttl_of_zero_turns_remembering_off() {
    let mut server = TestServer::start_with(|c| c.trusted_devices.ttl_secs = 0).await;
    let dana = enrolled(&mut server, "dana").await;

    let (session, device) = remember(&mut server, "dana", &dana.secret).await;

    assert!(!session.token.is_empty(), "the login itself completes");
    assert_eq!(device, "", "no device token is issued");
    assert_eq!(device_rows(&server).await, 0);
    assert_eq!(server.account(&dana.session).await.trusted_devices, 0);
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_password_with_a_device_token_fails_counts_and_locks_as_any_other() {
    let mut server = TestServer::start().await;
    let erin = enrolled(&mut server, "erin").await;
    let (_, device) = remember(&mut server, "erin", &erin.secret).await;

    let with = login_with(&mut server, "erin", "wrong password", &device)
        .await
        .unwrap_err();
    let without = login_with(&mut server, "erin", "wrong password", "")
        .await
        .unwrap_err();
    for _ in 0..3 {
        login_with(&mut server, "erin", "wrong password", &device)
            .await
            .unwrap_err();
    }
    let locked = login_with(&mut server, "erin", PASSWORD, &device)
        .await
        .unwrap_err();

    assert_status(&with, Code::Unauthenticated, "INVALID_CREDENTIALS");
    assert_eq!(
        (with.code(), with.message(), with.details()),
        (without.code(), without.message(), without.details()),
        "a device token changes nothing about a wrong password's answer"
    );
    assert_status(&locked, Code::ResourceExhausted, "ACCOUNT_LOCKED");
    assert_eq!(
        retry_secs(&locked),
        Some(900),
        "five failures locked the name"
    );
    server.stop().await;
}

#[tokio::test]
async fn any_other_device_token_is_ignored_and_the_normal_challenge_follows() {
    let mut server = TestServer::start().await;
    let fay = enrolled(&mut server, "fay").await;
    let gus = enrolled(&mut server, "gus").await;
    let (_, gus_device) = remember(&mut server, "gus", &gus.secret).await;
    let (fay_session, _) = remember(&mut server, "fay", &fay.secret).await;
    let well_formed_unknown = format!("wdt_{}", "A".repeat(43));
    let presented = [
        gus_device.as_str(),
        well_formed_unknown.as_str(),
        "wdt_short",
        "not a token at all",
        fay_session.token.as_str(),
        fay.codes[1].as_str(),
    ];

    let plain = server.login_challenge("fay", PASSWORD).await;
    let mut challenges = Vec::new();
    for device in presented {
        challenges.push(
            login_with(&mut server, "fay", PASSWORD, device)
                .await
                .unwrap(),
        );
    }

    for outcome in challenges {
        let Outcome::MfaRequired(challenge) = outcome else {
            panic!("expected the normal challenge, got {outcome:?}")
        };
        assert_eq!(challenge.methods, plain.methods);
        assert_eq!(challenge.expires_at, plain.expires_at);
        assert_eq!(challenge.challenge_token.len(), plain.challenge_token.len());
    }
    assert_eq!(audit_events("trusted_device.used", &fay.user_id), 0);
    assert_eq!(audit_events("trusted_device.used", &gus.user_id), 0);
    assert!(device_works(&mut server, "gus", PASSWORD, &gus_device).await);
    server.stop().await;
}

#[tokio::test]
async fn an_expired_device_is_ignored() {
    let mut server = TestServer::start_with(|c| c.trusted_devices.ttl_secs = 3_600).await;
    let hal = enrolled(&mut server, "hal").await;
    let (_, device) = remember(&mut server, "hal", &hal.secret).await;

    server.clock.advance(Duration::from_secs(3_599));
    let before = device_works(&mut server, "hal", PASSWORD, &device).await;
    server.clock.advance(Duration::from_secs(1));
    let at_the_end = device_works(&mut server, "hal", PASSWORD, &device).await;
    server.clock.advance(Duration::from_secs(30));
    let challenge = server.login_challenge("hal", PASSWORD).await;
    let code = independent_totp(&hal.secret, server.now());
    let fresh = server
        .verify_challenge(&challenge.challenge_token, &code)
        .await
        .unwrap();

    assert!(before, "live until its end");
    assert!(!at_the_end, "expired at its end");
    assert_eq!(server.account(&fresh.token).await.trusted_devices, 0);
    server.stop().await;
}

#[tokio::test]
async fn the_cap_ends_the_oldest_device() {
    let mut server = TestServer::start_with(|c| c.trusted_devices.max_per_user = 2).await;
    let ivy = enrolled(&mut server, "ivy").await;

    let (_, first) = remember(&mut server, "ivy", &ivy.secret).await;
    let (_, second) = remember(&mut server, "ivy", &ivy.secret).await;
    let (session, third) = remember(&mut server, "ivy", &ivy.secret).await;

    assert!(!device_works(&mut server, "ivy", PASSWORD, &first).await);
    assert!(device_works(&mut server, "ivy", PASSWORD, &second).await);
    assert!(device_works(&mut server, "ivy", PASSWORD, &third).await);
    assert_eq!(server.account(&session.token).await.trusted_devices, 2);
    server.stop().await;
}

#[tokio::test]
async fn forget_trusted_devices_revokes_every_device_of_the_caller_only() {
    let mut server = TestServer::start().await;
    let jay = enrolled(&mut server, "jay").await;
    let kim = enrolled(&mut server, "kim").await;
    let (_, one) = remember(&mut server, "jay", &jay.secret).await;
    let (_, two) = remember(&mut server, "jay", &jay.secret).await;
    let (_, kims) = remember(&mut server, "kim", &kim.secret).await;

    let forget = |token: &str| bearer(pb::ForgetTrustedDevicesRequest {}, token);
    let first = server
        .client
        .forget_trusted_devices(forget(&jay.session))
        .await
        .unwrap()
        .into_inner();
    let second = server
        .client
        .forget_trusted_devices(forget(&jay.session))
        .await
        .unwrap()
        .into_inner();
    let anonymous = server
        .client
        .forget_trusted_devices(pb::ForgetTrustedDevicesRequest {})
        .await
        .unwrap_err();

    assert_eq!((first.revoked, second.revoked), (2, 0));
    assert_status(&anonymous, Code::Unauthenticated, "SESSION_INVALID");
    assert!(!device_works(&mut server, "jay", PASSWORD, &one).await);
    assert!(!device_works(&mut server, "jay", PASSWORD, &two).await);
    assert!(device_works(&mut server, "kim", PASSWORD, &kims).await);
    assert_eq!(server.account(&jay.session).await.trusted_devices, 0);
    assert_eq!(audit_events("trusted_devices.revoked", &jay.user_id), 2);
    server.stop().await;
}

/// A step-up call's request fields.
enum StepUp {
    DisableTotp,
    ChangePassword,
    DeleteAccount,
}

async fn step_up(server: &mut TestServer, who: &Enrolled, call: StepUp) {
    server.clock.advance(Duration::from_secs(30));
    let code = independent_totp(&who.secret, server.now());
    let client = &mut server.client;
    let token = who.session.as_str();
    match call {
        StepUp::DisableTotp => client
            .disable_totp(bearer(
                pb::DisableTotpRequest {
                    password: PASSWORD.into(),
                    code,
                },
                token,
            ))
            .await
            .map(|_| ()),
        StepUp::ChangePassword => client
            .change_password(bearer(
                pb::ChangePasswordRequest {
                    current_password: PASSWORD.into(),
                    new_password: NEW_PASSWORD.into(),
                    code,
                },
                token,
            ))
            .await
            .map(|_| ()),
        StepUp::DeleteAccount => client
            .delete_account(bearer(
                pb::DeleteAccountRequest {
                    password: PASSWORD.into(),
                    code,
                },
                token,
            ))
            .await
            .map(|_| ()),
    }
    .unwrap();
}

const NEW_PASSWORD: &str = "a brand new passphrase";

#[tokio::test]
async fn disable_totp_change_password_and_delete_account_revoke_the_devices() {
    let mut server = TestServer::start().await;
    let lee = enrolled(&mut server, "lee").await;
    let max = enrolled(&mut server, "max").await;
    let ned = enrolled(&mut server, "ned").await;
    let (_, lees) = remember(&mut server, "lee", &lee.secret).await;
    let (_, maxs) = remember(&mut server, "max", &max.secret).await;
    let (_, neds) = remember(&mut server, "ned", &ned.secret).await;

    step_up(&mut server, &lee, StepUp::DisableTotp).await;
    server.clock.advance(Duration::from_secs(30));
    let (lee_secret, _) = server.enable_totp(&lee.session, PASSWORD).await;
    step_up(&mut server, &max, StepUp::ChangePassword).await;
    step_up(&mut server, &ned, StepUp::DeleteAccount).await;
    let ned_again = enrolled(&mut server, "ned").await;

    assert!(!lee_secret.is_empty());
    assert!(!device_works(&mut server, "lee", PASSWORD, &lees).await);
    assert!(!device_works(&mut server, "max", NEW_PASSWORD, &maxs).await);
    assert!(!device_works(&mut server, "ned", PASSWORD, &neds).await);
    assert_eq!(device_rows(&server).await, 0);
    for user in [&lee.user_id, &max.user_id, &ned.user_id] {
        assert_eq!(audit_events("trusted_devices.revoked", user), 1, "{user}");
    }
    assert_ne!(ned_again.user_id, ned.user_id);
    server.stop().await;
}
