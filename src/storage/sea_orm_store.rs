//! `SeaOrmStore`: the domain's `Store` over SQLite or PostgreSQL.
//!
//! Every single-use rule is a conditional write whose affected-row count
//! decides the outcome, so concurrent callers on any replica get exactly one
//! winner. Multi-row changes run in one transaction; on SQLite write
//! transactions start with `BEGIN IMMEDIATE`, so two writers never deadlock
//! upgrading read locks.

use sea_orm::sea_query::{Expr, ExprTrait as _, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, DatabaseTransaction, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, RuntimeErr, SqlErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use time::OffsetDateTime;

use super::entities::{
    budget_reservations, failure_budgets, login_challenges, recovery_codes, sessions, totp_secrets,
    users,
};
use crate::crypto::keyring::Sealed;
use crate::crypto::tokens::TokenHash;
use crate::domain::ids::{AttemptId, ChallengeId, RecoveryCodeId, SessionId, UserId};
use crate::domain::second_factor::SecondFactorProof;
use crate::domain::store::{
    ChallengeRecord, CompletionError, LockRule, LoginProof, NewChallenge, NewSession, Reservation,
    SecondFactorState, SessionRecord, SettledAttempt, StepUpAction, Store, StoreError, StoreResult,
    StoredSecret, UserRecord,
};
use crate::domain::username::Username;

const ACTIVE: &str = "active";
const PENDING: &str = "pending";

/// The SeaORM implementation of [`Store`].
#[derive(Debug, Clone)]
pub struct SeaOrmStore {
    db: DatabaseConnection,
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

impl TryFrom<users::Model> for UserRecord {
    type Error = StoreError;

    fn try_from(row: users::Model) -> StoreResult<Self> {
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
        Self { db }
    }

    /// The pool, for health checks and maintenance.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Starts a write transaction (`BEGIN IMMEDIATE` on SQLite).
    async fn begin_write(&self) -> StoreResult<DatabaseTransaction> {
        self.db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
            .map_err(db_error("begin transaction"))
    }

    /// Commits; an error here leaves the outcome unknown, so it is always
    /// reported as unavailable (the change may have taken effect).
    async fn commit(tx: DatabaseTransaction) -> StoreResult<()> {
        tx.commit()
            .await
            .map_err(|e| StoreError::Unavailable(anyhow::Error::new(e).context("commit")))
    }

    async fn username_of(&self, id: &str) -> StoreResult<Option<users::Model>> {
        users::Entity::find_by_id(id.to_owned())
            .filter(users::Column::DisabledAt.is_null())
            .one(&self.db)
            .await
            .map_err(db_error("find user"))
    }

    /// Locks `user`'s row for the rest of `tx` and records a login, only
    /// while the account is enabled and, when given, its password hash is
    /// still `verified_hash`. Taking the row lock first serialises one
    /// user's completions on PostgreSQL (SQLite's `BEGIN IMMEDIATE` already
    /// serialises writers), so the session cap holds under concurrency.
    async fn lock_user(
        tx: &DatabaseTransaction,
        user: &str,
        verified_hash: Option<&str>,
        now: i64,
    ) -> Result<(), CompletionError> {
        let mut update = users::Entity::update_many()
            .col_expr(users::Column::LastLoginAt, Expr::value(now))
            .filter(users::Column::Id.eq(user))
            .filter(users::Column::DisabledAt.is_null());
        if let Some(hash) = verified_hash {
            update = update.filter(users::Column::PasswordHash.eq(hash));
        }
        let locked = update.exec(tx).await.map_err(db_error("lock user"))?;
        if locked.rows_affected == 1 {
            Ok(())
        } else {
            Err(CompletionError::CredentialsChanged)
        }
    }

    /// Removes a budget reservation inside `tx` (settled, or given back).
    async fn remove_reservation(tx: &DatabaseTransaction, attempt: AttemptId) -> StoreResult<()> {
        budget_reservations::Entity::delete_by_id(attempt.to_string())
            .exec(tx)
            .await
            .map_err(db_error("remove budget reservation"))?;
        Ok(())
    }

    /// Makes sure `name` has a budget row and locks it for the rest of `tx`
    /// (an upsert takes the row lock on PostgreSQL), so every decision on
    /// one name's budget is taken by one transaction at a time.
    async fn lock_budget(
        tx: &DatabaseTransaction,
        name: &Username,
        now: i64,
    ) -> StoreResult<failure_budgets::Model> {
        let row = failure_budgets::ActiveModel {
            name: Set(name.as_str().to_owned()),
            failures: Set(0),
            lock_level: Set(0),
            locked_until: Set(None),
            updated_at: Set(now),
        };
        failure_budgets::Entity::insert(row)
            .on_conflict(
                OnConflict::column(failure_budgets::Column::Name)
                    .update_column(failure_budgets::Column::UpdatedAt)
                    .to_owned(),
            )
            .exec_without_returning(tx)
            .await
            .map_err(db_error("lock failure budget"))?;
        failure_budgets::Entity::find_by_id(name.as_str().to_owned())
            .one(tx)
            .await
            .map_err(db_error("read failure budget"))?
            .ok_or_else(|| StoreError::Other(anyhow::anyhow!("failure budget row vanished")))
    }

    /// Rolls back a transaction that changed nothing worth keeping.
    async fn abandon(tx: DatabaseTransaction) -> StoreResult<()> {
        tx.rollback().await.map_err(db_error("roll back"))
    }

    /// Spends `step` for `user`: only a step later than the stored one wins.
    async fn spend_step(
        tx: &DatabaseTransaction,
        user: UserId,
        step: u64,
    ) -> Result<(), CompletionError> {
        let step = step_value(step);
        let spent = users::Entity::update_many()
            .col_expr(users::Column::TotpLastStep, Expr::value(step))
            .filter(users::Column::Id.eq(user.to_string()))
            .filter(
                Condition::any()
                    .add(users::Column::TotpLastStep.is_null())
                    .add(users::Column::TotpLastStep.lt(step)),
            )
            .exec(tx)
            .await
            .map_err(db_error("spend TOTP step"))?;
        if spent.rows_affected == 1 {
            Ok(())
        } else {
            Err(CompletionError::StepUsed)
        }
    }

    /// Spends a second-factor proof inside `tx`, or reports the race lost.
    async fn spend(
        tx: &DatabaseTransaction,
        user: UserId,
        proof: &SecondFactorProof,
        now: i64,
    ) -> Result<(), CompletionError> {
        match proof {
            SecondFactorProof::TotpStep(step) => Self::spend_step(tx, user, *step).await,
            SecondFactorProof::RecoveryCode(id) => {
                let used = recovery_codes::Entity::update_many()
                    .col_expr(recovery_codes::Column::UsedAt, Expr::value(now))
                    .filter(recovery_codes::Column::Id.eq(id.to_string()))
                    .filter(recovery_codes::Column::UserId.eq(user.to_string()))
                    .filter(recovery_codes::Column::UsedAt.is_null())
                    .exec(tx)
                    .await
                    .map_err(db_error("use recovery code"))?;
                if used.rows_affected == 1 {
                    Ok(())
                } else {
                    Err(CompletionError::CodeUsed)
                }
            }
        }
    }

    /// Ends every session of `user` but `keep`, and every open challenge.
    async fn end_other_sessions(
        tx: &DatabaseTransaction,
        user: &str,
        keep: SessionId,
    ) -> StoreResult<u64> {
        let ended = sessions::Entity::delete_many()
            .filter(sessions::Column::UserId.eq(user))
            .filter(sessions::Column::Id.ne(keep.to_string()))
            .exec(tx)
            .await
            .map_err(db_error("end other sessions"))?;
        login_challenges::Entity::delete_many()
            .filter(login_challenges::Column::UserId.eq(user))
            .exec(tx)
            .await
            .map_err(db_error("end open challenges"))?;
        Ok(ended.rows_affected)
    }

    /// Replaces `user`'s recovery codes inside `tx`.
    async fn put_recovery_codes(
        tx: &DatabaseTransaction,
        user: &str,
        hashes: &[String],
        now: i64,
    ) -> StoreResult<()> {
        recovery_codes::Entity::delete_many()
            .filter(recovery_codes::Column::UserId.eq(user))
            .exec(tx)
            .await
            .map_err(db_error("drop old recovery codes"))?;
        if hashes.is_empty() {
            return Ok(());
        }
        let rows = hashes.iter().map(|hash| recovery_codes::ActiveModel {
            id: Set(RecoveryCodeId::generate().to_string()),
            user_id: Set(user.to_owned()),
            code_hash: Set(hash.clone()),
            created_at: Set(now),
            used_at: Set(None),
        });
        recovery_codes::Entity::insert_many(rows)
            .exec_without_returning(tx)
            .await
            .map_err(db_error("store recovery codes"))?;
        Ok(())
    }

    /// Ends the oldest sessions of `user` beyond `max`.
    async fn evict_oldest(tx: &DatabaseTransaction, user: &str, max: u32) -> StoreResult<()> {
        let excess: Vec<String> = sessions::Entity::find()
            .select_only()
            .column(sessions::Column::Id)
            .filter(sessions::Column::UserId.eq(user))
            .order_by_desc(sessions::Column::CreatedAt)
            .order_by_desc(sessions::Column::Id)
            .offset(u64::from(max))
            .limit(1000)
            .into_tuple()
            .all(tx)
            .await
            .map_err(db_error("find excess sessions"))?;
        if !excess.is_empty() {
            sessions::Entity::delete_many()
                .filter(sessions::Column::Id.is_in(excess))
                .exec(tx)
                .await
                .map_err(db_error("end excess sessions"))?;
        }
        Ok(())
    }

    async fn delete_ids<E, C>(&self, ids: Vec<String>, column: C) -> StoreResult<u64>
    where
        E: EntityTrait,
        C: ColumnTrait,
    {
        if ids.is_empty() {
            return Ok(0);
        }
        let done = E::delete_many()
            .filter(column.is_in(ids))
            .exec(&self.db)
            .await
            .map_err(db_error("purge expired rows"))?;
        Ok(done.rows_affected)
    }
}

impl Store for SeaOrmStore {
    async fn insert_user(&self, user: &UserRecord) -> StoreResult<()> {
        let created = ms(user.created_at);
        let row = users::ActiveModel {
            id: Set(user.id.to_string()),
            username: Set(user.username.as_str().to_owned()),
            password_hash: Set(user.password_hash.clone()),
            created_at: Set(created),
            password_changed_at: Set(created),
            last_login_at: Set(None),
            disabled_at: Set(None),
            totp_last_step: Set(None),
        };
        users::Entity::insert(row)
            .exec_without_returning(&self.db)
            .await
            .map_err(db_error("insert user"))?;
        Ok(())
    }

    async fn user_by_name(&self, name: &Username) -> StoreResult<Option<UserRecord>> {
        users::Entity::find()
            .filter(users::Column::Username.eq(name.as_str()))
            .one(&self.db)
            .await
            .map_err(db_error("find user by name"))?
            .map(UserRecord::try_from)
            .transpose()
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        self.username_of(&id.to_string())
            .await?
            .map(UserRecord::try_from)
            .transpose()
    }

    async fn upgrade_password_hash(&self, id: UserId, old: &str, new: &str) -> StoreResult<bool> {
        let done = users::Entity::update_many()
            .col_expr(users::Column::PasswordHash, Expr::value(new))
            .filter(users::Column::Id.eq(id.to_string()))
            .filter(users::Column::PasswordHash.eq(old))
            .exec(&self.db)
            .await
            .map_err(db_error("upgrade password hash"))?;
        Ok(done.rows_affected == 1)
    }

    async fn complete_login(
        &self,
        session: &NewSession,
        proof: &LoginProof,
        attempt: &SettledAttempt,
        max_sessions: u32,
    ) -> Result<(), CompletionError> {
        let now = ms(session.created_at);
        let user = session.user_id.to_string();
        let tx = self.begin_write().await?;
        let verified_hash = match proof {
            LoginProof::Password { verified_hash } => Some(verified_hash.as_str()),
            LoginProof::SecondFactor { .. } => None,
        };
        Self::lock_user(&tx, &user, verified_hash, now).await?;
        match proof {
            LoginProof::Password { .. } => {}
            LoginProof::SecondFactor { challenge, proof } => {
                let used = login_challenges::Entity::delete_many()
                    .filter(login_challenges::Column::Id.eq(challenge.to_string()))
                    .filter(login_challenges::Column::UserId.eq(user.clone()))
                    .filter(login_challenges::Column::ExpiresAt.gt(now))
                    .exec(&tx)
                    .await
                    .map_err(db_error("use challenge"))?;
                if used.rows_affected != 1 {
                    return Err(CompletionError::ChallengeGone);
                }
                Self::spend(&tx, session.user_id, proof, now).await?;
            }
        }
        let row = sessions::ActiveModel {
            id: Set(session.id.to_string()),
            user_id: Set(user.clone()),
            token_hash: Set(session.token_hash.0.to_vec()),
            created_at: Set(now),
            last_used_at: Set(now),
            authenticated_at: Set(now),
            expires_at: Set(ms(session.expires_at)),
            amr: Set(session.amr.join(",")),
            client_address: Set(session.client.address.clone()),
            user_agent: Set(session.client.user_agent.clone()),
        };
        sessions::Entity::insert(row)
            .exec_without_returning(&tx)
            .await
            .map_err(db_error("insert session"))?;
        Self::evict_oldest(&tx, &user, max_sessions).await?;
        Self::remove_reservation(&tx, attempt.attempt).await?;
        // A completed login resets the count and the lock level.
        failure_budgets::Entity::delete_by_id(attempt.name.as_str().to_owned())
            .exec(&tx)
            .await
            .map_err(db_error("reset failure budget"))?;
        Ok(Self::commit(tx).await?)
    }

    async fn session_by_hash(&self, hash: &TokenHash) -> StoreResult<Option<SessionRecord>> {
        let Some(row) = sessions::Entity::find()
            .filter(sessions::Column::TokenHash.eq(hash.0.to_vec()))
            .one(&self.db)
            .await
            .map_err(db_error("find session"))?
        else {
            return Ok(None);
        };
        let Some(user) = self.username_of(&row.user_id).await? else {
            return Ok(None);
        };
        Ok(Some(SessionRecord {
            id: SessionId::parse(&row.id).ok_or_else(|| corrupt("session id"))?,
            user_id: user_id(&row.user_id)?,
            username: Username::from_canonical(user.username),
            last_used_at: from_ms(row.last_used_at),
            authenticated_at: from_ms(row.authenticated_at),
            expires_at: from_ms(row.expires_at),
            amr: row
                .amr
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }))
    }

    async fn touch_session(
        &self,
        id: SessionId,
        now: OffsetDateTime,
        stale_before: OffsetDateTime,
    ) -> StoreResult<()> {
        // Conditional on the row still existing and still being stale: a
        // revoked (deleted) session is never revived, and concurrent
        // validations write at most once per interval.
        sessions::Entity::update_many()
            .col_expr(sessions::Column::LastUsedAt, Expr::value(ms(now)))
            .filter(sessions::Column::Id.eq(id.to_string()))
            .filter(sessions::Column::LastUsedAt.lt(ms(stale_before)))
            .exec(&self.db)
            .await
            .map_err(db_error("refresh session"))?;
        Ok(())
    }

    async fn revoke_session(&self, id: SessionId) -> StoreResult<bool> {
        let done = sessions::Entity::delete_by_id(id.to_string())
            .exec(&self.db)
            .await
            .map_err(db_error("revoke session"))?;
        Ok(done.rows_affected == 1)
    }

    async fn insert_challenge(
        &self,
        challenge: &NewChallenge,
        verified_hash: &str,
    ) -> Result<(), CompletionError> {
        let tx = self.begin_write().await?;
        let user = challenge.user_id.to_string();
        // A challenge is a step of a login: bound to the password checked.
        let unchanged = users::Entity::update_many()
            .col_expr(users::Column::PasswordHash, Expr::value(verified_hash))
            .filter(users::Column::Id.eq(user))
            .filter(users::Column::DisabledAt.is_null())
            .filter(users::Column::PasswordHash.eq(verified_hash))
            .exec(&tx)
            .await
            .map_err(db_error("check password hash"))?;
        if unchanged.rows_affected != 1 {
            return Err(CompletionError::CredentialsChanged);
        }
        let row = login_challenges::ActiveModel {
            id: Set(challenge.id.to_string()),
            user_id: Set(challenge.user_id.to_string()),
            token_hash: Set(challenge.token_hash.0.to_vec()),
            created_at: Set(ms(challenge.created_at)),
            expires_at: Set(ms(challenge.expires_at)),
            failed_attempts: Set(0),
        };
        login_challenges::Entity::insert(row)
            .exec_without_returning(&tx)
            .await
            .map_err(db_error("insert challenge"))?;
        Ok(Self::commit(tx).await?)
    }

    async fn challenge_by_hash(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
        max_failures: u32,
    ) -> StoreResult<Option<ChallengeRecord>> {
        let Some(row) = login_challenges::Entity::find()
            .filter(login_challenges::Column::TokenHash.eq(hash.0.to_vec()))
            .filter(login_challenges::Column::ExpiresAt.gt(ms(now)))
            .filter(
                login_challenges::Column::FailedAttempts
                    .lt(i32::try_from(max_failures).unwrap_or(i32::MAX)),
            )
            .one(&self.db)
            .await
            .map_err(db_error("find challenge"))?
        else {
            return Ok(None);
        };
        let Some(user) = self.username_of(&row.user_id).await? else {
            return Ok(None);
        };
        Ok(Some(ChallengeRecord {
            id: ChallengeId::parse(&row.id).ok_or_else(|| corrupt("challenge id"))?,
            user_id: user_id(&row.user_id)?,
            username: Username::from_canonical(user.username),
        }))
    }

    async fn second_factor(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> StoreResult<SecondFactorState> {
        let id = user.to_string();
        let secrets = totp_secrets::Entity::find()
            .filter(totp_secrets::Column::UserId.eq(id.clone()))
            .all(&self.db)
            .await
            .map_err(db_error("read TOTP secrets"))?;
        let last_step: Option<Option<i64>> = users::Entity::find_by_id(id.clone())
            .select_only()
            .column(users::Column::TotpLastStep)
            .into_tuple()
            .one(&self.db)
            .await
            .map_err(db_error("read last TOTP step"))?;
        let unused = recovery_codes::Entity::find()
            .filter(recovery_codes::Column::UserId.eq(id))
            .filter(recovery_codes::Column::UsedAt.is_null())
            .count(&self.db)
            .await
            .map_err(db_error("count recovery codes"))?;
        let mut state = SecondFactorState {
            last_step: last_step.flatten().and_then(|s| u64::try_from(s).ok()),
            unused_recovery_codes: u32::try_from(unused).unwrap_or(u32::MAX),
            ..Default::default()
        };
        for row in secrets {
            match row.purpose.as_str() {
                ACTIVE => state.active = Some(sealed(row)),
                // A pending secret past its expiry is gone, whether or not
                // housekeeping has deleted it yet.
                PENDING if row.expires_at.is_some_and(|e| e > ms(now)) => {
                    state.pending = Some(sealed(row))
                }
                _ => {}
            }
        }
        Ok(state)
    }

    async fn put_pending_totp(
        &self,
        user: UserId,
        secret: &Sealed,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        let row = totp_secrets::ActiveModel {
            user_id: Set(user.to_string()),
            purpose: Set(PENDING.to_owned()),
            key_id: Set(secret.key_id.clone()),
            nonce: Set(secret.nonce.clone()),
            ciphertext: Set(secret.ciphertext.clone()),
            created_at: Set(ms(now)),
            expires_at: Set(Some(ms(expires_at))),
        };
        // One upsert replaces any earlier pending secret: concurrent
        // enrolments each leave a whole secret, never a unique violation.
        totp_secrets::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([totp_secrets::Column::UserId, totp_secrets::Column::Purpose])
                    .update_columns([
                        totp_secrets::Column::KeyId,
                        totp_secrets::Column::Nonce,
                        totp_secrets::Column::Ciphertext,
                        totp_secrets::Column::CreatedAt,
                        totp_secrets::Column::ExpiresAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await
            .map_err(db_error("store pending secret"))?;
        Ok(())
    }

    async fn confirm_totp(
        &self,
        user: UserId,
        pending: &Sealed,
        active: &Sealed,
        step: u64,
        recovery_hashes: &[String],
        now: OffsetDateTime,
    ) -> Result<(), CompletionError> {
        let id = user.to_string();
        let now = ms(now);
        let tx = self.begin_write().await?;
        let taken = totp_secrets::Entity::delete_many()
            .filter(totp_secrets::Column::UserId.eq(id.clone()))
            .filter(totp_secrets::Column::Purpose.eq(PENDING))
            .filter(totp_secrets::Column::Ciphertext.eq(pending.ciphertext.clone()))
            .filter(totp_secrets::Column::ExpiresAt.gt(now))
            .exec(&tx)
            .await
            .map_err(db_error("take pending secret"))?;
        if taken.rows_affected != 1 {
            return Err(CompletionError::PendingGone);
        }
        Self::spend_step(&tx, user, step).await?;
        let row = totp_secrets::ActiveModel {
            user_id: Set(id.clone()),
            purpose: Set(ACTIVE.to_owned()),
            key_id: Set(active.key_id.clone()),
            nonce: Set(active.nonce.clone()),
            ciphertext: Set(active.ciphertext.clone()),
            created_at: Set(now),
            expires_at: Set(None),
        };
        totp_secrets::Entity::insert(row)
            .exec_without_returning(&tx)
            .await
            .map_err(db_error("store active secret"))?;
        Self::put_recovery_codes(&tx, &id, recovery_hashes, now).await?;
        Ok(Self::commit(tx).await?)
    }

    async fn reserve_attempt(
        &self,
        name: &Username,
        attempt: AttemptId,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        threshold: u32,
    ) -> StoreResult<Reservation> {
        let now = ms(now);
        let threshold = i64::from(threshold);
        let tx = self.begin_write().await?;
        let budget = Self::lock_budget(&tx, name, now).await?;
        if let Some(until) = budget.locked_until.filter(|until| *until > now) {
            Self::abandon(tx).await?;
            return Ok(Reservation::Locked {
                until: from_ms(until),
            });
        }
        let pending = budget_reservations::Entity::find()
            .filter(budget_reservations::Column::Name.eq(name.as_str()))
            .filter(budget_reservations::Column::LeaseUntil.gt(now))
            .count(&tx)
            .await
            .map_err(db_error("count budget reservations"))?;
        // Stored failures stay below the threshold (reaching it locks and
        // steps back by one); clamping covers rows written under a higher
        // threshold or by older versions, so an unlocked name is never
        // refused for good: only checks in flight can make it busy.
        let failures = i64::from(budget.failures).clamp(0, threshold - 1);
        if failures + i64::try_from(pending).unwrap_or(i64::MAX) >= threshold {
            Self::abandon(tx).await?;
            return Ok(Reservation::Busy);
        }
        let row = budget_reservations::ActiveModel {
            id: Set(attempt.to_string()),
            name: Set(name.as_str().to_owned()),
            lease_until: Set(ms(lease_until)),
            created_at: Set(now),
        };
        budget_reservations::Entity::insert(row)
            .exec_without_returning(&tx)
            .await
            .map_err(db_error("reserve attempt"))?;
        Self::commit(tx).await?;
        Ok(Reservation::Granted)
    }

    async fn release_attempt(&self, attempt: AttemptId) -> StoreResult<()> {
        budget_reservations::Entity::delete_by_id(attempt.to_string())
            .exec(&self.db)
            .await
            .map_err(db_error("release budget reservation"))?;
        Ok(())
    }

    async fn record_failure(
        &self,
        attempt: AttemptId,
        name: &Username,
        challenge: Option<ChallengeId>,
        now: OffsetDateTime,
        rule: LockRule,
    ) -> StoreResult<Option<OffsetDateTime>> {
        let threshold = i32::try_from(rule.threshold).unwrap_or(i32::MAX);
        let now_ms = ms(now);
        let tx = self.begin_write().await?;
        let budget = Self::lock_budget(&tx, name, now_ms).await?;
        Self::remove_reservation(&tx, attempt).await?;
        if let Some(challenge) = challenge {
            login_challenges::Entity::update_many()
                .col_expr(
                    login_challenges::Column::FailedAttempts,
                    Expr::col(login_challenges::Column::FailedAttempts).add(1),
                )
                .filter(login_challenges::Column::Id.eq(challenge.to_string()))
                .exec(&tx)
                .await
                .map_err(db_error("count challenge failure"))?;
        }
        let failures = budget.failures.saturating_add(1);
        let mut update = failure_budgets::Entity::update_many()
            .col_expr(failure_budgets::Column::UpdatedAt, Expr::value(now_ms))
            .filter(failure_budgets::Column::Name.eq(name.as_str()));
        let locked_until = if failures >= threshold {
            let length = if rule.doubling {
                let factor = 1i32
                    .checked_shl(u32::try_from(budget.lock_level).unwrap_or(0))
                    .unwrap_or(i32::MAX);
                rule.base
                    .checked_mul(factor)
                    .unwrap_or(rule.max)
                    .min(rule.max)
            } else {
                rule.base
            };
            let until = now.checked_add(length).unwrap_or(now);
            // Leave one attempt for after the lock: when it ends, the next
            // failure locks again at once.
            update = update
                .col_expr(failure_budgets::Column::LockedUntil, Expr::value(ms(until)))
                .col_expr(
                    failure_budgets::Column::Failures,
                    Expr::value(threshold - 1),
                )
                .col_expr(
                    failure_budgets::Column::LockLevel,
                    Expr::value(budget.lock_level.saturating_add(i32::from(rule.doubling))),
                );
            Some(until)
        } else {
            update = update.col_expr(failure_budgets::Column::Failures, Expr::value(failures));
            None
        };
        update.exec(&tx).await.map_err(db_error("record failure"))?;
        Self::commit(tx).await?;
        Ok(locked_until)
    }

    async fn locked_until(
        &self,
        name: &Username,
        now: OffsetDateTime,
    ) -> StoreResult<Option<OffsetDateTime>> {
        let now = ms(now);
        Ok(
            failure_budgets::Entity::find_by_id(name.as_str().to_owned())
                .one(&self.db)
                .await
                .map_err(db_error("read failure budget"))?
                .and_then(|b| b.locked_until)
                .filter(|until| *until > now)
                .map(from_ms),
        )
    }

    async fn purge_expired(
        &self,
        now: OffsetDateTime,
        idle_cutoff: OffsetDateTime,
        budget_cutoff: OffsetDateTime,
        batch: u64,
    ) -> StoreResult<u64> {
        let now = ms(now);
        let sessions: Vec<String> = sessions::Entity::find()
            .select_only()
            .column(sessions::Column::Id)
            .filter(
                Condition::any()
                    .add(sessions::Column::ExpiresAt.lte(now))
                    .add(sessions::Column::LastUsedAt.lte(ms(idle_cutoff))),
            )
            .limit(batch)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_error("find expired sessions"))?;
        let challenges: Vec<String> = login_challenges::Entity::find()
            .select_only()
            .column(login_challenges::Column::Id)
            .filter(login_challenges::Column::ExpiresAt.lte(now))
            .limit(batch)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_error("find expired challenges"))?;
        let mut purged = self
            .delete_ids::<sessions::Entity, _>(sessions, sessions::Column::Id)
            .await?;
        purged += self
            .delete_ids::<login_challenges::Entity, _>(challenges, login_challenges::Column::Id)
            .await?;
        let pending = totp_secrets::Entity::delete_many()
            .filter(totp_secrets::Column::Purpose.eq(PENDING))
            .filter(totp_secrets::Column::ExpiresAt.lte(now))
            .exec(&self.db)
            .await
            .map_err(db_error("purge pending secrets"))?;
        let reservations = budget_reservations::Entity::delete_many()
            .filter(budget_reservations::Column::LeaseUntil.lte(now))
            .exec(&self.db)
            .await
            .map_err(db_error("purge expired reservations"))?;
        // A raised lock level is kept until a completed login resets it, so
        // housekeeping never shortens the next second-factor lock.
        let budgets: Vec<String> = failure_budgets::Entity::find()
            .select_only()
            .column(failure_budgets::Column::Name)
            .filter(failure_budgets::Column::UpdatedAt.lte(ms(budget_cutoff)))
            .filter(failure_budgets::Column::LockLevel.eq(0))
            .filter(
                Condition::any()
                    .add(failure_budgets::Column::LockedUntil.is_null())
                    .add(failure_budgets::Column::LockedUntil.lte(now)),
            )
            .limit(batch)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_error("find stale budget rows"))?;
        // Re-check staleness in the delete: a row touched meanwhile stays.
        let stale = if budgets.is_empty() {
            0
        } else {
            failure_budgets::Entity::delete_many()
                .filter(failure_budgets::Column::Name.is_in(budgets))
                .filter(failure_budgets::Column::UpdatedAt.lte(ms(budget_cutoff)))
                .filter(failure_budgets::Column::LockLevel.eq(0))
                .exec(&self.db)
                .await
                .map_err(db_error("purge stale budget rows"))?
                .rows_affected
        };
        Ok(purged + pending.rows_affected + reservations.rows_affected + stale)
    }

    async fn sealed_secrets(
        &self,
        after: Option<(UserId, String)>,
        limit: u64,
    ) -> StoreResult<Vec<StoredSecret>> {
        let mut query = totp_secrets::Entity::find()
            .order_by_asc(totp_secrets::Column::UserId)
            .order_by_asc(totp_secrets::Column::Purpose)
            .limit(limit);
        if let Some((user, purpose)) = after {
            let user = user.to_string();
            query = query.filter(
                Condition::any()
                    .add(totp_secrets::Column::UserId.gt(user.clone()))
                    .add(
                        Condition::all()
                            .add(totp_secrets::Column::UserId.eq(user))
                            .add(totp_secrets::Column::Purpose.gt(purpose)),
                    ),
            );
        }
        let rows = query
            .all(&self.db)
            .await
            .map_err(db_error("page TOTP secrets"))?;
        rows.into_iter()
            .map(|row| {
                Ok(StoredSecret {
                    user: user_id(&row.user_id)?,
                    purpose: row.purpose.clone(),
                    sealed: sealed(row),
                })
            })
            .collect()
    }

    async fn reseal(&self, secret: &StoredSecret, new: &Sealed) -> StoreResult<bool> {
        // Conditional on the ciphertext read: a secret replaced meanwhile
        // (re-enrolment, another rotation) is left alone.
        let done = totp_secrets::Entity::update_many()
            .col_expr(totp_secrets::Column::KeyId, Expr::value(new.key_id.clone()))
            .col_expr(totp_secrets::Column::Nonce, Expr::value(new.nonce.clone()))
            .col_expr(
                totp_secrets::Column::Ciphertext,
                Expr::value(new.ciphertext.clone()),
            )
            .filter(totp_secrets::Column::UserId.eq(secret.user.to_string()))
            .filter(totp_secrets::Column::Purpose.eq(secret.purpose.clone()))
            .filter(totp_secrets::Column::Ciphertext.eq(secret.sealed.ciphertext.clone()))
            .exec(&self.db)
            .await
            .map_err(db_error("re-encrypt TOTP secret"))?;
        Ok(done.rows_affected == 1)
    }

    async fn unused_recovery_codes(
        &self,
        user: UserId,
    ) -> StoreResult<Vec<(RecoveryCodeId, String)>> {
        let rows = recovery_codes::Entity::find()
            .filter(recovery_codes::Column::UserId.eq(user.to_string()))
            .filter(recovery_codes::Column::UsedAt.is_null())
            .all(&self.db)
            .await
            .map_err(db_error("read recovery codes"))?;
        rows.into_iter()
            .map(|row| {
                Ok((
                    RecoveryCodeId::parse(&row.id).ok_or_else(|| corrupt("recovery code id"))?,
                    row.code_hash,
                ))
            })
            .collect()
    }

    async fn commit_step_up(
        &self,
        user: UserId,
        proof: Option<&SecondFactorProof>,
        action: &StepUpAction,
        attempt: AttemptId,
        now: OffsetDateTime,
    ) -> Result<u64, CompletionError> {
        let now = ms(now);
        let id = user.to_string();
        let tx = self.begin_write().await?;
        // The password was right: its attempt goes back with the action.
        Self::remove_reservation(&tx, attempt).await?;
        if let Some(proof) = proof {
            Self::spend(&tx, user, proof, now).await?;
        }
        let ended = match action {
            StepUpAction::DisableTotp { keep } => {
                totp_secrets::Entity::delete_many()
                    .filter(totp_secrets::Column::UserId.eq(id.clone()))
                    .exec(&tx)
                    .await
                    .map_err(db_error("delete TOTP secrets"))?;
                Self::put_recovery_codes(&tx, &id, &[], now).await?;
                Self::end_other_sessions(&tx, &id, *keep).await?
            }
            StepUpAction::ReplaceRecoveryCodes { hashes } => {
                Self::put_recovery_codes(&tx, &id, hashes, now).await?;
                0
            }
            StepUpAction::ChangePassword { hash, keep } => {
                users::Entity::update_many()
                    .col_expr(users::Column::PasswordHash, Expr::value(hash.clone()))
                    .col_expr(users::Column::PasswordChangedAt, Expr::value(now))
                    .filter(users::Column::Id.eq(id.clone()))
                    .exec(&tx)
                    .await
                    .map_err(db_error("change password"))?;
                Self::end_other_sessions(&tx, &id, *keep).await?
            }
            StepUpAction::DeleteAccount => {
                let name: Option<String> = users::Entity::find_by_id(id.clone())
                    .select_only()
                    .column(users::Column::Username)
                    .into_tuple()
                    .one(&tx)
                    .await
                    .map_err(db_error("read username"))?;
                let ended = sessions::Entity::find()
                    .filter(sessions::Column::UserId.eq(id.clone()))
                    .count(&tx)
                    .await
                    .map_err(db_error("count sessions"))?;
                // Every per-user row goes with the user (ON DELETE CASCADE).
                users::Entity::delete_by_id(id)
                    .exec(&tx)
                    .await
                    .map_err(db_error("delete user"))?;
                if let Some(name) = name {
                    failure_budgets::Entity::delete_by_id(name)
                        .exec(&tx)
                        .await
                        .map_err(db_error("delete failure budget"))?;
                }
                ended
            }
        };
        Self::commit(tx).await?;
        Ok(ended)
    }
}

#[cfg(test)]
mod tests;
