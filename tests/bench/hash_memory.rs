//! Peak resident memory of a release server under a Login flood, against the
//! bound `WARDEN_HASH_CONCURRENCY × argon2 memory + 64 MiB`.
//!
//! Starts the `warden` binary itself (built by cargo in the bench profile)
//! with production argon2 parameters (m=19456 KiB, t=2, p=1),
//! `WARDEN_HASH_CONCURRENCY=2`, SQLite in a temporary directory and rate
//! limits off, then floods Login: 256 calls in flight, a quarter of them
//! cancelled by the client after 30 ms, then 8 in flight with half cancelled,
//! then idle. Prints the server's VmHWM (peak RSS) and VmRSS from
//! `/proc/PID/status` after each phase. Asserts nothing: the machines are
//! shared and noisy, and the numbers are for people to read.
//!
//! Run with `cargo bench --bench hash_memory`. The server inherits the
//! environment, so allocator experiments work too, e.g.
//! `MALLOC_ARENA_MAX=1 cargo bench --bench hash_memory`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use data_encoding::BASE64;
use tonic::Code;
use tonic::transport::Channel;
use warden::grpc::pb::auth_service_client::AuthServiceClient;
use warden::grpc::pb::{LoginRequest, RegisterRequest};

const CONCURRENCY: u64 = 2;
const MEMORY_KIB: u64 = 19_456;
const BOUND_KIB: u64 = CONCURRENCY * MEMORY_KIB + 64 * 1024;
const PASSWORD: &str = "correct horse battery staple";
const CONNECTIONS: usize = 16;

/// One line of `/proc/PID/status`, in KiB (or a plain count for `Threads`).
fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

struct Server {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
            .env("WARDEN_LISTEN", "127.0.0.1:0")
            .env(
                "WARDEN_DATABASE_URL",
                format!("sqlite://{}/warden.db?mode=rwc", dir.path().display()),
            )
            .env("WARDEN_KEYS", format!("k1:{}", BASE64.encode(&[1u8; 32])))
            .env("WARDEN_TOKEN_KEY", BASE64.encode(&[2u8; 32]))
            .env("WARDEN_HASH_CONCURRENCY", CONCURRENCY.to_string())
            .env("WARDEN_ARGON2_MEMORY_KIB", MEMORY_KIB.to_string())
            .env("WARDEN_ARGON2_ITERATIONS", "2")
            .env("WARDEN_ARGON2_PARALLELISM", "1")
            .env("WARDEN_RATE_LIMIT_ENABLED", "false")
            // Every call here fails or succeeds for the same few names; keep
            // them hashing instead of locked.
            .env("WARDEN_LOCKOUT_THRESHOLD", "1000000000")
            .env("RUST_LOG", "warn,warden=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start warden");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = std::sync::mpsc::channel();
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line
                    .contains("warden listening")
                    .then(|| line.split("address=").nth(1))
                    .flatten()
                    .and_then(|a| a.split_whitespace().next()?.parse::<SocketAddr>().ok())
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server printed its address");
        Self {
            child,
            addr,
            _dir: dir,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Default)]
struct Tally {
    answered: AtomicU64,
    overloaded: AtomicU64,
    other_errors: AtomicU64,
    cancelled: AtomicU64,
}

/// Runs `in_flight` looping callers for `length`; every `cancel_every`-th
/// caller gives up on each call after 30 ms (the client drops the call,
/// which resets the stream and cancels the handler on the server).
async fn flood(
    channels: &[Channel],
    pid: u32,
    in_flight: usize,
    cancel_every: usize,
    length: Duration,
) -> (Tally, u64) {
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let serial = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for caller in 0..in_flight {
        let mut client = AuthServiceClient::new(channels[caller % channels.len()].clone());
        let (tally, stop, serial) = (tally.clone(), stop.clone(), serial.clone());
        let cancels = cancel_every > 0 && caller % cancel_every == 0;
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = serial.fetch_add(1, Ordering::Relaxed);
                // Unknown names (dummy hash), a real name with a wrong and
                // with the right password: every kind of verify.
                let (username, password) = match n % 3 {
                    0 => (format!("ghost{n}"), "not the password"),
                    1 => ("alice".to_owned(), "not the password"),
                    _ => ("alice".to_owned(), PASSWORD),
                };
                let call = client.login(LoginRequest {
                    username,
                    password: password.into(),
                    ..Default::default()
                });
                let result = if cancels {
                    match tokio::time::timeout(Duration::from_millis(30), call).await {
                        Ok(r) => r,
                        Err(_) => {
                            tally.cancelled.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    }
                } else {
                    call.await
                };
                match result {
                    Ok(_) => &tally.answered,
                    Err(s) if s.code() == Code::Unauthenticated => &tally.answered,
                    Err(s) if s.code() == Code::Unavailable => &tally.overloaded,
                    Err(_) => &tally.other_errors,
                }
                .fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    let mut peak_threads = 0;
    while started.elapsed() < length {
        peak_threads = peak_threads.max(status_field(pid, "Threads"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    let tally = Arc::try_unwrap(tally).unwrap_or_default();
    (tally, peak_threads)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn report(phase: &str, pid: u32, tally: &Tally, peak_threads: u64) {
    let hwm = status_field(pid, "VmHWM");
    println!(
        "  {phase:<44} VmHWM {:>7.1} MiB  VmRSS {:>7.1} MiB  threads ≤{peak_threads:<4} \
         answered {} overloaded {} cancelled {} other {}  [{}]",
        mib(hwm),
        mib(status_field(pid, "VmRSS")),
        tally.answered.load(Ordering::Relaxed),
        tally.overloaded.load(Ordering::Relaxed),
        tally.cancelled.load(Ordering::Relaxed),
        tally.other_errors.load(Ordering::Relaxed),
        if hwm <= BOUND_KIB {
            "within bound"
        } else {
            "OVER BOUND"
        },
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument could select
    // nothing here, so arguments are ignored.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let server = Server::start();
        let pid = server.pid();
        let mut channels = Vec::new();
        for _ in 0..CONNECTIONS {
            channels.push(
                Channel::from_shared(format!("http://{}", server.addr))
                    .expect("uri")
                    .connect()
                    .await
                    .expect("connect"),
            );
        }
        AuthServiceClient::new(channels[0].clone())
            .register(RegisterRequest {
                username: "alice".into(),
                password: PASSWORD.into(),
            })
            .await
            .expect("register");
        println!(
            "Server memory under a Login flood (argon2id m={MEMORY_KIB} KiB, t=2, p=1; \
             WARDEN_HASH_CONCURRENCY={CONCURRENCY}; SQLite; release):"
        );
        println!(
            "  bound: {CONCURRENCY} × {:.1} MiB + 64 MiB = {:.1} MiB",
            mib(MEMORY_KIB),
            mib(BOUND_KIB)
        );
        let idle = Tally::default();
        report(
            "started, one user registered",
            pid,
            &idle,
            status_field(pid, "Threads"),
        );
        let (tally, threads) = flood(&channels, pid, 256, 4, Duration::from_secs(8)).await;
        report(
            "8 s of 256 in flight (1/4 cancelled at 30 ms)",
            pid,
            &tally,
            threads,
        );
        let (tally, threads) = flood(&channels, pid, 8, 2, Duration::from_secs(5)).await;
        report(
            "5 s of 8 in flight (1/2 cancelled at 30 ms)",
            pid,
            &tally,
            threads,
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        report("3 s idle", pid, &idle, status_field(pid, "Threads"));
        drop(server);
    });
}
