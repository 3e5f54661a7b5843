//! Operating Warden: migrations (the command, start-up without them, an
//! upgrade from the previous schema with data in it), graceful shutdown,
//! key files, v1alpha reflection, and account states no RPC sets yet
//! (disabled accounts) or only stores (client details on sessions).

use std::process::{Command, Output};
use std::time::Duration;

use data_encoding::BASE64;
use migration::MigratorTrait as _;
use tonic::Code;
use warden::grpc::pb;

use crate::helpers::{
    PASSWORD, ServerProcess, TestDatabase, TestServer, assert_status, bearer, client_from, count,
    execute_sql, independent_totp, race, raw_connect, test_config,
};

fn warden(db: &TestDatabase, args: &[&str], envs: &[(&str, String)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warden"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WARDEN_DATABASE_URL", &db.url)
        .env("WARDEN_KEYS", format!("k1:{}", BASE64.encode(&[1u8; 32])))
        .env("WARDEN_TOKEN_KEY", BASE64.encode(&[2u8; 32]))
        .args(args);
    for (name, value) in envs {
        command.env(name, value);
    }
    command.output().expect("run warden")
}

const MIGRATIONS: &str = "SELECT count(*) FROM seaql_migrations";

#[tokio::test]
async fn migrate_applies_every_migration_once_and_reports_it_on_stdout() {
    let db = TestDatabase::create().await;

    let first = warden(&db, &["migrate"], &[]);
    let applied = count(&db, MIGRATIONS).await;
    let second = warden(&db, &["migrate"], &[]);

    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&first.stdout),
        "migrations applied\n"
    );
    assert_eq!(
        applied,
        i64::try_from(migration::Migrator::migrations().len()).unwrap()
    );
    assert!(second.status.success(), "migrate is idempotent");
    assert_eq!(count(&db, MIGRATIONS).await, applied);
}

#[tokio::test]
async fn with_migrate_on_start_off_the_server_leaves_the_schema_alone() {
    let db = TestDatabase::create().await;
    let mut config = test_config(&db);
    config.database.migrate_on_start = false;

    // On an empty database it cannot start, and creates nothing.
    let clock = std::sync::Arc::new(warden::domain::clock::ManualClock::new(
        crate::helpers::epoch(),
    ));
    let refused = warden::app::Application::build(config.clone(), clock)
        .await
        .err();
    let conn = raw_connect(&db.url).await;
    let schema = sea_orm::ConnectionTrait::query_one_raw(
        &conn,
        sea_orm::Statement::from_string(conn.get_database_backend(), MIGRATIONS),
    )
    .await;
    drop(conn);
    let migrated = warden(&db, &["migrate"], &[]);
    let mut server = TestServer::start_on(db, config).await;
    let registered = server
        .client
        .register(pb::RegisterRequest {
            username: "after".into(),
            password: PASSWORD.into(),
        })
        .await;

    assert!(refused.is_some(), "an unmigrated database is refused");
    assert!(schema.is_err(), "no migration ran at start: {schema:?}");
    assert!(migrated.status.success());
    assert!(registered.is_ok(), "{registered:?}");
    server.stop().await;
}

#[tokio::test]
async fn an_upgrade_from_the_previous_schema_keeps_every_row_working() {
    // Data written by this binary, then the schema taken back to the first
    // migration: what a database of the previous release holds.
    let mut server = TestServer::start().await;
    let (_, plain) = server.signed_in("plain", PASSWORD).await;
    let (_, token) = server.signed_in("twofa", PASSWORD).await;
    let (secret, codes) = server.enable_totp(&token, PASSWORD).await;
    for _ in 0..4 {
        server.login("plain", "wrong").await.unwrap_err();
    }
    let db = server.stop().await;
    let conn = raw_connect(&db.url).await;
    migration::Migrator::down(&conn, Some(1)).await.unwrap();
    let previous = count(&db, MIGRATIONS).await;
    drop(conn);

    let config = test_config(&db);
    let mut server = TestServer::start_on(db, config).await;
    server.clock.advance(Duration::from_secs(30));
    let after = count(&server.db, MIGRATIONS).await;
    let plain_live = server.is_live(&plain).await;
    let fifth = server.login("plain", "wrong").await.unwrap_err();
    let locked = server.login("plain", PASSWORD).await.unwrap_err();
    let challenge = server
        .login_challenge("twofa", PASSWORD)
        .await
        .challenge_token;
    let by_totp = server
        .verify_challenge(&challenge, &independent_totp(&secret, server.now()))
        .await;
    let challenge = server
        .login_challenge("twofa", PASSWORD)
        .await
        .challenge_token;
    let by_code = server.use_recovery_code(&challenge, &codes[0]).await;

    assert_eq!(previous, 1, "the schema was the previous one");
    assert_eq!(after, 2, "start-up applied the new migration");
    assert!(plain_live, "an old session is still valid");
    assert_status(&fifth, Code::Unauthenticated, "INVALID_CREDENTIALS");
    assert_status(&locked, Code::ResourceExhausted, "ACCOUNT_LOCKED");
    assert!(by_totp.is_ok(), "the old TOTP secret works: {by_totp:?}");
    assert_eq!(by_code.unwrap().remaining_recovery_codes, 9);
    assert!(server.is_live(&token).await);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_shutdown_health_turns_not_serving_while_in_flight_calls_finish() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    // A slow hash keeps a Login in flight across the shutdown.
    let mut server = TestServer::start_with(|c| {
        c.hashing.memory_kib = 65_536;
        c.hashing.iterations = 8;
        c.server.shutdown_grace_secs = 20;
    })
    .await;
    server.register("slow", PASSWORD).await;
    let mut watch = HealthClient::new(server.channel().await)
        .watch(HealthCheckRequest {
            service: "warden.v1.AuthService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap().status;
    let mut client = server.client.clone();
    let in_flight = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let answer = client
            .login(pb::LoginRequest {
                username: "slow".into(),
                password: PASSWORD.into(),
                ..Default::default()
            })
            .await;
        (answer, started.elapsed())
    });
    // Let the call reach the server and start hashing.
    tokio::time::sleep(Duration::from_millis(100)).await;

    server.begin_stop();
    let during = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("health reports the shutdown");
    let still_running = !in_flight.is_finished();
    drop(watch);
    let (answer, took) = in_flight.await.unwrap();
    server.stop().await;

    assert_eq!(first, ServingStatus::Serving as i32);
    assert_eq!(
        during.unwrap().unwrap().status,
        ServingStatus::NotServing as i32,
        "NOT_SERVING during the grace period"
    );
    assert!(still_running, "the login was still in flight ({took:?})");
    assert!(
        answer.is_ok_and(|r| matches!(
            r.into_inner().outcome,
            Some(pb::login_response::Outcome::Session(_))
        )),
        "the in-flight call finished with its session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registers_of_one_name_racing_give_one_account_and_username_taken() {
    let server = TestServer::start().await;

    let answers = race(server.channels(16).await, |mut client, i| async move {
        client
            .register(pb::RegisterRequest {
                // One canonical name in several spellings.
                username: if i % 2 == 0 {
                    "Racer".into()
                } else {
                    "racer".into()
                },
                password: PASSWORD.into(),
            })
            .await
    })
    .await;

    let wins = answers.iter().filter(|a| a.is_ok()).count();
    for status in answers.iter().filter_map(|a| a.as_ref().err()) {
        assert_status(status, Code::AlreadyExists, "USERNAME_TAKEN");
    }
    assert_eq!(wins, 1);
    assert_eq!(
        count(
            &server.db,
            "SELECT count(*) FROM users WHERE username = 'racer'"
        )
        .await,
        1
    );
    server.stop().await;
}

#[tokio::test]
async fn a_disabled_account_is_answered_like_an_unknown_name_everywhere() {
    let mut server = TestServer::start_with(|c| c.lockout.threshold = 100).await;
    let (plain_id, plain) = server.signed_in("plain", PASSWORD).await;
    let (twofa_id, token) = server.signed_in("twofa", PASSWORD).await;
    let (secret, _) = server.enable_totp(&token, PASSWORD).await;
    server.clock.advance(Duration::from_secs(30));
    let open = server
        .login_challenge("twofa", PASSWORD)
        .await
        .challenge_token;
    execute_sql(
        &server.db,
        &format!("UPDATE users SET disabled_at = 1 WHERE id IN ('{plain_id}', '{twofa_id}')"),
    )
    .await;

    let login = server.login("plain", PASSWORD).await.unwrap_err();
    let unknown = server.login("nobody-at-all", PASSWORD).await.unwrap_err();
    let plain_live = server.is_live(&plain).await;
    let bearer_call = server
        .client
        .get_account(bearer(pb::GetAccountRequest {}, &token))
        .await
        .unwrap_err();
    let challenge = server
        .verify_challenge(&open, &independent_totp(&secret, server.now()))
        .await
        .unwrap_err();

    assert_status(&login, Code::Unauthenticated, "INVALID_CREDENTIALS");
    assert_eq!(login.message(), unknown.message());
    assert!(!plain_live, "a disabled user's session is not valid");
    assert_status(&bearer_call, Code::Unauthenticated, "SESSION_INVALID");
    assert_status(&challenge, Code::Unauthenticated, "CHALLENGE_INVALID");
    server.stop().await;
}

#[tokio::test]
async fn sessions_store_the_client_address_and_user_agent() {
    let mut server = TestServer::start().await;
    server.register("agent", PASSWORD).await;
    let mut client = client_from(&server, "127.0.0.9").await;
    let mut request = tonic::Request::new(pb::LoginRequest {
        username: "agent".into(),
        password: PASSWORD.into(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("user-agent", "warden-test-agent/1.0".parse().unwrap());
    client.login(request).await.unwrap();

    let conn = raw_connect(&server.db.url).await;
    let row = sea_orm::ConnectionTrait::query_one_raw(
        &conn,
        sea_orm::Statement::from_string(
            conn.get_database_backend(),
            "SELECT client_address, user_agent FROM sessions",
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let address: Option<String> = row.try_get("", "client_address").unwrap();
    let agent: Option<String> = row.try_get("", "user_agent").unwrap();

    assert_eq!(address.as_deref(), Some("127.0.0.9"));
    assert!(
        agent
            .as_deref()
            .is_some_and(|a| a.starts_with("warden-test-agent/1.0")),
        "{agent:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn keys_load_from_files_and_match_the_same_keys_given_inline() {
    let db = TestDatabase::create().await;
    let keys = db.dir().join("keys");
    let token_key = db.dir().join("token-key");
    std::fs::write(&keys, format!("k1:{}\n", BASE64.encode(&[1u8; 32]))).unwrap();
    std::fs::write(&token_key, format!("{}\n", BASE64.encode(&[2u8; 32]))).unwrap();
    let signing = db.dir().join("signing-keys");
    std::fs::write(&signing, format!("s1:{}\n", BASE64.encode(&[3u8; 32]))).unwrap();
    let (keys, token_key) = (keys.display().to_string(), token_key.display().to_string());
    let signing = signing.display().to_string();

    // The inline keys, then the files holding the same keys.
    let inline = ServerProcess::start(&db, &[]);
    let mut client = inline.client().await;
    client
        .register(pb::RegisterRequest {
            username: "filer".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    let Some(pb::login_response::Outcome::Session(session)) = client
        .login(pb::LoginRequest {
            username: "filer".into(),
            password: PASSWORD.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .outcome
    else {
        panic!("expected a session")
    };
    let inline_jwks = client.get_jwks(pb::GetJwksRequest {}).await.unwrap();
    inline.kill();
    let from_files = ServerProcess::start_without_keys(
        &db,
        &[
            ("WARDEN_KEYS_FILE", &keys),
            ("WARDEN_TOKEN_KEY_FILE", &token_key),
            ("WARDEN_SIGNING_KEYS_FILE", &signing),
        ],
    );
    let files_jwks = from_files
        .client()
        .await
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap();
    let validated = from_files
        .client()
        .await
        .validate_session(pb::ValidateSessionRequest {
            token: session.token,
        })
        .await;

    assert!(
        validated.is_ok(),
        "the token key from the file is the same key: {validated:?}"
    );
    assert_eq!(
        files_jwks.into_inner().jwks_json,
        inline_jwks.into_inner().jwks_json,
        "the signing key from the file is the same key"
    );
}

#[tokio::test]
async fn reflection_v1alpha_lists_the_services() {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    let server = TestServer::start().await;
    let mut reflection = ServerReflectionClient::new(server.channel().await);

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let response = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap();

    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"warden.v1.AuthService".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_together_migrate_once_and_all_serve() {
    // On PostgreSQL the migrations run under an advisory lock.
    let db = TestDatabase::create().await;
    let clock = std::sync::Arc::new(warden::domain::clock::ManualClock::new(
        crate::helpers::epoch(),
    ));
    let builds: Vec<_> = (0..4)
        .map(|_| {
            let (config, clock) = (test_config(&db), clock.clone());
            tokio::spawn(async move { warden::app::Application::build(config, clock).await })
        })
        .collect();
    let mut apps = Vec::new();
    for build in builds {
        apps.push(build.await.unwrap());
    }

    let applied = count(&db, MIGRATIONS).await;
    for app in &apps {
        assert!(
            app.is_ok(),
            "every replica started: {:?}",
            app.as_ref().err()
        );
    }
    assert_eq!(
        applied,
        i64::try_from(migration::Migrator::migrations().len()).unwrap()
    );
    drop(apps);
}
