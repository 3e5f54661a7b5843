//! The operator's use-cases (the admin API): look accounts up, page
//! through them, disable and enable them, clear a name's lock, wipe second
//! factors, and see and end sessions. Each change is one transaction of
//! [`AccountEffect`]s, chosen here, and one audit event.
//!
//! The admin token is checked at the edge before any of these run; they
//! trust their caller.

pub mod paging;

use crate::domain::AuthService;
use crate::domain::audit::{self, AuditEvent, Outcome};
use crate::domain::clock::to_time;
use crate::domain::error::AuthError;
use crate::domain::ids::{SessionId, UserId};
use crate::domain::store::{AccountEffect, AccountRecord, LiveWindow, SessionDetails, Store};
use crate::domain::username::Username;
use time::OffsetDateTime;

/// How GetUser names the account.
#[derive(Debug, Clone, Copy)]
pub enum UserRef<'a> {
    /// By id.
    Id(&'a str),
    /// By name, normalised as Login does.
    Name(&'a str),
}

/// What ListUsers asks for, as the request carries it.
#[derive(Debug, Clone, Copy)]
pub struct ListUsers<'a> {
    /// Accounts per page (0: the default).
    pub page_size: u32,
    /// The previous page's `next_page_token`, or empty.
    pub page_token: &'a str,
    /// Only names starting with this.
    pub username_prefix: &'a str,
}

/// One page of accounts.
#[derive(Debug)]
pub struct UserPage {
    /// The accounts, in name order.
    pub users: Vec<AccountRecord>,
    /// Continues after the last account; empty on the last page.
    pub next_page_token: String,
}

/// What an admin call changes.
#[derive(Debug, Clone, Copy)]
enum AdminAction {
    /// Disable the account and end its sessions and challenges.
    Disable,
    /// Enable it again.
    Enable,
    /// Clear the name's failure budget and lock.
    Unlock,
    /// Delete TOTP and recovery codes; end sessions and challenges.
    ResetSecondFactors,
    /// End every session.
    RevokeAllSessions,
}

impl AdminAction {
    /// The changes the action makes: the policy of what each admin call
    /// wipes lives here, not in the store.
    fn effects(self, now: OffsetDateTime) -> Vec<AccountEffect> {
        match self {
            // Challenges end too: a challenge opened before the disable
            // must not complete after it.
            Self::Disable => vec![
                AccountEffect::Disable(now),
                AccountEffect::EndSessions,
                AccountEffect::EndChallenges,
                AccountEffect::RevokeTrustedDevices(now),
            ],
            Self::Enable => vec![AccountEffect::Enable],
            Self::Unlock => vec![AccountEffect::ClearFailureBudget],
            // A challenge opened before the reset would ask for a factor
            // that no longer exists: it ends with the sessions.
            Self::ResetSecondFactors => vec![
                AccountEffect::DeleteSecondFactors,
                AccountEffect::EndSessions,
                AccountEffect::EndChallenges,
                AccountEffect::RevokeTrustedDevices(now),
            ],
            Self::RevokeAllSessions => vec![AccountEffect::EndSessions],
        }
    }

    /// Records the action's audit event.
    fn audit(self, user: UserId, sessions_ended: u64) {
        let event = match self {
            Self::Disable => AuditEvent::AdminUserDisabled,
            Self::Enable => AuditEvent::AdminUserEnabled,
            Self::Unlock => AuditEvent::AdminUserUnlocked,
            Self::ResetSecondFactors => AuditEvent::AdminSecondFactorsReset,
            Self::RevokeAllSessions => {
                return audit::record_count(AuditEvent::AdminSessionsRevoked, user, sessions_ended);
            }
        };
        audit::record(event, Outcome::Success, Some(user));
    }
}

/// Reads an id field: required, a UUID.
fn parse_id<T>(
    raw: &str,
    field: &'static str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, AuthError> {
    if raw.is_empty() {
        return Err(AuthError::InvalidRequest {
            field,
            description: "the id is required",
        });
    }
    parse(raw).ok_or(AuthError::InvalidRequest {
        field,
        description: "the id must be a UUID",
    })
}

fn user_id(raw: &str) -> Result<UserId, AuthError> {
    parse_id(raw, "user_id", UserId::parse)
}

impl<S: Store> AuthService<S> {
    /// Which sessions count as live now (the rule `authenticate` applies).
    fn live_window(&self) -> LiveWindow {
        let now = self.clock.now();
        LiveWindow {
            now,
            idle_before: now - to_time(self.settings.session_idle_timeout),
        }
    }

    /// GetUser: one account by id or by name.
    pub async fn admin_get_user(
        &self,
        user: Option<UserRef<'_>>,
    ) -> Result<AccountRecord, AuthError> {
        let live = self.live_window();
        let found = match user {
            None => {
                return Err(AuthError::InvalidRequest {
                    field: "user",
                    description: "user_id or username is required",
                });
            }
            Some(UserRef::Id(raw)) => self.store.account(user_id(raw)?, live).await?,
            Some(UserRef::Name(raw)) => {
                let name = Username::parse(raw)?;
                self.store.account_by_name(&name, live).await?
            }
        };
        found.ok_or(AuthError::UserNotFound)
    }

    /// ListUsers: one page of accounts in name order.
    pub async fn admin_list_users(&self, request: ListUsers<'_>) -> Result<UserPage, AuthError> {
        let size = paging::page_size(request.page_size)?;
        let after = paging::decode_token(request.page_token)?;
        let prefix = paging::name_prefix(request.username_prefix)?;
        // One more than asked says whether another page follows, so the
        // last page never hands out a token to an empty one.
        let mut users = self
            .store
            .list_accounts(after.as_ref(), &prefix, size + 1, self.live_window())
            .await?;
        let more = users.len() > usize::try_from(size).unwrap_or(usize::MAX);
        users.truncate(usize::try_from(size).unwrap_or(usize::MAX));
        let next_page_token = match users.last() {
            Some(last) if more => paging::encode_token(&last.username),
            _ => String::new(),
        };
        Ok(UserPage {
            users,
            next_page_token,
        })
    }

    /// Applies `action` to the account `raw` names and returns how many
    /// sessions it ended.
    async fn admin_act(&self, raw: &str, action: AdminAction) -> Result<(UserId, u64), AuthError> {
        let id = user_id(raw)?;
        let ended = self
            .store
            .apply_account_effects(id, &action.effects(self.clock.now()))
            .await?
            .ok_or(AuthError::UserNotFound)?;
        action.audit(id, ended);
        Ok((id, ended))
    }

    /// Applies `action` and answers with the account as it is now.
    async fn admin_act_then_show(
        &self,
        raw: &str,
        action: AdminAction,
    ) -> Result<AccountRecord, AuthError> {
        let (id, _) = self.admin_act(raw, action).await?;
        self.store
            .account(id, self.live_window())
            .await?
            .ok_or(AuthError::UserNotFound)
    }

    /// DisableUser: ends sessions and challenges; Login then answers like
    /// an unknown name (see `login`), and the name stays taken.
    pub async fn admin_disable_user(&self, user_id: &str) -> Result<AccountRecord, AuthError> {
        self.admin_act_then_show(user_id, AdminAction::Disable)
            .await
    }

    /// EnableUser: clears the disabled mark.
    pub async fn admin_enable_user(&self, user_id: &str) -> Result<AccountRecord, AuthError> {
        self.admin_act_then_show(user_id, AdminAction::Enable).await
    }

    /// UnlockUser: clears the name's failure budget and lock.
    pub async fn admin_unlock_user(&self, user_id: &str) -> Result<AccountRecord, AuthError> {
        self.admin_act_then_show(user_id, AdminAction::Unlock).await
    }

    /// ResetSecondFactors: the "lost everything" path; the user then signs
    /// in with the password alone and may enrol again.
    pub async fn admin_reset_second_factors(
        &self,
        user_id: &str,
    ) -> Result<AccountRecord, AuthError> {
        self.admin_act_then_show(user_id, AdminAction::ResetSecondFactors)
            .await
    }

    /// ListSessions: the account's live sessions, without tokens.
    pub async fn admin_list_sessions(&self, raw: &str) -> Result<Vec<SessionDetails>, AuthError> {
        let id = user_id(raw)?;
        let live = self.live_window();
        if self.store.account(id, live).await?.is_none() {
            return Err(AuthError::UserNotFound);
        }
        Ok(self.store.live_sessions(id, live).await?)
    }

    /// RevokeSession: ends one session at once.
    pub async fn admin_revoke_session(&self, raw: &str) -> Result<(), AuthError> {
        let id = parse_id(raw, "session_id", SessionId::parse)?;
        let owner = self
            .store
            .end_session(id)
            .await?
            .ok_or(AuthError::SessionNotFound)?;
        audit::record(
            AuditEvent::AdminSessionRevoked,
            Outcome::Success,
            Some(owner),
        );
        Ok(())
    }

    /// RevokeAllSessions: ends every session of the account; returns how
    /// many.
    pub async fn admin_revoke_all_sessions(&self, user_id: &str) -> Result<u64, AuthError> {
        Ok(self
            .admin_act(user_id, AdminAction::RevokeAllSessions)
            .await?
            .1)
    }
}
