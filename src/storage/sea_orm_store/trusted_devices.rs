//! [`TrustedDeviceStore`] over `trusted_devices`, and the steps the session
//! and step-up transactions take on it: remembering a device (with the
//! per-user cap), spending one at Login, and revoking them all.
//!
//! A revoked device's row is deleted; "live" is `expires_at > now`.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use time::OffsetDateTime;

use super::{SeaOrmStore, corrupt, db_error, first_row, ms, user_id};
use crate::crypto::tokens::TokenHash;
use crate::domain::ids::{TrustedDeviceId, UserId};
use crate::domain::store::{
    CompletionError, NewTrustedDevice, StoreResult, TrustedDeviceRecord, TrustedDeviceStore,
};
use crate::storage::entities::trusted_devices;

impl SeaOrmStore {
    /// Stores `device` for `user` inside `tx`, then ends the user's oldest
    /// live devices beyond its cap (never the new one, even when several
    /// share its creation time) and any expired ones. The caller holds the
    /// user's row lock, so concurrent remembers stay within the cap.
    pub(super) async fn remember_device(
        tx: &DatabaseTransaction,
        user: &str,
        device: &NewTrustedDevice,
        now: i64,
    ) -> StoreResult<()> {
        let new_id = device.id.to_string();
        let row = trusted_devices::ActiveModel {
            id: Set(new_id.clone()),
            user_id: Set(user.to_owned()),
            token_hash: Set(device.token_hash.0.to_vec()),
            created_at: Set(now),
            expires_at: Set(ms(device.expires_at)),
            last_used_at: Set(None),
        };
        trusted_devices::Entity::insert(row)
            .exec_without_returning(tx)
            .await
            .map_err(db_error("remember device"))?;
        let keep_others = device.max_per_user.saturating_sub(1);
        let excess: Vec<String> = trusted_devices::Entity::find()
            .select_only()
            .column(trusted_devices::Column::Id)
            .filter(trusted_devices::Column::UserId.eq(user))
            .filter(trusted_devices::Column::Id.ne(new_id))
            .filter(trusted_devices::Column::ExpiresAt.gt(now))
            .order_by_desc(trusted_devices::Column::CreatedAt)
            .order_by_desc(trusted_devices::Column::Id)
            .offset(u64::from(keep_others))
            .limit(1000)
            .into_tuple()
            .all(tx)
            .await
            .map_err(db_error("find excess devices"))?;
        if !excess.is_empty() {
            trusted_devices::Entity::delete_many()
                .filter(trusted_devices::Column::Id.is_in(excess))
                .exec(tx)
                .await
                .map_err(db_error("end excess devices"))?;
        }
        trusted_devices::Entity::delete_many()
            .filter(trusted_devices::Column::UserId.eq(user))
            .filter(trusted_devices::Column::ExpiresAt.lte(now))
            .exec(tx)
            .await
            .map_err(db_error("drop expired devices"))?;
        Ok(())
    }

    /// Spends a device proof inside `tx`: the device must still be live
    /// and `user`'s; records its use. Not single-use, so concurrent logins
    /// with one device all pass.
    pub(super) async fn use_device(
        tx: &DatabaseTransaction,
        user: UserId,
        device: TrustedDeviceId,
        now: i64,
    ) -> Result<(), CompletionError> {
        let used = trusted_devices::Entity::update_many()
            .col_expr(trusted_devices::Column::LastUsedAt, Expr::value(now))
            .filter(trusted_devices::Column::Id.eq(device.to_string()))
            .filter(trusted_devices::Column::UserId.eq(user.to_string()))
            .filter(trusted_devices::Column::ExpiresAt.gt(now))
            .exec(tx)
            .await
            .map_err(db_error("use trusted device"))?;
        if used.rows_affected == 1 {
            Ok(())
        } else {
            Err(CompletionError::DeviceGone)
        }
    }

    /// Revokes every device of `user` inside `tx`; returns how many were
    /// live. For the step-up effect and for admin actions (DisableUser,
    /// ResetSecondFactors) that run in a transaction of their own.
    pub(super) async fn revoke_devices(
        tx: &DatabaseTransaction,
        user: &str,
        now: i64,
    ) -> StoreResult<u64> {
        let live = trusted_devices::Entity::delete_many()
            .filter(trusted_devices::Column::UserId.eq(user))
            .filter(trusted_devices::Column::ExpiresAt.gt(now))
            .exec(tx)
            .await
            .map_err(db_error("revoke devices"))?;
        trusted_devices::Entity::delete_many()
            .filter(trusted_devices::Column::UserId.eq(user))
            .exec(tx)
            .await
            .map_err(db_error("drop expired devices"))?;
        Ok(live.rows_affected)
    }

    /// Live devices of `user` (for tests of the cap).
    #[cfg(test)]
    pub(super) async fn live_devices(&self, user: UserId, now: i64) -> StoreResult<u64> {
        use sea_orm::PaginatorTrait as _;
        trusted_devices::Entity::find()
            .filter(trusted_devices::Column::UserId.eq(user.to_string()))
            .filter(trusted_devices::Column::ExpiresAt.gt(now))
            .count(&self.db)
            .await
            .map_err(db_error("count devices"))
    }
}

impl TrustedDeviceStore for SeaOrmStore {
    async fn trusted_device_by_hash(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<TrustedDeviceRecord>> {
        let found: Option<(String, String)> = trusted_devices::Entity::find()
            .select_only()
            .column(trusted_devices::Column::Id)
            .column(trusted_devices::Column::UserId)
            .filter(trusted_devices::Column::TokenHash.eq(hash.0.to_vec()))
            .filter(trusted_devices::Column::ExpiresAt.gt(ms(now)))
            .into_tuple()
            .all(&self.db)
            .await
            .map(first_row)
            .map_err(db_error("find trusted device"))?;
        found
            .map(|(id, user)| {
                Ok(TrustedDeviceRecord {
                    id: TrustedDeviceId::parse(&id).ok_or_else(|| corrupt("device id"))?,
                    user_id: user_id(&user)?,
                })
            })
            .transpose()
    }

    async fn revoke_trusted_devices(&self, user: UserId, now: OffsetDateTime) -> StoreResult<u64> {
        let tx = self.begin_write().await?;
        let revoked = Self::revoke_devices(&tx, &user.to_string(), ms(now)).await?;
        Self::commit(tx).await?;
        Ok(revoked)
    }
}
