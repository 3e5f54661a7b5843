//! Signing keys: rotation by restart (publish, then sign, old tokens still
//! verifying), the JWK Set's HTTP caching, start-up refusals that never echo
//! a seed, and the development key on SQLite.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use data_encoding::BASE64;
use serde_json::Value;
use warden::grpc::pb;

use crate::access_tokens::{http_get, issue, jwks, verify};
use crate::helpers::{PASSWORD, TestDatabase, TestServer, test_config};

fn entry(kid: &str, byte: u8) -> String {
    format!("{kid}:{}", BASE64.encode(&[byte; 32]))
}

fn kids(set: &str) -> Vec<String> {
    let set: Value = serde_json::from_str(set).unwrap();
    set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_rotated_key_is_published_before_it_signs_and_the_old_one_still_verifies() {
    let db = TestDatabase::create().await;
    let mut config = test_config(&db);
    config.signing.keys = Some(entry("old", 10).into());
    let mut server = TestServer::start_on(db, config.clone()).await;
    let (_, session) = server.signed_in("rota", PASSWORD).await;
    let before = issue(&mut server.client, &session).await.unwrap();

    // Step 1: the new key is listed (published) but the old one still signs.
    config.signing.keys = Some(format!("{}\n{}", entry("new", 11), entry("old", 10)).into());
    config.signing.signing_key_id = Some("old".into());
    let mut server = TestServer::start_on(server.stop().await, config.clone()).await;
    let published = issue(&mut server.client, &session).await.unwrap();
    let set_published = jwks(&mut server.client).await;
    // Step 2: the new key signs; the old one stays published.
    config.signing.signing_key_id = None;
    let mut server = TestServer::start_on(server.stop().await, config).await;
    let after = issue(&mut server.client, &session).await.unwrap();
    let set = jwks(&mut server.client).await;

    assert_eq!(kids(&set_published), ["new", "old"]);
    assert_eq!(
        verify(&published.access_token, &set_published, None)
            .unwrap()
            .kid,
        "old"
    );
    assert_eq!(kids(&set), ["new", "old"]);
    assert_eq!(verify(&after.access_token, &set, None).unwrap().kid, "new");
    let old =
        verify(&before.access_token, &set, None).expect("a token signed before still verifies");
    assert_eq!(old.kid, "old");
    server.stop().await;
}

#[tokio::test]
async fn the_http_jwk_set_is_cacheable_and_revalidates_with_its_etag() {
    let server = TestServer::start_with(|config| {
        config.server.http_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let http = server.http_addr.unwrap();

    let (code, head, body) = http_get(http, "/.well-known/jwks.json", "").await;
    let etag = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("etag")
                .then(|| value.trim().to_owned())
        })
        .expect("an ETag");
    let (again, again_head, again_body) = http_get(
        http,
        "/.well-known/jwks.json",
        &format!("If-None-Match: {etag}\r\n"),
    )
    .await;

    assert_eq!(code, 200);
    assert!(
        head.to_lowercase()
            .contains("cache-control: public, max-age=300"),
        "{head}"
    );
    let set: Value = serde_json::from_str(&body).unwrap();
    let key = &set["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(
        key["x"].as_str().map(str::len),
        Some(43),
        "32 bytes, unpadded base64url"
    );
    assert!(key.get("d").is_none(), "never the private part");
    assert_eq!(again, 304);
    assert!(again_head.contains(&etag), "{again_head}");
    assert!(again_body.is_empty());
    server.stop().await;
}

struct Refusal {
    success: bool,
    stderr: String,
}

/// Runs `warden` with the test TOTP and token keys plus `envs`; a binary
/// that does not refuse would start serving, so it is stopped after a while.
fn run(database_url: &str, envs: &[(&str, &str)]) -> Refusal {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warden"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WARDEN_DATABASE_URL", database_url)
        .env("WARDEN_LISTEN", "127.0.0.1:0")
        .env("WARDEN_KEYS", entry("k1", 1))
        .env("WARDEN_TOKEN_KEY", BASE64.encode(&[2u8; 32]))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in envs {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("run warden");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let output = child.wait_with_output().expect("collect output");
    Refusal {
        success: output.status.success(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn bad_signing_key_settings_are_refused_at_start_without_echoing_a_seed() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}/warden.db?mode=rwc", dir.path().display());
    let seed = BASE64.encode(&[7u8; 32]);
    let short = BASE64.encode(&[7u8; 31]);
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (
            vec![("WARDEN_SIGNING_KEYS", format!("a:{short}"))],
            "exactly 32 bytes",
        ),
        (
            vec![("WARDEN_SIGNING_KEYS", seed.clone())],
            "entry 1 is not of the form",
        ),
        (
            vec![("WARDEN_SIGNING_KEYS", format!("a:{seed},a:{seed}"))],
            "entries 1 and 2 have the same key id",
        ),
        (
            vec![
                ("WARDEN_SIGNING_KEYS", format!("a:{seed}")),
                ("WARDEN_SIGNING_KEY_ID", "b".to_owned()),
            ],
            "WARDEN_SIGNING_KEY_ID names no key",
        ),
        (
            vec![("WARDEN_SIGNING_KEY_ID", "b".to_owned())],
            "WARDEN_SIGNING_KEY_ID is set but WARDEN_SIGNING_KEYS is not",
        ),
    ];
    for (envs, says) in cases {
        let envs: Vec<(&str, &str)> = envs.iter().map(|(n, v)| (*n, v.as_str())).collect();

        let refusal = run(&sqlite, &envs);

        assert!(!refusal.success, "{envs:?} was accepted");
        assert!(
            refusal.stderr.contains("WARDEN_SIGNING_KEY"),
            "{}",
            refusal.stderr
        );
        assert!(refusal.stderr.contains(says), "{says}: {}", refusal.stderr);
        assert!(!refusal.stderr.contains(&seed) && !refusal.stderr.contains(&short));
        assert!(!refusal.stderr.contains("panicked"), "{}", refusal.stderr);
    }
}

#[test]
fn postgres_without_signing_keys_refuses_to_start() {
    // Refused before the database is dialled, so no server is needed.
    let refusal = run("postgres://postgres@127.0.0.1:1/none", &[]);

    assert!(!refusal.success);
    assert!(
        refusal.stderr.contains("WARDEN_SIGNING_KEYS") && refusal.stderr.contains("PostgreSQL"),
        "{}",
        refusal.stderr
    );
}

#[tokio::test]
async fn sqlite_without_signing_keys_uses_a_private_development_key_across_restarts() {
    // SQLite's rule, so it runs on SQLite whatever the backend under test.
    let db = TestDatabase::sqlite();
    let mut config = test_config(&db);
    config.signing.keys = None;
    let key_file = db.dir().join("warden.db.dev-signing-keys");
    let mut server = TestServer::start_on(db, config.clone()).await;
    let (_, session) = server.signed_in("devon", PASSWORD).await;
    let before = issue(&mut server.client, &session).await.unwrap();

    let mut restarted = TestServer::start_on(server.stop().await, config.clone()).await;
    let set = jwks(&mut restarted.client).await;
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    // With users but the file gone, a fresh key is made: no stored data
    // depends on it, only the last few minutes' access tokens.
    std::fs::remove_file(&key_file).unwrap();
    let mut renewed = TestServer::start_on(restarted.stop().await, config).await;
    let fresh_set = jwks(&mut renewed.client).await;
    let still_signed_in = renewed
        .client
        .validate_session(pb::ValidateSessionRequest { token: session })
        .await;

    assert_eq!(mode & 0o777, 0o600);
    assert!(
        verify(&before.access_token, &set, None).is_ok(),
        "the same key again"
    );
    assert!(kids(&set)[0].starts_with("dev-"));
    assert!(key_file.exists());
    assert_ne!(kids(&fresh_set), kids(&set), "a new key has a new kid");
    assert!(still_signed_in.is_ok());
    renewed.stop().await;
}
