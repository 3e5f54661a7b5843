//! An example backend protected by Warden: a tonic service and an axum
//! route on one port, both behind `RequireSession`, taking session tokens
//! (checked with ValidateSession through the cache) and access tokens
//! (verified locally against Warden's published keys).
//!
//! ```sh
//! cargo run -p warden-client --example backend -- --warden http://127.0.0.1:50051
//! curl -H "authorization: Bearer $TOKEN" http://127.0.0.1:8080/whoami
//! ```

mod app;

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use warden_client::{Accept, RequireSession, WardenClient};

/// An example backend protected by Warden.
#[derive(Debug, Parser)]
struct Args {
    /// Warden's gRPC endpoint.
    #[arg(long, env = "WARDEN_URL", default_value = "http://127.0.0.1:50051")]
    warden: String,
    /// Where the backend listens (gRPC and HTTP on one port).
    #[arg(long, env = "BACKEND_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// How long a ValidateSession answer is reused; 0 asks every time.
    #[arg(long, default_value_t = 5)]
    cache_ttl_secs: u64,
    /// The `iss` access tokens must carry (Warden's WARDEN_ISSUER).
    #[arg(long, default_value = warden_client::DEFAULT_ISSUER)]
    issuer: String,
    /// The `aud` access tokens must name (Warden's
    /// WARDEN_ACCESS_TOKEN_AUDIENCE); unset: tokens must name none.
    #[arg(long)]
    audience: Option<String>,
    /// Which tokens to take: any, session or access.
    #[arg(long, default_value = "any", value_parser = ["any", "session", "access"])]
    accept: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut builder = WardenClient::builder(&args.warden)
        .cache_ttl(Duration::from_secs(args.cache_ttl_secs))
        .access_token_issuer(&args.issuer);
    if let Some(audience) = &args.audience {
        builder = builder.access_token_audience(audience);
    }
    // Lazily: the backend starts while Warden is down and fails closed
    // (503 / UNAVAILABLE) until it answers.
    let warden = builder.connect_lazy()?;
    let accept = match args.accept.as_str() {
        "session" => Accept::SessionTokens,
        "access" => Accept::AccessTokens,
        _ => Accept::Any,
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    app::serve(
        listener,
        RequireSession::new(warden).accept(accept),
        shutdown,
    )
    .await?;
    Ok(())
}
