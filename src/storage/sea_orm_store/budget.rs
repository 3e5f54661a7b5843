//! [`FailureBudgetStore`] over `failure_budgets` (failures and locks) and
//! `budget_reservations` (checks in flight).

use sea_orm::sea_query::{Expr, ExprTrait as _, OnConflict, Query, SelectStatement};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait as _, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, QueryFilter,
};
use time::OffsetDateTime;

use super::{SeaOrmStore, db_error, first_row, from_ms, ms};
use crate::domain::ids::AttemptId;
use crate::domain::store::{
    BudgetGate, ChallengeTry, FailureBudgetStore, LockRule, Refusal, Reservation, StoreResult,
};
use crate::domain::username::Username;
use crate::storage::entities::{budget_reservations, failure_budgets, login_challenges};

impl SeaOrmStore {
    /// Removes a budget reservation inside `tx` (settled, or given back).
    pub(super) async fn remove_reservation(
        tx: &DatabaseTransaction,
        attempt: AttemptId,
    ) -> StoreResult<()> {
        budget_reservations::Entity::delete_by_id(attempt.to_string())
            .exec(tx)
            .await
            .map_err(db_error("remove budget reservation"))?;
        Ok(())
    }

    /// Makes sure `name` has a budget row and locks it for the rest of `tx`
    /// (an upsert takes the row lock on PostgreSQL), so every decision on
    /// one name's budget is taken by one transaction at a time.
    pub(super) async fn lock_budget(
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
            // RETURNING: the row as locked, in the same round trip.
            .exec_with_returning(tx)
            .await
            .map_err(db_error("lock failure budget"))
    }
}

impl SeaOrmStore {
    /// What a reservation checks, inside `tx`: takes the challenge's try
    /// (when there is one), then locks the budget and answers whether one
    /// more check may be judged. On a refusal the caller rolls back, which
    /// gives the try back. Returns the locked budget row.
    pub(super) async fn check_gate(
        tx: &DatabaseTransaction,
        name: &Username,
        challenge: Option<ChallengeTry>,
        now: i64,
        threshold: u32,
    ) -> StoreResult<Result<failure_budgets::Model, Refusal>> {
        // The challenge's try first, then the budget: every transaction that
        // touches both takes them in this order (complete_login does too),
        // so PostgreSQL never sees a lock cycle.
        if let Some(try_) = challenge {
            let max = i32::try_from(try_.max_failures).unwrap_or(i32::MAX);
            let taken = login_challenges::Entity::update_many()
                .col_expr(
                    login_challenges::Column::FailedAttempts,
                    Expr::col(login_challenges::Column::FailedAttempts).add(1),
                )
                .filter(login_challenges::Column::Id.eq(try_.challenge.to_string()))
                .filter(login_challenges::Column::FailedAttempts.lt(max))
                .filter(login_challenges::Column::ExpiresAt.gt(now))
                .exec(tx)
                .await
                .map_err(db_error("take a challenge try"))?;
            if taken.rows_affected != 1 {
                return Ok(Err(Refusal::ChallengeGone));
            }
        }
        let budget = Self::lock_budget(tx, name, now).await?;
        let pending = Self::pending_checks(tx, name, now).await?;
        Ok(judge(
            budget.failures,
            budget.locked_until,
            pending,
            now,
            threshold,
        )
        .map(|()| budget))
    }

    /// `SELECT COUNT(id)` of the checks in flight on `name`: its live
    /// reservations. Run alone or as a subquery.
    fn pending_count(name: &Username, now: i64) -> SelectStatement {
        Query::select()
            .expr(Expr::col((budget_reservations::Entity, budget_reservations::Column::Id)).count())
            .from(budget_reservations::Entity)
            .and_where(
                Expr::col((
                    budget_reservations::Entity,
                    budget_reservations::Column::Name,
                ))
                .eq(name.as_str()),
            )
            .and_where(
                Expr::col((
                    budget_reservations::Entity,
                    budget_reservations::Column::LeaseUntil,
                ))
                .gt(now),
            )
            .to_owned()
    }

    /// The checks in flight on `name`, read inside `tx`.
    async fn pending_checks(
        tx: &DatabaseTransaction,
        name: &Username,
        now: i64,
    ) -> StoreResult<i64> {
        let count = Self::pending_count(name, now);
        let row = tx
            .query_one_raw(tx.get_database_backend().build(&count))
            .await
            .map_err(db_error("count budget reservations"))?;
        match row {
            Some(row) => row
                .try_get_by_index::<i64>(0)
                .map_err(db_error("count budget reservations")),
            None => Ok(0),
        }
    }

    /// The gate of a right answer judged without a reservation, inside
    /// `tx`: the budget must let one more check through, and the completed
    /// login resets it, so the budget row is deleted and returned in one
    /// statement (a refusal rolls the delete back). Its row lock orders this
    /// against every other decision on the name, as the upsert does.
    ///
    /// The checks in flight are counted after the lock is held. On SQLite,
    /// whose writers take turns, in the same statement; on PostgreSQL in
    /// the next one: a subquery of the DELETE would read the snapshot taken
    /// before it waited for the lock, missing a reservation committed
    /// meanwhile.
    pub(super) async fn pass_gate_resetting(
        tx: &DatabaseTransaction,
        name: &Username,
        now: i64,
        threshold: u32,
    ) -> StoreResult<Result<(), Refusal>> {
        let backend = tx.get_database_backend();
        let same_statement = backend == DbBackend::Sqlite;
        let mut returned = vec![
            Expr::col(failure_budgets::Column::Failures),
            Expr::col(failure_budgets::Column::LockedUntil),
        ];
        if same_statement {
            returned.push(Expr::from(Self::pending_count(name, now)));
        }
        let reset = Query::delete()
            .from_table(failure_budgets::Entity)
            .and_where(failure_budgets::Column::Name.eq(name.as_str()))
            .returning(Query::returning().exprs(returned))
            .to_owned();
        let row = tx
            .query_one_raw(backend.build(&reset))
            .await
            .map_err(db_error("reset failure budget"))?;
        let read = |e: DbErr| db_error("read failure budget")(e);
        let (failures, locked_until, pending) = match row {
            Some(row) => (
                row.try_get_by_index::<i32>(0).map_err(read)?,
                row.try_get_by_index::<Option<i64>>(1).map_err(read)?,
                if same_statement {
                    Some(row.try_get_by_index::<i64>(2).map_err(read)?)
                } else {
                    None
                },
            ),
            // No row: nothing to reset, yet checks may be in flight.
            None => (0, None, None),
        };
        let pending = match pending {
            Some(pending) => pending,
            None => Self::pending_checks(tx, name, now).await?,
        };
        Ok(judge(failures, locked_until, pending, now, threshold))
    }

    /// Counts one failure on the locked `budget` row inside `tx`, locking
    /// the name per `rule` when the budget is spent; returns the new lock's
    /// end, if this failure set one.
    async fn count_failure(
        tx: &DatabaseTransaction,
        budget: &failure_budgets::Model,
        now: OffsetDateTime,
        rule: LockRule,
    ) -> StoreResult<Option<OffsetDateTime>> {
        let threshold = i32::try_from(rule.threshold).unwrap_or(i32::MAX);
        let failures = budget.failures.saturating_add(1);
        let mut update = failure_budgets::Entity::update_many()
            .col_expr(failure_budgets::Column::UpdatedAt, Expr::value(ms(now)))
            .filter(failure_budgets::Column::Name.eq(budget.name.clone()));
        let locked_until = if failures >= threshold {
            let length = rule.lock_length(budget.lock_level);
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
                    Expr::value(rule.next_level(budget.lock_level)),
                );
            Some(until)
        } else {
            update = update.col_expr(failure_budgets::Column::Failures, Expr::value(failures));
            None
        };
        update.exec(tx).await.map_err(db_error("record failure"))?;
        Ok(locked_until)
    }
}

impl FailureBudgetStore for SeaOrmStore {
    async fn reserve_attempt(
        &self,
        name: &Username,
        attempt: AttemptId,
        challenge: Option<ChallengeTry>,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        threshold: u32,
    ) -> StoreResult<Reservation> {
        let now = ms(now);
        let tx = self.begin_write().await?;
        if let Err(refusal) = Self::check_gate(&tx, name, challenge, now, threshold).await? {
            Self::abandon(tx).await?;
            return Ok(match refusal {
                Refusal::Busy => Reservation::Busy,
                Refusal::ChallengeGone => Reservation::ChallengeGone,
                Refusal::Locked { until } => Reservation::Locked { until },
            });
        }
        let row = budget_reservations::ActiveModel {
            id: Set(attempt.to_string()),
            name: Set(name.as_str().to_owned()),
            lease_until: Set(ms(lease_until)),
            created_at: Set(now),
            challenge_id: Set(challenge.map(|c| c.challenge.to_string())),
        };
        budget_reservations::Entity::insert(row)
            .exec_without_returning(&*tx)
            .await
            .map_err(db_error("reserve attempt"))?;
        Self::commit(tx).await?;
        Ok(Reservation::Granted)
    }

    async fn release_attempt(&self, attempt: AttemptId) -> StoreResult<()> {
        let tx = self.begin_write().await?;
        let Some(reservation) = budget_reservations::Entity::find_by_id(attempt.to_string())
            .all(&*tx)
            .await
            .map(first_row)
            .map_err(db_error("read budget reservation"))?
        else {
            // Settled already, or leased out and swept.
            return Self::abandon(tx).await;
        };
        let released = budget_reservations::Entity::delete_by_id(attempt.to_string())
            .exec(&*tx)
            .await
            .map_err(db_error("release budget reservation"))?;
        // The check was never judged: its challenge try goes back, once.
        if let Some(challenge) = reservation
            .challenge_id
            .filter(|_| released.rows_affected == 1)
        {
            login_challenges::Entity::update_many()
                .col_expr(
                    login_challenges::Column::FailedAttempts,
                    Expr::col(login_challenges::Column::FailedAttempts).sub(1),
                )
                .filter(login_challenges::Column::Id.eq(challenge))
                .filter(login_challenges::Column::FailedAttempts.gt(0))
                .exec(&*tx)
                .await
                .map_err(db_error("give back a challenge try"))?;
        }
        Self::commit(tx).await
    }

    async fn record_failure(
        &self,
        attempt: AttemptId,
        name: &Username,
        now: OffsetDateTime,
        rule: LockRule,
    ) -> StoreResult<Option<OffsetDateTime>> {
        let tx = self.begin_write().await?;
        let budget = Self::lock_budget(&tx, name, ms(now)).await?;
        Self::remove_reservation(&tx, attempt).await?;
        let locked_until = Self::count_failure(&tx, &budget, now, rule).await?;
        Self::commit(tx).await?;
        Ok(locked_until)
    }

    async fn record_gated_failure(
        &self,
        name: &Username,
        gate: BudgetGate,
        now: OffsetDateTime,
        rule: LockRule,
    ) -> StoreResult<Result<Option<OffsetDateTime>, Refusal>> {
        let tx = self.begin_write().await?;
        let budget =
            match Self::check_gate(&tx, name, gate.challenge, ms(now), gate.threshold).await? {
                Ok(budget) => budget,
                Err(refusal) => {
                    Self::abandon(tx).await?;
                    return Ok(Err(refusal));
                }
            };
        // The challenge try the gate took stays spent, as a judged
        // reservation's does.
        let locked_until = Self::count_failure(&tx, &budget, now, rule).await?;
        Self::commit(tx).await?;
        Ok(Ok(locked_until))
    }

    async fn locked_until(
        &self,
        name: &Username,
        now: OffsetDateTime,
    ) -> StoreResult<Option<OffsetDateTime>> {
        let now = ms(now);
        Ok(
            failure_budgets::Entity::find_by_id(name.as_str().to_owned())
                .all(&self.db)
                .await
                .map(first_row)
                .map_err(db_error("read failure budget"))?
                .and_then(|b| b.locked_until)
                .filter(|until| *until > now)
                .map(from_ms),
        )
    }
}

/// Whether a budget of `failures` (locked until `locked_until`) lets one
/// more check through beside `pending` checks in flight.
fn judge(
    failures: i32,
    locked_until: Option<i64>,
    pending: i64,
    now: i64,
    threshold: u32,
) -> Result<(), Refusal> {
    if let Some(until) = locked_until.filter(|until| *until > now) {
        return Err(Refusal::Locked {
            until: from_ms(until),
        });
    }
    // Stored failures stay below the threshold (reaching it locks and
    // steps back by one); clamping covers rows written under a higher
    // threshold or by older versions, so an unlocked name is never
    // refused for good: only checks in flight can make it busy.
    let threshold = i64::from(threshold);
    let failures = i64::from(failures).clamp(0, threshold - 1);
    if failures.saturating_add(pending) >= threshold {
        return Err(Refusal::Busy);
    }
    Ok(())
}
