//! Login latency for unknown and existing users, with production argon2
//! parameters. Prints medians; asserts nothing (machines are shared and
//! noisy). Run with `cargo bench --bench login_timing`.
#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs
)]

#[path = "../api/helpers/mod.rs"]
mod helpers;

use std::time::{Duration, Instant};

use helpers::{PASSWORD, TestServer};

const ROUNDS: usize = 60;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn p90(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() * 9 / 10]
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut server = TestServer::start_with(|c| {
            c.hashing.memory_kib = 19_456;
            c.hashing.iterations = 2;
            c.lockout.threshold = 1_000_000;
        })
        .await;
        server.register("alice", PASSWORD).await;
        let (mut unknown, mut wrong, mut right) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS + 5 {
            let t = Instant::now();
            let _ = server
                .login(&format!("ghost{round}"), "not the password")
                .await;
            let u = t.elapsed();
            let t = Instant::now();
            let _ = server.login("alice", "not the password").await;
            let w = t.elapsed();
            let t = Instant::now();
            let _ = server.login("alice", PASSWORD).await;
            let r = t.elapsed();
            if round >= 5 {
                unknown.push(u);
                wrong.push(w);
                right.push(r);
            }
        }
        println!("Login latency over {ROUNDS} rounds (argon2id m=19456 KiB, t=2, p=1; SQLite):");
        for (name, samples) in [
            ("unknown user", unknown),
            ("existing user, wrong password", wrong),
            ("existing user, right password", right),
        ] {
            println!(
                "  {name:<32} median {:>7.1} ms   p90 {:>7.1} ms",
                ms(median(samples.clone())),
                ms(p90(samples))
            );
        }
        server.stop().await;
    });
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
