//! The `migrate` and `rotate-keys` subcommands, run as the real binary.

use std::process::{Command, Output};
use std::time::Duration;

use data_encoding::BASE64;
use warden::grpc::pb;

use crate::helpers::{
    PASSWORD, TestDatabase, TestServer, execute_sql, independent_totp, logs, test_config,
};

fn key(byte: u8) -> String {
    BASE64.encode(&[byte; 32])
}

fn warden(db: &TestDatabase, args: &[&str], envs: &[(&str, String)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warden"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WARDEN_DATABASE_URL", &db.url)
        .env("WARDEN_TOKEN_KEY", key(2))
        // Like `serve`, the subcommands refuse PostgreSQL without signing keys.
        .env("WARDEN_SIGNING_KEYS", format!("s1:{}", key(3)))
        .args(args);
    for (name, value) in envs {
        command.env(name, value);
    }
    command.output().expect("run warden")
}

#[tokio::test]
async fn rotate_keys_re_encrypts_and_logins_work_without_the_old_key() {
    let mut server = TestServer::start().await;
    let (_, token) = server.signed_in("alice", PASSWORD).await;
    let (secret, _) = server.enable_totp(&token, PASSWORD).await;
    let db = server.stop().await;
    let both = [
        ("WARDEN_KEYS", format!("k1:{},k2:{}", key(1), key(3))),
        ("WARDEN_PRIMARY_KEY_ID", "k2".into()),
    ];

    let first = warden(&db, &["rotate-keys"], &both);
    let second = warden(&db, &["rotate-keys"], &both);
    let mut config = test_config(&db);
    config.keys.ring = Some(format!("k2:{}", key(3)).into());
    let mut server = TestServer::start_on(db, config).await;
    server.clock.advance(Duration::from_secs(30));
    let challenge = server
        .login_challenge("alice", PASSWORD)
        .await
        .challenge_token;
    let session = server
        .verify_challenge(&challenge, &independent_totp(&secret, server.now()))
        .await;

    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&first.stdout),
        "re-encrypted 1 secrets\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&second.stdout),
        "re-encrypted 0 secrets\n"
    );
    assert!(
        session.is_ok(),
        "the secret decrypts under the new key alone"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_newer_schema_starts_with_a_warning_but_migrate_refuses() {
    let server = TestServer::start().await;
    let db = server.stop().await;
    execute_sql(
        &db,
        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m29990101_000001_future', 0)",
    )
    .await;

    let migrate = warden(
        &db,
        &["migrate"],
        &[("WARDEN_KEYS", format!("k1:{}", key(1)))],
    );
    let warning = "the database schema is newer than this binary; running without migrating";
    let warned_before = logs().matches(warning).count();
    let config = test_config(&db);
    let mut server = TestServer::start_on(db, config).await;
    let warned = logs().matches(warning).count() - warned_before;
    let registered = server
        .client
        .register(pb::RegisterRequest {
            username: "bob".into(),
            password: PASSWORD.into(),
        })
        .await;

    assert!(!migrate.status.success());
    assert!(String::from_utf8_lossy(&migrate.stderr).contains("newer"));
    assert!(warned >= 1, "the start logged the newer-schema warning");
    assert!(registered.is_ok(), "the server still serves");
    server.stop().await;
}

#[tokio::test]
async fn rotate_keys_re_encrypts_past_one_page_including_pending_secrets() {
    // The rotation reads 200 rows a page: 203 secrets, 195 of them pending
    // (an active secret costs ten recovery-code hashes).
    let mut server = TestServer::start().await;
    let mut pending = Vec::new();
    let mut active = Vec::new();
    for i in 0..203 {
        let name = format!("user{i:03}");
        let (_, token) = server.signed_in(&name, PASSWORD).await;
        if i >= 8 {
            let enrollment = server.enroll(&token, PASSWORD).await;
            let secret = data_encoding::BASE32_NOPAD
                .decode(enrollment.secret_base32.as_bytes())
                .unwrap();
            pending.push((token, secret));
        } else {
            let (secret, _) = server.enable_totp(&token, PASSWORD).await;
            active.push((name, secret));
        }
    }
    let db = server.stop().await;
    let both = [
        ("WARDEN_KEYS", format!("k1:{},k2:{}", key(1), key(3))),
        ("WARDEN_PRIMARY_KEY_ID", "k2".into()),
    ];

    let first = warden(&db, &["rotate-keys"], &both);
    let left_on_old_key = crate::helpers::count(
        &db,
        "SELECT count(*) FROM totp_secrets WHERE key_id <> 'k2'",
    )
    .await;
    let second = warden(&db, &["rotate-keys"], &both);
    let mut config = test_config(&db);
    config.keys.ring = Some(format!("k2:{}", key(3)).into());
    let mut server = TestServer::start_on(db, config).await;
    server.clock.advance(Duration::from_secs(30));
    let mut confirmed = 0;
    for (token, secret) in pending.iter().step_by(13) {
        let code = independent_totp(secret, server.now());
        if server.confirm(token, &code).await.is_ok() {
            confirmed += 1;
        }
    }
    let mut signed_in = 0;
    for (name, secret) in &active {
        let challenge = server.login_challenge(name, PASSWORD).await.challenge_token;
        let code = independent_totp(secret, server.now());
        if server.verify_challenge(&challenge, &code).await.is_ok() {
            signed_in += 1;
        }
    }

    assert_eq!((pending.len(), active.len()), (195, 8));
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&first.stdout),
        "re-encrypted 203 secrets\n"
    );
    assert_eq!(left_on_old_key, 0, "every row, on every page, was rotated");
    assert_eq!(
        String::from_utf8_lossy(&second.stdout),
        "re-encrypted 0 secrets\n"
    );
    assert_eq!(confirmed, pending.iter().step_by(13).count());
    assert_eq!(signed_in, active.len());
    server.stop().await;
}
