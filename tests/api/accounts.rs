//! Register, Login (password only) and GetAccount.

use tonic::Code;
use warden::grpc::pb;

use crate::helpers::{PASSWORD, TestServer, assert_invalid, assert_status, bearer};

#[tokio::test]
async fn register_returns_a_uuid_and_login_returns_a_session() {
    let mut server = TestServer::start().await;

    let user_id = server.register("alice", PASSWORD).await;
    let session = server.login_session("alice", PASSWORD).await;

    assert!(uuid::Uuid::parse_str(&user_id).is_ok());
    assert_eq!(user_id, user_id.to_lowercase());
    assert_eq!(session.user_id, user_id);
    assert!(uuid::Uuid::parse_str(&session.session_id).is_ok());
    assert!(session.token.len() <= 256);
    assert!(
        session
            .token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert!(session.expires_at.is_some());
    server.stop().await;
}

#[tokio::test]
async fn usernames_are_case_insensitive_and_unique() {
    let mut server = TestServer::start().await;
    let user_id = server.register("Bob.Smith", PASSWORD).await;

    let taken = server
        .client
        .register(pb::RegisterRequest {
            username: "bob.smith".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap_err();
    let session = server.login_session("BOB.SMITH", PASSWORD).await;
    let account = server
        .client
        .get_account(bearer(pb::GetAccountRequest {}, &session.token))
        .await
        .unwrap()
        .into_inner();

    assert_status(&taken, Code::AlreadyExists, "USERNAME_TAKEN");
    assert_eq!(session.user_id, user_id);
    assert_eq!(account.username, "bob.smith");
    server.stop().await;
}

#[tokio::test]
async fn register_rejects_bad_usernames_and_passwords_naming_the_field() {
    let mut server = TestServer::start().await;
    let cases = [
        ("ab", PASSWORD, "username"),
        ("ålice", PASSWORD, "username"),
        ("\u{212A}elvin", PASSWORD, "username"),
        ("has space", PASSWORD, "username"),
        ("", PASSWORD, "username"),
        ("carol", "x7q!", "password"),
        ("carol", "password1", "password"),
        ("carol", "", "password"),
        ("carol", &"x".repeat(129), "password"),
        ("carol", "abc\u{0}defghij", "password"),
    ];
    for (username, password, field) in cases {
        let err = server
            .client
            .register(pb::RegisterRequest {
                username: username.into(),
                password: password.into(),
            })
            .await
            .unwrap_err();
        assert_invalid(&err, field);
        assert!(
            !err.message().contains(password) || password.is_empty(),
            "message echoes input"
        );
    }
    // Nothing was created along the way.
    assert_eq!(server.register("carol", PASSWORD).await.len(), 36);
    server.stop().await;
}

#[tokio::test]
async fn passwords_are_nfkc_normalised() {
    let mut server = TestServer::start().await;
    // FULLWIDTH letters and the "ﬁ" ligature fold to ASCII under NFKC.
    server.register("dave", "ｆｕｌｌｗｉｄｔｈ ﬁne pass").await;

    let session = server.login_session("dave", "fullwidth fine pass").await;

    assert!(!session.token.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same() {
    let mut server = TestServer::start().await;
    server.register("erin", PASSWORD).await;

    let wrong = server.login("erin", "not the password").await.unwrap_err();
    let unknown = server
        .login("nobody", "not the password")
        .await
        .unwrap_err();

    assert_status(&wrong, Code::Unauthenticated, "INVALID_CREDENTIALS");
    assert_status(&unknown, Code::Unauthenticated, "INVALID_CREDENTIALS");
    assert_eq!(wrong.message(), unknown.message());
    assert_eq!(wrong.details(), unknown.details());
    server.stop().await;
}

#[tokio::test]
async fn login_rejects_only_empty_or_oversized_passwords_before_hashing() {
    let mut server = TestServer::start_with(|c| c.passwords.min_length = 20).await;
    server.register("frank", "twenty one characters!").await;

    let empty = server.login("frank", "").await.unwrap_err();
    let huge = server.login("frank", &"x".repeat(1025)).await.unwrap_err();
    let short_but_wrong = server.login("frank", "short").await.unwrap_err();

    assert_invalid(&empty, "password");
    assert_invalid(&huge, "password");
    assert_status(
        &short_but_wrong,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    server.stop().await;
}

#[tokio::test]
async fn get_account_describes_the_caller() {
    let mut server = TestServer::start().await;
    let (user_id, token) = server.signed_in("grace", PASSWORD).await;

    let account = server
        .client
        .get_account(bearer(pb::GetAccountRequest {}, &token))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(account.user_id, user_id);
    assert_eq!(account.username, "grace");
    assert!(!account.totp_enabled);
    assert!(!account.totp_enrollment_pending);
    assert_eq!(account.remaining_recovery_codes, 0);
    assert_eq!(
        account.created_at.map(|t| t.seconds),
        Some(crate::helpers::epoch().unix_timestamp())
    );
    server.stop().await;
}

#[tokio::test]
async fn hashes_are_upgraded_at_the_next_login_when_parameters_change() {
    let mut server = TestServer::start().await;
    server.register("henry", PASSWORD).await;
    let db = server.stop().await;
    let mut config = crate::helpers::test_config(&db);
    config.hashing.memory_kib = 512;
    let hashes_with = |m: u32| {
        format!("SELECT count(*) FROM users WHERE password_hash LIKE '$argon2id$v=19$m={m},%'")
    };

    let before = crate::helpers::count(&db, &hashes_with(512)).await;
    let mut server = TestServer::start_on(db, config).await;
    server.login_session("henry", PASSWORD).await;
    let after = crate::helpers::count(&server.db, &hashes_with(512)).await;
    let again = server.login_session("henry", PASSWORD).await;

    assert_eq!((before, after), (0, 1));
    assert!(!again.token.is_empty(), "the upgraded hash verifies");
    server.stop().await;
}
