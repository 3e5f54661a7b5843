//! [`SecondFactorStore`] over `totp_secrets`, `recovery_codes` and the
//! users' last accepted TOTP step.

use sea_orm::sea_query::{Expr, ExprTrait as _, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, QueryFilter,
    QuerySelect,
};
use time::OffsetDateTime;

use super::{SeaOrmStore, corrupt, db_error, first_row, ms, sealed, step_value};
use crate::crypto::keyring::Sealed;
use crate::domain::ids::{RecoveryCodeId, UserId};
use crate::domain::second_factor::SecondFactorProof;
use crate::domain::store::{
    CompletionError, SecondFactorState, SecondFactorStore, SecretPurpose, StoreResult,
    TotpConfirmation,
};
use crate::storage::entities::{recovery_codes, sessions, totp_secrets, trusted_devices, users};

impl SeaOrmStore {
    /// Spends `step` for `user`: only a step later than the stored one wins.
    pub(super) async fn spend_step(
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
    pub(super) async fn spend(
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
            SecondFactorProof::TrustedDevice(id) => Self::use_device(tx, user, *id, now).await,
        }
    }

    /// Replaces `user`'s recovery codes inside `tx`.
    pub(super) async fn put_recovery_codes(
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
}

impl SecondFactorStore for SeaOrmStore {
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
        // The last step, the unused codes and the live devices in one read:
        // the second step of every two-factor login asks for them. `now` is
        // bound, never written into the SQL: a statement that changes every
        // millisecond misses every connection's statement cache and evicts
        // the hot statements from it.
        let unused = Query::select()
            .expr(Expr::col((recovery_codes::Entity, recovery_codes::Column::Id)).count())
            .from(recovery_codes::Entity)
            .and_where(
                Expr::col((recovery_codes::Entity, recovery_codes::Column::UserId))
                    .equals((users::Entity, users::Column::Id)),
            )
            .and_where(
                Expr::col((recovery_codes::Entity, recovery_codes::Column::UsedAt)).is_null(),
            )
            .to_owned();
        let devices = Query::select()
            .expr(Expr::col((trusted_devices::Entity, trusted_devices::Column::Id)).count())
            .from(trusted_devices::Entity)
            .and_where(
                Expr::col((trusted_devices::Entity, trusted_devices::Column::UserId))
                    .equals((users::Entity, users::Column::Id)),
            )
            .and_where(
                Expr::col((trusted_devices::Entity, trusted_devices::Column::ExpiresAt))
                    .gt(ms(now)),
            )
            .to_owned();
        let (last_step, unused, devices): (Option<i64>, i64, i64) = users::Entity::find_by_id(id)
            .select_only()
            .column(users::Column::TotpLastStep)
            .column_as(Expr::from(unused), "unused")
            .column_as(Expr::from(devices), "devices")
            .into_tuple()
            .all(&self.db)
            .await
            .map(first_row)
            .map_err(db_error("read TOTP step, recovery codes and devices"))?
            .unwrap_or((None, 0, 0));
        let mut state = SecondFactorState {
            last_step: last_step.and_then(|s| u64::try_from(s).ok()),
            unused_recovery_codes: u32::try_from(unused).unwrap_or(u32::MAX),
            trusted_devices: u32::try_from(devices).unwrap_or(u32::MAX),
            ..Default::default()
        };
        for row in secrets {
            match SecretPurpose::parse(&row.purpose) {
                Some(SecretPurpose::Active) => state.active = Some(sealed(row)),
                // A pending secret past its expiry is gone, whether or not
                // housekeeping has deleted it yet.
                Some(SecretPurpose::Pending) if row.expires_at.is_some_and(|e| e > ms(now)) => {
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
            purpose: Set(SecretPurpose::Pending.as_str().to_owned()),
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

    async fn confirm_totp(&self, c: &TotpConfirmation<'_>) -> Result<(), CompletionError> {
        let (user, pending, active, step, upgrade) =
            (c.user, c.pending, c.active, c.step, c.upgrade);
        let id = user.to_string();
        let now = ms(c.now);
        let tx = self.begin_write().await?;
        let taken = totp_secrets::Entity::delete_many()
            .filter(totp_secrets::Column::UserId.eq(id.clone()))
            .filter(totp_secrets::Column::Purpose.eq(SecretPurpose::Pending.as_str()))
            .filter(totp_secrets::Column::Ciphertext.eq(pending.ciphertext.clone()))
            .filter(totp_secrets::Column::ExpiresAt.gt(now))
            .exec(&*tx)
            .await
            .map_err(db_error("take pending secret"))?;
        if taken.rows_affected != 1 {
            return Err(CompletionError::PendingGone);
        }
        Self::spend_step(&tx, user, step).await?;
        let row = totp_secrets::ActiveModel {
            user_id: Set(id.clone()),
            purpose: Set(SecretPurpose::Active.as_str().to_owned()),
            key_id: Set(active.key_id.clone()),
            nonce: Set(active.nonce.clone()),
            ciphertext: Set(active.ciphertext.clone()),
            created_at: Set(now),
            expires_at: Set(None),
        };
        totp_secrets::Entity::insert(row)
            .exec_without_returning(&*tx)
            .await
            .map_err(db_error("store active secret"))?;
        Self::put_recovery_codes(&tx, &id, c.recovery_hashes, now).await?;
        if let Some(upgrade) = upgrade {
            // Scoped to the owner: a session id from elsewhere changes nothing.
            sessions::Entity::update_many()
                .col_expr(sessions::Column::Amr, Expr::value(upgrade.amr.join(",")))
                .filter(sessions::Column::Id.eq(upgrade.session.to_string()))
                .filter(sessions::Column::UserId.eq(id.clone()))
                .exec(&*tx)
                .await
                .map_err(db_error("upgrade session"))?;
        }
        Ok(Self::commit(tx).await?)
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
}
