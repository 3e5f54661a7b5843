//! The operator's view of accounts and what the admin API changes: an
//! account with the facts an operator needs about it, and the effects an
//! admin action applies in one transaction.

use std::future::Future;

use time::OffsetDateTime;

use super::StoreResult;
use crate::domain::ids::{SessionId, UserId};
use crate::domain::username::Username;

/// When a session counts as live: not past its absolute end, and used
/// since the idle cut-off.
#[derive(Debug, Clone, Copy)]
pub struct LiveWindow {
    /// The current time.
    pub now: OffsetDateTime,
    /// Sessions last used at or before this are idle (ended).
    pub idle_before: OffsetDateTime,
}

/// An account as an operator sees it.
#[derive(Debug, Clone)]
pub struct AccountRecord {
    /// Immutable id.
    pub id: UserId,
    /// Canonical name.
    pub username: Username,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Set while disabled.
    pub disabled_at: Option<OffsetDateTime>,
    /// The last completed login.
    pub last_login_at: Option<OffsetDateTime>,
    /// Whether TOTP is on.
    pub totp_enabled: bool,
    /// Unused recovery codes.
    pub remaining_recovery_codes: u32,
    /// Live sessions.
    pub live_sessions: u32,
    /// Live remembered devices.
    pub trusted_devices: u32,
    /// The end of the name's lock, while it is locked.
    pub locked_until: Option<OffsetDateTime>,
}

/// A live session as an operator sees it: never its token.
#[derive(Debug, Clone)]
pub struct SessionDetails {
    /// Public id.
    pub id: SessionId,
    /// Issue time.
    pub created_at: OffsetDateTime,
    /// Last use (coarsely refreshed).
    pub last_used_at: OffsetDateTime,
    /// Absolute end.
    pub expires_at: OffsetDateTime,
    /// When the login behind it completed.
    pub authenticated_at: OffsetDateTime,
    /// RFC 8176 method references.
    pub amr: Vec<String>,
    /// The client address recorded at issue.
    pub client_address: Option<String>,
    /// The user agent recorded at issue.
    pub user_agent: Option<String>,
}

/// One change an admin action makes. Which changes each action makes is
/// the domain's decision (`domain::admin`); the store applies them, in
/// order, in one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountEffect {
    /// Mark the account disabled at this time (an already disabled account
    /// keeps its first time).
    Disable(OffsetDateTime),
    /// Clear the disabled mark.
    Enable,
    /// End every session of the account.
    EndSessions,
    /// End every open login challenge of the account.
    EndChallenges,
    /// Delete the TOTP secrets (active and pending) and every recovery
    /// code. The last accepted time step stays, so an old code cannot be
    /// replayed after re-enrolment.
    DeleteSecondFactors,
    /// Revoke every remembered device of the account (as of this time).
    RevokeTrustedDevices(OffsetDateTime),
    /// Forget the failure count, the lock and the lock level of the
    /// account's name. Checks in flight keep their own reservations and
    /// settle them as usual.
    ClearFailureBudget,
}

/// Accounts for the operator: read with their facts, listed by name,
/// changed by effects.
pub trait AdminStore: Send + Sync {
    /// One account by id, enabled or not.
    fn account(
        &self,
        id: UserId,
        live: LiveWindow,
    ) -> impl Future<Output = StoreResult<Option<AccountRecord>>> + Send;
    /// One account by canonical name, enabled or not.
    fn account_by_name(
        &self,
        name: &Username,
        live: LiveWindow,
    ) -> impl Future<Output = StoreResult<Option<AccountRecord>>> + Send;
    /// Up to `limit` accounts in name order, after `after` when given,
    /// whose names start with `prefix`.
    fn list_accounts(
        &self,
        after: Option<&Username>,
        prefix: &str,
        limit: u32,
        live: LiveWindow,
    ) -> impl Future<Output = StoreResult<Vec<AccountRecord>>> + Send;
    /// In one transaction: applies `effects` to account `id`; returns how
    /// many sessions they ended, or `None` (and changes nothing) when there
    /// is no such account.
    fn apply_account_effects(
        &self,
        id: UserId,
        effects: &[AccountEffect],
    ) -> impl Future<Output = StoreResult<Option<u64>>> + Send;
    /// The account's live sessions, newest first.
    fn live_sessions(
        &self,
        id: UserId,
        live: LiveWindow,
    ) -> impl Future<Output = StoreResult<Vec<SessionDetails>>> + Send;
    /// Ends one session; returns its owner, or `None` when no such session
    /// exists (an ended one included).
    fn end_session(
        &self,
        id: SessionId,
    ) -> impl Future<Output = StoreResult<Option<UserId>>> + Send;
}
