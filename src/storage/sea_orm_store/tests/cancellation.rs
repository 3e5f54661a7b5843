//! A write cancelled while its transaction begins (a client deadline cuts
//! the call there) leaves nothing open on the connection the pool hands out
//! next: the next caller's autocommit write is committed at once. On
//! PostgreSQL when `WARDEN_TEST_DATABASE_URL` names one (a database of its
//! own), else on a SQLite file.

use sea_orm::ConnectionTrait as _;

use super::*;

/// A store of one pooled connection, a second store on the same database
/// to look from, and what to drop afterwards.
struct Pair {
    store: SeaOrmStore,
    observer: SeaOrmStore,
    postgres: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

async fn pair() -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let (url, postgres) = match std::env::var("WARDEN_TEST_DATABASE_URL") {
        Ok(admin) if !admin.is_empty() => {
            let name = format!("warden_unit_{}", uuid::Uuid::new_v4().simple());
            let db = crate::storage::connect(&admin, 1).await.unwrap();
            db.execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
            let base = admin.rsplit_once('/').unwrap().0.to_owned();
            (format!("{base}/{name}"), Some((admin, name)))
        }
        _ => (
            format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display()),
            None,
        ),
    };
    let db = crate::storage::connect(&url, 1).await.unwrap();
    crate::storage::migrate(&db).await.unwrap();
    let observer = crate::storage::connect(&url, 1).await.unwrap();
    Pair {
        store: SeaOrmStore::new(db),
        observer: SeaOrmStore::new(observer),
        postgres,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cancelled_as_it_begins_leaves_no_transaction_open() {
    let pair = pair().await;
    let name = name();
    for round in 0..40 {
        let write = pair.store.reserve_attempt(
            &name,
            AttemptId::generate(),
            None,
            t0(),
            t0() + Duration::seconds(30),
            RULE.threshold,
        );
        // Polled once: the connection is taken and BEGIN sent, then the
        // call is gone before BEGIN answers.
        let _ = tokio::time::timeout(std::time::Duration::ZERO, write).await;
        let username = Username::parse(&format!("after{round}")).unwrap();
        let user = UserRecord {
            id: UserId::generate(),
            username: username.clone(),
            password_hash: "x".into(),
            created_at: t0(),
            disabled_at: None,
        };
        pair.store.insert_user(&user).await.unwrap();
        assert!(
            pair.observer
                .user_by_name(&username)
                .await
                .unwrap()
                .is_some(),
            "round {round}: the insert stayed inside a transaction left open"
        );
    }
    pair.store.connection().clone().close().await.unwrap();
    pair.observer.connection().clone().close().await.unwrap();
    if let Some((admin, name)) = pair.postgres {
        let db = crate::storage::connect(&admin, 1).await.unwrap();
        db.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .unwrap();
    }
}
