//! [`MaintenanceStore`]: key rotation and housekeeping.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use time::OffsetDateTime;

use super::{SeaOrmStore, corrupt, db_error, ms, sealed, user_id};
use crate::crypto::keyring::Sealed;
use crate::domain::ids::UserId;
use crate::domain::store::{MaintenanceStore, SecretPurpose, StoreResult, StoredSecret};
use crate::storage::entities::{
    budget_reservations, failure_budgets, login_challenges, sessions, totp_secrets, trusted_devices,
};

impl SeaOrmStore {
    pub(super) async fn delete_ids<E, C>(&self, ids: Vec<String>, column: C) -> StoreResult<u64>
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

impl MaintenanceStore for SeaOrmStore {
    async fn sealed_secrets(
        &self,
        after: Option<(UserId, SecretPurpose)>,
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
                            .add(totp_secrets::Column::Purpose.gt(purpose.as_str())),
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
                    purpose: SecretPurpose::parse(&row.purpose)
                        .ok_or_else(|| corrupt("secret purpose"))?,
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
            .filter(totp_secrets::Column::Purpose.eq(secret.purpose.as_str()))
            .filter(totp_secrets::Column::Ciphertext.eq(secret.sealed.ciphertext.clone()))
            .exec(&self.db)
            .await
            .map_err(db_error("re-encrypt TOTP secret"))?;
        Ok(done.rows_affected == 1)
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
        let devices: Vec<String> = trusted_devices::Entity::find()
            .select_only()
            .column(trusted_devices::Column::Id)
            .filter(trusted_devices::Column::ExpiresAt.lte(now))
            .limit(batch)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_error("find expired devices"))?;
        let mut purged = self
            .delete_ids::<sessions::Entity, _>(sessions, sessions::Column::Id)
            .await?;
        purged += self
            .delete_ids::<trusted_devices::Entity, _>(devices, trusted_devices::Column::Id)
            .await?;
        purged += self
            .delete_ids::<login_challenges::Entity, _>(challenges, login_challenges::Column::Id)
            .await?;
        let pending = totp_secrets::Entity::delete_many()
            .filter(totp_secrets::Column::Purpose.eq(SecretPurpose::Pending.as_str()))
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
}
