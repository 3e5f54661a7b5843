//! The scenarios: each prepares what it needs, then drives one RPC (or, for
//! `mixed`, two at once) through [`load::drive`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use clap::ValueEnum;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use warden::grpc::pb;

use crate::load::{self, Call, LoadSpec, Measured};
use crate::target::{PASSWORD, Target, TotpUser, in_parallel};
use crate::totp;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum Scenario {
    /// Register new accounts (one argon2 hash and one insert each).
    Register,
    /// Login without TOTP, answered with a session.
    Login,
    /// Login of accounts with TOTP, answered with a challenge (the first
    /// step; the second is `verify-totp`).
    LoginTotp,
    /// ValidateSession of live session tokens.
    Validate,
    /// VerifyTotp completing a login challenge, each with a fresh user and code.
    VerifyTotp,
    /// UseRecoveryCode completing a login challenge.
    RecoveryCode,
    /// ValidateSession at `--in-flight` while Login runs at `--login-in-flight`.
    Mixed,
    /// grpc.health.v1 Health/Check: the server's floor, the `echo` baseline.
    Echo,
}

impl Scenario {
    /// The in-flight count used when none is given (the issue's figures).
    pub fn default_in_flight(self) -> usize {
        match self {
            Self::Validate | Self::Mixed | Self::Echo => 64,
            Self::VerifyTotp => 16,
            Self::Register | Self::Login | Self::LoginTotp | Self::RecoveryCode => 8,
        }
    }

    /// Whether the scenario exercises password hashing at the server's
    /// parameters; the others may run on a server with cheap ones.
    pub fn needs_real_argon2(self) -> bool {
        matches!(
            self,
            Self::Register | Self::Login | Self::LoginTotp | Self::Mixed
        )
    }

    /// The name on the command line.
    pub fn name(self) -> String {
        self.to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_owned())
    }
}

/// Sizes of the prepared pools.
#[derive(Debug, Clone, Copy)]
pub struct Pools {
    /// Users prepared for `verify-totp`, one call each.
    pub totp_users: usize,
    /// Users prepared for `recovery-code`, ten calls each.
    pub recovery_users: usize,
    /// Login calls in flight beside `mixed`'s validation.
    pub mixed_login_in_flight: usize,
}

/// One measured row: a scenario (or one half of `mixed`) at one load.
pub struct Row {
    /// `validate`, `mixed:login`, …
    pub name: String,
    /// The scenario it belongs to.
    pub scenario: Scenario,
    /// Calls in flight.
    pub in_flight: usize,
    /// What was measured.
    pub measured: Measured,
    /// Remarks printed beside it.
    pub notes: Vec<String>,
}

/// Prepares `scenario` on `target` and drives it at `spec`.
pub async fn run(
    target: &Target,
    scenario: Scenario,
    spec: LoadSpec,
    pools: Pools,
) -> anyhow::Result<Vec<Row>> {
    let row = |measured: Measured, notes: Vec<String>| Row {
        name: scenario.name(),
        scenario,
        in_flight: spec.in_flight,
        measured,
        notes,
    };
    Ok(match scenario {
        Scenario::Echo => vec![row(echo(target, spec).await?, vec![])],
        Scenario::Register => vec![row(register(target, spec).await?, vec![])],
        Scenario::Login => {
            let users = login_users(target, "l", spec.in_flight.max(8)).await?;
            vec![row(login(target, spec, users).await?, vec![])]
        }
        Scenario::LoginTotp => vec![row(login_totp(target, spec).await?, vec![])],
        Scenario::Validate => {
            let tokens = sessions(target, spec.in_flight).await?;
            vec![row(validate(target, spec, tokens).await?, vec![])]
        }
        Scenario::VerifyTotp => {
            let measured = verify_totp(target, spec, pools.totp_users).await?;
            let mut notes = vec![format!("{} prepared users", pools.totp_users)];
            if measured.exhausted {
                notes.push(format!(
                    "pool exhausted: window {:.1} s (raise --totp-users)",
                    measured.window.as_secs_f64()
                ));
            }
            vec![row(measured, notes)]
        }
        Scenario::RecoveryCode => {
            let measured = recovery_code(target, spec, pools.recovery_users).await?;
            let mut notes = vec![format!(
                "{:.1} codes checked per call",
                measured.weight_per_sec() / measured.per_sec()
            )];
            if measured.exhausted {
                notes.push(format!(
                    "pool exhausted: window {:.1} s (raise --recovery-users)",
                    measured.window.as_secs_f64()
                ));
            }
            vec![row(measured, notes)]
        }
        Scenario::Mixed => {
            let tokens = sessions(target, spec.in_flight).await?;
            let login_spec = LoadSpec {
                in_flight: pools.mixed_login_in_flight,
                ..spec
            };
            let users = login_users(target, "m", login_spec.in_flight.max(8)).await?;
            let (validated, logged_in) = tokio::join!(
                validate(target, spec, tokens),
                login(target, login_spec, users)
            );
            vec![
                Row {
                    name: "mixed:validate".into(),
                    notes: vec![format!("beside {} logins in flight", login_spec.in_flight)],
                    ..row(validated?, vec![])
                },
                Row {
                    name: "mixed:login".into(),
                    in_flight: login_spec.in_flight,
                    ..row(logged_in?, vec![])
                },
            ]
        }
    })
}

fn answered<T>(result: Result<tonic::Response<T>, tonic::Status>, ok: impl Fn(T) -> Call) -> Call {
    match result {
        Ok(response) => ok(response.into_inner()),
        Err(status) => Call::Failed(status),
    }
}

const ONE: Call = Call::Ok { weight: 1 };

async fn echo(target: &Target, spec: LoadSpec) -> anyhow::Result<Measured> {
    let target = target.clone();
    load::drive(spec, move |w, _| {
        let mut client = target.health(w);
        async move {
            let result = client
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            answered(result, |r| {
                if r.status == ServingStatus::Serving as i32 {
                    ONE
                } else {
                    Call::Unexpected("not SERVING")
                }
            })
        }
    })
    .await
}

async fn register(target: &Target, spec: LoadSpec) -> anyhow::Result<Measured> {
    let target = target.clone();
    let name = target.batch("r");
    load::drive(spec, move |w, seq| {
        let mut client = target.auth(w);
        let username = name(usize::try_from(seq).unwrap_or(usize::MAX) * spec.in_flight + w);
        async move {
            let result = client
                .register(pb::RegisterRequest {
                    username,
                    password: PASSWORD.into(),
                })
                .await;
            answered(result, |_| ONE)
        }
    })
    .await
}

/// `n` registered users without TOTP.
async fn login_users(target: &Target, role: &str, n: usize) -> anyhow::Result<Arc<Vec<String>>> {
    let name = target.batch(role);
    let names: Vec<String> = (0..n).map(name).collect();
    let names = Arc::new(names);
    {
        let names = Arc::clone(&names);
        in_parallel(n, |i| {
            let (target, names) = (target.clone(), Arc::clone(&names));
            async move { target.register(&names[i]).await }
        })
        .await?;
    }
    Ok(names)
}

async fn login(
    target: &Target,
    spec: LoadSpec,
    users: Arc<Vec<String>>,
) -> anyhow::Result<Measured> {
    drive_logins(target, spec, users, |outcome| match outcome {
        Some(pb::login_response::Outcome::Session(_)) => ONE,
        _ => Call::Unexpected("no session"),
    })
    .await
}

async fn login_totp(target: &Target, spec: LoadSpec) -> anyhow::Result<Measured> {
    let n = spec.in_flight.max(8);
    let users = {
        let target = target.clone();
        let name = Arc::new(target.batch("t"));
        in_parallel(n, move |i| {
            let (target, name) = (target.clone(), Arc::clone(&name));
            async move { target.totp_user(name(i)).await }
        })
        .await?
    };
    let users: Arc<Vec<String>> = Arc::new(users.into_iter().map(|u| u.username).collect());
    drive_logins(target, spec, users, |outcome| match outcome {
        Some(pb::login_response::Outcome::MfaRequired(_)) => ONE,
        _ => Call::Unexpected("no challenge"),
    })
    .await
}

/// Logins with the right password, the users taken in turn; `judge` says
/// whether an answer's outcome is the expected one.
async fn drive_logins(
    target: &Target,
    spec: LoadSpec,
    users: Arc<Vec<String>>,
    judge: fn(Option<pb::login_response::Outcome>) -> Call,
) -> anyhow::Result<Measured> {
    let target = target.clone();
    load::drive(spec, move |w, seq| {
        let mut client = target.auth(w);
        let username =
            users[(w + usize::try_from(seq).unwrap_or(0) * spec.in_flight) % users.len()].clone();
        async move {
            let result = client
                .login(pb::LoginRequest {
                    username,
                    password: PASSWORD.into(),
                    ..Default::default()
                })
                .await;
            answered(result, |r| judge(r.outcome))
        }
    })
    .await
}

/// Live session tokens: `n.clamp(4, 64)` of them, over 4 users.
async fn sessions(target: &Target, n: usize) -> anyhow::Result<Arc<Vec<String>>> {
    let users = login_users(target, "s", 4).await?;
    let tokens = in_parallel(n.clamp(4, 64), |i| {
        let (target, users) = (target.clone(), Arc::clone(&users));
        async move { target.session(&users[i % users.len()]).await }
    })
    .await?;
    Ok(Arc::new(tokens))
}

async fn validate(
    target: &Target,
    spec: LoadSpec,
    tokens: Arc<Vec<String>>,
) -> anyhow::Result<Measured> {
    let target = target.clone();
    load::drive(spec, move |w, seq| {
        let mut client = target.auth(w);
        let token = tokens[(w + usize::try_from(seq).unwrap_or(0)) % tokens.len()].clone();
        async move {
            let result = client
                .validate_session(pb::ValidateSessionRequest { token })
                .await;
            answered(result, |r| {
                if r.user_id.is_empty() {
                    Call::Unexpected("no user")
                } else {
                    ONE
                }
            })
        }
    })
    .await
}

/// Takes the next prepared item; `None` once the pool is empty (or its lock
/// poisoned, which only a panicking worker could cause).
fn take<T>(pool: &Mutex<VecDeque<T>>) -> Option<T> {
    pool.lock().ok().and_then(|mut q| q.pop_front())
}

async fn verify_totp(target: &Target, spec: LoadSpec, n: usize) -> anyhow::Result<Measured> {
    eprintln!("  preparing {n} TOTP users with a challenge each…");
    let prepared = {
        let target = target.clone();
        let name = Arc::new(target.batch("v"));
        in_parallel(n, move |i| {
            let (target, name) = (target.clone(), Arc::clone(&name));
            async move {
                let user = target.totp_user(name(i)).await?;
                let challenge = target.challenge(&user.username).await?;
                anyhow::Ok((user, challenge))
            }
        })
        .await?
    };
    let pool = Arc::new(Mutex::new(VecDeque::from(prepared)));
    let target = target.clone();
    load::drive(spec, move |w, _| {
        let mut client = target.auth(w);
        let next = take(&pool);
        async move {
            let Some((user, challenge)) = next else {
                return Call::Exhausted;
            };
            // Codes are single-use per step: use one newer than the step
            // that confirmed enrolment (the default skew of 1 accepts the
            // next step's code early).
            let step = totp::current_step().max(user.last_step + 1);
            let code = match totp::code_at_step(&user.secret, step) {
                Ok(code) => code,
                Err(_) => return Call::Unexpected("TOTP key"),
            };
            let result = client
                .verify_totp(pb::VerifyTotpRequest {
                    code,
                    purpose: Some(pb::verify_totp_request::Purpose::ChallengeToken(challenge)),
                    ..Default::default()
                })
                .await;
            answered(result, |r| match r.session {
                Some(_) => ONE,
                None => Call::Unexpected("no session"),
            })
        }
    })
    .await
}

async fn recovery_code(target: &Target, spec: LoadSpec, n: usize) -> anyhow::Result<Measured> {
    eprintln!("  preparing {n} TOTP users with a challenge per recovery code…");
    let users: Vec<TotpUser> = {
        let target = target.clone();
        let name = Arc::new(target.batch("c"));
        in_parallel(n, move |i| {
            let (target, name) = (target.clone(), Arc::clone(&name));
            async move { target.totp_user(name(i)).await }
        })
        .await?
    };
    let codes_each = users.first().map_or(0, |u| u.recovery_codes.len());
    // Code-major order: every user's first code, then every user's second…
    // so the codes left per user (and so the work per call) fall evenly.
    let jobs: Vec<(usize, usize)> = (0..codes_each)
        .flat_map(|k| (0..users.len()).map(move |u| (u, k)))
        .collect();
    let users = Arc::new(users);
    let prepared = {
        let (target, users, jobs) = (target.clone(), Arc::clone(&users), Arc::new(jobs));
        in_parallel(jobs.len(), move |j| {
            let (target, users, jobs) = (target.clone(), Arc::clone(&users), Arc::clone(&jobs));
            async move {
                let (u, k) = jobs[j];
                let challenge = target.challenge(&users[u].username).await?;
                anyhow::Ok((challenge, users[u].recovery_codes[k].clone()))
            }
        })
        .await?
    };
    let pool = Arc::new(Mutex::new(VecDeque::from(prepared)));
    let target = target.clone();
    load::drive(spec, move |w, _| {
        let mut client = target.auth(w);
        let next = take(&pool);
        async move {
            let Some((challenge_token, code)) = next else {
                return Call::Exhausted;
            };
            let result = client
                .use_recovery_code(pb::UseRecoveryCodeRequest {
                    challenge_token,
                    code,
                    ..Default::default()
                })
                .await;
            // The server checks every code still unused before this call.
            answered(result, |r| Call::Ok {
                weight: u64::from(r.remaining_recovery_codes) + 1,
            })
        }
    })
    .await
}
