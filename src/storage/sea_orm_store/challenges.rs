//! [`ChallengeStore`] over `login_challenges`.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, FromQueryResult, JoinType, QueryFilter, QuerySelect,
};
use time::OffsetDateTime;

use super::{SeaOrmStore, corrupt, db_error, first_row, ms, user_id};
use crate::crypto::tokens::TokenHash;
use crate::domain::ids::ChallengeId;
use crate::domain::store::{
    ChallengeRecord, ChallengeStore, CompletionError, NewChallenge, StoreResult,
};
use crate::domain::username::Username;
use crate::storage::entities::{login_challenges, users};

/// A challenge row with its owner's name, read in one query.
#[derive(Debug, FromQueryResult)]
struct ChallengeWithOwner {
    id: String,
    user_id: String,
    username: String,
}

impl ChallengeStore for SeaOrmStore {
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
            .exec(&*tx)
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
            .exec_without_returning(&*tx)
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
        // One read with the owner joined (enabled accounts only).
        let owner = login_challenges::Entity::belongs_to(users::Entity)
            .from(login_challenges::Column::UserId)
            .to(users::Column::Id)
            .into();
        let Some(row) = login_challenges::Entity::find()
            .select_only()
            .columns([
                login_challenges::Column::Id,
                login_challenges::Column::UserId,
            ])
            .column(users::Column::Username)
            .join(JoinType::InnerJoin, owner)
            .filter(login_challenges::Column::TokenHash.eq(hash.0.to_vec()))
            .filter(login_challenges::Column::ExpiresAt.gt(ms(now)))
            .filter(
                login_challenges::Column::FailedAttempts
                    .lt(i32::try_from(max_failures).unwrap_or(i32::MAX)),
            )
            .filter(users::Column::DisabledAt.is_null())
            .into_model::<ChallengeWithOwner>()
            .all(&self.db)
            .await
            .map(first_row)
            .map_err(db_error("find challenge"))?
        else {
            return Ok(None);
        };
        Ok(Some(ChallengeRecord {
            id: ChallengeId::parse(&row.id).ok_or_else(|| corrupt("challenge id"))?,
            user_id: user_id(&row.user_id)?,
            username: Username::from_canonical(row.username),
        }))
    }
}
