//! Authentication events. Each event is named once, here. Use-cases call
//! [`record`]; the event goes to the log at once, and — when the call runs
//! inside [`collect`] (the gRPC edge does that for every RPC) — is handed
//! back to become an OpenTelemetry audit span under the RPC's span, with the
//! call's final status.

use std::cell::RefCell;
use std::future::Future;

use crate::domain::ids::UserId;

/// Every authentication event Warden reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditEvent {
    /// Register created an account.
    UserRegistered,
    /// A session was issued, whichever RPC issued it.
    LoginSucceeded,
    /// Login refused a password (wrong password or unknown user).
    LoginFailed,
    /// A call was refused because the account name is locked.
    LoginLocked,
    /// A correct password on a TOTP account opened a challenge.
    MfaChallengeIssued,
    /// EnrollTotp created a pending secret.
    TotpEnrolled,
    /// VerifyTotp confirmed enrolment; TOTP is on.
    TotpConfirmed,
    /// A TOTP code was accepted (and spent).
    TotpVerified,
    /// A TOTP code was wrong.
    TotpFailed,
    /// A TOTP code for an already-used step was refused.
    TotpReplayRejected,
    /// DisableTotp turned TOTP off.
    TotpDisabled,
    /// A recovery code was accepted (and spent).
    RecoveryCodeUsed,
    /// A recovery code was wrong or used.
    RecoveryCodeFailed,
    /// RegenerateRecoveryCodes replaced the codes.
    RecoveryCodesRegenerated,
    /// ChangePassword set a new password.
    PasswordChanged,
    /// DeleteAccount removed an account.
    AccountDeleted,
    /// ValidateSession answered for a token.
    SessionValidated,
    /// Logout ended a session.
    SessionRevoked,
    /// Several sessions ended at once (with a count).
    SessionsRevoked,
    /// A per-IP rate limit refused a call.
    RateLimited,
    /// IssueAccessToken signed an access token for a session.
    AccessTokenIssued,
}

impl AuditEvent {
    /// The event's name: the audit span's name and `warden.event`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::UserRegistered => "user.registered",
            Self::LoginSucceeded => "login.succeeded",
            Self::LoginFailed => "login.failed",
            Self::LoginLocked => "login.locked",
            Self::MfaChallengeIssued => "mfa.challenge_issued",
            Self::TotpEnrolled => "totp.enrolled",
            Self::TotpConfirmed => "totp.confirmed",
            Self::TotpVerified => "totp.verified",
            Self::TotpFailed => "totp.failed",
            Self::TotpReplayRejected => "totp.replay_rejected",
            Self::TotpDisabled => "totp.disabled",
            Self::RecoveryCodeUsed => "recovery_code.used",
            Self::RecoveryCodeFailed => "recovery_code.failed",
            Self::RecoveryCodesRegenerated => "recovery_codes.regenerated",
            Self::PasswordChanged => "password.changed",
            Self::AccountDeleted => "account.deleted",
            Self::SessionValidated => "session.validated",
            Self::SessionRevoked => "session.revoked",
            Self::SessionsRevoked => "sessions.revoked",
            Self::RateLimited => "rate_limited",
            Self::AccessTokenIssued => "access_token.issued",
        }
    }
}

/// Whether the event reports a success or a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It worked.
    Success,
    /// It was refused.
    Failure,
}

impl Outcome {
    /// `warden.outcome`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }
}

/// One recorded event. Carries no secret by construction: only ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// What happened.
    pub event: AuditEvent,
    /// How it went.
    pub outcome: Outcome,
    /// The account concerned, when it exists.
    pub user: Option<UserId>,
    /// For `sessions.revoked`: how many.
    pub sessions_revoked: Option<u64>,
}

tokio::task_local! {
    static RECORDS: RefCell<Vec<AuditRecord>>;
}

/// Records an event: logs it, and keeps it for the enclosing [`collect`].
pub fn record(event: AuditEvent, outcome: Outcome, user: Option<UserId>) {
    push(AuditRecord {
        event,
        outcome,
        user,
        sessions_revoked: None,
    });
}

/// Records a bulk revocation of `count` sessions.
pub fn record_revoked(user: UserId, count: u64) {
    push(AuditRecord {
        event: AuditEvent::SessionsRevoked,
        outcome: Outcome::Success,
        user: Some(user),
        sessions_revoked: Some(count),
    });
}

fn push(record: AuditRecord) {
    let user = record.user.map(|u| u.to_string());
    macro_rules! log_at {
        ($level:expr) => {
            tracing::event!(
                target: "warden::audit",
                $level,
                event = record.event.name(),
                outcome = record.outcome.as_str(),
                enduser.id = user.as_deref(),
                sessions_revoked = record.sessions_revoked,
                "audit"
            )
        };
    }
    // A successful validation happens on every request a backend serves:
    // at INFO it would be most of the log and a good part of the call's cost.
    // Its audit span still follows the sampler like any other.
    if record.event == AuditEvent::SessionValidated && record.outcome == Outcome::Success {
        log_at!(tracing::Level::DEBUG);
    } else {
        log_at!(tracing::Level::INFO);
    }
    let _ = RECORDS.try_with(|records| records.borrow_mut().push(record));
}

/// Runs `future`, returning its output and the events it recorded.
pub async fn collect<F: Future>(future: F) -> (F::Output, Vec<AuditRecord>) {
    RECORDS
        .scope(RefCell::new(Vec::new()), async move {
            let output = future.await;
            let records = RECORDS.with(|r| r.take());
            (output, records)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn collects_what_the_call_records_and_nothing_outside() {
        record(AuditEvent::LoginFailed, Outcome::Failure, None);
        let ((), records) = collect(async {
            record(AuditEvent::LoginSucceeded, Outcome::Success, None);
            record_revoked(UserId::generate(), 3);
        })
        .await;
        let names: Vec<_> = records.iter().map(|r| r.event.name()).collect();
        assert_eq!(names, ["login.succeeded", "sessions.revoked"]);
        assert_eq!(records[1].sessions_revoked, Some(3));
    }
}
