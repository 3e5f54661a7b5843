//! Start-up refusals: settings that would overflow time arithmetic, zeros
//! where a positive value is needed, and hashing threads beyond the CPUs are
//! refused by name, with a non-zero exit and no panic — run as the real
//! binary.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use data_encoding::BASE64;

/// Far beyond any bound Warden accepts, yet a valid `u64`.
const HUGE: &str = "1000000000000000";

struct Refusal {
    success: bool,
    stderr: String,
}

/// Runs `warden <args>` with one setting overridden; a binary that does not
/// refuse would start serving, so it is stopped after a few seconds.
fn run(args: &[&str], name: &str, value: &str) -> Refusal {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "WARDEN_DATABASE_URL",
            format!("sqlite://{}/warden.db?mode=rwc", dir.path().display()),
        )
        .env("WARDEN_LISTEN", "127.0.0.1:0")
        .env("WARDEN_KEYS", format!("k1:{}", BASE64.encode(&[1u8; 32])))
        .env("WARDEN_TOKEN_KEY", BASE64.encode(&[2u8; 32]))
        .env(name, value)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run warden");
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

fn assert_refused(refusal: &Refusal, name: &str) {
    assert!(!refusal.success, "{name} was accepted");
    assert!(
        refusal.stderr.contains(name),
        "the refusal names {name}: {}",
        refusal.stderr
    );
    assert!(
        !refusal.stderr.contains("panicked"),
        "no panic: {}",
        refusal.stderr
    );
}

#[test]
fn every_oversized_duration_is_refused_at_start_by_name() {
    let durations = [
        "WARDEN_SESSION_TTL_SECS",
        "WARDEN_SESSION_IDLE_TIMEOUT_SECS",
        "WARDEN_CHALLENGE_TTL_SECS",
        "WARDEN_ENROLLMENT_TTL_SECS",
        "WARDEN_LOCKOUT_DURATION_SECS",
        "WARDEN_LOCKOUT_MAX_DURATION_SECS",
        "WARDEN_REQUEST_TIMEOUT_SECS",
        "WARDEN_REQUEST_BODY_TIMEOUT_SECS",
        "WARDEN_SHUTDOWN_GRACE_SECS",
        "WARDEN_HOUSEKEEPING_INTERVAL_SECS",
    ];

    for name in durations {
        let refusal = run(&[], name, HUGE);

        assert_refused(&refusal, name);
    }
}

#[test]
fn zero_counts_and_durations_are_refused_by_name() {
    for name in [
        "WARDEN_SESSION_TTL_SECS",
        "WARDEN_MAX_IN_FLIGHT",
        "WARDEN_HASH_QUEUE",
        "WARDEN_HASH_CONCURRENCY",
        "WARDEN_MAX_SESSIONS_PER_USER",
    ] {
        let refusal = run(&[], name, "0");

        assert_refused(&refusal, name);
    }
}

#[test]
fn hash_concurrency_above_the_cpu_limit_is_refused() {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);

    let refusal = run(&[], "WARDEN_HASH_CONCURRENCY", &(cpus + 1).to_string());

    assert_refused(&refusal, "WARDEN_HASH_CONCURRENCY");
}

#[test]
fn migrate_and_rotate_keys_validate_settings_too() {
    let migrate = run(&["migrate"], "WARDEN_SESSION_TTL_SECS", HUGE);
    let rotate = run(&["rotate-keys"], "WARDEN_LOCKOUT_DURATION_SECS", HUGE);

    assert_refused(&migrate, "WARDEN_SESSION_TTL_SECS");
    assert_refused(&rotate, "WARDEN_LOCKOUT_DURATION_SECS");
}
