//! [`SessionStore`] over `sessions`: every completed login ends here.

use sea_orm::sea_query::{Expr, ExprTrait as _, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, FromQueryResult, JoinType,
    QueryFilter, QuerySelect,
};
use time::OffsetDateTime;

use super::{SeaOrmStore, amr_from_column, corrupt, db_error, first_row, from_ms, ms, user_id};
use crate::crypto::tokens::TokenHash;
use crate::domain::ids::SessionId;
use crate::domain::second_factor::SecondFactorProof;
use crate::domain::store::{
    CompletionError, LoginProof, NewSession, Refusal, SecretPurpose, SessionRecord, SessionStore,
    SettledAttempt, StoreResult,
};
use crate::domain::username::Username;
use crate::storage::entities::{failure_budgets, login_challenges, sessions, totp_secrets, users};

/// A session row with its owner's name, read in one query.
#[derive(Debug, FromQueryResult)]
struct SessionWithOwner {
    id: String,
    user_id: String,
    username: String,
    last_used_at: i64,
    authenticated_at: i64,
    expires_at: i64,
    amr: String,
    totp_enabled: bool,
}

impl SeaOrmStore {
    /// Ends every session of `user` but `keep`, and every open challenge.
    pub(super) async fn end_other_sessions(
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
        Self::end_challenges(tx, user).await?;
        Ok(ended.rows_affected)
    }

    /// Ends every open login challenge of `user`.
    pub(super) async fn end_challenges(tx: &DatabaseTransaction, user: &str) -> StoreResult<()> {
        login_challenges::Entity::delete_many()
            .filter(login_challenges::Column::UserId.eq(user))
            .exec(tx)
            .await
            .map_err(db_error("end open challenges"))?;
        Ok(())
    }

    /// Ends the oldest sessions of `user` beyond `max`, in one statement:
    /// a login pays this on every completion, and almost always there is
    /// nothing to end. Ranked with `ROW_NUMBER()` rather than cut with
    /// `LIMIT … OFFSET ?`: SQLite re-plans a statement whose LIMIT or OFFSET
    /// is bound each time it is bound again (see [`super::first_row`]).
    pub(super) async fn evict_oldest(
        tx: &DatabaseTransaction,
        user: &str,
        max: u32,
    ) -> StoreResult<()> {
        let ranked = Query::select()
            .column(sessions::Column::Id)
            .expr_as(
                Expr::cust("ROW_NUMBER() OVER (ORDER BY created_at DESC, id DESC)"),
                "newest_first",
            )
            .from(sessions::Entity)
            .and_where(sessions::Column::UserId.eq(user))
            .to_owned();
        let excess = Query::select()
            .column("id")
            .from_subquery(ranked, "ranked")
            .and_where(Expr::col("newest_first").gt(i64::from(max)))
            .to_owned();
        sessions::Entity::delete_many()
            .filter(sessions::Column::Id.in_subquery(excess))
            .exec(tx)
            .await
            .map_err(db_error("end excess sessions"))?;
        Ok(())
    }
}

impl SessionStore for SeaOrmStore {
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
            LoginProof::Password { verified_hash }
            | LoginProof::PasswordAnd { verified_hash, .. } => Some(verified_hash.as_str()),
            LoginProof::SecondFactor { .. } => None,
        };
        // A TOTP step is spent by the same UPDATE that locks the user row.
        let step = match proof {
            LoginProof::PasswordAnd {
                proof: SecondFactorProof::TotpStep(step),
                ..
            }
            | LoginProof::SecondFactor {
                proof: SecondFactorProof::TotpStep(step),
                ..
            } => Some(*step),
            _ => None,
        };
        Self::lock_user(&tx, &user, verified_hash, step, now).await?;
        // The challenge next (the lock order is user, challenge, budget).
        // A gated attempt has taken no try of it: the try's condition is
        // part of the delete that uses it up, so a right code costs one
        // statement here, not two.
        if let LoginProof::SecondFactor { challenge, .. } = proof {
            let try_ = attempt.gate.and_then(|gate| gate.challenge);
            let mut used = login_challenges::Entity::delete_many()
                .filter(login_challenges::Column::Id.eq(challenge.to_string()))
                .filter(login_challenges::Column::UserId.eq(user.clone()))
                .filter(login_challenges::Column::ExpiresAt.gt(now));
            if let Some(try_) = try_ {
                let max = i32::try_from(try_.max_failures).unwrap_or(i32::MAX);
                used = used.filter(login_challenges::Column::FailedAttempts.lt(max));
            }
            let used = used.exec(&*tx).await.map_err(db_error("use challenge"))?;
            if used.rows_affected != 1 {
                if try_.is_some() {
                    Self::abandon(tx).await?;
                    return Err(CompletionError::Refused(Refusal::ChallengeGone));
                }
                return Err(CompletionError::ChallengeGone);
            }
        }
        // A check judged without a reservation passes the budget here, in
        // the transaction that settles it: one write instead of two. The
        // same statement resets the budget, as a completed login does.
        if let Some(gate) = attempt.gate {
            let checked =
                Self::pass_gate_resetting(&tx, &attempt.name, now, gate.threshold).await?;
            if let Err(refusal) = checked {
                Self::abandon(tx).await?;
                return Err(CompletionError::Refused(refusal));
            }
        }
        match proof {
            LoginProof::PasswordAnd { proof, .. } | LoginProof::SecondFactor { proof, .. }
                if step.is_none() =>
            {
                Self::spend(&tx, session.user_id, proof, now).await?;
            }
            _ => {}
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
            .exec_without_returning(&*tx)
            .await
            .map_err(db_error("insert session"))?;
        Self::evict_oldest(&tx, &user, max_sessions).await?;
        if let Some(device) = &session.remember {
            Self::remember_device(&tx, &user, device, now).await?;
        }
        // A reserved attempt: its reservation goes, and the completed login
        // resets the count and the lock level (a gated one did above).
        if attempt.gate.is_none() {
            Self::remove_reservation(&tx, attempt.attempt).await?;
            failure_budgets::Entity::delete_by_id(attempt.name.as_str().to_owned())
                .exec(&*tx)
                .await
                .map_err(db_error("reset failure budget"))?;
        }
        Ok(Self::commit(tx).await?)
    }

    async fn session_by_hash(&self, hash: &TokenHash) -> StoreResult<Option<SessionRecord>> {
        // One read with the owner joined: validation is the hot path.
        let owner = sessions::Entity::belongs_to(users::Entity)
            .from(sessions::Column::UserId)
            .to(users::Column::Id)
            .into();
        // Whether the owner has TOTP now, for the required-TOTP policy: an
        // EXISTS on the secrets' primary key, in the same read.
        let active_totp = Query::select()
            .expr(Expr::val(1))
            .from(totp_secrets::Entity)
            .and_where(
                Expr::col((totp_secrets::Entity, totp_secrets::Column::UserId))
                    .equals((sessions::Entity, sessions::Column::UserId)),
            )
            .and_where(
                Expr::col((totp_secrets::Entity, totp_secrets::Column::Purpose))
                    .eq(SecretPurpose::Active.as_str()),
            )
            .to_owned();
        let Some(row) = sessions::Entity::find()
            .select_only()
            .columns([
                sessions::Column::Id,
                sessions::Column::UserId,
                sessions::Column::LastUsedAt,
                sessions::Column::AuthenticatedAt,
                sessions::Column::ExpiresAt,
                sessions::Column::Amr,
            ])
            .column(users::Column::Username)
            .expr_as(Expr::exists(active_totp), "totp_enabled")
            .join(JoinType::InnerJoin, owner)
            .filter(sessions::Column::TokenHash.eq(hash.0.to_vec()))
            .filter(users::Column::DisabledAt.is_null())
            .into_model::<SessionWithOwner>()
            .all(&self.db)
            .await
            .map(first_row)
            .map_err(db_error("find session"))?
        else {
            return Ok(None);
        };
        Ok(Some(SessionRecord {
            id: SessionId::parse(&row.id).ok_or_else(|| corrupt("session id"))?,
            user_id: user_id(&row.user_id)?,
            username: Username::from_canonical(row.username),
            last_used_at: from_ms(row.last_used_at),
            authenticated_at: from_ms(row.authenticated_at),
            expires_at: from_ms(row.expires_at),
            amr: amr_from_column(&row.amr),
            owner_totp_enabled: row.totp_enabled,
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
}
