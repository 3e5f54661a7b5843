//! The `warden` binary: parse configuration, start logging, run a subcommand.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser as _;
use warden::app::{self, Application};
use warden::config::{Cli, Command};
use warden::domain::clock::SystemClock;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("warden: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let telemetry = warden::telemetry::init(&cli.config.telemetry)?;
        let outcome = run(cli).await;
        telemetry.shutdown().await;
        outcome
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warden: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chosen subcommand.
async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let application = Application::build(cli.config, Arc::new(SystemClock)).await?;
            // The address stays the line's last field: scripts and tests
            // read the bound port from `address=` to the end of the line.
            tracing::info!(
                tls = application.speaks_tls(),
                address = %application.local_addr()?,
                "warden listening"
            );
            if let Some(address) = application.health_addr()? {
                tracing::info!(%address, "health (grpc.health.v1, plaintext) listening");
            }
            if let Some(address) = application.http_addr()? {
                tracing::info!(
                    %address,
                    "metrics and JWK Set (GET /metrics, GET /.well-known/jwks.json) listening"
                );
            }
            application.run_until(shutdown_signal()).await
        }
        Command::Migrate => app::migrate_command(&cli.config).await,
        Command::RotateKeys => app::rotate_keys_command(&cli.config).await,
    }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = interrupt => {},
            () = terminate => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
