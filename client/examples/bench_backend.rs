//! Requests per second of the example backend with the three ways of
//! checking a caller: a session token through the client's cache, a session
//! token with the cache off (ValidateSession on every request), and an
//! access token verified locally. One run, one machine, so compare the
//! ratios rather than the rates.
//!
//! ```sh
//! cargo run --release -p warden-client --example bench_backend -- --duration 5 --in-flight 32
//! ```
//!
//! Warden runs in-process on a temporary SQLite database (development keys),
//! the backends on 127.0.0.1:0, and the load is closed-loop gRPC WhoAmI
//! calls over `--connections` HTTP/2 connections; all share the machine.

#[path = "backend/app.rs"]
mod app;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use app::demo::WhoAmIRequest;
use app::demo::who_am_i_service_client::WhoAmIServiceClient;
use clap::Parser;
use data_encoding::BASE64;
use warden::config::Cli;
use warden_client::pb::{self, login_response::Outcome};
use warden_client::{RequireSession, WardenClient};

/// Load the example backend in each of its three modes.
#[derive(Debug, Parser)]
struct Args {
    /// Measured seconds per mode.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Seconds of load before measuring, per mode.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Calls in flight.
    #[arg(long, default_value_t = 32)]
    in_flight: usize,
    /// HTTP/2 connections the calls share.
    #[arg(long, default_value_t = 4)]
    connections: usize,
}

struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
}

/// Closed-loop WhoAmI calls with `token` for warm-up + duration; the calls
/// that end inside the measured window are counted.
async fn load(args: &Args, addr: std::net::SocketAddr, token: &str) -> anyhow::Result<(f64, u64)> {
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?;
        channels.push(endpoint.connect().await?);
    }
    let counts = Arc::new(Counts {
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let end = measure_from + Duration::from_secs(args.duration);
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse()?;
    let workers: Vec<_> = (0..args.in_flight)
        .map(|i| {
            let mut client = WhoAmIServiceClient::new(channels[i % channels.len()].clone());
            let (counts, bearer) = (counts.clone(), bearer.clone());
            tokio::spawn(async move {
                while Instant::now() < end {
                    let mut request = tonic::Request::new(WhoAmIRequest {});
                    request
                        .metadata_mut()
                        .insert("authorization", bearer.clone());
                    let result = client.who_am_i(request).await;
                    let done = Instant::now();
                    if done < measure_from || done >= end {
                        continue;
                    }
                    let counter = if result.is_ok() {
                        &counts.ok
                    } else {
                        &counts.failed
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await?;
    }
    let rate = counts.ok.load(Ordering::Relaxed) as f64 / args.duration.max(1) as f64;
    Ok((rate, counts.failed.load(Ordering::Relaxed)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let mut config = Cli::try_parse_from(["warden"])?.config;
    config.server.listen = "127.0.0.1:0".parse()?;
    config.database.url = format!("sqlite://{}/warden.db?mode=rwc", dir.path().display());
    config.rate_limits.enabled = false;
    config.keys.ring = Some(format!("k1:{}", BASE64.encode(&[1u8; 32])).into());
    config.keys.token = Some(BASE64.encode(&[2u8; 32]).into());
    let warden =
        warden::app::Application::build(config, Arc::new(warden::domain::clock::SystemClock))
            .await?;
    let url = format!("http://{}", warden.local_addr()?);
    let server = tokio::spawn(warden.run_until(std::future::pending()));

    let mut grpc = WardenClient::connect(&url).await?.grpc();
    let password = "correct horse battery staple";
    grpc.register(pb::RegisterRequest {
        username: "bench".into(),
        password: password.into(),
    })
    .await?;
    let login = grpc
        .login(pb::LoginRequest {
            username: "bench".into(),
            password: password.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let Some(Outcome::Session(session)) = login.outcome else {
        anyhow::bail!("login gave no session");
    };
    let mut request = tonic::Request::new(pb::IssueAccessTokenRequest {});
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", session.token).parse()?,
    );
    let access = grpc
        .issue_access_token(request)
        .await?
        .into_inner()
        .access_token;

    let cached = WardenClient::builder(&url).connect().await?;
    let uncached = WardenClient::builder(&url)
        .cache_ttl(Duration::ZERO)
        .connect()
        .await?;
    let (cached_addr, _a) = app::start("127.0.0.1:0".parse()?, RequireSession::new(cached)).await?;
    let (uncached_addr, _b) =
        app::start("127.0.0.1:0".parse()?, RequireSession::new(uncached)).await?;

    let modes = [
        (
            "session token, cache 5 s",
            cached_addr,
            session.token.as_str(),
        ),
        (
            "session token, cache off (ValidateSession per request)",
            uncached_addr,
            session.token.as_str(),
        ),
        (
            "access token, verified locally",
            cached_addr,
            access.as_str(),
        ),
    ];
    let mut rates = Vec::new();
    for (name, addr, token) in modes {
        let (rate, failed) = load(&args, addr, token).await?;
        eprintln!("{name}: {rate:.0} req/s, {failed} failed");
        rates.push((name, rate, failed));
    }
    let base = rates[1].1.max(1.0);
    println!(
        "in flight {}, {} connections, {} s per mode",
        args.in_flight, args.connections, args.duration
    );
    println!("| mode | req/s | failed | × cache off |");
    println!("|---|---|---|---|");
    for (name, rate, failed) in &rates {
        println!("| {name} | {rate:.0} | {failed} | {:.1} |", rate / base);
    }
    server.abort();
    Ok(())
}
