//! The second-factor seam. A second factor comes one of two ways, and
//! both end in a [`SecondFactorProof`] that the store spends in the same
//! transaction as whatever it authorises (a session, a step-up action):
//!
//! - *answered*: presented to a login challenge or a step-up call as a
//!   [`PresentedCode`] (TOTP codes, recovery codes) and checked by
//!   [`AuthService::check_second_factor`];
//! - *presented with the password*: a remembered device's token on Login,
//!   recognised by `AuthService::recognise_device` (`trusted_devices`),
//!   which lets Login skip the challenge.
//!
//! Whether a login still needs a second step, and which methods its
//! challenge offers, is [`SecondFactorState::second_step_needed`] and
//! [`SecondFactorState::challenge_methods`]. A new method joins by adding a
//! variant where it applies: `PresentedCode` and its check for an answered
//! factor, a recogniser for one presented with the password, and always a
//! `SecondFactorProof` variant with its `spend` in the store.

use zeroize::Zeroizing;

use crate::crypto::recovery;
use crate::crypto::totp::{self, CodeMatch};
use crate::domain::AuthService;
use crate::domain::audit::{self, AuditEvent, Outcome};
use crate::domain::error::AuthError;
use crate::domain::ids::{RecoveryCodeId, TrustedDeviceId, UserId};
use crate::domain::store::{SecondFactorState, SecretPurpose, Store};

/// A second factor as the client sent it, after its shape was checked.
pub enum PresentedCode {
    /// Six ASCII digits.
    Totp(String),
    /// A recovery code in canonical form.
    RecoveryCode(Zeroizing<String>),
}

fn bad_code(description: &'static str) -> AuthError {
    AuthError::InvalidRequest {
        field: "code",
        description,
    }
}

impl PresentedCode {
    /// A TOTP code (VerifyTotp).
    pub fn totp(code: &str) -> Result<Self, AuthError> {
        if totp::is_code_shaped(code) {
            Ok(Self::Totp(code.to_owned()))
        } else {
            Err(bad_code("code must be 6 digits"))
        }
    }

    /// A recovery code (UseRecoveryCode).
    pub fn recovery_code(code: &str) -> Result<Self, AuthError> {
        recovery::normalize(code)
            .map(Self::RecoveryCode)
            .ok_or_else(|| bad_code("code must be a recovery code (16 characters)"))
    }

    /// A step-up `code`: six ASCII digits are a TOTP code, anything else a
    /// recovery code.
    pub fn step_up(code: &str) -> Result<Self, AuthError> {
        if totp::is_code_shaped(code) {
            Ok(Self::Totp(code.to_owned()))
        } else {
            recovery::normalize(code)
                .map(Self::RecoveryCode)
                .ok_or_else(|| bad_code("code must be 6 digits or a recovery code"))
        }
    }
}

/// A second factor that checked out; the store spends it atomically with
/// the change it authorises, so it works exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecondFactorProof {
    /// A TOTP code for this time step (later than the last accepted one).
    TotpStep(u64),
    /// This unused recovery code.
    RecoveryCode(RecoveryCodeId),
    /// This live remembered device of the user. Not single-use: spending
    /// it checks it is still live and records its use.
    TrustedDevice(TrustedDeviceId),
}

impl SecondFactorProof {
    /// RFC 8176 method references for a login completed with this proof.
    pub fn login_amr(&self) -> Vec<&'static str> {
        match self {
            Self::TotpStep(_) => vec!["pwd", "otp", "mfa"],
            Self::RecoveryCode(_) => vec!["pwd", "mfa", "recovery_code"],
            // Not "mfa": no second factor was shown in this login; the
            // device stands for one shown earlier.
            Self::TrustedDevice(_) => vec!["pwd", "trusted_device"],
        }
    }

    /// Records the audit event for a proof that was spent.
    pub fn log_used(&self, user: UserId) {
        match self {
            Self::TotpStep(_) => {
                audit::record(AuditEvent::TotpVerified, Outcome::Success, Some(user))
            }
            Self::RecoveryCode(_) => {
                audit::record(AuditEvent::RecoveryCodeUsed, Outcome::Success, Some(user))
            }
            Self::TrustedDevice(_) => {
                audit::record(AuditEvent::TrustedDeviceUsed, Outcome::Success, Some(user))
            }
        }
    }
}

/// Why a presented code did not check out: answered alike (wrong), but
/// logged apart. The log is written once the failure budget has judged the
/// check, so a check refused as locked logs no code failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not a code of this secret within the window.
    TotpWrong,
    /// A code for a time step at or before the last accepted one.
    TotpReplayed,
    /// None of the unused recovery codes.
    RecoveryCodeWrong,
}

impl Rejection {
    /// Records the audit event of this rejection.
    pub fn log(self, user: UserId) {
        let event = match self {
            Self::TotpWrong => AuditEvent::TotpFailed,
            Self::TotpReplayed => AuditEvent::TotpReplayRejected,
            Self::RecoveryCodeWrong => AuditEvent::RecoveryCodeFailed,
        };
        audit::record(event, Outcome::Failure, Some(user));
    }
}

impl PresentedCode {
    /// Whether checking it costs next to nothing (no hashing): a locked
    /// name need not be looked up before judging it.
    pub fn is_cheap(&self) -> bool {
        matches!(self, Self::Totp(_))
    }
}

impl SecondFactorState {
    /// Whether a correct password alone is not enough to sign in: the
    /// account has a second factor, so Login answers with a challenge
    /// unless a factor presented with the password stands in for it.
    pub fn second_step_needed(&self) -> bool {
        self.active.is_some()
    }

    /// The methods a login challenge offers: `totp`, then `recovery_code`
    /// while an unused one is left.
    pub fn challenge_methods(&self) -> Vec<&'static str> {
        let mut methods = vec!["totp"];
        if self.unused_recovery_codes > 0 {
            methods.push("recovery_code");
        }
        methods
    }
}

impl<S: Store> AuthService<S> {
    /// Checks a presented code against `user`'s factors. Logs nothing: the
    /// caller logs a [`Rejection`] once the budget has judged the check.
    pub(crate) async fn check_second_factor(
        &self,
        user: UserId,
        factors: &SecondFactorState,
        code: PresentedCode,
    ) -> Result<Result<SecondFactorProof, Rejection>, AuthError> {
        match code {
            PresentedCode::Totp(code) => {
                let Some(active) = &factors.active else {
                    return Ok(Err(Rejection::TotpWrong));
                };
                let secret = self.open_secret(user, SecretPurpose::Active, active)?;
                Ok(
                    match totp::check_code(
                        &secret,
                        &code,
                        self.unix_now(),
                        self.settings.totp_skew,
                        factors.last_step,
                    ) {
                        CodeMatch::Fresh(step) => Ok(SecondFactorProof::TotpStep(step)),
                        CodeMatch::Replayed => Err(Rejection::TotpReplayed),
                        CodeMatch::Wrong => Err(Rejection::TotpWrong),
                    },
                )
            }
            PresentedCode::RecoveryCode(code) => {
                let stored = self.store.unused_recovery_codes(user).await?;
                let hashes = stored.iter().map(|(_, hash)| hash.clone()).collect();
                // Only this user's own codes are ever compared.
                let found = self
                    .recovery_codes
                    .find_match(code, hashes)
                    .await?
                    .and_then(|index| stored.into_iter().nth(index));
                Ok(found
                    .map(|(id, _)| SecondFactorProof::RecoveryCode(id))
                    .ok_or(Rejection::RecoveryCodeWrong))
            }
        }
    }
}
