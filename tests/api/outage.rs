//! A database that stops answering. PostgreSQL (reached through a TCP relay
//! the test cuts): health turns NOT_SERVING, calls get UNAVAILABLE
//! DATABASE_UNAVAILABLE, and both recover. SQLite (an embedded file cannot
//! go away, but another process can hold it locked): calls end at the
//! server's time limit, never INTERNAL, settle their reservations, and work
//! again once the lock is gone.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tonic::Code;

use crate::helpers::{
    TestDatabase, TestServer, assert_status, count, raw_connect, serving, test_config,
};

/// Relays TCP to the database until cut.
pub(crate) struct Relay {
    up: Arc<AtomicBool>,
    cut: Arc<Notify>,
    pub(crate) port: u16,
}

impl Relay {
    pub(crate) async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(Notify::new());
        let (flag, signal) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !flag.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let (target, signal) = (target.clone(), signal.clone());
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = signal.notified() => {}
                    }
                });
            }
        });
        Self { up, cut, port }
    }

    pub(crate) fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.notify_waiters();
    }

    pub(crate) fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// A relay to `db`'s PostgreSQL server and the database URL through it.
pub(crate) async fn relayed(db: &TestDatabase) -> (Relay, String) {
    let (scheme_and_user, rest) = db.url.split_once('@').unwrap();
    let (host_port, path) = rest.split_once('/').unwrap();
    let relay = Relay::start(host_port.to_owned()).await;
    let url = format!("{scheme_and_user}@127.0.0.1:{}/{path}", relay.port);
    (relay, url)
}

async fn wait_for(server: &TestServer, want_serving: bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if serving(server).await == want_serving {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test]
#[ignore = "needs PostgreSQL: .ci/run runs it with --ignored on_postgres_"]
async fn on_postgres_health_and_calls_follow_the_database() {
    let db = TestDatabase::postgres().await;
    let (relay, url) = relayed(&db).await;
    let mut config = test_config(&db);
    config.database.url = url;
    let mut server = TestServer::start_on(db, config).await;
    let healthy_at_start = serving(&server).await;

    relay.cut();
    let went_down = wait_for(&server, false).await;
    let refused = server.login("nobody", "some password").await.unwrap_err();
    relay.restore();
    let came_back = wait_for(&server, true).await;
    let answered = server.login("nobody", "some password").await.unwrap_err();

    assert!(healthy_at_start);
    assert!(went_down, "health turned NOT_SERVING");
    assert_status(&refused, Code::Unavailable, "DATABASE_UNAVAILABLE");
    assert!(came_back, "health recovered");
    assert_status(&answered, Code::Unauthenticated, "INVALID_CREDENTIALS");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_held_locked_past_the_time_limit_times_out_and_recovers() {
    let db = TestDatabase::sqlite();
    let mut config = test_config(&db);
    config.server.request_timeout_secs = 2;
    let mut server = TestServer::start_on(db, config).await;
    server.register("held", "a perfectly fine password").await;
    let other_process = raw_connect(&server.db.url).await;
    let lock = sea_orm::TransactionTrait::begin_with_options(
        &other_process,
        sea_orm::TransactionOptions {
            sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Exclusive),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    let started = Instant::now();
    let refused = server
        .login("held", "a perfectly fine password")
        .await
        .unwrap_err();
    let waited = started.elapsed();
    let healthy = serving(&server).await;
    lock.rollback().await.unwrap();
    drop(other_process);
    let deadline = Instant::now() + Duration::from_secs(30);
    let answered = loop {
        let answer = server.login("held", "a perfectly fine password").await;
        if answer.is_ok() || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    assert_status(&refused, Code::DeadlineExceeded, "TIMEOUT");
    assert!(
        waited < Duration::from_secs(5),
        "the time limit held: {waited:?}"
    );
    assert!(
        healthy,
        "readers still answer while a writer holds the lock"
    );
    assert!(
        answered.is_ok(),
        "calls work once the lock is gone: {answered:?}"
    );
    assert_eq!(
        count(&server.db, "SELECT count(*) FROM budget_reservations").await,
        0,
        "the timed-out call's reservation was settled"
    );
    server.stop().await;
}
