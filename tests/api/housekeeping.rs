//! Expired rows and stale budget rows are swept away; live ones stay.

use std::time::{Duration, Instant};

use crate::helpers::{PASSWORD, TestDatabase, TestServer, count, execute_sql};

/// Rows of each swept kind: sessions, challenges, pending secrets, budgets.
async fn swept_kinds(db: &TestDatabase, owners: &str, names: &str) -> [i64; 4] {
    [
        count(
            db,
            &format!("SELECT count(*) FROM sessions WHERE user_id IN ({owners})"),
        )
        .await,
        count(
            db,
            &format!("SELECT count(*) FROM login_challenges WHERE user_id IN ({owners})"),
        )
        .await,
        count(
            db,
            &format!(
                "SELECT count(*) FROM totp_secrets WHERE purpose = 'pending' AND user_id IN ({owners})"
            ),
        )
        .await,
        count(
            db,
            &format!("SELECT count(*) FROM failure_budgets WHERE name IN ({names})"),
        )
        .await,
    ]
}

/// Polls until `done` holds for `sql` (a count), for at most 30 s.
async fn until(db: &TestDatabase, sql: &str, done: impl Fn(i64) -> bool) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = count(db, sql).await;
        if done(n) || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn housekeeping_deletes_expired_rows_and_keeps_live_ones() {
    let mut server = TestServer::start_with(|c| c.database.housekeeping_interval_secs = 1).await;
    let (alice, token) = server.signed_in("alice", PASSWORD).await;
    server.enable_totp(&token, PASSWORD).await;
    server.login_challenge("alice", PASSWORD).await;
    let (bob, pending_owner) = server.signed_in("bob", PASSWORD).await;
    server.enroll(&pending_owner, PASSWORD).await;
    let _ = server.login("ghost", "some guess").await;
    let old = (format!("'{alice}','{bob}'"), "'ghost'");
    let before = swept_kinds(&server.db, &old.0, old.1).await;
    server.clock.advance(Duration::from_secs(86_401));

    // Live rows of every kind, made after the clock jump.
    let (carol, carol_token) = server.signed_in("carol", PASSWORD).await;
    server.enable_totp(&carol_token, PASSWORD).await;
    server.login_challenge("carol", PASSWORD).await;
    let (dora, dora_token) = server.signed_in("dora", PASSWORD).await;
    server.enroll(&dora_token, PASSWORD).await;
    let _ = server.login("phantom", "another guess").await;
    let live = (format!("'{carol}','{dora}'"), "'phantom'");
    let live_before = swept_kinds(&server.db, &live.0, live.1).await;
    // A marker that only a sweep after the live rows existed can remove.
    let (eve, _) = server.signed_in("eve", PASSWORD).await;
    execute_sql(
        &server.db,
        &format!("UPDATE sessions SET expires_at = 0 WHERE user_id = '{eve}'"),
    )
    .await;

    let marker = until(
        &server.db,
        &format!("SELECT count(*) FROM sessions WHERE user_id = '{eve}'"),
        |n| n == 0,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let leftovers = loop {
        let left = swept_kinds(&server.db, &old.0, old.1).await;
        if left == [0; 4] || Instant::now() > deadline {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let live_after = swept_kinds(&server.db, &live.0, live.1).await;

    assert_eq!(before, [2, 1, 1, 1], "the expired rows existed");
    assert_eq!(live_before, [2, 1, 1, 1], "the live rows exist");
    assert_eq!(marker, 0, "a sweep ran after the live rows were made");
    assert_eq!(leftovers, [0; 4], "expired rows remain");
    assert_eq!(live_after, live_before, "a sweep deleted live rows");
    assert!(server.is_live(&carol_token).await);
    assert!(server.is_live(&dora_token).await);
    assert_eq!(
        count(
            &server.db,
            "SELECT count(*) FROM totp_secrets WHERE purpose = 'active'"
        )
        .await,
        2
    );
    assert_eq!(count(&server.db, "SELECT count(*) FROM users").await, 5);
    server.stop().await;
}
