//! Challenge completion: the second step of a login, by TOTP code
//! (VerifyTotp with `challenge_token`) or recovery code (UseRecoveryCode).

use crate::crypto::tokens::TokenKind;
use crate::domain::AuthService;
use crate::domain::budget::FailureKind;
use crate::domain::error::AuthError;
use crate::domain::login::IssuedSession;
use crate::domain::second_factor::PresentedCode;
use crate::domain::store::{ChallengeRecord, ChallengeTry, ClientInfo, LoginProof, Store};

/// A challenge's answer as the client sent it.
struct Answer<'a> {
    /// The code, shape not yet checked.
    code: &'a str,
    /// The shape check, which also says which factor the code is.
    parse: fn(&str) -> Result<PresentedCode, AuthError>,
    /// Whether to remember the device with the session.
    remember_device: bool,
}

/// Wrong codes that kill a challenge.
pub const CHALLENGE_MAX_FAILURES: u32 = 5;

impl<S: Store> AuthService<S> {
    /// Resolves a presented challenge token to a live challenge.
    pub(crate) async fn live_challenge(&self, token: &str) -> Result<ChallengeRecord, AuthError> {
        let hash = self
            .tokens
            .hash_presented(TokenKind::Challenge, token)
            .ok_or(AuthError::ChallengeInvalid)?;
        self.store
            .challenge_by_hash(&hash, self.clock.now(), CHALLENGE_MAX_FAILURES)
            .await?
            .ok_or(AuthError::ChallengeInvalid)
    }

    /// VerifyTotp with `challenge_token`: completes a login with a TOTP code
    /// (and, with `remember_device`, remembers the device).
    pub async fn verify_challenge_totp(
        &self,
        challenge_token: &str,
        code: &str,
        remember_device: bool,
        client: ClientInfo,
    ) -> Result<IssuedSession, AuthError> {
        let answer = Answer {
            code,
            parse: PresentedCode::totp,
            remember_device,
        };
        self.complete_challenge(challenge_token, answer, client)
            .await
    }

    /// UseRecoveryCode: completes a login with one recovery code (and, with
    /// `remember_device`, remembers the device); also returns how many
    /// unused codes remain.
    pub async fn use_recovery_code(
        &self,
        challenge_token: &str,
        code: &str,
        remember_device: bool,
        client: ClientInfo,
    ) -> Result<(IssuedSession, u32), AuthError> {
        let answer = Answer {
            code,
            parse: PresentedCode::recovery_code,
            remember_device,
        };
        let session = self
            .complete_challenge(challenge_token, answer, client)
            .await?;
        let remaining = self
            .store
            .second_factor(session.user_id, self.clock.now())
            .await?
            .unused_recovery_codes;
        Ok((session, remaining))
    }

    /// The second step of a login, whatever the second factor: challenge
    /// (1), code shape (2), state (3), budget (5), then the code (6). The
    /// code is computed before the budget's verdict but answered after it:
    /// a refused check answers as the budget says, whatever the code was.
    async fn complete_challenge(
        &self,
        challenge_token: &str,
        answer: Answer<'_>,
        client: ClientInfo,
    ) -> Result<IssuedSession, AuthError> {
        let challenge = self.live_challenge(challenge_token).await?;
        let presented = (answer.parse)(answer.code)?;
        let factors = self
            .store
            .second_factor(challenge.user_id, self.clock.now())
            .await?;
        if factors.active.is_none() {
            return Err(AuthError::ChallengeInvalid);
        }
        // The code takes one of the challenge's tries with the budget
        // attempt, so concurrent wrong codes get at most its tries.
        let challenge_try = Some(ChallengeTry {
            challenge: challenge.id,
            max_failures: CHALLENGE_MAX_FAILURES,
        });
        let budget = &self.settings.budget;
        let (name, user) = (&challenge.username, Some(challenge.user_id));
        // The code is judged first and settled in one write, which checks
        // the budget itself. A recovery code costs argon2 per unused code,
        // so a locked name is answered before hashing (a read); the gate
        // still decides races with checks that lock it meanwhile.
        if !presented.is_cheap() {
            budget
                .ensure_unlocked(&self.store, &self.clock, name, user)
                .await?;
        }
        let attempt = budget.gated(&self.store, &self.clock, name, user, challenge_try);
        let proof = match self
            .check_second_factor(challenge.user_id, &factors, presented)
            .await?
        {
            Ok(proof) => proof,
            Err(rejection) => {
                let answer = attempt.fail(FailureKind::SecondFactor).await;
                // Logged only when the budget judged it a failure.
                if matches!(answer, AuthError::InvalidCredentials) {
                    rejection.log(challenge.user_id);
                }
                return Err(answer);
            }
        };
        let login = LoginProof::SecondFactor {
            challenge: challenge.id,
            proof: proof.clone(),
        };
        let issued = self
            .issue_session(
                challenge.user_id,
                proof.login_amr(),
                login,
                attempt,
                client,
                answer.remember_device,
            )
            .await?;
        proof.log_used(challenge.user_id);
        Ok(issued)
    }
}
