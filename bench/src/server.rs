//! `--spawn`: runs `target/release/warden` on a database of the tool's own,
//! with rate limits off and port 0, reads its address from its log, and
//! reports its peak RSS when stopped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// Argon2id parameters for a spawned server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerArgon2 {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl ServerArgon2 {
    /// The server's defaults (OWASP's m=19 MiB, t=2, p=1).
    pub const DEFAULT: Self = Self {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };
    /// Cheap parameters for scenarios that do not exercise password hashing
    /// (their setup registers thousands of users).
    pub const CHEAP: Self = Self {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    /// The parameters a server started with the tool's environment uses:
    /// `WARDEN_ARGON2_*` where set, the server's defaults otherwise.
    pub fn configured() -> anyhow::Result<Self> {
        let read = |name: &str, default: u32| -> anyhow::Result<u32> {
            match std::env::var(name) {
                Ok(v) => v.parse().with_context(|| format!("{name}={v}")),
                Err(_) => Ok(default),
            }
        };
        Ok(Self {
            memory_kib: read("WARDEN_ARGON2_MEMORY_KIB", Self::DEFAULT.memory_kib)?,
            iterations: read("WARDEN_ARGON2_ITERATIONS", Self::DEFAULT.iterations)?,
            parallelism: read("WARDEN_ARGON2_PARALLELISM", Self::DEFAULT.parallelism)?,
        })
    }

    /// `m=…,t=…,p=…`.
    pub fn describe(self) -> String {
        format!(
            "m={},t={},p={}",
            self.memory_kib, self.iterations, self.parallelism
        )
    }
}

/// How to start servers: the binary, the database, the keys, extra env.
#[derive(Debug, Clone)]
pub struct Spawner {
    /// The `warden` binary.
    pub binary: PathBuf,
    /// `WARDEN_KEYS`, `WARDEN_TOKEN_KEY` and `WARDEN_SIGNING_KEYS`,
    /// generated once per run so a restarted server reads what an earlier
    /// one wrote.
    keys: (String, String, String),
    /// `WARDEN_*` variables of the tool's own environment, passed through
    /// (e.g. `WARDEN_HASH_CONCURRENCY`).
    passthrough: Vec<(String, String)>,
}

/// A running server.
pub struct Server {
    child: Child,
    pid: u32,
    /// Its gRPC address, `http://host:port`.
    pub url: String,
    /// Time from spawn until it logged its address.
    pub logged_address_after: Duration,
}

impl Spawner {
    /// A spawner for `binary` with fresh random keys.
    pub fn new(binary: PathBuf) -> anyhow::Result<Self> {
        let key = |n: usize| -> anyhow::Result<String> {
            let mut bytes = vec![0u8; n];
            std::io::Read::read_exact(
                &mut std::fs::File::open("/dev/urandom").context("open /dev/urandom")?,
                &mut bytes,
            )
            .context("read /dev/urandom")?;
            Ok(data_encoding::BASE64.encode(&bytes))
        };
        if !binary.is_file() {
            bail!(
                "{} not found: build it first with `cargo build --release --bin warden`",
                binary.display()
            );
        }
        // The tool sets these itself; everything else `WARDEN_*` passes.
        let own = [
            "WARDEN_LISTEN",
            "WARDEN_DATABASE_URL",
            "WARDEN_KEYS",
            "WARDEN_KEYS_FILE",
            "WARDEN_TOKEN_KEY",
            "WARDEN_TOKEN_KEY_FILE",
            "WARDEN_SIGNING_KEYS",
            "WARDEN_SIGNING_KEYS_FILE",
            "WARDEN_SIGNING_KEY_ID",
            "WARDEN_RATE_LIMIT_ENABLED",
            "WARDEN_ARGON2_MEMORY_KIB",
            "WARDEN_ARGON2_ITERATIONS",
            "WARDEN_ARGON2_PARALLELISM",
        ];
        let passthrough = std::env::vars()
            .filter(|(k, _)| {
                (k.starts_with("WARDEN_") && !own.contains(&k.as_str())) || k == "RUST_LOG"
            })
            .collect();
        Ok(Self {
            binary,
            keys: (
                format!("bench:{}", key(32)?),
                key(32)?,
                format!("bench:{}", key(32)?),
            ),
            passthrough,
        })
    }

    /// Starts a server on `database_url` and waits for it to log its address.
    pub async fn start(&self, database_url: &str, argon2: ServerArgon2) -> anyhow::Result<Server> {
        let mut command = Command::new(&self.binary);
        command
            .env("WARDEN_LISTEN", "127.0.0.1:0")
            .env("WARDEN_DATABASE_URL", database_url)
            .env("WARDEN_KEYS", &self.keys.0)
            .env("WARDEN_TOKEN_KEY", &self.keys.1)
            .env("WARDEN_SIGNING_KEYS", &self.keys.2)
            .env("WARDEN_RATE_LIMIT_ENABLED", "false")
            .env("WARDEN_SHUTDOWN_GRACE_SECS", "1")
            .env("WARDEN_ARGON2_MEMORY_KIB", argon2.memory_kib.to_string())
            .env("WARDEN_ARGON2_ITERATIONS", argon2.iterations.to_string())
            .env("WARDEN_ARGON2_PARALLELISM", argon2.parallelism.to_string())
            .env("WARDEN_LOG_FORMAT", "text")
            .envs(self.passthrough.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let began = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("start {}", self.binary.display()))?;
        let pid = child.id().context("server pid")?;
        crate::load::SERVER_PID.store(pid, std::sync::atomic::Ordering::Relaxed);
        let stderr = child.stderr.take().context("server stderr")?;
        let (address_tx, address_rx) = oneshot::channel();
        // Keep reading the log for the server's whole life: a full pipe would
        // block its logging, and with it the server.
        tokio::spawn(drain_log(stderr, address_tx));
        let address = tokio::time::timeout(Duration::from_secs(30), address_rx)
            .await
            .context("the server did not log its address within 30 s")?
            .context("the server exited before logging its address")?;
        Ok(Server {
            child,
            pid,
            url: format!("http://{address}"),
            logged_address_after: began.elapsed(),
        })
    }
}

async fn drain_log(stderr: tokio::process::ChildStderr, address_tx: oneshot::Sender<String>) {
    let mut lines = BufReader::new(stderr).lines();
    let mut address_tx = Some(address_tx);
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(tx) = address_tx.take_if(|_| line.contains("address=")) {
            let address = line
                .split("address=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or_default()
                .to_owned();
            let _ = tx.send(address);
        } else if line.contains("ERROR") || line.contains("WARN") {
            eprintln!("  server: {line}");
        }
    }
}

impl Server {
    /// Peak resident set size so far (VmHWM), KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        read_vm_hwm(&PathBuf::from(format!("/proc/{}/status", self.pid)))
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s); returns its peak RSS.
    pub async fn stop(mut self) -> anyhow::Result<Option<u64>> {
        let peak = self.peak_rss_kib();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await.context("kill the server")?;
        }
        Ok(peak)
    }
}

fn read_vm_hwm(status: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(status).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}
