//! The server under load: a set of HTTP/2 connections and the setup calls
//! the scenarios prepare their users with.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, bail};
use tokio::task::JoinSet;
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_client::HealthClient;
use warden::grpc::pb;
use warden::grpc::pb::auth_service_client::AuthServiceClient;

use crate::totp;

/// The password every bench user gets.
pub const PASSWORD: &str = "correct horse battery staple";

/// Calls a setup phase keeps in flight.
const SETUP_IN_FLIGHT: usize = 16;

/// Connections to one server; worker `w` uses connection `w % n`.
#[derive(Clone)]
pub struct Target {
    channels: Arc<Vec<Channel>>,
    /// Prefix of every username this run creates, so runs never collide.
    prefix: Arc<str>,
    /// Batches of users handed out so far, so setups never collide.
    batches: Arc<AtomicU64>,
}

/// A user with TOTP on.
#[derive(Clone)]
pub struct TotpUser {
    /// Username.
    pub username: String,
    /// The decoded TOTP secret.
    pub secret: Vec<u8>,
    /// The step whose code confirmed enrolment; later codes must be newer.
    pub last_step: u64,
    /// Unused recovery codes.
    pub recovery_codes: Vec<String>,
}

impl Target {
    /// Opens `connections` HTTP/2 connections to `url`.
    pub async fn connect(url: &str, connections: usize) -> anyhow::Result<Self> {
        let mut channels = Vec::with_capacity(connections);
        for _ in 0..connections.max(1) {
            let channel = Endpoint::from_shared(url.to_owned())
                .context("target URL")?
                .tcp_nodelay(true)
                .connect()
                .await
                .with_context(|| format!("connect to {url}"))?;
            channels.push(channel);
        }
        let unique = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Ok(Self {
            channels: Arc::new(channels),
            prefix: format!("bench{unique}p{}", std::process::id()).into(),
            batches: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Connections held.
    pub fn connections(&self) -> usize {
        self.channels.len()
    }

    fn channel(&self, worker: usize) -> Channel {
        self.channels[worker % self.channels.len()].clone()
    }

    /// The AuthService client on worker `worker`'s connection.
    pub fn auth(&self, worker: usize) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel(worker))
    }

    /// The Health client on worker `worker`'s connection.
    pub fn health(&self, worker: usize) -> HealthClient<Channel> {
        HealthClient::new(self.channel(worker))
    }

    /// A fresh batch of usernames for `role`: `batch(role)(i)` is unique.
    pub fn batch(&self, role: &str) -> impl Fn(usize) -> String + Send + Sync + 'static {
        let batch = self.batches.fetch_add(1, Ordering::Relaxed);
        let stem = format!("{}{role}{batch}x", self.prefix);
        move |i| format!("{stem}{i}")
    }

    /// Registers `username`.
    pub async fn register(&self, username: &str) -> anyhow::Result<()> {
        self.auth(0)
            .register(pb::RegisterRequest {
                username: username.to_owned(),
                password: PASSWORD.to_owned(),
            })
            .await
            .with_context(|| format!("register {username}"))?;
        Ok(())
    }

    /// Logs in a user without TOTP; returns the session token.
    pub async fn session(&self, username: &str) -> anyhow::Result<String> {
        match self.login(username).await? {
            pb::login_response::Outcome::Session(s) => Ok(s.token),
            pb::login_response::Outcome::MfaRequired(_) => {
                bail!("login {username}: a challenge where a session was expected")
            }
        }
    }

    /// Logs in a user with TOTP; returns the challenge token.
    pub async fn challenge(&self, username: &str) -> anyhow::Result<String> {
        match self.login(username).await? {
            pb::login_response::Outcome::MfaRequired(c) => Ok(c.challenge_token),
            pb::login_response::Outcome::Session(_) => {
                bail!("login {username}: a session where a challenge was expected")
            }
        }
    }

    async fn login(&self, username: &str) -> anyhow::Result<pb::login_response::Outcome> {
        self.auth(0)
            .login(pb::LoginRequest {
                username: username.to_owned(),
                password: PASSWORD.to_owned(),
                ..Default::default()
            })
            .await
            .with_context(|| format!("login {username}"))?
            .into_inner()
            .outcome
            .with_context(|| format!("login {username}: no outcome"))
    }

    /// Registers `username`, enrols and confirms TOTP.
    pub async fn totp_user(&self, username: String) -> anyhow::Result<TotpUser> {
        self.register(&username).await?;
        let token = self.session(&username).await?;
        let enrolment = self
            .auth(0)
            .enroll_totp(bearer(
                pb::EnrollTotpRequest {
                    password: PASSWORD.to_owned(),
                },
                &token,
            )?)
            .await
            .with_context(|| format!("enrol {username}"))?
            .into_inner();
        let secret = data_encoding::BASE32_NOPAD
            .decode(enrolment.secret_base32.trim_end_matches('=').as_bytes())
            .context("decode the TOTP secret")?;
        let step = totp::current_step();
        let confirmed = self
            .auth(0)
            .verify_totp(bearer(
                pb::VerifyTotpRequest {
                    code: totp::code_at_step(&secret, step)?,
                    purpose: Some(pb::verify_totp_request::Purpose::ConfirmEnrollment(())),
                    ..Default::default()
                },
                &token,
            )?)
            .await
            .with_context(|| format!("confirm enrolment of {username}"))?
            .into_inner();
        Ok(TotpUser {
            username,
            secret,
            last_step: step,
            recovery_codes: confirmed.recovery_codes,
        })
    }
}

/// `request` with `authorization: Bearer token`.
pub fn bearer<T>(message: T, token: &str) -> anyhow::Result<Request<T>> {
    let mut request = Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}")
        .parse()
        .context("bearer metadata")?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// Runs `job(i)` for `i in 0..n`, [`SETUP_IN_FLIGHT`] at a time; the results
/// in order of `i`.
pub async fn in_parallel<T, F, Fut>(n: usize, job: F) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let mut set = JoinSet::new();
    let mut results: Vec<Option<T>> = (0..n).map(|_| None).collect();
    let mut next = 0;
    while next < n || !set.is_empty() {
        while next < n && set.len() < SETUP_IN_FLIGHT {
            let fut = job(next);
            let i = next;
            set.spawn(async move { (i, fut.await) });
            next += 1;
        }
        if let Some(joined) = set.join_next().await {
            let (i, result) = joined.context("setup task")?;
            results[i] = Some(result?);
        }
    }
    results
        .into_iter()
        .map(|r| r.context("setup result missing"))
        .collect()
}
