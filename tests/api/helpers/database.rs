//! Test databases: SQLite in a temporary directory by default; PostgreSQL
//! when `WARDEN_TEST_DATABASE_URL` names a server (each test gets a fresh
//! database, dropped afterwards). Direct connections for set-up.

use sea_orm::{ConnectionTrait as _, Database};

/// The PostgreSQL server to test against, if any.
pub fn postgres_url() -> Option<String> {
    std::env::var("WARDEN_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A database made for one test.
pub struct TestDatabase {
    /// The URL the server uses.
    pub url: String,
    dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    /// A fresh database on the configured backend.
    pub async fn create() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        match postgres_url() {
            None => {
                let url = format!("sqlite://{}/warden.db?mode=rwc", dir.path().display());
                Self {
                    url,
                    dir,
                    postgres: None,
                }
            }
            Some(admin) => {
                let name = format!("warden_test_{}", uuid::Uuid::new_v4().simple());
                let db = raw_connect_result(&admin)
                    .await
                    .expect("connect to PostgreSQL");
                db.execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create database");
                let base = admin
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_owned())
                    .expect("database URL has a path");
                Self {
                    url: format!("{base}/{name}"),
                    dir,
                    postgres: Some((admin, name)),
                }
            }
        }
    }

    /// A fresh SQLite database, whatever the configured backend (for rules
    /// that are SQLite's own).
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/warden.db?mode=rwc", dir.path().display());
        Self {
            url,
            dir,
            postgres: None,
        }
    }

    /// A fresh PostgreSQL database, for tests that need one: they are
    /// `#[ignore]`d and named `on_postgres_*`, and `.ci/run` runs them with
    /// `--ignored` against its server. Panics when none is configured, so a
    /// run that asked for them cannot pass without PostgreSQL.
    pub async fn postgres() -> Self {
        assert!(
            postgres_url().is_some(),
            "this test needs PostgreSQL: set WARDEN_TEST_DATABASE_URL"
        );
        let db = Self::create().await;
        assert!(db.is_postgres());
        db
    }

    /// The temporary directory (SQLite file, key files).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.postgres.take() {
            // Drop runs outside any runtime guarantee, so use a thread of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(db) = raw_connect_result(&admin).await {
                        let _ = db
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// A direct connection for test set-up and inspection. Statement logging is
/// off: the log-capture tests must see only what the server logs.
pub async fn raw_connect_result(url: &str) -> Result<sea_orm::DatabaseConnection, sea_orm::DbErr> {
    let mut options = sea_orm::ConnectOptions::new(url.to_owned());
    options.sqlx_logging(false).max_connections(2);
    Database::connect(options).await
}

/// [`raw_connect_result`], expecting success.
pub async fn raw_connect(url: &str) -> sea_orm::DatabaseConnection {
    raw_connect_result(url).await.expect("connect")
}
