//! Multi-step flows on a test server: enrolment, challenges, recovery
//! codes, account state.

use super::*;
use tonic::{Code, Status};
use warden::grpc::pb::{self, login_response::Outcome};

impl TestServer {
    /// The server clock as Unix seconds.
    pub fn now(&self) -> u64 {
        use warden::domain::clock::Clock as _;
        u64::try_from(self.clock.now().unix_timestamp()).expect("after 1970")
    }

    /// Starts enrolment for the session `token`.
    pub async fn enroll(&mut self, token: &str, password: &str) -> pb::EnrollTotpResponse {
        self.client
            .enroll_totp(bearer(
                pb::EnrollTotpRequest {
                    password: password.into(),
                },
                token,
            ))
            .await
            .expect("enroll")
            .into_inner()
    }

    /// Confirms enrolment with `code`.
    pub async fn confirm(&mut self, token: &str, code: &str) -> Result<Vec<String>, Status> {
        let request = pb::VerifyTotpRequest {
            code: code.into(),
            purpose: Some(pb::verify_totp_request::Purpose::ConfirmEnrollment(())),
            ..Default::default()
        };
        self.client
            .verify_totp(bearer(request, token))
            .await
            .map(|r| r.into_inner().recovery_codes)
    }

    /// Enrols and confirms TOTP for the session `token` at the current time,
    /// returning the raw secret and the recovery codes.
    pub async fn enable_totp(&mut self, token: &str, password: &str) -> (Vec<u8>, Vec<String>) {
        let enrollment = self.enroll(token, password).await;
        let secret = data_encoding::BASE32_NOPAD
            .decode(enrollment.secret_base32.as_bytes())
            .expect("base32 secret");
        let codes = self
            .confirm(token, &independent_totp(&secret, self.now()))
            .await
            .expect("confirm");
        (secret, codes)
    }

    /// Logs in expecting a challenge; returns its token.
    pub async fn login_challenge(&mut self, username: &str, password: &str) -> pb::MfaChallenge {
        match self.login(username, password).await.expect("login") {
            Outcome::MfaRequired(c) => c,
            Outcome::Session(_) => panic!("expected a challenge, got a session"),
        }
    }

    /// Answers a challenge with a TOTP code.
    pub async fn verify_challenge(
        &mut self,
        challenge: &str,
        code: &str,
    ) -> Result<pb::Session, Status> {
        let request = pb::VerifyTotpRequest {
            code: code.into(),
            purpose: Some(pb::verify_totp_request::Purpose::ChallengeToken(
                challenge.into(),
            )),
            ..Default::default()
        };
        self.client
            .verify_totp(request)
            .await
            .map(|r| r.into_inner().session.expect("session set"))
    }
}

impl TestServer {
    /// Completes a challenge with a recovery code.
    pub async fn use_recovery_code(
        &mut self,
        challenge: &str,
        code: &str,
    ) -> Result<pb::UseRecoveryCodeResponse, Status> {
        self.client
            .use_recovery_code(pb::UseRecoveryCodeRequest {
                challenge_token: challenge.into(),
                code: code.into(),
                ..Default::default()
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// GetAccount for `token`.
    pub async fn account(&mut self, token: &str) -> pb::GetAccountResponse {
        self.client
            .get_account(bearer(pb::GetAccountRequest {}, token))
            .await
            .expect("get account")
            .into_inner()
    }

    /// Whether `token` is a live session: true when ValidateSession accepts
    /// it, false only when it answers SESSION_INVALID (any other failure,
    /// e.g. INTERNAL or UNAVAILABLE, panics rather than reading as "ended").
    pub async fn is_live(&mut self, token: &str) -> bool {
        let answer = self
            .client
            .validate_session(pb::ValidateSessionRequest {
                token: token.into(),
            })
            .await;
        match answer {
            Ok(_) => true,
            Err(status) => {
                assert_status(&status, Code::Unauthenticated, "SESSION_INVALID");
                false
            }
        }
    }
}
