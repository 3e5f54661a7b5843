//! TOTP enrolment: EnrollTotp creates a pending secret; VerifyTotp with
//! `confirm_enrollment` turns it on and hands out recovery codes.

use zeroize::Zeroizing;

use crate::crypto::recovery;
use crate::crypto::totp::{self, CodeMatch, TotpSecret};
use crate::domain::audit::{self, AuditEvent, Outcome};
use crate::domain::budget::FailureKind;
use crate::domain::clock::to_time;
use crate::domain::error::AuthError;
use crate::domain::password_policy;
use crate::domain::second_factor::{PresentedCode, SecondFactorProof};
use crate::domain::sessions::Access;
use crate::domain::store::{SecretPurpose, SessionUpgrade, Store, TotpConfirmation};
use crate::domain::{AuthService, totp_aad};

/// Recovery codes issued per user.
pub const RECOVERY_CODE_COUNT: usize = 10;

/// A fresh TOTP enrolment: all four fields are secrets for the caller only.
pub struct Enrollment {
    /// Base32 secret.
    pub secret_base32: Zeroizing<String>,
    /// `otpauth://` URI.
    pub otpauth_uri: Zeroizing<String>,
    /// QR code of the URI, PNG.
    pub qr_png: Vec<u8>,
    /// QR code of the URI, SVG.
    pub qr_svg: String,
}

impl<S: Store> AuthService<S> {
    /// EnrollTotp: a fresh pending secret for the caller.
    pub async fn enroll_totp(
        &self,
        bearer: Option<&str>,
        password: &str,
    ) -> Result<Enrollment, AuthError> {
        let session = self.authenticate(bearer, Access::Enrolment).await?;
        let password = password_policy::check_presented(password, "password")?;
        let user = self.owner(&session).await?;
        if self
            .store
            .second_factor(user.id, self.clock.now())
            .await?
            .active
            .is_some()
        {
            return Err(AuthError::TotpAlreadyEnabled);
        }
        let attempt = self.reserve_attempt(&user).await?;
        if !self
            .passwords
            .verify(password, Some(user.password_hash.clone()))
            .await?
        {
            return Err(attempt.fail(FailureKind::Password).await);
        }
        attempt.refund().await;

        let secret = TotpSecret::generate();
        let sealed = self.keys.seal(
            secret.as_bytes(),
            &totp_aad(user.id, SecretPurpose::Pending),
        );
        let now = self.clock.now();
        self.store
            .put_pending_totp(
                user.id,
                &sealed,
                now,
                now + to_time(self.settings.enrollment_ttl),
            )
            .await?;
        let secret_base32 = secret.to_base32();
        let otpauth_uri = totp::otpauth_uri(
            &self.settings.totp_issuer,
            user.username.as_str(),
            &secret_base32,
        );
        let (qr_png, qr_svg) =
            totp::qr_codes(&otpauth_uri).map_err(|e| AuthError::internal("render QR code", e))?;
        audit::record(AuditEvent::TotpEnrolled, Outcome::Success, Some(user.id));
        Ok(Enrollment {
            secret_base32,
            otpauth_uri,
            qr_png,
            qr_svg,
        })
    }

    /// VerifyTotp with `confirm_enrollment`: enables TOTP and returns fresh
    /// recovery codes (shown once).
    pub async fn confirm_totp(
        &self,
        bearer: Option<&str>,
        code: &str,
    ) -> Result<Vec<Zeroizing<String>>, AuthError> {
        let session = self.authenticate(bearer, Access::Enrolment).await?;
        PresentedCode::totp(code)?;
        let user = self.owner(&session).await?;
        let factors = self.store.second_factor(user.id, self.clock.now()).await?;
        if factors.active.is_some() {
            return Err(AuthError::TotpAlreadyEnabled);
        }
        let pending = factors.pending.ok_or(AuthError::NoPendingEnrollment)?;
        // Wrong codes while confirming do not spend the budget (the caller
        // already proved the password and holds a session), but a locked
        // account is refused like its Login.
        self.settings
            .budget
            .ensure_unlocked(&self.store, &self.clock, &user.username, Some(user.id))
            .await?;

        let secret = self.open_secret(user.id, SecretPurpose::Pending, &pending)?;
        let step = match totp::check_code(
            &secret,
            code,
            self.unix_now(),
            self.settings.totp_skew,
            factors.last_step,
        ) {
            CodeMatch::Fresh(step) => step,
            CodeMatch::Replayed => {
                audit::record(
                    AuditEvent::TotpReplayRejected,
                    Outcome::Failure,
                    Some(user.id),
                );
                return Err(AuthError::InvalidCredentials);
            }
            CodeMatch::Wrong => {
                audit::record(AuditEvent::TotpFailed, Outcome::Failure, Some(user.id));
                return Err(AuthError::InvalidCredentials);
            }
        };
        let active = self
            .keys
            .seal(secret.as_bytes(), &totp_aad(user.id, SecretPurpose::Active));
        let (codes, hashes) = self.new_recovery_codes().await?;
        // A restricted session proved the factor just now: it is lifted in
        // the same transaction, with the methods of a TOTP login.
        let upgrade = self.is_restricted(&session).then(|| SessionUpgrade {
            session: session.id,
            amr: SecondFactorProof::TotpStep(step)
                .login_amr()
                .into_iter()
                .map(str::to_owned)
                .collect(),
        });
        self.store
            .confirm_totp(&TotpConfirmation {
                user: user.id,
                pending: &pending,
                active: &active,
                step,
                recovery_hashes: &hashes,
                now: self.clock.now(),
                upgrade: upgrade.as_ref(),
            })
            .await?;
        audit::record(AuditEvent::TotpConfirmed, Outcome::Success, Some(user.id));
        Ok(codes)
    }

    /// Makes a fresh set of recovery codes: display forms and their hashes.
    pub(crate) async fn new_recovery_codes(
        &self,
    ) -> Result<(Vec<Zeroizing<String>>, Vec<String>), AuthError> {
        let mut shown = Vec::with_capacity(RECOVERY_CODE_COUNT);
        let mut hashes = Vec::with_capacity(RECOVERY_CODE_COUNT);
        for _ in 0..RECOVERY_CODE_COUNT {
            let canonical = recovery::generate();
            shown.push(recovery::display(&canonical));
            hashes.push(self.recovery_codes.hash(canonical).await?);
        }
        Ok((shown, hashes))
    }
}
