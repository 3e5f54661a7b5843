//! [`UserStore`] over the `users` table.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, QueryFilter,
};

use super::{SeaOrmStore, db_error, first_row, ms, step_value};
use crate::domain::ids::UserId;
use crate::domain::store::{CompletionError, StoreResult, UserRecord, UserStore};
use crate::domain::username::Username;
use crate::storage::entities::users;

impl SeaOrmStore {
    pub(super) async fn username_of(&self, id: &str) -> StoreResult<Option<users::Model>> {
        users::Entity::find_by_id(id.to_owned())
            .filter(users::Column::DisabledAt.is_null())
            .all(&self.db)
            .await
            .map(first_row)
            .map_err(db_error("find user"))
    }

    /// Locks `user`'s row for the rest of `tx` and records a login, only
    /// while the account is enabled and, when given, its password hash is
    /// still `verified_hash`. Taking the row lock first serialises one
    /// user's completions on PostgreSQL (SQLite's `BEGIN IMMEDIATE` already
    /// serialises writers), so the session cap holds under concurrency.
    /// With `spend_step`, the same UPDATE spends that TOTP step (only a
    /// step later than the stored one), answering `StepUsed` if it was not.
    pub(super) async fn lock_user(
        tx: &DatabaseTransaction,
        user: &str,
        verified_hash: Option<&str>,
        spend_step: Option<u64>,
        now: i64,
    ) -> Result<(), CompletionError> {
        let lock = |step: Option<u64>| {
            let mut update = users::Entity::update_many()
                .col_expr(users::Column::LastLoginAt, Expr::value(now))
                .filter(users::Column::Id.eq(user))
                .filter(users::Column::DisabledAt.is_null());
            if let Some(hash) = verified_hash {
                update = update.filter(users::Column::PasswordHash.eq(hash));
            }
            if let Some(step) = step.map(step_value) {
                // Only a step later than the stored one is spent.
                update = update
                    .col_expr(users::Column::TotpLastStep, Expr::value(step))
                    .filter(
                        Condition::any()
                            .add(users::Column::TotpLastStep.is_null())
                            .add(users::Column::TotpLastStep.lt(step)),
                    );
            }
            update
        };
        let locked = lock(spend_step)
            .exec(tx)
            .await
            .map_err(db_error("lock user"))?;
        if locked.rows_affected == 1 {
            return Ok(());
        }
        // Nothing matched: the step was spent, or the credentials changed.
        // Asking again without the step tells which (the rare path).
        if spend_step.is_some() {
            let locked = lock(None).exec(tx).await.map_err(db_error("lock user"))?;
            if locked.rows_affected == 1 {
                return Err(CompletionError::StepUsed);
            }
        }
        Err(CompletionError::CredentialsChanged)
    }
}

impl UserStore for SeaOrmStore {
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
            .all(&self.db)
            .await
            .map(first_row)
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
}
