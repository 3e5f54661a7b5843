//! The closed-loop load driver: `in_flight` workers each issue one call,
//! wait for it, and issue the next, until the time is up or the prepared
//! work runs out. Only calls that start after the warm-up and finish inside
//! the window are counted.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tonic::Status;
use tonic_types::StatusExt as _;

/// How long and how hard to drive one scenario.
#[derive(Debug, Clone, Copy)]
pub struct LoadSpec {
    /// Calls outstanding at once.
    pub in_flight: usize,
    /// Calls made but not counted, before the window.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
}

/// What one call came to.
pub enum Call {
    /// The call answered as expected; `weight` is work units it stands for
    /// (recovery codes checked), usually 1.
    Ok { weight: u64 },
    /// The call failed with a status.
    Failed(Status),
    /// The call answered with something the scenario did not expect.
    Unexpected(&'static str),
    /// No prepared work is left; the worker stops.
    Exhausted,
}

/// The measured outcome of one load run.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Successful calls in the window.
    pub ok: u64,
    /// Sum of the successful calls' weights.
    pub weight: u64,
    /// Failed calls in the window, by `CODE/REASON`.
    pub errors: BTreeMap<String, u64>,
    /// Length of the window actually measured.
    pub window: Duration,
    /// Latencies of successful calls, microseconds, sorted.
    pub latencies_us: Vec<u64>,
    /// Whether prepared work ran out before the window ended.
    pub exhausted: bool,
    /// CPU time (user + system) over the window: the spawned server's and
    /// this process's. CPU per call is steadier than calls per second on a
    /// shared machine: waiting for a core does not count.
    pub cpu: Option<CpuSpent>,
}

/// CPU time spent over a measured window.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSpent {
    /// By the spawned server, when there is one.
    pub server: Option<Duration>,
    /// By this load generator.
    pub client: Duration,
}

/// The spawned server's pid (0: none, a remote target), for its CPU time.
pub static SERVER_PID: AtomicU32 = AtomicU32::new(0);

/// User + system CPU time of process `pid` (this one for `None`), from
/// `/proc/<pid>/stat` (clock ticks of 1/100 s, Linux's `USER_HZ`).
fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |p| format!("/proc/{p}/stat"),
    );
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which may itself hold spaces:
    // state is field 3, utime 14 and stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn cpu_sample() -> (Option<Duration>, Option<Duration>) {
    let server = match SERVER_PID.load(Ordering::Relaxed) {
        0 => None,
        pid => cpu_time(Some(pid)),
    };
    (server, cpu_time(None))
}

impl Measured {
    /// Successful calls per second.
    pub fn per_sec(&self) -> f64 {
        per_sec(self.ok, self.window)
    }

    /// Work units per second.
    pub fn weight_per_sec(&self) -> f64 {
        per_sec(self.weight, self.window)
    }

    /// The `q`-quantile of successful latency, in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let last = self.latencies_us.len() - 1;
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index = ((last as f64) * q).round() as usize;
        us_to_ms(self.latencies_us[index.min(last)])
    }

    /// Server and client CPU per successful call, in microseconds.
    pub fn cpu_per_call_us(&self) -> (Option<f64>, Option<f64>) {
        let Some(cpu) = self.cpu.filter(|_| self.ok > 0) else {
            return (None, None);
        };
        #[allow(clippy::cast_precision_loss)]
        let per = |d: Duration| d.as_secs_f64() * 1e6 / self.ok as f64;
        (cpu.server.map(per), Some(per(cpu.client)))
    }

    /// The slowest successful call, in milliseconds.
    pub fn max_ms(&self) -> f64 {
        self.latencies_us
            .last()
            .map_or(f64::NAN, |&us| us_to_ms(us))
    }
}

#[allow(clippy::cast_precision_loss)]
fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

#[allow(clippy::cast_precision_loss)]
fn per_sec(n: u64, window: Duration) -> f64 {
    if window.is_zero() {
        0.0
    } else {
        n as f64 / window.as_secs_f64()
    }
}

/// `CODE/REASON` for a failed call: the gRPC code and, when present, the
/// `google.rpc.ErrorInfo` reason.
pub fn error_key(status: &Status) -> String {
    let reason = status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone());
    let code = format!("{:?}", status.code());
    match reason {
        Some(reason) => format!("{code}/{reason}"),
        None => code,
    }
}

/// One counted call: when it finished, its failure key if any, its weight
/// and its latency in microseconds.
type Finish = (Instant, Option<String>, u64, u64);

struct WorkerLog {
    exhausted_at: Option<Instant>,
    finishes: Vec<Finish>,
}

/// Drives `call` with `spec.in_flight` workers. `call(worker, seq)` makes one
/// call; `seq` counts the worker's calls from 0.
pub async fn drive<F, Fut>(spec: LoadSpec, call: F) -> anyhow::Result<Measured>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Call> + Send,
{
    let call = Arc::new(call);
    let start = Instant::now();
    let window_start = start + spec.warmup;
    let end = window_start + spec.duration;
    // CPU time sampled at the window's edges.
    let sampler = tokio::spawn(async move {
        tokio::time::sleep_until(window_start.into()).await;
        let first = cpu_sample();
        tokio::time::sleep_until(end.into()).await;
        (first, cpu_sample())
    });
    let mut workers = Vec::with_capacity(spec.in_flight);
    for worker in 0..spec.in_flight.max(1) {
        let call = Arc::clone(&call);
        workers.push(tokio::spawn(async move {
            let mut log = WorkerLog {
                exhausted_at: None,
                finishes: Vec::new(),
            };
            let mut seq = 0u64;
            loop {
                let began = Instant::now();
                if began >= end {
                    break;
                }
                let outcome = call(worker, seq).await;
                seq += 1;
                let finished = Instant::now();
                let counted = began >= window_start;
                let micros =
                    u64::try_from(finished.duration_since(began).as_micros()).unwrap_or(u64::MAX);
                let (failure, weight) = match outcome {
                    Call::Ok { weight } => (None, weight),
                    Call::Failed(status) => (Some(error_key(&status)), 0),
                    Call::Unexpected(what) => (Some(format!("UNEXPECTED/{what}")), 0),
                    Call::Exhausted => {
                        log.exhausted_at = Some(began);
                        break;
                    }
                };
                if counted {
                    log.finishes.push((finished, failure, weight, micros));
                }
            }
            log
        }));
    }
    let mut logs = Vec::with_capacity(workers.len());
    for worker in workers {
        logs.push(worker.await?);
    }
    let window_end = logs
        .iter()
        .filter_map(|l| l.exhausted_at)
        .min()
        .map_or(end, |t| t.min(end));
    let ((server0, client0), (server1, client1)) = sampler.await?;
    let exhausted = window_end < end;
    // Only a full window's CPU time matches its calls.
    let cpu = match (exhausted, client0, client1) {
        (false, Some(c0), Some(c1)) => Some(CpuSpent {
            server: server0.zip(server1).map(|(a, b)| b.saturating_sub(a)),
            client: c1.saturating_sub(c0),
        }),
        _ => None,
    };
    let mut measured = Measured {
        exhausted,
        window: window_end.saturating_duration_since(window_start),
        cpu,
        ..Measured::default()
    };
    // Keep only what finished inside the window; exhaustion may have cut
    // it short, which is known only once every worker has stopped.
    for log in logs {
        for (finished, failure, weight, micros) in log.finishes {
            if finished > window_end {
                continue;
            }
            match failure {
                None => {
                    measured.ok += 1;
                    measured.weight += weight;
                    measured.latencies_us.push(micros);
                }
                Some(key) => *measured.errors.entry(key).or_default() += 1,
            }
        }
    }
    measured.latencies_us.sort_unstable();
    Ok(measured)
}
