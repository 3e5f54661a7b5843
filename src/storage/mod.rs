//! Persistence over SeaORM: connection set-up, migrations, and the store that
//! implements the domain's `Store` port. SQLite is the embedded default;
//! PostgreSQL is for production.

mod entities;
mod sea_orm_store;

use std::time::Duration;

use anyhow::Context as _;
use migration::{Migrator, MigratorTrait as _};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
    TransactionTrait,
};

pub use sea_orm_store::SeaOrmStore;

/// An arbitrary constant naming Warden's migration advisory lock.
const MIGRATION_LOCK_ID: i64 = 0x5741_5244_454e_0001;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default.
    Sqlite,
    /// Production.
    Postgres,
}

impl Backend {
    /// Reads the backend from a database URL.
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// The file behind a SQLite URL, or `None` for in-memory databases.
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:" && !url.contains("mode=memory")).then(|| path.into())
}

/// Opens a pool on `url`. SQLite gets WAL, `synchronous=FULL` (a spent code
/// must stay spent after power loss), foreign keys, and a busy timeout so
/// lock contention is waited out inside the server, never surfaced.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<DatabaseConnection> {
    let backend = Backend::of_url(url)
        .context("WARDEN_DATABASE_URL must start with sqlite:, postgres:// or postgresql://")?;
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5));
    // sqlx pings a pooled connection on every checkout by default: one more
    // round trip per statement outside a transaction (on SQLite two thread
    // hops to the connection's worker, on PostgreSQL a network round trip;
    // measured at 10–15 % of a ValidateSession's server CPU). A SQLite file
    // connection cannot be dropped by a peer, so it is never pinged; a
    // PostgreSQL one only after sitting idle long enough for a proxy or
    // firewall to have cut it.
    match backend {
        Backend::Sqlite => {
            // Each connection to an in-memory database is its own database.
            let max = if sqlite_path(url).is_some() {
                max_connections
            } else {
                1
            };
            options
                .max_connections(max)
                .min_connections(1)
                .test_before_acquire(false)
                .map_sqlx_sqlite_opts(|o| {
                    o.journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Full)
                        .busy_timeout(Duration::from_secs(10))
                        .foreign_keys(true)
                });
        }
        Backend::Postgres => {
            options
                .max_connections(max_connections)
                .test_before_acquire_if_idle_for(Duration::from_secs(10));
        }
    }
    Database::connect(options)
        .await
        .context("connect to the database")
}

/// Where the schema stands relative to this binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaStatus {
    /// Every applied migration is known here.
    Known,
    /// The database has migrations this binary does not know (a newer
    /// binary ran); their names.
    Newer(Vec<String>),
}

/// Compares the applied migrations with the ones this binary carries.
pub async fn schema_status<'c>(
    db: impl sea_orm::IntoDatabaseExecutor<'c>,
) -> anyhow::Result<SchemaStatus> {
    let manager = migration::SchemaManager::new(db);
    let has_table = manager
        .has_table("seaql_migrations")
        .await
        .context("inspect schema")?;
    let db = manager.get_connection();
    if !has_table {
        return Ok(SchemaStatus::Known);
    }
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT version FROM seaql_migrations",
        ))
        .await
        .context("read applied migrations")?;
    let known: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let mut unknown = Vec::new();
    for row in rows {
        let version: String = row
            .try_get("", "version")
            .context("read migration version")?;
        if !known.contains(&version) {
            unknown.push(version);
        }
    }
    Ok(if unknown.is_empty() {
        SchemaStatus::Known
    } else {
        SchemaStatus::Newer(unknown)
    })
}

/// Applies pending migrations in one transaction; with PostgreSQL under a
/// transaction-scoped advisory lock, with SQLite under its write lock, so
/// processes starting together migrate one at a time.
/// Returns the schema status found before migrating; with a newer schema
/// nothing is applied.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<SchemaStatus> {
    match db.get_database_backend() {
        DbBackend::Postgres => {
            let tx = db.begin().await.context("begin migration transaction")?;
            tx.execute_unprepared(&format!(
                "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})"
            ))
            .await
            .context("take the migration lock")?;
            let status = schema_status(&tx).await?;
            if status == SchemaStatus::Known {
                Migrator::up(&tx, None).await.context("apply migrations")?;
            }
            tx.commit().await.context("commit migrations")?;
            Ok(status)
        }
        _ => {
            // SQLite has no advisory lock: the write lock of one
            // `BEGIN IMMEDIATE` transaction serialises processes starting
            // together on one file (the others wait out the busy timeout,
            // then find the schema applied). SQLite DDL is transactional.
            let tx = db
                .begin_with_options(sea_orm::TransactionOptions {
                    sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
                    ..Default::default()
                })
                .await
                .context("begin migration transaction")?;
            let status = schema_status(&tx).await?;
            if status == SchemaStatus::Known {
                Migrator::up(&tx, None).await.context("apply migrations")?;
            }
            tx.commit().await.context("commit migrations")?;
            Ok(status)
        }
    }
}

/// Whether any account exists (decides the development-key rule).
pub async fn has_users(db: &DatabaseConnection) -> anyhow::Result<bool> {
    use sea_orm::{EntityTrait as _, PaginatorTrait as _};
    let count = entities::users::Entity::find()
        .count(db)
        .await
        .context("count users")?;
    Ok(count > 0)
}

/// The database pool's connections: `(idle, in use)`, for metrics.
pub fn pool_connections(db: &DatabaseConnection) -> (usize, usize) {
    let (size, idle) = match db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
        DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
        _ => (0, 0),
    };
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    (idle, size.saturating_sub(idle))
}
