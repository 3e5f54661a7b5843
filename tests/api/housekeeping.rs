//! Expired rows and stale budget rows are swept away.

use std::time::{Duration, Instant};

use crate::helpers::{PASSWORD, TestServer, count};

#[tokio::test]
async fn housekeeping_deletes_expired_rows_and_keeps_live_ones() {
    let mut server = TestServer::start_with(|c| c.database.housekeeping_interval_secs = 1).await;
    let (_, token) = server.signed_in("alice", PASSWORD).await;
    server.enable_totp(&token, PASSWORD).await;
    server.login_challenge("alice", PASSWORD).await;
    let (_, pending_owner) = server.signed_in("bob", PASSWORD).await;
    server.enroll(&pending_owner, PASSWORD).await;
    let _ = server.login("ghost", "some guess").await;
    server.clock.advance(Duration::from_secs(86_401));

    let deadline = Instant::now() + Duration::from_secs(30);
    let leftovers = loop {
        let db = &server.db;
        let left = count(db, "SELECT count(*) FROM sessions").await
            + count(db, "SELECT count(*) FROM login_challenges").await
            + count(
                db,
                "SELECT count(*) FROM totp_secrets WHERE purpose = 'pending'",
            )
            .await
            + count(db, "SELECT count(*) FROM failure_budgets").await;
        if left == 0 || Instant::now() > deadline {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    assert_eq!(leftovers, 0, "expired rows remain");
    assert_eq!(
        count(
            &server.db,
            "SELECT count(*) FROM totp_secrets WHERE purpose = 'active'"
        )
        .await,
        1
    );
    assert_eq!(count(&server.db, "SELECT count(*) FROM users").await, 2);
    server.stop().await;
}
