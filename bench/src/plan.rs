//! What a command line asks for, run in order: compute-only baselines first
//! (nothing else of ours running), then the commit baseline, then each
//! server with its scenarios, then start-to-SERVING.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::baseline::Rate;
use crate::databases::Databases;
use crate::load::LoadSpec;
use crate::report::{LimitKind, Record, Report, ServerRun};
use crate::scenarios::{self, Pools, Scenario};
use crate::server::{ServerArgon2, Spawner};
use crate::target::Target;
use crate::{Baseline, Cli, Pick, baseline};

/// Every scenario, in the order they run on a server (echo first: it is
/// the limit the others on that server are compared with).
const ORDER: [Scenario; 8] = [
    Scenario::Echo,
    Scenario::Validate,
    Scenario::VerifyTotp,
    Scenario::RecoveryCode,
    Scenario::Register,
    Scenario::Login,
    Scenario::LoginTotp,
    Scenario::Mixed,
];

/// In-flight counts swept for the plot.
const SWEEP_VALIDATE: [usize; 5] = [1, 4, 16, 64, 256];
const SWEEP_LOGIN: [usize; 5] = [1, 2, 4, 8, 16];

/// The longest a server may take to answer SERVING before the start-up
/// measurement gives up.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);

struct Settings {
    scenarios: BTreeSet<Scenario>,
    sweep: bool,
    startup_runs: usize,
}

fn settings(cli: &Cli) -> Settings {
    let all = cli.scenarios.contains(&Pick::All);
    let mut scenarios: BTreeSet<Scenario> = if all {
        ORDER.into_iter().collect()
    } else {
        cli.scenarios
            .iter()
            .filter_map(|p| match p {
                Pick::One(s) => Some(*s),
                Pick::All => None,
            })
            .collect()
    };
    if cli.baseline.contains(&Baseline::Echo) {
        scenarios.insert(Scenario::Echo);
    }
    Settings {
        scenarios,
        sweep: all || cli.sweep,
        startup_runs: if all && cli.startup_runs == 0 {
            5
        } else {
            cli.startup_runs
        },
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// Runs the command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = settings(&cli);
    let all = cli.scenarios.contains(&Pick::All);
    let baselines: BTreeSet<Baseline> = if all {
        [Baseline::Argon2, Baseline::Echo, Baseline::DbCommit]
            .into_iter()
            .collect()
    } else {
        cli.baseline.iter().copied().collect()
    };
    let mut report = Report::new();
    let limits = Limits {
        argon2: baselines
            .contains(&Baseline::Argon2)
            .then_some((ServerArgon2::configured()?, baseline::hash_concurrency()?)),
        commit_url: None,
        duration: secs(cli.duration / 2.0),
    };
    if cli.spawn {
        spawned(&cli, &settings, &baselines, limits, &mut report).await?;
    } else {
        let url = cli.target.clone().context("--target or --spawn")?;
        let commit_url = if baselines.contains(&Baseline::DbCommit) {
            if cli.database_url.is_none() {
                report
                    .notes
                    .push("db-commit skipped: give --database-url with --target".into());
            }
            cli.database_url.clone()
        } else {
            None
        };
        report.database = cli.database_url.as_deref().map_or("unknown", |u| {
            if u.starts_with("postgres") {
                "postgres"
            } else {
                "sqlite"
            }
        });
        let group: Vec<Scenario> = ORDER
            .into_iter()
            .filter(|s| settings.scenarios.contains(s))
            .collect();
        let limits = Limits {
            commit_url,
            ..limits
        };
        let server = ServerArgon2::configured()?;
        run_group(
            &url,
            "target",
            server,
            &group,
            &cli,
            &settings,
            &limits,
            &mut report,
        )
        .await?;
    }
    report.finish();
    report.print();
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_string_pretty(&report.to_json())?)
            .with_context(|| format!("write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The recovery-code parameters, fixed in the server.
pub const RECOVERY_CODE: ServerArgon2 = ServerArgon2 {
    memory_kib: 4096,
    iterations: 1,
    parallelism: 1,
};

/// The limits measured beside the scenarios that need them: right before
/// each such scenario and right after it, each for half `--duration`; the
/// mean is the limit, so drift in the machine's load shows in both.
#[derive(Clone)]
struct Limits {
    /// The server's argon2 parameters and hash concurrency, when measured.
    argon2: Option<(ServerArgon2, usize)>,
    /// Where the commit baseline writes, when measured.
    commit_url: Option<String>,
    duration: Duration,
}

impl Limits {
    /// The limit `scenario` is compared with, if it is one measured here.
    fn kind_for(&self, scenario: Scenario, server: ServerArgon2) -> Option<LimitKind> {
        let argon2 = |params| {
            self.argon2
                .map(|(_, threads)| LimitKind::Argon2(params, threads))
        };
        match scenario {
            Scenario::Register | Scenario::Login | Scenario::LoginTotp | Scenario::Mixed => {
                argon2(server)
            }
            Scenario::RecoveryCode => argon2(RECOVERY_CODE),
            Scenario::VerifyTotp => self.commit_url.as_ref().map(|_| LimitKind::DbCommit),
            Scenario::Echo | Scenario::Validate => None,
        }
    }

    async fn measure(&self, kind: LimitKind) -> anyhow::Result<Rate> {
        let duration = self.duration;
        match kind {
            LimitKind::Argon2(params, threads) => {
                eprintln!(
                    "  baseline argon2 {} on {threads} threads, {:.1} s…",
                    params.describe(),
                    duration.as_secs_f64()
                );
                tokio::task::spawn_blocking(move || baseline::argon2(params, threads, duration))
                    .await
                    .context("argon2 baseline")?
            }
            LimitKind::DbCommit => {
                eprintln!(
                    "  baseline db-commit, {} writers, {:.1} s…",
                    baseline::COMMIT_WRITERS,
                    duration.as_secs_f64()
                );
                let url = self.commit_url.as_deref().context("no commit database")?;
                baseline::db_commit(url, duration).await
            }
        }
    }
}

async fn spawned(
    cli: &Cli,
    settings: &Settings,
    baselines: &BTreeSet<Baseline>,
    mut limits: Limits,
    report: &mut Report,
) -> anyhow::Result<()> {
    let argon2 = ServerArgon2::configured()?;
    let binary = match &cli.server_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .context("this executable's path")?
            .with_file_name("warden"),
    };
    let spawner = Spawner::new(binary)?;
    let mut databases = Databases::new(cli.database_url.as_deref())?;
    report.database = databases.kind();
    let outcome = async {
        if baselines.contains(&Baseline::DbCommit) {
            limits.commit_url = Some(databases.url("commit").await?);
        }
        let wanted = |s: &Scenario| settings.scenarios.contains(s);
        let real_only = cli.no_cheap_server;
        let cheap: Vec<Scenario> = ORDER
            .into_iter()
            .filter(|s| wanted(s) && !real_only && !s.needs_real_argon2() && *s != Scenario::Echo)
            .collect();
        let real: Vec<Scenario> = ORDER
            .into_iter()
            .filter(|s| wanted(s) && (real_only || s.needs_real_argon2()) && *s != Scenario::Echo)
            .collect();
        let with_echo = |mut group: Vec<Scenario>| {
            if wanted(&Scenario::Echo) {
                group.insert(0, Scenario::Echo);
            }
            group
        };
        let mut groups = Vec::new();
        if !cheap.is_empty() {
            groups.push(("cheap-argon2", ServerArgon2::CHEAP, with_echo(cheap)));
        }
        if !real.is_empty() || groups.is_empty() {
            groups.push(("server-argon2", argon2, with_echo(real)));
        }
        let mut last_url = None;
        for (profile, params, group) in groups {
            let url = databases
                .url(profile.split('-').next().unwrap_or(profile))
                .await?;
            eprintln!(
                "server {profile} ({}) on {}",
                params.describe(),
                databases.kind()
            );
            let server = spawner.start(&url, params).await?;
            run_group(
                &server.url,
                profile,
                params,
                &group,
                cli,
                settings,
                &limits,
                report,
            )
            .await?;
            let peak_rss_kib = server.stop().await?;
            report.servers.push(ServerRun {
                profile,
                argon2: params,
                peak_rss_kib,
            });
            last_url = Some((url, params));
        }
        if settings.startup_runs > 0
            && let Some((url, params)) = last_url
        {
            startup(&spawner, &url, params, settings.startup_runs, report).await?;
        }
        anyhow::Ok(())
    }
    .await;
    let cleaned = databases.cleanup().await;
    outcome?;
    cleaned
}

#[allow(clippy::too_many_arguments)]
async fn run_group(
    url: &str,
    profile: &'static str,
    server: ServerArgon2,
    group: &[Scenario],
    cli: &Cli,
    settings: &Settings,
    limits: &Limits,
    report: &mut Report,
) -> anyhow::Result<()> {
    let target = Target::connect(url, cli.connections).await?;
    let pools = Pools {
        totp_users: cli.totp_users,
        recovery_users: cli.recovery_users,
        mixed_login_in_flight: cli.login_in_flight,
    };
    let full = |in_flight| LoadSpec {
        in_flight,
        warmup: secs(cli.warmup),
        duration: secs(cli.duration),
    };
    let short = |in_flight| LoadSpec {
        in_flight,
        warmup: secs(cli.warmup.min(1.0)),
        duration: secs(cli.sweep_duration),
    };
    for &scenario in group {
        let in_flights = if cli.in_flight.is_empty() {
            vec![scenario.default_in_flight()]
        } else {
            cli.in_flight.clone()
        };
        let limit = limits.kind_for(scenario, server);
        for in_flight in in_flights {
            eprintln!("{profile}: {} at {in_flight} in flight…", scenario.name());
            let before = match limit {
                Some(kind) => Some(limits.measure(kind).await?),
                None => None,
            };
            let rows = scenarios::run(&target, scenario, full(in_flight), pools).await?;
            if let (Some(kind), Some(before)) = (limit, before) {
                let after = limits.measure(kind).await?;
                report.set_limit(kind, scenario, before, after);
            }
            for row in rows {
                report.push(Record::new(profile, false, target.connections(), row));
            }
        }
        let points: &[usize] = match scenario {
            Scenario::Validate => &SWEEP_VALIDATE,
            Scenario::Echo if group.contains(&Scenario::Validate) => &SWEEP_VALIDATE,
            Scenario::Login => &SWEEP_LOGIN,
            _ => &[],
        };
        if settings.sweep {
            for &in_flight in points {
                eprintln!(
                    "{profile}: sweep {} at {in_flight} in flight…",
                    scenario.name()
                );
                for row in scenarios::run(&target, scenario, short(in_flight), pools).await? {
                    report.push(Record::new(profile, true, target.connections(), row));
                }
            }
        }
    }
    Ok(())
}

/// Restarts the server on its existing database `runs` times, timing each
/// from spawn until Health/Check answers SERVING.
async fn startup(
    spawner: &Spawner,
    url: &str,
    params: ServerArgon2,
    runs: usize,
    report: &mut Report,
) -> anyhow::Result<()> {
    eprintln!("start to SERVING on the existing database, {runs} runs…");
    for _ in 0..runs {
        let began = Instant::now();
        let server = spawner.start(url, params).await?;
        loop {
            if began.elapsed() > STARTUP_LIMIT {
                anyhow::bail!("no SERVING within {STARTUP_LIMIT:?}");
            }
            if serving(&server.url).await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let elapsed = began.elapsed();
        report.startup.push((elapsed, server.logged_address_after));
        server.stop().await?;
    }
    Ok(())
}

async fn serving(url: &str) -> bool {
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(url.to_owned()) else {
        return false;
    };
    let Ok(channel) = endpoint.connect().await else {
        return false;
    };
    let mut client = HealthClient::new(channel);
    client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32)
}
