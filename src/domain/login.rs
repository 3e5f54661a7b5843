//! Login: checks a password and answers with a session, or with a
//! challenge when the account has a second factor and no remembered device
//! stands in for it; and issuing sessions, which every completed login ends
//! with.

use secrecy::SecretString;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::crypto::tokens::TokenKind;
use crate::domain::AuthService;
use crate::domain::audit::{self, AuditEvent, Outcome};
use crate::domain::budget::{Attempt, FailureKind};
use crate::domain::clock::to_time;
use crate::domain::error::AuthError;
use crate::domain::ids::{ChallengeId, SessionId, UserId};
use crate::domain::password_policy;
use crate::domain::store::{
    ClientInfo, CompletionError, LoginProof, NewChallenge, NewSession, SecondFactorState, Store,
    UserRecord,
};
use crate::domain::username::Username;

/// A session handed to the client.
#[derive(Debug)]
pub struct IssuedSession {
    /// The bearer token (a secret).
    pub token: SecretString,
    /// Owner.
    pub user_id: UserId,
    /// Public id.
    pub session_id: SessionId,
    /// Absolute end.
    pub expires_at: OffsetDateTime,
    /// The token of a device remembered with this session (a secret).
    pub device_token: Option<SecretString>,
}

/// A second-factor challenge handed to the client.
#[derive(Debug)]
pub struct IssuedChallenge {
    /// The challenge token (a secret).
    pub token: SecretString,
    /// End of life.
    pub expires_at: OffsetDateTime,
    /// Methods that can answer it.
    pub methods: Vec<&'static str>,
}

/// The result of a correct password.
#[derive(Debug)]
pub enum LoginOutcome {
    /// Signed in.
    Session(IssuedSession),
    /// A second factor is needed.
    MfaRequired(IssuedChallenge),
}

impl<S: Store> AuthService<S> {
    /// Checks a password; answers with a session, or a challenge when the
    /// account has TOTP enabled and `device_token` is not a live remembered
    /// device of that account (empty: none presented).
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        device_token: &str,
        client: ClientInfo,
    ) -> Result<LoginOutcome, AuthError> {
        let username = Username::parse(username)?;
        let password = password_policy::check_presented(password, "password")?;
        let budget = self.settings.budget;
        let user = self
            .store
            .user_by_name(&username)
            .await?
            .filter(|u| u.disabled_at.is_none());
        let user_id = user.as_ref().map(|u| u.id);
        let attempt = budget
            .reserve(&self.store, &self.clock, &username, user_id, None)
            .await?;
        // Verify against a dummy hash when there is no usable account, so
        // unknown and disabled names cost the same time as real ones.
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let correct = self.passwords.verify(password.clone(), stored).await?;
        // Looked up after the password verdict, whatever it is, and only
        // acted on below once the password is right: a device token changes
        // nothing about a wrong password's answer, cost or count.
        let device = self.recognise_device(device_token).await?;
        let Some(user) = user.filter(|_| correct) else {
            let error = attempt.fail(FailureKind::Password).await;
            // Only a failure that was recorded is reported as one.
            if matches!(error, AuthError::InvalidCredentials) {
                audit::record(AuditEvent::LoginFailed, Outcome::Failure, user_id);
            }
            return Err(error);
        };

        let factors = self.store.second_factor(user.id, self.clock.now()).await?;
        let outcome = if factors.second_step_needed() {
            self.second_step(&user, &factors, device, attempt, client)
                .await?
        } else {
            let proof = LoginProof::Password {
                verified_hash: user.password_hash.clone(),
            };
            let session = self
                .issue_session(user.id, vec!["pwd"], proof, attempt, client, false)
                .await?;
            LoginOutcome::Session(session)
        };
        // After the session or challenge, which are bound to the hash that
        // was verified: a re-hash first would make them refuse themselves.
        self.upgrade_hash_if_needed(&user, password).await;
        Ok(outcome)
    }

    /// Re-hashes a password made with older parameters. Best effort: the
    /// login has already succeeded, so a failure here is only logged.
    async fn upgrade_hash_if_needed(&self, user: &UserRecord, password: Zeroizing<String>) {
        if !self.passwords.needs_rehash(&user.password_hash) {
            return;
        }
        let result = match self.passwords.hash(password).await {
            Ok(new) => self
                .store
                .upgrade_password_hash(user.id, &user.password_hash, &new)
                .await
                .map(|_| ())
                .map_err(AuthError::from),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "password re-hash skipped");
        }
    }

    pub(crate) async fn issue_challenge(
        &self,
        user: &UserRecord,
        factors: &SecondFactorState,
    ) -> Result<IssuedChallenge, AuthError> {
        let now = self.clock.now();
        let (token, token_hash) = self.tokens.issue(TokenKind::Challenge);
        let expires_at = now + to_time(self.settings.challenge_ttl);
        let challenge = NewChallenge {
            id: ChallengeId::generate(),
            user_id: user.id,
            token_hash,
            created_at: now,
            expires_at,
        };
        self.store
            .insert_challenge(&challenge, &user.password_hash)
            .await?;
        let methods = factors.challenge_methods();
        audit::record(
            AuditEvent::MfaChallengeIssued,
            Outcome::Success,
            Some(user.id),
        );
        Ok(IssuedChallenge {
            token,
            expires_at,
            methods,
        })
    }

    /// Issues a session in one transaction with spending `proof`, which
    /// settles `attempt` as a success (resetting the budget); with
    /// `remember`, also remembers the device (when the feature is on). A
    /// proof that lost a single-use race settles it as a second-factor
    /// failure.
    pub(crate) async fn issue_session(
        &self,
        user_id: UserId,
        amr: Vec<&str>,
        proof: LoginProof,
        attempt: Attempt<S>,
        client: ClientInfo,
        remember: bool,
    ) -> Result<IssuedSession, AuthError> {
        let mut attempt = attempt;
        loop {
            let stored = self
                .store_session(
                    user_id,
                    amr.clone(),
                    &proof,
                    &attempt,
                    client.clone(),
                    remember,
                )
                .await;
            match stored {
                Ok(session) => return Ok(self.session_issued(attempt, session)),
                // A gated attempt the budget refused: answered as a
                // reservation would have been, or reserved and tried again
                // (at most once: a reserved attempt is never refused).
                Err(CompletionError::Refused(refusal)) => {
                    attempt = attempt.refused(refusal).await?;
                }
                Err(
                    CompletionError::ChallengeGone
                    | CompletionError::StepUsed
                    | CompletionError::CodeUsed
                    | CompletionError::DeviceGone,
                ) => {
                    // Race losers count as failures (of the second factor).
                    return Err(attempt.fail(FailureKind::SecondFactor).await);
                }
                // Anything else is no verdict on the credential: dropping the
                // attempt gives it back.
                Err(other) => return Err(other.into()),
            }
        }
    }

    /// Stores a session in one transaction with spending `proof` and
    /// removing `attempt`'s reservation, settling nothing in memory: the
    /// caller decides what a lost race means.
    pub(crate) async fn store_session(
        &self,
        user_id: UserId,
        amr: Vec<&str>,
        proof: &LoginProof,
        attempt: &Attempt<S>,
        client: ClientInfo,
        remember: bool,
    ) -> Result<IssuedSession, CompletionError> {
        let now = self.clock.now();
        let (token, token_hash) = self.tokens.issue(TokenKind::Session);
        let (device_token, remember) = self.device_to_remember(remember, now).unzip();
        let session = NewSession {
            id: SessionId::generate(),
            user_id,
            token_hash,
            created_at: now,
            expires_at: now + to_time(self.settings.session_ttl),
            amr: amr.into_iter().map(str::to_owned).collect(),
            client,
            remember,
        };
        self.store
            .complete_login(
                &session,
                proof,
                &attempt.settlement(),
                self.settings.max_sessions_per_user,
            )
            .await?;
        Ok(IssuedSession {
            token,
            user_id,
            session_id: session.id,
            expires_at: session.expires_at,
            device_token,
        })
    }

    /// A session's transaction committed, consuming `attempt`.
    pub(crate) fn session_issued(
        &self,
        attempt: Attempt<S>,
        session: IssuedSession,
    ) -> IssuedSession {
        attempt.consumed();
        let user = Some(session.user_id);
        audit::record(AuditEvent::LoginSucceeded, Outcome::Success, user);
        if session.device_token.is_some() {
            audit::record(AuditEvent::TrustedDeviceRemembered, Outcome::Success, user);
        }
        session
    }
}
