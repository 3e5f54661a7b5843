//! [`AdminStore`]: accounts with their facts, read a page at a time with a
//! fixed number of queries, and the effects of admin actions, applied in
//! one transaction.

use std::collections::{HashMap, HashSet};

use sea_orm::sea_query::{Expr, ExprTrait as _, LikeExpr};
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};

use super::{SeaOrmStore, amr_from_column, corrupt, db_error, first_row, from_ms, ms, user_id};
use crate::domain::ids::{SessionId, UserId};
use crate::domain::store::{
    AccountEffect, AccountRecord, AdminStore, LiveWindow, SecretPurpose, SessionDetails,
    StoreResult,
};
use crate::domain::username::Username;
use crate::storage::entities::{
    failure_budgets, recovery_codes, sessions, totp_secrets, trusted_devices, users,
};

/// `s` with the `LIKE` wildcards and the escape character escaped.
fn like_prefix(s: &str) -> String {
    let mut pattern = String::with_capacity(s.len() + 1);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// `(key, count)` rows as a map.
fn counts(rows: Vec<(String, i64)>) -> HashMap<String, u32> {
    rows.into_iter()
        .map(|(k, n)| (k, u32::try_from(n).unwrap_or(u32::MAX)))
        .collect()
}

impl SeaOrmStore {
    /// The rows of `query` with each account's facts, in the query's order:
    /// five grouped reads for the whole page, not five per account.
    async fn with_facts(
        &self,
        query: Select<users::Entity>,
        live: LiveWindow,
    ) -> StoreResult<Vec<AccountRecord>> {
        let rows = query.all(&self.db).await.map_err(db_error("read users"))?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let names: Vec<String> = rows.iter().map(|r| r.username.clone()).collect();
        let totp: HashSet<String> = totp_secrets::Entity::find()
            .select_only()
            .column(totp_secrets::Column::UserId)
            .filter(totp_secrets::Column::UserId.is_in(ids.clone()))
            .filter(totp_secrets::Column::Purpose.eq(SecretPurpose::Active.as_str()))
            .into_tuple::<String>()
            .all(&self.db)
            .await
            .map_err(db_error("read TOTP state"))?
            .into_iter()
            .collect();
        let codes = counts(
            recovery_codes::Entity::find()
                .select_only()
                .column(recovery_codes::Column::UserId)
                .column_as(Expr::col(recovery_codes::Column::Id).count(), "n")
                .filter(recovery_codes::Column::UserId.is_in(ids.clone()))
                .filter(recovery_codes::Column::UsedAt.is_null())
                .group_by(recovery_codes::Column::UserId)
                .into_tuple()
                .all(&self.db)
                .await
                .map_err(db_error("count recovery codes"))?,
        );
        let sessions = counts(
            sessions::Entity::find()
                .select_only()
                .column(sessions::Column::UserId)
                .column_as(Expr::col(sessions::Column::Id).count(), "n")
                .filter(sessions::Column::UserId.is_in(ids.clone()))
                .filter(sessions::Column::ExpiresAt.gt(ms(live.now)))
                .filter(sessions::Column::LastUsedAt.gt(ms(live.idle_before)))
                .group_by(sessions::Column::UserId)
                .into_tuple()
                .all(&self.db)
                .await
                .map_err(db_error("count live sessions"))?,
        );
        let devices = counts(
            trusted_devices::Entity::find()
                .select_only()
                .column(trusted_devices::Column::UserId)
                .column_as(Expr::col(trusted_devices::Column::Id).count(), "n")
                .filter(trusted_devices::Column::UserId.is_in(ids))
                .filter(trusted_devices::Column::ExpiresAt.gt(ms(live.now)))
                .group_by(trusted_devices::Column::UserId)
                .into_tuple()
                .all(&self.db)
                .await
                .map_err(db_error("count trusted devices"))?,
        );
        let locks: HashMap<String, i64> = failure_budgets::Entity::find()
            .select_only()
            .column(failure_budgets::Column::Name)
            .column(failure_budgets::Column::LockedUntil)
            .filter(failure_budgets::Column::Name.is_in(names))
            .filter(failure_budgets::Column::LockedUntil.gt(ms(live.now)))
            .into_tuple::<(String, i64)>()
            .all(&self.db)
            .await
            .map_err(db_error("read locks"))?
            .into_iter()
            .collect();
        rows.into_iter()
            .map(|row| {
                Ok(AccountRecord {
                    id: user_id(&row.id)?,
                    totp_enabled: totp.contains(&row.id),
                    remaining_recovery_codes: codes.get(&row.id).copied().unwrap_or(0),
                    live_sessions: sessions.get(&row.id).copied().unwrap_or(0),
                    trusted_devices: devices.get(&row.id).copied().unwrap_or(0),
                    locked_until: locks.get(&row.username).copied().map(from_ms),
                    created_at: from_ms(row.created_at),
                    disabled_at: row.disabled_at.map(from_ms),
                    last_login_at: row.last_login_at.map(from_ms),
                    username: Username::from_canonical(row.username),
                })
            })
            .collect()
    }

    /// Applies one effect inside `tx`; returns how many sessions it ended.
    async fn apply_account_effect(
        tx: &DatabaseTransaction,
        id: &str,
        name: &str,
        effect: AccountEffect,
    ) -> StoreResult<u64> {
        match effect {
            AccountEffect::Disable(at) => {
                users::Entity::update_many()
                    .col_expr(users::Column::DisabledAt, Expr::value(ms(at)))
                    .filter(users::Column::Id.eq(id))
                    .filter(users::Column::DisabledAt.is_null())
                    .exec(tx)
                    .await
                    .map_err(db_error("disable user"))?;
            }
            AccountEffect::Enable => {
                users::Entity::update_many()
                    .col_expr(users::Column::DisabledAt, Expr::value(None::<i64>))
                    .filter(users::Column::Id.eq(id))
                    .exec(tx)
                    .await
                    .map_err(db_error("enable user"))?;
            }
            AccountEffect::EndSessions => {
                let ended = sessions::Entity::delete_many()
                    .filter(sessions::Column::UserId.eq(id))
                    .exec(tx)
                    .await
                    .map_err(db_error("end sessions"))?;
                return Ok(ended.rows_affected);
            }
            AccountEffect::EndChallenges => Self::end_challenges(tx, id).await?,
            AccountEffect::DeleteSecondFactors => {
                totp_secrets::Entity::delete_many()
                    .filter(totp_secrets::Column::UserId.eq(id))
                    .exec(tx)
                    .await
                    .map_err(db_error("delete TOTP secrets"))?;
                recovery_codes::Entity::delete_many()
                    .filter(recovery_codes::Column::UserId.eq(id))
                    .exec(tx)
                    .await
                    .map_err(db_error("delete recovery codes"))?;
            }
            AccountEffect::RevokeTrustedDevices(at) => {
                Self::revoke_devices(tx, id, ms(at)).await?;
            }
            AccountEffect::ClearFailureBudget => {
                failure_budgets::Entity::delete_by_id(name.to_owned())
                    .exec(tx)
                    .await
                    .map_err(db_error("clear failure budget"))?;
            }
        }
        Ok(0)
    }
}

impl AdminStore for SeaOrmStore {
    async fn account(&self, id: UserId, live: LiveWindow) -> StoreResult<Option<AccountRecord>> {
        let query = users::Entity::find_by_id(id.to_string());
        Ok(self.with_facts(query, live).await?.pop())
    }

    async fn account_by_name(
        &self,
        name: &Username,
        live: LiveWindow,
    ) -> StoreResult<Option<AccountRecord>> {
        let query = users::Entity::find().filter(users::Column::Username.eq(name.as_str()));
        Ok(self.with_facts(query, live).await?.pop())
    }

    async fn list_accounts(
        &self,
        after: Option<&Username>,
        prefix: &str,
        limit: u32,
        live: LiveWindow,
    ) -> StoreResult<Vec<AccountRecord>> {
        // Keyset paging on the unique name: accounts added meanwhile land
        // in their place without shifting the rest, so a walk through the
        // pages neither repeats nor skips anyone who existed throughout.
        let mut query = users::Entity::find()
            .order_by_asc(users::Column::Username)
            .limit(u64::from(limit));
        if let Some(after) = after {
            query = query.filter(users::Column::Username.gt(after.as_str()));
        }
        if !prefix.is_empty() {
            query = query.filter(
                Expr::col(users::Column::Username)
                    .like(LikeExpr::new(like_prefix(prefix)).escape('\\')),
            );
        }
        self.with_facts(query, live).await
    }

    async fn apply_account_effects(
        &self,
        id: UserId,
        effects: &[AccountEffect],
    ) -> StoreResult<Option<u64>> {
        let id = id.to_string();
        let tx = self.begin_write().await?;
        // Lock the row first (a no-op write): the effects then apply to one
        // account state, serialised with logins completing for it, which
        // lock the same row (see `lock_user`).
        let locked = users::Entity::update_many()
            .col_expr(
                users::Column::PasswordChangedAt,
                Expr::col(users::Column::PasswordChangedAt),
            )
            .filter(users::Column::Id.eq(id.clone()))
            .exec(&*tx)
            .await
            .map_err(db_error("lock user"))?;
        if locked.rows_affected != 1 {
            Self::abandon(tx).await?;
            return Ok(None);
        }
        let name: String = users::Entity::find_by_id(id.clone())
            .select_only()
            .column(users::Column::Username)
            .into_tuple()
            .all(&*tx)
            .await
            .map(first_row)
            .map_err(db_error("read username"))?
            .ok_or_else(|| corrupt("user vanished under its lock"))?;
        let mut ended = 0;
        for effect in effects {
            ended += Self::apply_account_effect(&tx, &id, &name, *effect).await?;
        }
        Self::commit(tx).await?;
        Ok(Some(ended))
    }

    async fn live_sessions(
        &self,
        id: UserId,
        live: LiveWindow,
    ) -> StoreResult<Vec<SessionDetails>> {
        let rows = sessions::Entity::find()
            .filter(sessions::Column::UserId.eq(id.to_string()))
            .filter(sessions::Column::ExpiresAt.gt(ms(live.now)))
            .filter(sessions::Column::LastUsedAt.gt(ms(live.idle_before)))
            .order_by_desc(sessions::Column::CreatedAt)
            .order_by_desc(sessions::Column::Id)
            .all(&self.db)
            .await
            .map_err(db_error("list sessions"))?;
        rows.into_iter()
            .map(|row| {
                Ok(SessionDetails {
                    id: SessionId::parse(&row.id).ok_or_else(|| corrupt("session id"))?,
                    created_at: from_ms(row.created_at),
                    last_used_at: from_ms(row.last_used_at),
                    expires_at: from_ms(row.expires_at),
                    authenticated_at: from_ms(row.authenticated_at),
                    amr: amr_from_column(&row.amr),
                    client_address: row.client_address,
                    user_agent: row.user_agent,
                })
            })
            .collect()
    }

    async fn end_session(&self, id: SessionId) -> StoreResult<Option<UserId>> {
        let tx = self.begin_write().await?;
        let owner: Option<String> = sessions::Entity::find_by_id(id.to_string())
            .select_only()
            .column(sessions::Column::UserId)
            .into_tuple()
            .all(&*tx)
            .await
            .map(first_row)
            .map_err(db_error("find session"))?;
        let Some(owner) = owner else {
            Self::abandon(tx).await?;
            return Ok(None);
        };
        let ended = sessions::Entity::delete_by_id(id.to_string())
            .exec(&*tx)
            .await
            .map_err(db_error("end session"))?;
        Self::commit(tx).await?;
        (ended.rows_affected == 1)
            .then(|| user_id(&owner))
            .transpose()
    }
}
