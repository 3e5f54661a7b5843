//! The results: ratios to the same-run limits, the targets marked
//! met or missed, a table on stdout and the same as JSON.

use std::time::Duration;

use serde_json::{Value, json};

use crate::baseline::Rate;
use crate::scenarios::{Row, Scenario};
use crate::server::ServerArgon2;

/// One measured row and where it ran.
pub struct Record {
    /// The server profile (`cheap-argon2`, `server-argon2`, `target`).
    pub profile: &'static str,
    /// Whether it is a sweep point (shorter run, for the plot).
    pub sweep: bool,
    /// Connections used.
    pub connections: usize,
    /// The row.
    pub row: Row,
    /// The limit it is compared with: name, its rate, the ratio.
    pub limit: Option<(String, f64, f64)>,
}

impl Record {
    /// A record with no limit attached yet.
    pub fn new(profile: &'static str, sweep: bool, connections: usize, row: Row) -> Self {
        Self {
            profile,
            sweep,
            connections,
            row,
            limit: None,
        }
    }
}

/// A limit measured beside a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// Compute-only argon2id with these parameters on this many threads.
    Argon2(ServerArgon2, usize),
    /// One-row commits from the commit baseline's writers.
    DbCommit,
}

/// One bracketed limit measurement.
struct LimitSample {
    kind: LimitKind,
    scenario: Scenario,
    before: Rate,
    after: Rate,
}

impl LimitSample {
    fn name(&self) -> String {
        match self.kind {
            LimitKind::Argon2(p, threads) => format!("argon2 {} ×{threads}", p.describe()),
            LimitKind::DbCommit => format!("db-commit ×{}", self.before.workers),
        }
    }

    fn mean(&self) -> f64 {
        (self.before.per_sec + self.after.per_sec) / 2.0
    }
}

/// A spawned server's run.
pub struct ServerRun {
    /// Its profile.
    pub profile: &'static str,
    /// Its argon2 parameters.
    pub argon2: ServerArgon2,
    /// Peak RSS (VmHWM) at the end.
    pub peak_rss_kib: Option<u64>,
}

/// One target of the issue.
struct Target {
    what: &'static str,
    measured: String,
    met: Option<bool>,
    gap: String,
}

/// Everything one invocation measured.
pub struct Report {
    /// `sqlite`, `postgres` or `unknown`.
    pub database: &'static str,
    /// Limits measured, each beside its scenario.
    limits: Vec<LimitSample>,
    /// Measured rows.
    pub records: Vec<Record>,
    /// Spawned servers.
    pub servers: Vec<ServerRun>,
    /// Start-to-SERVING runs: total, and until the address was logged.
    pub startup: Vec<(Duration, Duration)>,
    /// Remarks.
    pub notes: Vec<String>,
    load_before: String,
    targets: Vec<Target>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

impl Report {
    /// An empty report; notes the load average now.
    pub fn new() -> Self {
        Self {
            database: "unknown",
            limits: Vec::new(),
            records: Vec::new(),
            servers: Vec::new(),
            startup: Vec::new(),
            notes: Vec::new(),
            load_before: read("/proc/loadavg"),
            targets: Vec::new(),
        }
    }

    /// Adds a record, with its limit if that is already measured (baselines
    /// and each server's echo run before the scenarios).
    pub fn push(&mut self, mut record: Record) {
        record.limit = self.limit_for(&record);
        let r = &record;
        eprintln!(
            "  {:<16} {:>9.1}/s  p50 {:>7.2}  p99 {:>7.2}  max {:>7.2} ms  errors {}{}",
            r.row.name,
            r.row.measured.per_sec(),
            r.row.measured.quantile_ms(0.5),
            r.row.measured.quantile_ms(0.99),
            r.row.measured.max_ms(),
            r.row.measured.errors.values().sum::<u64>(),
            r.limit
                .as_ref()
                .map_or(String::new(), |(n, _, ratio)| format!("  {ratio:.2}× {n}")),
        );
        self.records.push(record);
    }

    /// Records a limit measured before and after `scenario`'s run.
    pub fn set_limit(&mut self, kind: LimitKind, scenario: Scenario, before: Rate, after: Rate) {
        self.limits.push(LimitSample {
            kind,
            scenario,
            before,
            after,
        });
    }

    /// The latest limit measured for `scenario`: its name and mean rate.
    fn limit_of(&self, scenario: Scenario) -> Option<(String, f64)> {
        self.limits
            .iter()
            .rev()
            .find(|l| l.scenario == scenario)
            .map(|l| (l.name(), l.mean()))
    }

    fn limit_for(&self, record: &Record) -> Option<(String, f64, f64)> {
        let row = &record.row;
        let rate = row.measured.per_sec();
        let against = |value: f64| {
            self.limit_of(row.scenario)
                .map(|(name, limit)| (name, limit, value / limit))
        };
        match (row.scenario, row.name.as_str()) {
            (Scenario::Echo, _) => None,
            (Scenario::Validate, _) | (Scenario::Mixed, "mixed:validate") => {
                // Echo on the same server at the same load; a full run over
                // a sweep point when both exist.
                let echo = self
                    .records
                    .iter()
                    .filter(|e| {
                        e.row.scenario == Scenario::Echo
                            && e.profile == record.profile
                            && e.row.in_flight == row.in_flight
                    })
                    .min_by_key(|e| e.sweep)?;
                let limit = echo.row.measured.per_sec();
                Some((format!("echo @{}", echo.row.in_flight), limit, rate / limit))
            }
            // Recovery codes: every unused code is hashed, so the work is
            // codes checked per second.
            (Scenario::RecoveryCode, _) => against(row.measured.weight_per_sec()),
            (
                Scenario::VerifyTotp
                | Scenario::Register
                | Scenario::Login
                | Scenario::LoginTotp
                | Scenario::Mixed,
                _,
            ) => against(rate),
        }
    }

    fn main_row(&self, name: &str, in_flight: Option<usize>) -> Option<&Record> {
        self.records.iter().find(|r| {
            !r.sweep && r.row.name == name && in_flight.is_none_or(|f| r.row.in_flight == f)
        })
    }

    /// Marks the targets met or missed.
    pub fn finish(&mut self) {
        let mut targets = Vec::new();
        let ratio_target = |what, record: Option<&Record>, at_least: f64| {
            let (measured, met, gap) = match record.and_then(|r| r.limit.as_ref()) {
                Some((_, _, ratio)) if !ratio.is_finite() || *ratio <= 0.0 => {
                    ("no successful calls".into(), None, String::new())
                }
                Some((name, _, ratio)) => (
                    format!("{ratio:.2}× {name}"),
                    Some(*ratio >= at_least),
                    if *ratio >= at_least {
                        String::new()
                    } else {
                        format!("needs {:.1}× more", at_least / ratio)
                    },
                ),
                None => ("not measured".into(), None, String::new()),
            };
            Target {
                what,
                measured,
                met,
                gap,
            }
        };
        let p99_target = |what, record: Option<&Record>, at_most: f64| {
            let p99 = record.map(|r| r.row.measured.quantile_ms(0.99));
            match p99 {
                Some(p) if p.is_finite() => Target {
                    what,
                    measured: format!("p99 {p:.1} ms"),
                    met: Some(p <= at_most),
                    gap: if p <= at_most {
                        String::new()
                    } else {
                        format!("{:.1}× too slow", p / at_most)
                    },
                },
                _ => Target {
                    what,
                    measured: "not measured".into(),
                    met: None,
                    gap: String::new(),
                },
            }
        };
        targets.push(ratio_target(
            "ValidateSession ≥ 0.5 × echo (64 in flight)",
            self.main_row("validate", Some(64)),
            0.5,
        ));
        targets.push(p99_target(
            "ValidateSession p99 ≤ 10 ms beside saturating logins",
            self.main_row("mixed:validate", None),
            10.0,
        ));
        targets.push(ratio_target(
            "VerifyTotp ≥ 0.5 × db-commit (16 in flight)",
            self.main_row("verify-totp", Some(16)),
            0.5,
        ));
        targets.push(p99_target(
            "VerifyTotp p99 ≤ 20 ms at 16 in flight",
            self.main_row("verify-totp", Some(16)),
            20.0,
        ));
        targets.push(ratio_target(
            "Login ≥ 0.9 × argon2 (8 in flight)",
            self.main_row("login", Some(8)),
            0.9,
        ));
        let startup = self.startup_median_ms();
        targets.push(match startup {
            Some(m) => Target {
                what: "start to SERVING < 200 ms (existing database)",
                measured: format!("median {m:.0} ms"),
                met: Some(m < 200.0),
                gap: if m < 200.0 {
                    String::new()
                } else {
                    format!("{:.1}× too slow", m / 200.0)
                },
            },
            None => Target {
                what: "start to SERVING < 200 ms (existing database)",
                measured: "not measured".into(),
                met: None,
                gap: String::new(),
            },
        });
        self.targets = targets;
    }

    fn startup_median_ms(&self) -> Option<f64> {
        let mut v: Vec<f64> = self.startup.iter().map(|(t, _)| ms(*t)).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    }

    /// Prints the table.
    pub fn print(&self) {
        println!();
        println!(
            "warden-bench on {} ({} CPUs; load before: {}; after: {})",
            self.database,
            std::thread::available_parallelism().map_or(1, usize::from),
            self.load_before,
            read("/proc/loadavg"),
        );
        for l in &self.limits {
            println!(
                "limit {} beside {}: {:.1}/s before, {:.1}/s after, mean {:.1}/s",
                l.name(),
                l.scenario.name(),
                l.before.per_sec,
                l.after.per_sec,
                l.mean()
            );
        }
        println!(
            "(argon2: compute-only, a preallocated buffer per thread; db-commit: BEGIN/INSERT/COMMIT, \
             SQLite with WAL and synchronous=FULL like the server)"
        );
        println!();
        println!(
            "{:<15} {:<13} {:>4} {:>5} {:>9} {:>7} {:>7} {:>7} {:>8}  {:>6} {:>7} {:>7}  {:<30} ratio",
            "scenario",
            "server",
            "conn",
            "infl",
            "req/s",
            "p50",
            "p90",
            "p99",
            "max ms",
            "errors",
            "srv µs",
            "cli µs",
            "limit"
        );
        for r in &self.records {
            let m = &r.row.measured;
            let (limit, ratio) = r
                .limit
                .as_ref()
                .map_or((String::new(), String::new()), |(n, v, x)| {
                    (format!("{n} = {v:.0}/s"), format!("{x:.2}"))
                });
            let (server_us, client_us) = m.cpu_per_call_us();
            let us = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.0}"));
            println!(
                "{:<15} {:<13} {:>4} {:>5} {:>9.1} {:>7.2} {:>7.2} {:>7.2} {:>8.1}  {:>6} {:>7} {:>7}  {:<30} {}{}",
                format!("{}{}", r.row.name, if r.sweep { "*" } else { "" }),
                r.profile,
                r.connections,
                r.row.in_flight,
                m.per_sec(),
                m.quantile_ms(0.5),
                m.quantile_ms(0.9),
                m.quantile_ms(0.99),
                m.max_ms(),
                m.errors.values().sum::<u64>(),
                us(server_us),
                us(client_us),
                limit,
                ratio,
                if r.row.notes.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", r.row.notes.join("; "))
                }
            );
            for (key, n) in &m.errors {
                println!("{:>20} {n} × {key}", "");
            }
        }
        println!(
            "(* sweep point: shorter run, for the plot; srv/cli µs: CPU time per successful call \
             of the spawned server and of this load generator, user + system, over the window; \
             the two halves of mixed share one server)"
        );
        for s in &self.servers {
            println!(
                "server {} ({}): peak RSS {}",
                s.profile,
                s.argon2.describe(),
                s.peak_rss_kib.map_or("unknown".into(), |k| format!(
                    "{:.1} MiB",
                    k as f64 / 1024.0
                ))
            );
        }
        if !self.startup.is_empty() {
            let runs: Vec<String> = self
                .startup
                .iter()
                .map(|(t, a)| format!("{:.0} ms (address logged at {:.0})", ms(*t), ms(*a)))
                .collect();
            println!(
                "start to SERVING on the existing database: {}",
                runs.join(", ")
            );
        }
        if self.servers.iter().any(|s| s.argon2 == ServerArgon2::CHEAP) {
            println!(
                "note: validate, verify-totp and recovery-code ran on a server with cheap argon2 ({}) \
                 to make their setup fast; their measured calls hash no passwords (recovery codes \
                 always use m=4096,t=1,p=1)",
                ServerArgon2::CHEAP.describe()
            );
        }
        for n in &self.notes {
            println!("note: {n}");
        }
        println!();
        println!("targets:");
        for t in &self.targets {
            let mark = match t.met {
                Some(true) => "met   ",
                Some(false) => "MISSED",
                None => "—     ",
            };
            println!("  {mark} {:<52} {:<34} {}", t.what, t.measured, t.gap);
        }
    }

    /// The same, as JSON.
    pub fn to_json(&self) -> Value {
        let rate = |r: &Rate| json!({"per_sec": r.per_sec, "count": r.count, "workers": r.workers});
        json!({
            "database": self.database,
            "machine": {
                "cpus": std::thread::available_parallelism().map_or(1, usize::from),
                "kernel": read("/proc/sys/kernel/osrelease"),
                "cpu_model": read("/proc/cpuinfo").lines()
                    .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())),
                "load_before": self.load_before,
                "load_after": read("/proc/loadavg"),
            },
            "limits": self.limits.iter().map(|l| json!({
                "name": l.name(),
                "beside": l.scenario.name(),
                "before": rate(&l.before),
                "after": rate(&l.after),
                "mean_per_sec": l.mean(),
            })).collect::<Vec<_>>(),
            "runs": self.records.iter().map(|r| {
                let m = &r.row.measured;
                let (server_us, client_us) = m.cpu_per_call_us();
                json!({
                    "name": r.row.name,
                    "scenario": r.row.scenario.name(),
                    "server": r.profile,
                    "sweep": r.sweep,
                    "connections": r.connections,
                    "in_flight": r.row.in_flight,
                    "window_s": m.window.as_secs_f64(),
                    "ok": m.ok,
                    "per_sec": m.per_sec(),
                    "work_per_sec": m.weight_per_sec(),
                    "latency_ms": {
                        "p50": m.quantile_ms(0.5), "p90": m.quantile_ms(0.9),
                        "p99": m.quantile_ms(0.99), "max": m.max_ms(),
                    },
                    "errors": m.errors,
                    "cpu_us_per_call": {
                        "server": server_us,
                        "client": client_us,
                    },
                    "limit": r.limit.as_ref().map(|(n, v, x)| json!({"name": n, "per_sec": v, "ratio": x})),
                    "notes": r.row.notes,
                })
            }).collect::<Vec<_>>(),
            "servers": self.servers.iter().map(|s| json!({
                "profile": s.profile, "argon2": s.argon2.describe(), "peak_rss_kib": s.peak_rss_kib,
            })).collect::<Vec<_>>(),
            "start_to_serving_ms": self.startup.iter().map(|(t, _)| ms(*t)).collect::<Vec<_>>(),
            "targets": self.targets.iter().map(|t| json!({
                "target": t.what, "measured": t.measured, "met": t.met, "gap": t.gap,
            })).collect::<Vec<_>>(),
            "notes": self.notes,
        })
    }
}
