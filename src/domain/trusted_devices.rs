//! Trusted devices ("remember this device"): a login completed with a
//! second factor may remember the device it came from, and a later Login
//! from that device with the right password skips the second step.
//!
//! A device token is a second factor presented *with* the password, so it
//! joins the seam (`second_factor`) as a [`SecondFactorProof::TrustedDevice`]
//! spent in the session's transaction. Anything wrong with a presented
//! device token — missing, malformed, unknown, expired, revoked, another
//! user's — is silently ignored: the normal challenge follows, and the
//! answer is the same in status, message, details and timing.

use std::time::Duration;

use secrecy::SecretString;
use time::OffsetDateTime;

use crate::crypto::tokens::{TokenHash, TokenKind};
use crate::domain::AuthService;
use crate::domain::audit;
use crate::domain::budget::Attempt;
use crate::domain::clock::to_time;
use crate::domain::error::AuthError;
use crate::domain::ids::TrustedDeviceId;
use crate::domain::login::LoginOutcome;
use crate::domain::second_factor::SecondFactorProof;
use crate::domain::sessions::Access;
use crate::domain::store::{
    ClientInfo, CompletionError, LoginProof, NewTrustedDevice, SecondFactorState, Store,
    TrustedDeviceRecord, UserRecord,
};

/// How remembered devices work, from configuration.
#[derive(Debug, Clone, Copy)]
pub struct TrustedDevicePolicy {
    /// How long a remembered device stays trusted; `None` turns the
    /// feature off (`remember_device` is then ignored and no token issued).
    pub ttl: Option<Duration>,
    /// Live devices a user may hold; remembering one more ends the oldest.
    pub max_per_user: u32,
}

/// What malformed tokens are looked up as: no stored hash is all zeros
/// (it would take an HMAC preimage), so the read finds nothing, at the cost
/// of any other read.
const NO_SUCH_DEVICE: TokenHash = TokenHash([0; 32]);

impl<S: Store> AuthService<S> {
    /// A device to remember with the session about to be issued, and its
    /// token for the client: only when asked for and the feature is on.
    pub(crate) fn device_to_remember(
        &self,
        remember: bool,
        now: OffsetDateTime,
    ) -> Option<(SecretString, NewTrustedDevice)> {
        let policy = self.settings.trusted_devices;
        let ttl = policy.ttl.filter(|_| remember)?;
        let (token, token_hash) = self.tokens.issue(TokenKind::Device);
        let device = NewTrustedDevice {
            id: TrustedDeviceId::generate(),
            token_hash,
            expires_at: now + to_time(ttl),
            max_per_user: policy.max_per_user,
        };
        Some((token, device))
    }

    /// Looks a presented device token up: one indexed read for every
    /// non-empty token, well-formed or not, so what kind of token it was
    /// never shows in timing. Whose device it is, is for the caller to
    /// check, and only once the password is known to be right.
    pub(crate) async fn recognise_device(
        &self,
        token: &str,
    ) -> Result<Option<TrustedDeviceRecord>, AuthError> {
        if token.is_empty() {
            return Ok(None);
        }
        let hash = self
            .tokens
            .hash_presented(TokenKind::Device, token)
            .unwrap_or(NO_SUCH_DEVICE);
        Ok(self
            .store
            .trusted_device_by_hash(&hash, self.clock.now())
            .await?)
    }

    /// The end of a Login with the right password on an account that needs
    /// a second step: a session when `device` is a live device of `user`,
    /// the normal challenge otherwise — also when the device was revoked
    /// or expired between the look-up and the session's transaction.
    pub(crate) async fn second_step(
        &self,
        user: &UserRecord,
        factors: &SecondFactorState,
        device: Option<TrustedDeviceRecord>,
        attempt: Attempt<S>,
        client: ClientInfo,
    ) -> Result<LoginOutcome, AuthError> {
        if let Some(device) = device.filter(|d| d.user_id == user.id) {
            let proof = SecondFactorProof::TrustedDevice(device.id);
            let login = LoginProof::PasswordAnd {
                verified_hash: user.password_hash.clone(),
                proof: proof.clone(),
            };
            match self
                .store_session(user.id, proof.login_amr(), &login, &attempt, client, false)
                .await
            {
                Ok(session) => {
                    let session = self.session_issued(attempt, session);
                    proof.log_used(user.id);
                    return Ok(LoginOutcome::Session(session));
                }
                // Revoked meanwhile: as if it had never been presented.
                Err(CompletionError::DeviceGone) => {}
                Err(other) => return Err(other.into()),
            }
        }
        let challenge = self.issue_challenge(user, factors).await?;
        attempt.refund().await;
        Ok(LoginOutcome::MfaRequired(challenge))
    }

    /// ForgetTrustedDevices: revokes every remembered device of the caller;
    /// answers how many were live.
    pub async fn forget_trusted_devices(&self, bearer: Option<&str>) -> Result<u64, AuthError> {
        let session = self.authenticate(bearer, Access::Full).await?;
        let revoked = self
            .store
            .revoke_trusted_devices(session.user_id, self.clock.now())
            .await?;
        audit::record_devices_revoked(session.user_id, revoked);
        Ok(revoked)
    }
}
