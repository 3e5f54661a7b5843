//! Sessions: resolving a bearer token, ValidateSession, GetAccount and
//! Logout.

use crate::crypto::tokens::TokenKind;
use crate::domain::AuthService;
use crate::domain::audit::{self, AuditEvent, Outcome};
use crate::domain::clock::to_time;
use crate::domain::error::AuthError;
use crate::domain::ids::UserId;
use crate::domain::store::{SessionRecord, Store, UserRecord};
use crate::domain::username::Username;
use time::OffsetDateTime;

/// What a backend learns about a live session.
pub type SessionView = SessionRecord;

/// The caller's account, as GetAccount shows it.
#[derive(Debug)]
pub struct AccountView {
    /// Immutable id.
    pub user_id: UserId,
    /// Canonical name.
    pub username: Username,
    /// Whether TOTP is on.
    pub totp_enabled: bool,
    /// Unused recovery codes.
    pub remaining_recovery_codes: u32,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Whether an unexpired pending secret exists.
    pub totp_enrollment_pending: bool,
}

impl<S: Store> AuthService<S> {
    /// Resolves a presented session token to a live session, refreshing its
    /// last-use time coarsely. `None` means no usable token was presented.
    /// Every Bearer call, IssueAccessToken included, goes through here.
    pub async fn authenticate(&self, token: Option<&str>) -> Result<SessionView, AuthError> {
        let hash = token
            .and_then(|t| self.tokens.hash_presented(TokenKind::Session, t))
            .ok_or(AuthError::SessionInvalid)?;
        let mut session = self
            .store
            .session_by_hash(&hash)
            .await?
            .ok_or(AuthError::SessionInvalid)?;
        let now = self.clock.now();
        let idle = to_time(self.settings.session_idle_timeout);
        if now >= session.expires_at || now >= session.last_used_at + idle {
            return Err(AuthError::SessionInvalid);
        }
        // Only write when the stored time is older than a tenth of the idle
        // timeout: validation is the hot path, and this keeps it read-mostly.
        let stale_before = now - idle / 10;
        if session.last_used_at < stale_before {
            self.store
                .touch_session(session.id, now, stale_before)
                .await?;
            // What the row now says (or, if a concurrent call refreshed it
            // first, within a moment of it): callers that reason about the
            // idle end see this use.
            session.last_used_at = now;
        }
        Ok(session)
    }

    /// The account behind a live session (gone only if deleted or disabled
    /// meanwhile, which ends the session too).
    pub(crate) async fn owner(&self, session: &SessionView) -> Result<UserRecord, AuthError> {
        self.store
            .user_by_id(session.user_id)
            .await?
            .ok_or(AuthError::SessionInvalid)
    }

    /// ValidateSession: whether `token` is a live session and whose.
    pub async fn validate_session(&self, token: &str) -> Result<SessionView, AuthError> {
        if token.is_empty() {
            return Err(AuthError::InvalidRequest {
                field: "token",
                description: "token is required",
            });
        }
        match self.authenticate(Some(token)).await {
            Ok(session) => {
                audit::record(
                    AuditEvent::SessionValidated,
                    Outcome::Success,
                    Some(session.user_id),
                );
                Ok(session)
            }
            Err(e) => {
                audit::record(AuditEvent::SessionValidated, Outcome::Failure, None);
                Err(e)
            }
        }
    }

    /// GetAccount for the caller.
    pub async fn account(&self, bearer: Option<&str>) -> Result<AccountView, AuthError> {
        let session = self.authenticate(bearer).await?;
        let user = self.owner(&session).await?;
        let factors = self.store.second_factor(user.id, self.clock.now()).await?;
        Ok(AccountView {
            user_id: user.id,
            username: user.username,
            totp_enabled: factors.active.is_some(),
            remaining_recovery_codes: factors.unused_recovery_codes,
            created_at: user.created_at,
            totp_enrollment_pending: factors.pending.is_some(),
        })
    }

    /// Logout: revokes the caller's session at once.
    pub async fn logout(&self, bearer: Option<&str>) -> Result<(), AuthError> {
        let session = self.authenticate(bearer).await?;
        if !self.store.revoke_session(session.id).await? {
            return Err(AuthError::SessionInvalid);
        }
        audit::record(
            AuditEvent::SessionRevoked,
            Outcome::Success,
            Some(session.user_id),
        );
        Ok(())
    }
}
