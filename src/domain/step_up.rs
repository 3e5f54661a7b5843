//! Step-up actions — DisableTotp, RegenerateRecoveryCodes, ChangePassword,
//! DeleteAccount: the Bearer session, the password again, and a fresh
//! second factor when TOTP is on, checked in the contract's order.

use zeroize::Zeroizing;

use crate::domain::AuthService;
use crate::domain::audit::{self, AuditEvent, Outcome};
use crate::domain::budget::{Attempt, FailureKind};
use crate::domain::error::AuthError;
use crate::domain::ids::SessionId;
use crate::domain::ids::UserId;
use crate::domain::password_policy;
use crate::domain::second_factor::{PresentedCode, SecondFactorProof};
use crate::domain::sessions::Access;
use crate::domain::store::{CompletionError, SessionRecord, StepUpEffect, Store, UserRecord};

/// What a step-up request carries besides its action's own fields.
pub struct StepUpRequest<'a> {
    /// The Bearer token, if one was presented.
    pub bearer: Option<&'a str>,
    /// The password again.
    pub password: &'a str,
    /// The field the password came in (`password` or `current_password`).
    pub password_field: &'static str,
    /// The second factor: 6 digits for TOTP, otherwise a recovery code.
    pub code: &'a str,
}

/// A step-up call whose credentials checked out, not yet committed. Holds
/// the budget attempt until the action commits with it.
struct Granted<S: Store> {
    session: SessionRecord,
    user: UserRecord,
    proof: Option<SecondFactorProof>,
    attempt: Attempt<S>,
}

/// What a step-up call changes, committed with the proof that allowed it.
enum StepUpAction {
    /// Delete the TOTP secret, any pending secret and every recovery code,
    /// revoke every remembered device, and end the user's other sessions and
    /// open challenges.
    DisableTotp { keep: SessionId },
    /// Replace every recovery code.
    ReplaceRecoveryCodes { hashes: Vec<String> },
    /// Set a new password hash, revoke every remembered device, and end the
    /// other sessions and open challenges.
    ChangePassword { hash: String, keep: SessionId },
    /// Revoke every remembered device; remove the user, everything that
    /// belongs to them, and the failure budget of their name.
    DeleteAccount,
}

impl StepUpAction {
    /// The changes the action makes: the policy of what each step-up call
    /// wipes lives here, not in the store.
    fn effects(self) -> Vec<StepUpEffect> {
        match self {
            Self::DisableTotp { keep } => vec![
                StepUpEffect::DeleteTotpSecrets,
                StepUpEffect::ReplaceRecoveryCodes(Vec::new()),
                StepUpEffect::RevokeTrustedDevices,
                StepUpEffect::EndOtherSessions { keep },
            ],
            Self::ReplaceRecoveryCodes { hashes } => {
                vec![StepUpEffect::ReplaceRecoveryCodes(hashes)]
            }
            Self::ChangePassword { hash, keep } => vec![
                StepUpEffect::SetPasswordHash(hash),
                StepUpEffect::RevokeTrustedDevices,
                StepUpEffect::EndOtherSessions { keep },
            ],
            // The devices would go with the user anyway (ON DELETE CASCADE);
            // revoking them first is what counts them for the audit trail.
            Self::DeleteAccount => vec![
                StepUpEffect::RevokeTrustedDevices,
                StepUpEffect::DeleteAccount,
            ],
        }
    }
}

/// Which accounts an action applies to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Needs {
    Anyone,
    TotpEnabled,
}

impl<S: Store> AuthService<S> {
    /// Checks a step-up request, steps 1–6 of the order of checks.
    /// `shapes` runs the action's own field checks at step 2.
    async fn step_up(
        &self,
        request: &StepUpRequest<'_>,
        needs: Needs,
        shapes: impl FnOnce() -> Result<(), AuthError>,
    ) -> Result<Granted<S>, AuthError> {
        // 1. Bearer.
        let session = self.authenticate(request.bearer, Access::Full).await?;
        // 2. Shapes of the present and required fields.
        let password = password_policy::check_presented(request.password, request.password_field)?;
        let code = (!request.code.is_empty())
            .then(|| PresentedCode::step_up(request.code))
            .transpose()?;
        shapes()?;
        // 3. Account state.
        let user = self.owner(&session).await?;
        let factors = self.store.second_factor(user.id, self.clock.now()).await?;
        let totp_enabled = factors.active.is_some();
        if needs == Needs::TotpEnabled && !totp_enabled {
            return Err(AuthError::TotpNotEnabled);
        }
        // 4. A second factor is required but missing.
        let code = match (totp_enabled, code) {
            (true, None) => return Err(AuthError::SecondFactorRequired),
            (true, Some(code)) => Some(code),
            // With TOTP off the code is ignored.
            (false, _) => None,
        };
        // 5. Failure budget.
        let attempt = self.reserve_attempt(&user).await?;
        // 6. Password and code judged together: both are always checked, and
        // any wrong combination gives the same answer. An error here (e.g.
        // OVERLOADED) drops the attempt, which gives it back.
        let password_ok = self
            .passwords
            .verify(password, Some(user.password_hash.clone()))
            .await?;
        // The attempt is reserved, so the check is judged: log at once.
        let proof = match code {
            Some(code) => self
                .check_second_factor(user.id, &factors, code)
                .await?
                .inspect_err(|rejection| rejection.log(user.id))
                .ok(),
            None => None,
        };
        if password_ok && (proof.is_some() || !totp_enabled) {
            return Ok(Granted {
                session,
                user,
                proof,
                attempt,
            });
        }
        let kind = if password_ok {
            FailureKind::SecondFactor
        } else {
            FailureKind::Password
        };
        Err(attempt.fail(kind).await)
    }

    /// Commits a granted action with its proof; the same transaction gives
    /// the reserved attempt back, so the action and the refund stand or fall
    /// together. A proof that lost a race is kept as a failure. Returns the
    /// user the action applied to.
    async fn commit(&self, granted: Granted<S>, action: StepUpAction) -> Result<UserId, AuthError> {
        let Granted {
            user,
            proof,
            attempt,
            ..
        } = granted;
        match self
            .store
            .commit_step_up(
                user.id,
                proof.as_ref(),
                &action.effects(),
                attempt.id(),
                self.clock.now(),
            )
            .await
        {
            Ok(applied) => {
                attempt.consumed();
                if let Some(proof) = &proof {
                    proof.log_used(user.id);
                }
                if applied.sessions_ended > 0 {
                    audit::record_revoked(user.id, applied.sessions_ended);
                }
                if applied.devices_revoked > 0 {
                    audit::record_devices_revoked(user.id, applied.devices_revoked);
                }
                Ok(user.id)
            }
            Err(
                CompletionError::StepUsed | CompletionError::CodeUsed | CompletionError::DeviceGone,
            ) => Err(attempt.fail(FailureKind::SecondFactor).await),
            Err(other) => Err(other.into()),
        }
    }

    /// DisableTotp: deletes the secret, any pending secret and every recovery
    /// code; ends the user's other sessions and open challenges.
    pub async fn disable_totp(&self, request: StepUpRequest<'_>) -> Result<(), AuthError> {
        let granted = self
            .step_up(&request, Needs::TotpEnabled, || Ok(()))
            .await?;
        let keep = granted.session.id;
        let user = self
            .commit(granted, StepUpAction::DisableTotp { keep })
            .await?;
        audit::record(AuditEvent::TotpDisabled, Outcome::Success, Some(user));
        Ok(())
    }

    /// RegenerateRecoveryCodes: replaces every code; the new ones are shown once.
    pub async fn regenerate_recovery_codes(
        &self,
        request: StepUpRequest<'_>,
    ) -> Result<Vec<Zeroizing<String>>, AuthError> {
        let granted = self
            .step_up(&request, Needs::TotpEnabled, || Ok(()))
            .await?;
        let (codes, hashes) = self.new_recovery_codes().await?;
        let user = self
            .commit(granted, StepUpAction::ReplaceRecoveryCodes { hashes })
            .await?;
        audit::record(
            AuditEvent::RecoveryCodesRegenerated,
            Outcome::Success,
            Some(user),
        );
        Ok(codes)
    }

    /// ChangePassword: enforces the policy on `new_password`, re-hashes, and
    /// ends the user's other sessions and open challenges.
    pub async fn change_password(
        &self,
        request: StepUpRequest<'_>,
        new_password: &str,
    ) -> Result<(), AuthError> {
        let mut checked = None;
        let granted = self
            .step_up(&request, Needs::Anyone, || {
                checked = Some(
                    self.settings
                        .password_policy
                        .check_new(new_password, "new_password")?,
                );
                Ok(())
            })
            .await?;
        let new_password = checked
            .ok_or_else(|| AuthError::Internal(anyhow::anyhow!("new password not checked")))?;
        let hash = self.passwords.hash(new_password).await?;
        let keep = granted.session.id;
        let user = self
            .commit(granted, StepUpAction::ChangePassword { hash, keep })
            .await?;
        audit::record(AuditEvent::PasswordChanged, Outcome::Success, Some(user));
        Ok(())
    }

    /// DeleteAccount: removes the user and every row that belongs to them.
    pub async fn delete_account(&self, request: StepUpRequest<'_>) -> Result<(), AuthError> {
        let granted = self.step_up(&request, Needs::Anyone, || Ok(())).await?;
        let user = self.commit(granted, StepUpAction::DeleteAccount).await?;
        audit::record(AuditEvent::AccountDeleted, Outcome::Success, Some(user));
        Ok(())
    }
}
