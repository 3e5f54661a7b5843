//! [`StepUpStore`]: applies the effects the domain chose, in one
//! transaction with the proof.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
};
use time::OffsetDateTime;

use super::{SeaOrmStore, db_error, first_row, ms};
use crate::domain::ids::{AttemptId, UserId};
use crate::domain::second_factor::SecondFactorProof;
use crate::domain::store::{
    CompletionError, StepUpApplied, StepUpEffect, StepUpStore, StoreResult,
};
use crate::storage::entities::{failure_budgets, sessions, totp_secrets, users};

impl SeaOrmStore {
    /// Applies one effect inside `tx`; returns what it ended.
    async fn apply(
        tx: &DatabaseTransaction,
        id: &str,
        effect: &StepUpEffect,
        now: i64,
    ) -> StoreResult<StepUpApplied> {
        let sessions_ended = match effect {
            StepUpEffect::DeleteTotpSecrets => {
                totp_secrets::Entity::delete_many()
                    .filter(totp_secrets::Column::UserId.eq(id))
                    .exec(tx)
                    .await
                    .map_err(db_error("delete TOTP secrets"))?;
                0
            }
            StepUpEffect::ReplaceRecoveryCodes(hashes) => {
                Self::put_recovery_codes(tx, id, hashes, now).await?;
                0
            }
            StepUpEffect::RevokeTrustedDevices => {
                return Ok(StepUpApplied {
                    sessions_ended: 0,
                    devices_revoked: Self::revoke_devices(tx, id, now).await?,
                });
            }
            StepUpEffect::SetPasswordHash(hash) => {
                users::Entity::update_many()
                    .col_expr(users::Column::PasswordHash, Expr::value(hash.clone()))
                    .col_expr(users::Column::PasswordChangedAt, Expr::value(now))
                    .filter(users::Column::Id.eq(id))
                    .exec(tx)
                    .await
                    .map_err(db_error("change password"))?;
                0
            }
            StepUpEffect::EndOtherSessions { keep } => {
                Self::end_other_sessions(tx, id, *keep).await?
            }
            StepUpEffect::DeleteAccount => {
                let name: Option<String> = users::Entity::find_by_id(id.to_owned())
                    .select_only()
                    .column(users::Column::Username)
                    .into_tuple()
                    .all(tx)
                    .await
                    .map(first_row)
                    .map_err(db_error("read username"))?;
                let ended = sessions::Entity::find()
                    .filter(sessions::Column::UserId.eq(id))
                    .count(tx)
                    .await
                    .map_err(db_error("count sessions"))?;
                // Every per-user row goes with the user (ON DELETE CASCADE).
                users::Entity::delete_by_id(id.to_owned())
                    .exec(tx)
                    .await
                    .map_err(db_error("delete user"))?;
                if let Some(name) = name {
                    failure_budgets::Entity::delete_by_id(name)
                        .exec(tx)
                        .await
                        .map_err(db_error("delete failure budget"))?;
                }
                ended
            }
        };
        Ok(StepUpApplied {
            sessions_ended,
            devices_revoked: 0,
        })
    }
}

impl StepUpStore for SeaOrmStore {
    async fn commit_step_up(
        &self,
        user: UserId,
        proof: Option<&SecondFactorProof>,
        effects: &[StepUpEffect],
        attempt: AttemptId,
        now: OffsetDateTime,
    ) -> Result<StepUpApplied, CompletionError> {
        let now = ms(now);
        let id = user.to_string();
        let tx = self.begin_write().await?;
        // The password was right: its attempt goes back with the effects.
        Self::remove_reservation(&tx, attempt).await?;
        if let Some(proof) = proof {
            Self::spend(&tx, user, proof, now).await?;
        }
        let mut total = StepUpApplied::default();
        for effect in effects {
            let applied = Self::apply(&tx, &id, effect, now).await?;
            total.sessions_ended += applied.sessions_ended;
            total.devices_revoked += applied.devices_revoked;
        }
        Self::commit(tx).await?;
        Ok(total)
    }
}
