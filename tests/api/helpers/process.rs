//! The real `warden` binary as a child process.

use std::sync::{Arc, Mutex};

use super::*;
use tonic::transport::Channel;
use warden::grpc::pb::auth_service_client::AuthServiceClient;

/// The real `warden` binary serving on a port of its own; killed with
/// SIGKILL when dropped. Everything it writes to stderr is kept.
pub struct ServerProcess {
    /// Where it listens.
    pub address: String,
    child: std::process::Child,
    stderr: Arc<Mutex<String>>,
}

/// The listening address in a start-up line, text (`address=…`) or JSON
/// (`"address":"…"`).
fn listening_address(line: &str) -> Option<String> {
    if let Some(rest) = line.split("\"address\":\"").nth(1) {
        return rest.split('"').next().map(str::to_owned);
    }
    line.split("address=")
        .nth(1)
        .map(|a| a.split_whitespace().next().unwrap_or_default().to_owned())
}

impl ServerProcess {
    /// Starts `warden serve` on `db` with the test keys, cheap argon2 unless
    /// `envs` say otherwise, and `envs`.
    pub fn start(db: &TestDatabase, envs: &[(&str, &str)]) -> Self {
        use secrecy::ExposeSecret as _;
        let config = test_config(db);
        let secret = |s: &Option<secrecy::SecretString>| {
            s.as_ref()
                .map(|k| k.expose_secret().to_owned())
                .expect("test key")
        };
        let (keys, token_key) = (secret(&config.keys.ring), secret(&config.keys.token));
        let signing = secret(&config.signing.keys);
        let mut all = vec![
            ("WARDEN_KEYS", keys.as_str()),
            ("WARDEN_TOKEN_KEY", token_key.as_str()),
            ("WARDEN_SIGNING_KEYS", signing.as_str()),
        ];
        all.extend_from_slice(envs);
        Self::start_without_keys(db, &all)
    }

    /// [`ServerProcess::start`] without the test keys: `envs` give them
    /// (e.g. as `*_FILE` settings).
    pub fn start_without_keys(db: &TestDatabase, envs: &[(&str, &str)]) -> Self {
        use std::io::BufRead as _;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_warden"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("WARDEN_DATABASE_URL", &db.url)
            .env("WARDEN_LISTEN", "127.0.0.1:0")
            .env("WARDEN_ARGON2_MEMORY_KIB", "256")
            .env("WARDEN_ARGON2_ITERATIONS", "1")
            .env("WARDEN_RATE_LIMIT_ENABLED", "false")
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped());
        for (name, value) in envs {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start warden");
        let stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
        let kept = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = kept.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(address) = listening_address(&line) {
                    let _ = tx.send(address);
                }
                let mut all = sink.lock().unwrap_or_else(|p| p.into_inner());
                all.push_str(&line);
                all.push('\n');
            }
        });
        let address = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the server reports its address");
        Self {
            address,
            child,
            stderr: kept,
        }
    }

    /// A client connected to it.
    pub async fn client(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::connect(format!("http://{}", self.address))
            .await
            .expect("connect")
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sends SIGTERM and waits for the exit (bounded); returns its status
    /// and all of its stderr.
    pub async fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "SIGTERM sent");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server exits after SIGTERM"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        // The reader thread drains the pipe after the exit.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        (status, self.stderr())
    }

    /// Kills it with SIGKILL: no shutdown code runs.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
