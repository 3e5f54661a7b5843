//! `SeaOrmStore`: the domain's storage ports over SQLite or PostgreSQL, one
//! file per port; this module holds what they share — the store itself,
//! transactions, error mapping and time conversion.
//!
//! Every single-use rule is a conditional write whose affected-row count
//! decides the outcome, so concurrent callers on any replica get exactly one
//! winner. Multi-row changes run in one transaction; on SQLite write
//! transactions start with `BEGIN IMMEDIATE`, so two writers never deadlock
//! upgrading read locks.

mod admin;
mod budget;
mod challenges;
mod maintenance;
mod second_factors;
mod sessions;
mod step_up;
mod trusted_devices;
mod users;

use std::sync::Arc;

use sea_orm::{
    DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, RuntimeErr, SqlErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use time::OffsetDateTime;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::entities::{totp_secrets, users as user_rows};
use crate::crypto::keyring::Sealed;
use crate::domain::ids::UserId;
use crate::domain::store::{StoreError, StoreResult, UserRecord};
use crate::domain::username::Username;

/// The SeaORM implementation of every storage port (`domain::store::Store`).
#[derive(Debug, Clone)]
pub struct SeaOrmStore {
    db: DatabaseConnection,
    /// SQLite only: whose turn it is to write. SQLite has one writer at a
    /// time; without this queue, concurrent writers each hold a pooled
    /// connection and sleep in SQLite's busy handler (1, 2, 5, 10, … ms),
    /// which is where the long tail of write latency came from. Queued here,
    /// they go one after another with no sleeping; other processes on the
    /// same file are still waited out by the busy timeout.
    writer: Option<Arc<Mutex<()>>>,
}

/// A write transaction; on SQLite it also holds this process's writer turn,
/// released after the transaction ends (fields drop in order).
struct WriteTx {
    tx: DatabaseTransaction,
    _turn: Option<OwnedMutexGuard<()>>,
}

impl std::ops::Deref for WriteTx {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.tx
    }
}

/// Unix milliseconds: how times are stored, so both backends compare alike.
fn ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Classifies a database error, keeping `context` for the log.
fn db_error(context: &'static str) -> impl FnOnce(DbErr) -> StoreError {
    move |e| {
        if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
            return StoreError::UniqueViolation;
        }
        let unavailable = match &e {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
            DbErr::Exec(RuntimeErr::SqlxError(s)) | DbErr::Query(RuntimeErr::SqlxError(s)) => {
                matches!(
                    s.as_ref(),
                    sea_orm::sqlx::Error::Io(_)
                        | sea_orm::sqlx::Error::PoolTimedOut
                        | sea_orm::sqlx::Error::PoolClosed
                )
            }
            _ => false,
        };
        let source = anyhow::Error::new(e).context(context);
        if unavailable {
            StoreError::Unavailable(source)
        } else {
            StoreError::Other(source)
        }
    }
}

/// The row of a select on a unique key, read with `.all()` then this
/// instead of `.one()`. SeaORM's `one()` binds `LIMIT ?` to 1, and SQLite
/// (3.51, built with STAT4, as sqlx bundles it) counts a bound LIMIT among
/// the values that may change a plan: binding it again expires the cached
/// statement, so every such read was parsed and planned anew — on every
/// ValidateSession. A unique key yields at most one row without a limit.
fn first_row<T>(rows: Vec<T>) -> Option<T> {
    rows.into_iter().next()
}

/// A session's authentication methods as stored: comma-separated.
fn amr_from_column(amr: &str) -> Vec<String> {
    amr.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn corrupt(what: &'static str) -> StoreError {
    StoreError::Other(anyhow::anyhow!("corrupt row: {what}"))
}

fn user_id(s: &str) -> StoreResult<UserId> {
    UserId::parse(s).ok_or_else(|| corrupt("user id"))
}

fn sealed(row: totp_secrets::Model) -> Sealed {
    Sealed {
        key_id: row.key_id,
        nonce: row.nonce,
        ciphertext: row.ciphertext,
    }
}

fn step_value(step: u64) -> i64 {
    i64::try_from(step).unwrap_or(i64::MAX)
}

impl TryFrom<user_rows::Model> for UserRecord {
    type Error = StoreError;

    fn try_from(row: user_rows::Model) -> StoreResult<Self> {
        Ok(Self {
            id: user_id(&row.id)?,
            username: Username::from_canonical(row.username),
            password_hash: row.password_hash,
            created_at: from_ms(row.created_at),
            disabled_at: row.disabled_at.map(from_ms),
        })
    }
}

impl SeaOrmStore {
    /// Wraps a connected, migrated pool.
    pub fn new(db: DatabaseConnection) -> Self {
        let writer =
            (db.get_database_backend() == DbBackend::Sqlite).then(|| Arc::new(Mutex::new(())));
        Self { db, writer }
    }

    /// The pool, for health checks and maintenance.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Starts a write transaction (`BEGIN IMMEDIATE` on SQLite, after
    /// waiting for this process's writer turn) that a cancelled caller can
    /// never leave half-begun.
    async fn begin_write(&self) -> StoreResult<WriteTx> {
        let turn = match &self.writer {
            Some(writer) => Some(writer.clone().lock_owned().await),
            None => None,
        };
        // BEGIN runs in a task of its own, to its end. sqlx (0.9) arms its
        // rollback guard only once BEGIN has answered: a call cancelled in
        // between (a client deadline) leaves the connection inside a
        // transaction sqlx does not know of, and the pool hands it out
        // again, so the next caller's autocommit writes are never
        // committed. Spawned, BEGIN always completes; a caller gone by then
        // drops the finished transaction there, which rolls it back.
        let db = self.db.clone();
        let tx = tokio::spawn(async move {
            db.begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
        })
        .await
        .map_err(|e| StoreError::Other(anyhow::Error::new(e).context("begin transaction")))?
        .map_err(db_error("begin transaction"))?;
        Ok(WriteTx { tx, _turn: turn })
    }

    /// Commits; an error here leaves the outcome unknown, so it is always
    /// reported as unavailable (the change may have taken effect).
    async fn commit(tx: WriteTx) -> StoreResult<()> {
        tx.tx
            .commit()
            .await
            .map_err(|e| StoreError::Unavailable(anyhow::Error::new(e).context("commit")))
    }

    /// Rolls back a transaction that changed nothing worth keeping.
    async fn abandon(tx: WriteTx) -> StoreResult<()> {
        tx.tx.rollback().await.map_err(db_error("roll back"))
    }
}

#[cfg(test)]
mod tests;
