//! Step-up actions — DisableTotp, RegenerateRecoveryCodes, ChangePassword,
//! DeleteAccount: the Bearer session, the password again, and a fresh
//! second factor when TOTP is on, checked in the contract's order.

use zeroize::Zeroizing;

use crate::domain::AuthService;
use crate::domain::audit::{self, AuditEvent, Outcome};
use crate::domain::budget::FailureKind;
use crate::domain::error::AuthError;
use crate::domain::password_policy;
use crate::domain::second_factor::{PresentedCode, SecondFactorProof};
use crate::domain::store::{SessionRecord, StepUpAction, Store, UserRecord};

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

/// A step-up call whose credentials checked out, not yet committed.
struct Granted {
    session: SessionRecord,
    user: UserRecord,
    proof: Option<SecondFactorProof>,
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
    ) -> Result<Granted, AuthError> {
        // 1. Bearer.
        let session = self.authenticate(request.bearer).await?;
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
        let budget = self.settings.budget;
        budget
            .reserve(&self.store, &user.username, Some(user.id), self.clock.now())
            .await?;
        // 6. Password and code judged together: both are always checked, and
        // any wrong combination gives the same answer.
        let checked = async {
            let password_ok = self
                .passwords
                .verify(password, Some(user.password_hash.clone()))
                .await?;
            let proof = match code {
                Some(code) => self.check_second_factor(user.id, &factors, code).await?,
                None => None,
            };
            Ok::<_, AuthError>((password_ok, proof))
        }
        .await;
        match checked {
            Ok((true, proof)) if proof.is_some() || !totp_enabled => Ok(Granted {
                session,
                user,
                proof,
            }),
            Ok((password_ok, _)) => {
                let kind = if password_ok {
                    FailureKind::SecondFactor
                } else {
                    FailureKind::Password
                };
                budget
                    .fail(&self.store, &user.username, self.clock.now(), kind)
                    .await?;
                Err(AuthError::InvalidCredentials)
            }
            Err(e) => {
                let _ = budget
                    .refund(&self.store, &user.username, self.clock.now())
                    .await;
                Err(e)
            }
        }
    }

    /// Commits a granted action with its proof; the reserved attempt is
    /// given back on success and kept as a failure if the proof lost a race.
    async fn commit(&self, granted: &Granted, action: StepUpAction) -> Result<u64, AuthError> {
        let budget = self.settings.budget;
        let name = &granted.user.username;
        match self
            .store
            .commit_step_up(
                granted.user.id,
                granted.proof.as_ref(),
                &action,
                self.clock.now(),
            )
            .await
            .map_err(AuthError::from)
        {
            Ok(ended) => {
                if let Some(proof) = &granted.proof {
                    proof.log_used(granted.user.id);
                }
                budget.refund(&self.store, name, self.clock.now()).await?;
                if ended > 0 {
                    audit::record_revoked(granted.user.id, ended);
                }
                Ok(ended)
            }
            Err(e) => Err(budget
                .settle_error(&self.store, name, self.clock.now(), e)
                .await),
        }
    }

    /// DisableTotp: deletes the secret, any pending secret and every recovery
    /// code; ends the user's other sessions and open challenges.
    pub async fn disable_totp(&self, request: StepUpRequest<'_>) -> Result<(), AuthError> {
        let granted = self
            .step_up(&request, Needs::TotpEnabled, || Ok(()))
            .await?;
        self.commit(
            &granted,
            StepUpAction::DisableTotp {
                keep: granted.session.id,
            },
        )
        .await?;
        audit::record(
            AuditEvent::TotpDisabled,
            Outcome::Success,
            Some(granted.user.id),
        );
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
        self.commit(&granted, StepUpAction::ReplaceRecoveryCodes { hashes })
            .await?;
        audit::record(
            AuditEvent::RecoveryCodesRegenerated,
            Outcome::Success,
            Some(granted.user.id),
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
        self.commit(
            &granted,
            StepUpAction::ChangePassword {
                hash,
                keep: granted.session.id,
            },
        )
        .await?;
        audit::record(
            AuditEvent::PasswordChanged,
            Outcome::Success,
            Some(granted.user.id),
        );
        Ok(())
    }

    /// DeleteAccount: removes the user and every row that belongs to them.
    pub async fn delete_account(&self, request: StepUpRequest<'_>) -> Result<(), AuthError> {
        let granted = self.step_up(&request, Needs::Anyone, || Ok(())).await?;
        self.commit(&granted, StepUpAction::DeleteAccount).await?;
        audit::record(
            AuditEvent::AccountDeleted,
            Outcome::Success,
            Some(granted.user.id),
        );
        Ok(())
    }
}
