//! The development-key rule for SQLite, seen from the binary.

use std::process::Command;

use crate::helpers::{PASSWORD, TestDatabase, TestServer, test_config};

fn warden() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warden"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

#[tokio::test]
async fn sqlite_without_keys_creates_a_private_key_file_and_reuses_it() {
    // The rule is SQLite's, so it runs on SQLite whatever the backend under
    // test; PostgreSQL has its own test below.
    let db = TestDatabase::sqlite();
    let mut config = test_config(&db);
    config.keys.ring = None;
    config.keys.token = None;
    let key_file = db.dir().join("warden.db.dev-keys");

    let mut server = TestServer::start_on(db, config.clone()).await;
    let (_, token) = server.signed_in("alice", PASSWORD).await;
    let db = server.stop().await;
    let mut restarted = TestServer::start_on(db, config).await;
    let still_valid = restarted
        .client
        .validate_session(warden::grpc::pb::ValidateSessionRequest { token })
        .await;

    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert!(still_valid.is_ok(), "the same key file is used again");
    restarted.stop().await;
}

#[tokio::test]
async fn sqlite_with_users_and_no_key_file_refuses_to_start_naming_the_file() {
    let db = TestDatabase::sqlite();
    let mut config = test_config(&db);
    config.keys.ring = None;
    config.keys.token = None;
    let key_file = db.dir().join("warden.db.dev-keys");
    let mut server = TestServer::start_on(db, config).await;
    server.register("bob", PASSWORD).await;
    let db = server.stop().await;
    std::fs::remove_file(&key_file).unwrap();

    let output = warden()
        .env("WARDEN_DATABASE_URL", &db.url)
        .env("WARDEN_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();

    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains(&key_file.display().to_string()));
    assert!(
        output.stdout.is_empty(),
        "stdout carries only command output"
    );
    assert!(
        !key_file.exists(),
        "no new key is made for a database with users"
    );
}

#[tokio::test]
async fn postgres_without_keys_refuses_to_start() {
    let Some(url) = crate::helpers::postgres_url() else {
        // Without a PostgreSQL server the binary is still checked: keys are
        // required for any postgres:// URL before it is ever dialled.
        let output = warden()
            .env(
                "WARDEN_DATABASE_URL",
                "postgres://postgres@127.0.0.1:1/none",
            )
            .env("WARDEN_LISTEN", "127.0.0.1:0")
            .output()
            .unwrap();
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains("WARDEN_KEYS"));
        return;
    };
    let output = warden()
        .env("WARDEN_DATABASE_URL", url)
        .env("WARDEN_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();

    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("WARDEN_KEYS"));
}
