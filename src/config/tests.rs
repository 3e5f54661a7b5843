//! Parsing and refusals, checked without starting anything.

use std::time::Duration;

use clap::{CommandFactory as _, Parser as _};

use super::*;

fn parsed(args: &[&str]) -> Result<Config, clap::Error> {
    let mut argv = vec!["warden"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).map(|cli| cli.config)
}

#[test]
fn the_defaults_are_valid() -> Result<(), Box<dyn std::error::Error>> {
    parsed(&[])?.validate()?;
    Ok(())
}

#[test]
fn the_longest_lifetime_fits_time_arithmetic_in_both_directions() {
    let longest = time::Duration::try_from(Duration::from_secs(MAX_LIFETIME_SECS));
    // Expiries are `now + ttl` and cut-offs `now - ttl`; both must stay
    // representable for any clock this side of year 9000.
    let late = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(7000 * 365);
    let ok = longest.is_ok_and(|d| {
        late.checked_add(d).is_some()
            && time::OffsetDateTime::UNIX_EPOCH.checked_sub(d).is_some()
            && d.checked_mul(2).is_some()
    });
    assert!(ok);
}

#[test]
fn each_oversized_or_zero_setting_is_refused_by_name() -> Result<(), clap::Error> {
    let too_long = (MAX_LIFETIME_SECS + 1).to_string();
    let cases: Vec<(&str, &str)> = vec![
        ("--session-ttl-secs", "1000000000000000"),
        ("--session-idle-timeout-secs", &too_long),
        ("--challenge-ttl-secs", &too_long),
        ("--enrollment-ttl-secs", &too_long),
        ("--lockout-duration-secs", &too_long),
        ("--lockout-max-duration-secs", &too_long),
        ("--request-timeout-secs", "0"),
        ("--request-body-timeout-secs", "100000"),
        ("--shutdown-grace-secs", "100000"),
        ("--housekeeping-interval-secs", "0"),
        ("--max-sessions-per-user", "0"),
        ("--lockout-threshold", "4000000000"),
        ("--argon2-parallelism", "4000000000"),
        ("--argon2-memory-kib", "4294967295"),
        ("--argon2-iterations", "0"),
        ("--hash-concurrency", "0"),
        ("--hash-queue", "18446744073709551615"),
        ("--db-max-connections", "0"),
        ("--max-in-flight", "18446744073709551615"),
        ("--rate-limit-register-per-hour", "0"),
        ("--access-token-ttl-secs", "0"),
        ("--access-token-ttl-secs", "86401"),
    ];
    for (flag, value) in cases {
        let config = parsed(&[flag, value])?;
        let name = format!(
            "WARDEN_{}",
            flag.trim_start_matches("--")
                .replace('-', "_")
                .to_uppercase()
        );
        let refusal = config.validate().map_err(|e| e.to_string());
        assert!(
            refusal.as_ref().is_err_and(|m| m.contains(&name)),
            "{flag}={value}: {refusal:?}"
        );
    }
    Ok(())
}

#[test]
fn hash_concurrency_above_the_cpu_limit_is_refused() -> Result<(), clap::Error> {
    let above = (cpu_limit() + 1).to_string();
    let at = cpu_limit().to_string();

    let refused = parsed(&["--hash-concurrency", &above])?.validate();
    let accepted = parsed(&["--hash-concurrency", &at])?.validate();

    assert!(refused.is_err_and(|e| e.to_string().contains("WARDEN_HASH_CONCURRENCY")));
    assert!(accepted.is_ok());
    Ok(())
}

#[test]
fn the_flattened_groups_make_one_consistent_command() {
    // Flattened groups share one namespace: a clash of ids, flags or env
    // names fails here rather than at start.
    Cli::command().debug_assert();
}

#[test]
fn tls_files_come_in_pairs_and_a_client_ca_needs_them() -> Result<(), clap::Error> {
    let refused = |args: &[&str]| parsed(args).map(|c| c.validate().map_err(|e| e.0));
    let half = refused(&["--tls-cert-file", "/c.pem"])?;
    assert!(
        half.as_ref()
            .is_err_and(|e| e.contains("WARDEN_TLS_CERT_FILE") && e.contains("WARDEN_TLS_KEY_FILE")),
        "{half:?}"
    );
    let ca_alone = refused(&["--tls-client-ca-file", "/ca.pem"])?;
    assert!(
        ca_alone
            .as_ref()
            .is_err_and(|e| e.contains("WARDEN_TLS_CLIENT_CA_FILE")),
        "{ca_alone:?}"
    );
    let full = refused(&[
        "--tls-cert-file",
        "/c.pem",
        "--tls-key-file",
        "/k.pem",
        "--tls-client-ca-file",
        "/ca.pem",
        "--health-listen",
        "0.0.0.0:8081",
        "--http-listen",
        "0.0.0.0:9090",
    ])?;
    assert_eq!(full, Ok(()));
    Ok(())
}

#[test]
fn access_token_names_must_be_printable_and_an_empty_audience_means_none() -> Result<(), clap::Error>
{
    let refusal = |args: &[&str]| parsed(args).map(|c| c.validate().map_err(|e| e.0));

    let issuer = refusal(&["--issuer", ""])?;
    let audience = refusal(&["--access-token-audience", "a\u{7}b"])?;
    let empty = parsed(&["--access-token-audience", ""])?;

    assert!(issuer.is_err_and(|e| e.contains("WARDEN_ISSUER")));
    assert!(audience.is_err_and(|e| e.contains("WARDEN_ACCESS_TOKEN_AUDIENCE")));
    assert_eq!(empty.validate().map_err(|e| e.0), Ok(()));
    assert_eq!(empty.signing.audience(), None);
    Ok(())
}
