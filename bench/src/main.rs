//! `warden-bench`: a load generator for Warden with its limits measured in
//! the same run, so figures from a noisy shared machine compare as ratios.
//!
//! ```text
//! warden-bench all --spawn --json bench-sqlite.json
//! warden-bench validate echo --target http://10.0.0.7:50051 --in-flight 16,64
//! ```

mod baseline;
mod databases;
mod load;
mod plan;
mod report;
mod scenarios;
mod server;
mod target;
mod totp;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

use crate::scenarios::Scenario;

/// Load generator for Warden: scenarios and their same-run limits.
#[derive(Debug, Parser)]
#[command(name = "warden-bench", version, about)]
pub struct Cli {
    /// Scenarios to run (register, login, login-totp, validate, verify-totp,
    /// recovery-code, mixed, echo), or `all`: every scenario, every
    /// baseline, the in-flight sweep and start-to-SERVING.
    #[arg(value_name = "SCENARIO", required = true, value_parser = parse_pick)]
    pub scenarios: Vec<Pick>,
    /// Drive a running server at this address (`http://host:port`).
    #[arg(long, conflicts_with = "spawn", required_unless_present = "spawn")]
    pub target: Option<String>,
    /// Start `target/release/warden` (rate limits off, port 0) on a database
    /// of the tool's own; `WARDEN_*` variables pass through.
    #[arg(long)]
    pub spawn: bool,
    /// With `--spawn`: the database (a PostgreSQL server URL gets databases
    /// of the tool's own beside the named one; default: temporary SQLite).
    /// With `--target`: where the `db-commit` baseline writes.
    #[arg(long)]
    pub database_url: Option<String>,
    /// The `warden` binary for `--spawn` (default: beside this one).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// HTTP/2 connections per scenario.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Calls in flight, comma-separated for several runs (default per
    /// scenario: validate/mixed/echo 64, verify-totp 16, others 8).
    #[arg(long, value_delimiter = ',')]
    pub in_flight: Vec<usize>,
    /// Login calls in flight beside `mixed`'s validation (enough to keep
    /// every hashing thread busy).
    #[arg(long, default_value_t = 8)]
    pub login_in_flight: usize,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Limits to measure: argon2, echo, db-commit (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub baseline: Vec<Baseline>,
    /// Also sweep in-flight counts for validate/echo and login (for the plot).
    #[arg(long)]
    pub sweep: bool,
    /// Measured seconds per sweep point.
    #[arg(long, default_value_t = 3.0)]
    pub sweep_duration: f64,
    /// Times to measure start-to-SERVING on an existing SQLite database
    /// (`--spawn` only; `all` does 5).
    #[arg(long, default_value_t = 0)]
    pub startup_runs: usize,
    /// Users prepared for `verify-totp` (one call each).
    #[arg(long, default_value_t = 2500)]
    pub totp_users: usize,
    /// Users prepared for `recovery-code` (ten calls each).
    #[arg(long, default_value_t = 150)]
    pub recovery_users: usize,
    /// Run every scenario on a server with the real argon2 parameters
    /// (otherwise validate, verify-totp and recovery-code, which do not hash
    /// passwords in the measured call, get a server with cheap ones so their
    /// setup is fast).
    #[arg(long)]
    pub no_cheap_server: bool,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// A positional argument: one scenario, or all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Everything.
    All,
    /// One scenario.
    One(Scenario),
}

fn parse_pick(s: &str) -> Result<Pick, String> {
    if s == "all" {
        return Ok(Pick::All);
    }
    Scenario::from_str(s, false).map(Pick::One)
}

/// A same-run limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Baseline {
    /// Compute-only argon2id verifies/s (server parameters, and m=4096 KiB).
    Argon2,
    /// grpc.health.v1 Health/Check on the same server.
    Echo,
    /// Raw one-row commits/s on the configured database, 8 writers.
    DbCommit,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("warden-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(plan::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warden-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_and_scenario_lists_parse() -> Result<(), clap::Error> {
        let cli = Cli::try_parse_from([
            "warden-bench",
            "validate",
            "verify-totp",
            "--target",
            "http://127.0.0.1:1",
            "--in-flight",
            "1,64",
            "--baseline",
            "echo,db-commit",
        ])?;
        assert_eq!(
            cli.scenarios,
            vec![
                Pick::One(Scenario::Validate),
                Pick::One(Scenario::VerifyTotp)
            ]
        );
        assert_eq!(cli.in_flight, vec![1, 64]);
        assert_eq!(cli.baseline, vec![Baseline::Echo, Baseline::DbCommit]);
        let all = Cli::try_parse_from(["warden-bench", "all", "--spawn"])?;
        assert_eq!(all.scenarios, vec![Pick::All]);
        Ok(())
    }

    #[test]
    fn a_target_or_spawn_is_required_and_not_both() {
        assert!(Cli::try_parse_from(["warden-bench", "login"]).is_err());
        assert!(
            Cli::try_parse_from(["warden-bench", "login", "--spawn", "--target", "http://x:1"])
                .is_err()
        );
        assert!(Cli::try_parse_from(["warden-bench", "nonsense", "--spawn"]).is_err());
    }
}
