//! OpenTelemetry audit spans, exported over OTLP to an in-process receiver.

use std::collections::HashSet;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};
use warden::grpc::pb;
use warden::grpc::pb::auth_service_client::AuthServiceClient;

use crate::helpers::{
    ExportedSpan, PASSWORD, TestDatabase, TestServer, collector, flush_traces, independent_totp,
    test_config, wrong_code,
};

/// Adds the caller's `traceparent` to every request.
type Intercept = Box<dyn FnMut(Request<()>) -> Result<Request<()>, Status> + Send>;
type Traced = AuthServiceClient<InterceptedService<Channel, Intercept>>;

/// A caller's trace: ids chosen by the test, sent as W3C `traceparent`.
struct CallerTrace {
    trace_id: String,
    parent_span_id: String,
}

impl CallerTrace {
    fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self {
            trace_id: id.clone(),
            parent_span_id: id[..16].to_owned(),
        }
    }

    fn client(&self, channel: Channel) -> Traced {
        self.client_with_flags(channel, "01")
    }

    /// A client whose `traceparent` carries `flags` ("00": not sampled).
    fn client_with_flags(&self, channel: Channel, flags: &str) -> Traced {
        let header = format!("00-{}-{}-{flags}", self.trace_id, self.parent_span_id);
        let intercept: Intercept = Box::new(move |mut request: Request<()>| {
            request
                .metadata_mut()
                .insert("traceparent", header.parse().expect("header"));
            Ok(request)
        });
        AuthServiceClient::with_interceptor(channel, intercept)
    }
}

fn with_bearer<T>(message: T, token: &str) -> Request<T> {
    crate::helpers::bearer(message, token)
}

async fn login(
    client: &mut Traced,
    username: &str,
    password: &str,
) -> Result<pb::login_response::Outcome, Status> {
    let request = pb::LoginRequest {
        username: username.into(),
        password: password.into(),
        ..Default::default()
    };
    Ok(client
        .login(request)
        .await?
        .into_inner()
        .outcome
        .expect("outcome"))
}

async fn challenge(client: &mut Traced, username: &str) -> String {
    match login(client, username, PASSWORD).await.unwrap() {
        pb::login_response::Outcome::MfaRequired(c) => c.challenge_token,
        pb::login_response::Outcome::Session(_) => panic!("expected a challenge"),
    }
}

async fn verify(client: &mut Traced, challenge: &str, code: &str) -> Result<pb::Session, Status> {
    let request = pb::VerifyTotpRequest {
        code: code.into(),
        purpose: Some(pb::verify_totp_request::Purpose::ChallengeToken(
            challenge.into(),
        )),
        ..Default::default()
    };
    Ok(client
        .verify_totp(request)
        .await?
        .into_inner()
        .session
        .expect("session"))
}

/// Waits (bounded) until `check` holds for the spans of `trace_id`.
async fn spans_until(trace_id: &str, check: impl Fn(&[ExportedSpan]) -> bool) -> Vec<ExportedSpan> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let spans = collector().spans_of(trace_id);
        if check(&spans) || Instant::now() > deadline {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_whole_flow_is_audited_under_the_callers_trace_without_secrets() {
    let server =
        TestServer::start_with(|c| c.telemetry.otlp_endpoint = Some(collector().url())).await;
    let trace = CallerTrace::new();
    let mut client = trace.client(server.channel().await);
    let mut secrets: Vec<String> = vec![PASSWORD.into(), "a brand new passphrase".into()];

    // Sign-up, a failed and a good login, enrolment.
    let alice = client
        .register(pb::RegisterRequest {
            username: "alice".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .user_id;
    login(&mut client, "alice", "wrong-password-123")
        .await
        .unwrap_err();
    let pb::login_response::Outcome::Session(session) =
        login(&mut client, "alice", PASSWORD).await.unwrap()
    else {
        panic!()
    };
    let token = session.token;
    let enrollment = client
        .enroll_totp(with_bearer(
            pb::EnrollTotpRequest {
                password: PASSWORD.into(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    let secret = data_encoding::BASE32_NOPAD
        .decode(enrollment.secret_base32.as_bytes())
        .unwrap();
    let confirming = independent_totp(&secret, server.now());
    let confirm = pb::VerifyTotpRequest {
        code: confirming.clone(),
        purpose: Some(pb::verify_totp_request::Purpose::ConfirmEnrollment(())),
        ..Default::default()
    };
    let codes = client
        .verify_totp(with_bearer(confirm, &token))
        .await
        .unwrap()
        .into_inner()
        .recovery_codes;
    // Two-step login: a replay, a wrong code, then the right one.
    let first = challenge(&mut client, "alice").await;
    verify(&mut client, &first, &confirming).await.unwrap_err();
    let wrong = wrong_code(&confirming);
    verify(&mut client, &first, wrong).await.unwrap_err();
    server.clock.advance(Duration::from_secs(30));
    let next = independent_totp(&secret, server.now());
    let totp_session = verify(&mut client, &first, &next).await.unwrap();
    // A recovery code, a wrong one, a step-up with another.
    let second = challenge(&mut client, "alice").await;
    let recovered = client
        .use_recovery_code(pb::UseRecoveryCodeRequest {
            challenge_token: second.clone(),
            code: codes[0].clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let third = challenge(&mut client, "alice").await;
    client
        .use_recovery_code(pb::UseRecoveryCodeRequest {
            challenge_token: third.clone(),
            code: "0000-0000-0000-0000".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let regenerate = pb::RegenerateRecoveryCodesRequest {
        password: PASSWORD.into(),
        code: codes[1].clone(),
    };
    let new_codes = client
        .regenerate_recovery_codes(with_bearer(regenerate, &token))
        .await
        .unwrap()
        .into_inner()
        .recovery_codes;
    server.clock.advance(Duration::from_secs(30));
    let step_up_code = independent_totp(&secret, server.now());
    let change = pb::ChangePasswordRequest {
        current_password: PASSWORD.into(),
        new_password: "a brand new passphrase".into(),
        code: step_up_code.clone(),
    };
    client
        .change_password(with_bearer(change, &token))
        .await
        .unwrap();
    client
        .validate_session(pb::ValidateSessionRequest {
            token: token.clone(),
        })
        .await
        .unwrap();
    client
        .validate_session(pb::ValidateSessionRequest {
            token: "wss_not-a-real-token".into(),
        })
        .await
        .unwrap_err();
    server.clock.advance(Duration::from_secs(30));
    let disable_code = independent_totp(&secret, server.now());
    let disable = pb::DisableTotpRequest {
        password: "a brand new passphrase".into(),
        code: disable_code.clone(),
    };
    client
        .disable_totp(with_bearer(disable, &token))
        .await
        .unwrap();
    client
        .logout(with_bearer(pb::LogoutRequest {}, &token))
        .await
        .unwrap();
    // A lockout, and an account deletion.
    let bob = client
        .register(pb::RegisterRequest {
            username: "bob".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .user_id;
    for _ in 0..5 {
        login(&mut client, "bob", "wrong-password-456")
            .await
            .unwrap_err();
    }
    login(&mut client, "bob", PASSWORD).await.unwrap_err();
    client
        .register(pb::RegisterRequest {
            username: "carol".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    let pb::login_response::Outcome::Session(carol) =
        login(&mut client, "carol", PASSWORD).await.unwrap()
    else {
        panic!()
    };
    client
        .delete_account(with_bearer(
            pb::DeleteAccountRequest {
                password: PASSWORD.into(),
                code: String::new(),
            },
            &carol.token,
        ))
        .await
        .unwrap();
    server.stop().await;
    flush_traces().await;

    let expected = [
        "user.registered",
        "login.succeeded",
        "login.failed",
        "login.locked",
        "mfa.challenge_issued",
        "totp.enrolled",
        "totp.confirmed",
        "totp.verified",
        "totp.failed",
        "totp.replay_rejected",
        "totp.disabled",
        "recovery_code.used",
        "recovery_code.failed",
        "recovery_codes.regenerated",
        "password.changed",
        "account.deleted",
        "session.validated",
        "session.revoked",
        "sessions.revoked",
    ];
    let spans = spans_until(&trace.trace_id, |spans| {
        let names: HashSet<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        expected.iter().all(|e| names.contains(e))
            && names.contains("warden.v1.AuthService/DeleteAccount")
    })
    .await;
    let rpcs: Vec<&ExportedSpan> = spans
        .iter()
        .filter(|s| s.name.starts_with("warden.v1.AuthService/"))
        .collect();
    let audits: Vec<&ExportedSpan> = spans
        .iter()
        .filter(|s| s.attributes.contains_key("warden.event"))
        .collect();
    let names: HashSet<&str> = audits.iter().map(|s| s.name.as_str()).collect();
    for event in expected {
        assert!(names.contains(event), "missing {event}; got {names:?}");
    }
    for rpc in &rpcs {
        assert_eq!(
            rpc.parent_span_id, trace.parent_span_id,
            "RPC spans continue the caller's trace"
        );
        assert_eq!(
            rpc.attributes.get("rpc.system").map(String::as_str),
            Some("grpc")
        );
        assert_eq!(
            rpc.attributes.get("rpc.service").map(String::as_str),
            Some("warden.v1.AuthService")
        );
        assert!(
            rpc.attributes.contains_key("rpc.method")
                && rpc.attributes.contains_key("rpc.grpc.status_code")
        );
        assert_eq!(
            rpc.attributes.get("client.address").map(String::as_str),
            Some("127.0.0.1")
        );
    }
    for audit in &audits {
        assert_eq!(audit.attributes["warden.event"], audit.name);
        assert!(
            rpcs.iter().any(|r| r.span_id == audit.parent_span_id),
            "{} is a child of an RPC span",
            audit.name
        );
        assert!(["success", "failure"].contains(&audit.attributes["warden.outcome"].as_str()));
        assert_eq!(
            audit.attributes.get("client.address").map(String::as_str),
            Some("127.0.0.1")
        );
        assert!(audit.attributes.contains_key("rpc.grpc.status_code"));
    }
    let find = |name: &str, outcome: &str| {
        audits
            .iter()
            .find(|s| s.name == name && s.attributes["warden.outcome"] == outcome)
            .copied()
            .unwrap_or_else(|| panic!("{name} {outcome}"))
    };
    assert_eq!(
        find("login.failed", "failure").attributes["rpc.grpc.status_code"],
        "16"
    );
    assert_eq!(
        find("login.failed", "failure").attributes["enduser.id"],
        alice
    );
    assert_eq!(
        find("login.locked", "failure").attributes["rpc.grpc.status_code"],
        "8"
    );
    assert_eq!(
        find("login.locked", "failure").attributes["enduser.id"],
        bob
    );
    assert_eq!(
        find("totp.replay_rejected", "failure").attributes["rpc.grpc.status_code"],
        "16"
    );
    assert_eq!(
        find("user.registered", "success").attributes["rpc.grpc.status_code"],
        "0"
    );
    assert!(
        find("sessions.revoked", "success").attributes["warden.sessions_revoked"]
            .parse::<i64>()
            .unwrap()
            >= 2
    );
    find("session.validated", "success");
    find("session.validated", "failure");

    secrets.extend([
        token,
        totp_session.token,
        recovered.session.unwrap().token,
        carol.token,
        first,
        second,
        third,
    ]);
    secrets.extend([
        enrollment.secret_base32,
        enrollment.otpauth_uri,
        confirming,
        next,
        step_up_code,
        disable_code,
    ]);
    secrets.extend(
        codes
            .iter()
            .chain(&new_codes)
            .flat_map(|c| [c.clone(), c.replace('-', "")]),
    );
    for span in &spans {
        for secret in &secrets {
            assert!(
                !span.raw.contains(secret.as_str()),
                "span {} carries a secret",
                span.name
            );
        }
    }
}

#[tokio::test]
async fn rate_limited_calls_are_audited() {
    let server = TestServer::start_with(|c| {
        c.telemetry.otlp_endpoint = Some(collector().url());
        c.rate_limits.enabled = true;
    })
    .await;
    let trace = CallerTrace::new();
    let mut client = trace.client(server.channel().await);

    for _ in 0..6 {
        let _ = login(&mut client, "nobody", "guess-guess-guess").await;
    }
    server.stop().await;
    flush_traces().await;
    let spans = spans_until(&trace.trace_id, |s| {
        s.iter().any(|s| s.name == "rate_limited")
    })
    .await;

    let limited = spans
        .iter()
        .find(|s| s.name == "rate_limited")
        .expect("rate_limited span");
    assert_eq!(limited.attributes["warden.outcome"], "failure");
    assert_eq!(limited.attributes["rpc.grpc.status_code"], "8");
}

#[tokio::test]
async fn spans_of_the_last_calls_are_flushed_on_sigterm() {
    let db = TestDatabase::create().await;
    let config = test_config(&db);
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WARDEN_DATABASE_URL", &db.url)
        .env("WARDEN_LISTEN", "127.0.0.1:0")
        .env(
            "WARDEN_KEYS",
            config
                .keys
                .ring
                .as_ref()
                .map(|k| secrecy::ExposeSecret::expose_secret(k).to_owned())
                .unwrap(),
        )
        .env(
            "WARDEN_TOKEN_KEY",
            config
                .keys
                .token
                .as_ref()
                .map(|k| secrecy::ExposeSecret::expose_secret(k).to_owned())
                .unwrap(),
        )
        .env(
            "WARDEN_SIGNING_KEYS",
            config
                .signing
                .keys
                .as_ref()
                .map(|k| secrecy::ExposeSecret::expose_secret(k).to_owned())
                .unwrap(),
        )
        .env("WARDEN_ARGON2_MEMORY_KIB", "256")
        .env("WARDEN_ARGON2_ITERATIONS", "1")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", collector().url())
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let pid = child.id();
    // Whatever happens below, the child does not outlive the test.
    let _reaper = Reaper(pid);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(address) = line.split("address=").nth(1) {
                let _ = tx.send(address.trim().to_owned());
            }
        }
    });
    let address = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server reports its address");
    let trace = CallerTrace::new();
    let channel = Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = trace.client(channel);

    client
        .register(pb::RegisterRequest {
            username: "last".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    // Everything must already be there: no waiting for a batch interval.
    let spans = collector().spans_of(&trace.trace_id);

    assert!(killed.success());
    assert!(exit.success(), "exit 0 after SIGTERM: {exit:?}");
    assert!(
        spans.iter().any(|s| s.name == "user.registered"),
        "audit span flushed"
    );
    assert!(
        spans
            .iter()
            .any(|s| s.name == "warden.v1.AuthService/Register"),
        "RPC span flushed"
    );
}

/// Kills a child process when dropped (a no-op once it has exited).
struct Reaper(u32);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs a few audited calls against the binary with `envs`, under a caller
/// trace with `flags`; returns the spans of that trace.
async fn audited_under(flags: &str, envs: &[(&str, &str)]) -> Vec<ExportedSpan> {
    let db = TestDatabase::create().await;
    let endpoint = collector().url();
    let mut all = vec![("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())];
    all.extend_from_slice(envs);
    let server = crate::helpers::ServerProcess::start(&db, &all);
    let trace = CallerTrace::new();
    let channel = Channel::from_shared(format!("http://{}", server.address))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = trace.client_with_flags(channel, flags);

    client
        .register(pb::RegisterRequest {
            username: "sampled".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    login(&mut client, "sampled", "wrong-password-1")
        .await
        .unwrap_err();
    let pb::login_response::Outcome::Session(session) =
        login(&mut client, "sampled", PASSWORD).await.unwrap()
    else {
        panic!("expected a session")
    };
    client
        .validate_session(pb::ValidateSessionRequest {
            token: session.token,
        })
        .await
        .unwrap();
    client
        .validate_session(pb::ValidateSessionRequest {
            token: "wss_not-a-session".into(),
        })
        .await
        .unwrap_err();
    let (status, _) = server.terminate().await;
    assert!(status.success());
    // SIGTERM flushed both pipelines.
    collector().spans_of(&trace.trace_id)
}

fn assert_audit_kept_rpc_dropped(spans: &[ExportedSpan]) {
    let has = |name: &str, outcome: &str| {
        spans.iter().any(|s| {
            s.name == name
                && s.attributes.get("warden.outcome").map(String::as_str) == Some(outcome)
        })
    };
    let names: Vec<_> = spans.iter().map(|s| s.name.as_str()).collect();
    for (event, outcome) in [
        ("user.registered", "success"),
        ("login.failed", "failure"),
        ("login.succeeded", "success"),
        ("session.validated", "failure"),
    ] {
        assert!(has(event, outcome), "{event} {outcome} kept: {names:?}");
    }
    assert!(
        !has("session.validated", "success"),
        "a successful validation follows the sampler: {names:?}"
    );
    assert!(
        !spans
            .iter()
            .any(|s| s.name.starts_with("warden.v1.AuthService/")),
        "the unsampled RPC spans are not exported: {names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_spans_are_kept_under_an_unsampled_parent() {
    let spans = audited_under("00", &[]).await;
    assert_audit_kept_rpc_dropped(&spans);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_spans_are_kept_with_the_sampler_always_off() {
    let spans = audited_under("01", &[("OTEL_TRACES_SAMPLER", "always_off")]).await;
    assert_audit_kept_rpc_dropped(&spans);
}
