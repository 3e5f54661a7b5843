//! Warden's use-cases: register, log in (one or two steps), enrol TOTP,
//! validate and end sessions.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::crypto::keyring::{KeyRing, Sealed};
use crate::crypto::password::{HashError, SecretHasher};
use crate::crypto::recovery;
use crate::crypto::tokens::{TokenKey, TokenKind};
use crate::crypto::totp::{self, CodeMatch, TotpSecret};
use crate::domain::audit::{self, AuditEvent, Outcome};
use crate::domain::budget::{Attempt, BudgetPolicy, FailureKind};
use crate::domain::clock::Clock;
use crate::domain::error::AuthError;
use crate::domain::ids::{ChallengeId, SessionId, UserId};
use crate::domain::password_policy::{self, PasswordPolicy};
use crate::domain::second_factor::PresentedCode;
use crate::domain::store::{
    ChallengeRecord, ClientInfo, CompletionError, LoginProof, NewChallenge, NewSession,
    SecondFactorState, SessionRecord, Store, StoreError, UserRecord,
};
use crate::domain::username::Username;

/// Recovery codes issued per user.
pub const RECOVERY_CODE_COUNT: usize = 10;
/// Wrong codes that kill a challenge.
pub const CHALLENGE_MAX_FAILURES: u32 = 5;

/// Tunables of the use-cases, from configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Absolute session lifetime.
    pub session_ttl: Duration,
    /// Idle timeout.
    pub session_idle_timeout: Duration,
    /// Login challenge lifetime.
    pub challenge_ttl: Duration,
    /// Pending TOTP secret lifetime.
    pub enrollment_ttl: Duration,
    /// Live sessions a user may hold; issuing one more ends the oldest.
    pub max_sessions_per_user: u32,
    /// Issuer shown by authenticator apps.
    pub totp_issuer: String,
    /// Accepted TOTP steps either side of now.
    pub totp_skew: u64,
    /// Rules for new passwords.
    pub password_policy: PasswordPolicy,
    /// The failure budget.
    pub budget: BudgetPolicy,
}

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

/// What a backend learns about a live session.
pub type SessionView = SessionRecord;

/// The caller's account, as GetAccount shows it.
#[derive(Debug)]
pub struct AccountView {
    /// Immutable id.
    pub user_id: UserId,
    /// Canonical name.
    pub username: Username,
    /// Whether TOTP is on.
    pub totp_enabled: bool,
    /// Unused recovery codes.
    pub remaining_recovery_codes: u32,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Whether an unexpired pending secret exists.
    pub totp_enrollment_pending: bool,
}

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

/// The use-cases, over a store.
pub struct AuthService<S> {
    pub(crate) store: S,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) passwords: SecretHasher,
    pub(crate) recovery_codes: SecretHasher,
    pub(crate) tokens: TokenKey,
    pub(crate) keys: KeyRing,
    pub(crate) settings: Settings,
}

fn to_time(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

impl From<HashError> for AuthError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Overloaded => Self::Overloaded,
            HashError::Failed(msg) => Self::Internal(anyhow::anyhow!(msg).context("argon2")),
        }
    }
}

/// Associated data binding a sealed TOTP secret to its user and purpose.
fn totp_aad(user: UserId, purpose: &str) -> Vec<u8> {
    format!("warden/totp/{purpose}/{user}").into_bytes()
}

impl<S: Store> AuthService<S> {
    /// Assembles the use-cases.
    pub fn new(
        store: S,
        clock: Arc<dyn Clock>,
        passwords: SecretHasher,
        recovery_codes: SecretHasher,
        tokens: TokenKey,
        keys: KeyRing,
        settings: Settings,
    ) -> Self {
        Self {
            store,
            clock,
            passwords,
            recovery_codes,
            tokens,
            keys,
            settings,
        }
    }

    /// The store, for housekeeping and maintenance commands.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Creates an account. Issues no session.
    pub async fn register(&self, username: &str, password: &str) -> Result<UserId, AuthError> {
        let username = Username::parse(username)?;
        let password = self
            .settings
            .password_policy
            .check_new(password, "password")?;
        let password_hash = self.passwords.hash(password).await?;
        let now = self.clock.now();
        let user = UserRecord {
            id: UserId::generate(),
            username,
            password_hash,
            created_at: now,
            disabled_at: None,
        };
        match self.store.insert_user(&user).await {
            Ok(()) => {
                audit::record(AuditEvent::UserRegistered, Outcome::Success, Some(user.id));
                Ok(user.id)
            }
            Err(StoreError::UniqueViolation) => Err(AuthError::UsernameTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks a password; answers with a session, or a challenge when the
    /// account has TOTP enabled.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
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
            .reserve(&self.store, &self.clock, &username, user_id)
            .await?;
        // Verify against a dummy hash when there is no usable account, so
        // unknown and disabled names cost the same time as real ones.
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let correct = self.passwords.verify(password.clone(), stored).await?;
        let Some(user) = user.filter(|_| correct) else {
            let error = attempt.fail(FailureKind::Password, None).await;
            // Only a failure that was recorded is reported as one.
            if matches!(error, AuthError::InvalidCredentials) {
                audit::record(AuditEvent::LoginFailed, Outcome::Failure, user_id);
            }
            return Err(error);
        };

        let factors = self.store.second_factor(user.id, self.clock.now()).await?;
        let outcome = if factors.active.is_some() {
            let challenge = self.issue_challenge(&user, &factors).await?;
            attempt.refund().await;
            LoginOutcome::MfaRequired(challenge)
        } else {
            let proof = LoginProof::Password {
                verified_hash: user.password_hash.clone(),
            };
            let session = self
                .issue_session(user.id, vec!["pwd"], proof, attempt, client)
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

    async fn issue_challenge(
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
        let mut methods = vec!["totp"];
        if factors.unused_recovery_codes > 0 {
            methods.push("recovery_code");
        }
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
    /// settles `attempt` as a success (resetting the budget). A proof that
    /// lost a single-use race settles it as a second-factor failure.
    pub(crate) async fn issue_session(
        &self,
        user_id: UserId,
        amr: Vec<&str>,
        proof: LoginProof,
        attempt: Attempt<S>,
        client: ClientInfo,
    ) -> Result<IssuedSession, AuthError> {
        let now = self.clock.now();
        let (token, token_hash) = self.tokens.issue(TokenKind::Session);
        let session = NewSession {
            id: SessionId::generate(),
            user_id,
            token_hash,
            created_at: now,
            expires_at: now + to_time(self.settings.session_ttl),
            amr: amr.into_iter().map(str::to_owned).collect(),
            client,
        };
        match self
            .store
            .complete_login(
                &session,
                &proof,
                &attempt.settlement(),
                self.settings.max_sessions_per_user,
            )
            .await
        {
            Ok(()) => attempt.consumed(),
            Err(
                CompletionError::ChallengeGone
                | CompletionError::StepUsed
                | CompletionError::CodeUsed,
            ) => {
                // Race losers count as failures (of the second factor).
                let challenge = match proof {
                    LoginProof::SecondFactor { challenge, .. } => Some(challenge),
                    LoginProof::Password { .. } => None,
                };
                return Err(attempt.fail(FailureKind::SecondFactor, challenge).await);
            }
            // Anything else is no verdict on the credential: dropping the
            // attempt gives it back.
            Err(other) => return Err(other.into()),
        }
        audit::record(AuditEvent::LoginSucceeded, Outcome::Success, Some(user_id));
        Ok(IssuedSession {
            token,
            user_id,
            session_id: session.id,
            expires_at: session.expires_at,
        })
    }

    /// Resolves a presented session token to a live session, refreshing its
    /// last-use time coarsely. `None` means no usable token was presented.
    pub async fn authenticate(&self, token: Option<&str>) -> Result<SessionView, AuthError> {
        let hash = token
            .and_then(|t| self.tokens.hash_presented(TokenKind::Session, t))
            .ok_or(AuthError::SessionInvalid)?;
        let session = self
            .store
            .session_by_hash(&hash)
            .await?
            .ok_or(AuthError::SessionInvalid)?;
        let now = self.clock.now();
        let idle = to_time(self.settings.session_idle_timeout);
        if now >= session.expires_at || now >= session.last_used_at + idle {
            return Err(AuthError::SessionInvalid);
        }
        // Only write when the stored time is older than a tenth of the idle
        // timeout: validation is the hot path, and this keeps it read-mostly.
        let stale_before = now - idle / 10;
        if session.last_used_at < stale_before {
            self.store
                .touch_session(session.id, now, stale_before)
                .await?;
        }
        Ok(session)
    }

    /// The account behind a live session (gone only if deleted or disabled
    /// meanwhile, which ends the session too).
    pub(crate) async fn owner(&self, session: &SessionView) -> Result<UserRecord, AuthError> {
        self.store
            .user_by_id(session.user_id)
            .await?
            .ok_or(AuthError::SessionInvalid)
    }

    /// ValidateSession: whether `token` is a live session and whose.
    pub async fn validate_session(&self, token: &str) -> Result<SessionView, AuthError> {
        if token.is_empty() {
            return Err(AuthError::InvalidRequest {
                field: "token",
                description: "token is required",
            });
        }
        match self.authenticate(Some(token)).await {
            Ok(session) => {
                audit::record(
                    AuditEvent::SessionValidated,
                    Outcome::Success,
                    Some(session.user_id),
                );
                Ok(session)
            }
            Err(e) => {
                audit::record(AuditEvent::SessionValidated, Outcome::Failure, None);
                Err(e)
            }
        }
    }

    /// GetAccount for the caller.
    pub async fn account(&self, bearer: Option<&str>) -> Result<AccountView, AuthError> {
        let session = self.authenticate(bearer).await?;
        let user = self.owner(&session).await?;
        let factors = self.store.second_factor(user.id, self.clock.now()).await?;
        Ok(AccountView {
            user_id: user.id,
            username: user.username,
            totp_enabled: factors.active.is_some(),
            remaining_recovery_codes: factors.unused_recovery_codes,
            created_at: user.created_at,
            totp_enrollment_pending: factors.pending.is_some(),
        })
    }

    /// Logout: revokes the caller's session at once.
    pub async fn logout(&self, bearer: Option<&str>) -> Result<(), AuthError> {
        let session = self.authenticate(bearer).await?;
        if !self.store.revoke_session(session.id).await? {
            return Err(AuthError::SessionInvalid);
        }
        audit::record(
            AuditEvent::SessionRevoked,
            Outcome::Success,
            Some(session.user_id),
        );
        Ok(())
    }

    /// Reserves an attempt of `user`'s failure budget.
    pub(crate) async fn reserve_attempt(&self, user: &UserRecord) -> Result<Attempt<S>, AuthError> {
        self.settings
            .budget
            .reserve(&self.store, &self.clock, &user.username, Some(user.id))
            .await
    }

    /// EnrollTotp: a fresh pending secret for the caller.
    pub async fn enroll_totp(
        &self,
        bearer: Option<&str>,
        password: &str,
    ) -> Result<Enrollment, AuthError> {
        let session = self.authenticate(bearer).await?;
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
            return Err(attempt.fail(FailureKind::Password, None).await);
        }
        attempt.refund().await;

        let secret = TotpSecret::generate();
        let sealed = self
            .keys
            .seal(secret.as_bytes(), &totp_aad(user.id, "pending"));
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

    pub(crate) fn open_secret(
        &self,
        user: UserId,
        purpose: &str,
        sealed: &Sealed,
    ) -> Result<TotpSecret, AuthError> {
        self.keys
            .open(sealed, &totp_aad(user, purpose))
            .map(TotpSecret::from_bytes)
            .map_err(|e| AuthError::internal("decrypt TOTP secret", e))
    }

    pub(crate) fn unix_now(&self) -> u64 {
        u64::try_from(self.clock.now().unix_timestamp()).unwrap_or(0)
    }

    /// VerifyTotp with `confirm_enrollment`: enables TOTP and returns fresh
    /// recovery codes (shown once).
    pub async fn confirm_totp(
        &self,
        bearer: Option<&str>,
        code: &str,
    ) -> Result<Vec<Zeroizing<String>>, AuthError> {
        let session = self.authenticate(bearer).await?;
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

        let secret = self.open_secret(user.id, "pending", &pending)?;
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
            .seal(secret.as_bytes(), &totp_aad(user.id, "active"));
        let (codes, hashes) = self.new_recovery_codes().await?;
        self.store
            .confirm_totp(user.id, &pending, &active, step, &hashes, self.clock.now())
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

    /// VerifyTotp with `challenge_token`: completes a login with a TOTP code.
    pub async fn verify_challenge_totp(
        &self,
        challenge_token: &str,
        code: &str,
        client: ClientInfo,
    ) -> Result<IssuedSession, AuthError> {
        self.complete_challenge(challenge_token, code, PresentedCode::totp, client)
            .await
    }

    /// UseRecoveryCode: completes a login with one recovery code; also
    /// returns how many unused codes remain.
    pub async fn use_recovery_code(
        &self,
        challenge_token: &str,
        code: &str,
        client: ClientInfo,
    ) -> Result<(IssuedSession, u32), AuthError> {
        let session = self
            .complete_challenge(challenge_token, code, PresentedCode::recovery_code, client)
            .await?;
        let remaining = self
            .store
            .second_factor(session.user_id, self.clock.now())
            .await?
            .unused_recovery_codes;
        Ok((session, remaining))
    }

    /// The second step of a login, whatever the second factor: challenge
    /// (1), code shape (2), state (3), budget (5), then the code (6).
    async fn complete_challenge(
        &self,
        challenge_token: &str,
        code: &str,
        parse: fn(&str) -> Result<PresentedCode, AuthError>,
        client: ClientInfo,
    ) -> Result<IssuedSession, AuthError> {
        let challenge = self.live_challenge(challenge_token).await?;
        let presented = parse(code)?;
        let factors = self
            .store
            .second_factor(challenge.user_id, self.clock.now())
            .await?;
        if factors.active.is_none() {
            return Err(AuthError::ChallengeInvalid);
        }
        let attempt = self
            .settings
            .budget
            .reserve(
                &self.store,
                &self.clock,
                &challenge.username,
                Some(challenge.user_id),
            )
            .await?;
        let Some(proof) = self
            .check_second_factor(challenge.user_id, &factors, presented)
            .await?
        else {
            return Err(attempt
                .fail(FailureKind::SecondFactor, Some(challenge.id))
                .await);
        };
        let login = LoginProof::SecondFactor {
            challenge: challenge.id,
            proof: proof.clone(),
        };
        let issued = self
            .issue_session(challenge.user_id, proof.login_amr(), login, attempt, client)
            .await?;
        proof.log_used(challenge.user_id);
        Ok(issued)
    }
}

impl<S: Store> AuthService<S> {
    /// Deletes up to `batch` expired sessions, challenges and pending secrets,
    /// and stale failure-budget rows.
    pub async fn purge_expired(&self, batch: u64) -> Result<u64, AuthError> {
        let now = self.clock.now();
        let idle_cutoff = now - to_time(self.settings.session_idle_timeout);
        // A name's budget row is dropped once it has been left alone for the
        // longest lock; that bounds the table when strangers try many names.
        let budget_cutoff = now - to_time(self.settings.budget.max_lock);
        Ok(self
            .store
            .purge_expired(now, idle_cutoff, budget_cutoff, batch)
            .await?)
    }
}

impl<S: Store> AuthService<S> {
    /// Re-encrypts every TOTP secret not yet under the primary key, each with
    /// a conditional write; returns how many rows changed.
    pub async fn rotate_keys(&self) -> Result<u64, AuthError> {
        let mut changed = 0;
        let mut after = None;
        loop {
            let page = self.store.sealed_secrets(after.clone(), 200).await?;
            let Some(last) = page.last() else { break };
            after = Some((last.user, last.purpose.clone()));
            for secret in &page {
                if secret.sealed.key_id == self.keys.primary_id() {
                    continue;
                }
                let aad = totp_aad(secret.user, &secret.purpose);
                let plain = self
                    .keys
                    .open(&secret.sealed, &aad)
                    .map_err(|e| AuthError::internal("decrypt TOTP secret for rotation", e))?;
                let resealed = self.keys.seal(&plain, &aad);
                if self.store.reseal(secret, &resealed).await? {
                    changed += 1;
                }
            }
        }
        Ok(changed)
    }
}
