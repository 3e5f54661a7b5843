//! `warden.v1.AuthService` over the domain use-cases: wire ↔ domain
//! conversion only; every decision is made in `domain`.

use std::sync::Arc;

use secrecy::ExposeSecret as _;
use time::OffsetDateTime;
use tonic::{Request, Response, Status};

use super::client_address::ClientAddress;
use super::pb;
use super::pb::auth_service_server::AuthService as AuthServiceRpc;
use crate::domain::login::{IssuedSession, LoginOutcome};
use crate::domain::step_up::StepUpRequest;
use crate::domain::store::{ClientInfo, Store};
use crate::domain::{AuthError, AuthService};

/// The gRPC face of [`AuthService`].
pub struct AuthGrpc<S> {
    service: Arc<AuthService<S>>,
}

impl<S> AuthGrpc<S> {
    /// Serves `service`.
    pub fn new(service: Arc<AuthService<S>>) -> Self {
        Self { service }
    }
}

pub(super) fn timestamp(t: OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        // Always below 10^9, so it fits.
        nanos: i32::try_from(t.nanosecond()).unwrap_or(0),
    }
}

impl From<IssuedSession> for pb::Session {
    fn from(s: IssuedSession) -> Self {
        Self {
            token: s.token.expose_secret().to_owned(),
            user_id: s.user_id.to_string(),
            expires_at: Some(timestamp(s.expires_at)),
            session_id: s.session_id.to_string(),
        }
    }
}

/// The device token remembered with `session`, for its response field
/// (empty when none was remembered).
fn device_token(session: &mut IssuedSession) -> String {
    session
        .device_token
        .take()
        .map(|t| t.expose_secret().to_owned())
        .unwrap_or_default()
}

/// The session token from `authorization: Bearer <token>`: exactly one
/// value, scheme case-insensitive. `None` for anything else.
fn bearer<T>(request: &Request<T>) -> Option<String> {
    let values = request.metadata().get_all("authorization");
    let token = super::bearer::token(values.iter().map(|v| v.as_bytes()))?;
    std::str::from_utf8(token).ok().map(str::to_owned)
}

/// Who is calling, for the session row.
fn client<T>(request: &Request<T>) -> ClientInfo {
    ClientInfo {
        address: request
            .extensions()
            .get::<ClientAddress>()
            .map(|a| a.0.to_string()),
        user_agent: request
            .metadata()
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(256).collect()),
    }
}

/// The common fields of a step-up request.
fn step_up<'a>(bearer: &'a Option<String>, password: &'a str, code: &'a str) -> StepUpRequest<'a> {
    StepUpRequest {
        bearer: bearer.as_deref(),
        password,
        password_field: "password",
        code,
    }
}

type RpcResult<T> = Result<Response<T>, Status>;

fn reply<T>(result: Result<T, AuthError>) -> RpcResult<T> {
    result.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl<S: Store> AuthServiceRpc for AuthGrpc<S> {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> RpcResult<pb::RegisterResponse> {
        let req = request.into_inner();
        reply(
            self.service
                .register(&req.username, &req.password)
                .await
                .map(|id| pb::RegisterResponse {
                    user_id: id.to_string(),
                }),
        )
    }

    async fn login(&self, request: Request<pb::LoginRequest>) -> RpcResult<pb::LoginResponse> {
        let client = client(&request);
        let req = request.into_inner();
        let outcome = self
            .service
            .login(&req.username, &req.password, &req.device_token, client)
            .await;
        reply(outcome.map(|outcome| pb::LoginResponse {
            outcome: Some(match outcome {
                LoginOutcome::Session(s) => pb::login_response::Outcome::Session(s.into()),
                LoginOutcome::MfaRequired(c) => {
                    pb::login_response::Outcome::MfaRequired(pb::MfaChallenge {
                        challenge_token: c.token.expose_secret().to_owned(),
                        expires_at: Some(timestamp(c.expires_at)),
                        methods: c.methods.into_iter().map(str::to_owned).collect(),
                    })
                }
            }),
        }))
    }

    async fn enroll_totp(
        &self,
        request: Request<pb::EnrollTotpRequest>,
    ) -> RpcResult<pb::EnrollTotpResponse> {
        let token = bearer(&request);
        let req = request.into_inner();
        reply(
            self.service
                .enroll_totp(token.as_deref(), &req.password)
                .await
                .map(|e| pb::EnrollTotpResponse {
                    secret_base32: e.secret_base32.to_string(),
                    otpauth_uri: e.otpauth_uri.to_string(),
                    qr_png: e.qr_png,
                    qr_svg: e.qr_svg,
                }),
        )
    }

    async fn verify_totp(
        &self,
        request: Request<pb::VerifyTotpRequest>,
    ) -> RpcResult<pb::VerifyTotpResponse> {
        use pb::verify_totp_request::Purpose;
        let token = bearer(&request);
        let client = client(&request);
        let req = request.into_inner();
        match req.purpose {
            None => Err(crate::grpc::status::invalid_request(
                "purpose",
                "purpose is required",
            )),
            // Confirming an enrolment completes no login, so there is no
            // device to remember: remember_device is ignored.
            Some(Purpose::ConfirmEnrollment(())) => reply(
                self.service
                    .confirm_totp(token.as_deref(), &req.code)
                    .await
                    .map(|codes| pb::VerifyTotpResponse {
                        session: None,
                        recovery_codes: codes.iter().map(|c| c.to_string()).collect(),
                        device_token: String::new(),
                    }),
            ),
            Some(Purpose::ChallengeToken(challenge)) => reply(
                self.service
                    .verify_challenge_totp(&challenge, &req.code, req.remember_device, client)
                    .await
                    .map(|mut s| {
                        let device_token = device_token(&mut s);
                        pb::VerifyTotpResponse {
                            session: Some(s.into()),
                            recovery_codes: Vec::new(),
                            device_token,
                        }
                    }),
            ),
        }
    }

    async fn use_recovery_code(
        &self,
        request: Request<pb::UseRecoveryCodeRequest>,
    ) -> RpcResult<pb::UseRecoveryCodeResponse> {
        let client = client(&request);
        let req = request.into_inner();
        reply(
            self.service
                .use_recovery_code(&req.challenge_token, &req.code, req.remember_device, client)
                .await
                .map(|(mut session, remaining)| {
                    let device_token = device_token(&mut session);
                    pb::UseRecoveryCodeResponse {
                        session: Some(session.into()),
                        remaining_recovery_codes: remaining,
                        device_token,
                    }
                }),
        )
    }

    async fn disable_totp(
        &self,
        request: Request<pb::DisableTotpRequest>,
    ) -> RpcResult<pb::DisableTotpResponse> {
        let token = bearer(&request);
        let req = request.into_inner();
        let step_up = step_up(&token, &req.password, &req.code);
        reply(
            self.service
                .disable_totp(step_up)
                .await
                .map(|()| pb::DisableTotpResponse {}),
        )
    }

    async fn regenerate_recovery_codes(
        &self,
        request: Request<pb::RegenerateRecoveryCodesRequest>,
    ) -> RpcResult<pb::RegenerateRecoveryCodesResponse> {
        let token = bearer(&request);
        let req = request.into_inner();
        let step_up = step_up(&token, &req.password, &req.code);
        reply(
            self.service
                .regenerate_recovery_codes(step_up)
                .await
                .map(|codes| pb::RegenerateRecoveryCodesResponse {
                    recovery_codes: codes.iter().map(|c| c.to_string()).collect(),
                }),
        )
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> RpcResult<pb::ChangePasswordResponse> {
        let token = bearer(&request);
        let req = request.into_inner();
        let step_up = StepUpRequest {
            password_field: "current_password",
            ..step_up(&token, &req.current_password, &req.code)
        };
        reply(
            self.service
                .change_password(step_up, &req.new_password)
                .await
                .map(|()| pb::ChangePasswordResponse {}),
        )
    }

    async fn delete_account(
        &self,
        request: Request<pb::DeleteAccountRequest>,
    ) -> RpcResult<pb::DeleteAccountResponse> {
        let token = bearer(&request);
        let req = request.into_inner();
        let step_up = step_up(&token, &req.password, &req.code);
        reply(
            self.service
                .delete_account(step_up)
                .await
                .map(|()| pb::DeleteAccountResponse {}),
        )
    }

    async fn get_account(
        &self,
        request: Request<pb::GetAccountRequest>,
    ) -> RpcResult<pb::GetAccountResponse> {
        let token = bearer(&request);
        reply(
            self.service
                .account(token.as_deref())
                .await
                .map(|a| pb::GetAccountResponse {
                    user_id: a.user_id.to_string(),
                    username: a.username.as_str().to_owned(),
                    totp_enabled: a.totp_enabled,
                    remaining_recovery_codes: a.remaining_recovery_codes,
                    created_at: Some(timestamp(a.created_at)),
                    totp_enrollment_pending: a.totp_enrollment_pending,
                    trusted_devices: a.trusted_devices,
                    totp_required: a.totp_required,
                }),
        )
    }

    async fn validate_session(
        &self,
        request: Request<pb::ValidateSessionRequest>,
    ) -> RpcResult<pb::ValidateSessionResponse> {
        let req = request.into_inner();
        reply(self.service.validate_session(&req.token).await.map(|s| {
            pb::ValidateSessionResponse {
                user_id: s.user_id.to_string(),
                username: s.username.as_str().to_owned(),
                expires_at: Some(timestamp(s.expires_at)),
                authenticated_at: Some(timestamp(s.authenticated_at)),
                amr: s.amr,
                session_id: s.id.to_string(),
            }
        }))
    }

    async fn logout(&self, request: Request<pb::LogoutRequest>) -> RpcResult<pb::LogoutResponse> {
        let token = bearer(&request);
        reply(
            self.service
                .logout(token.as_deref())
                .await
                .map(|()| pb::LogoutResponse {}),
        )
    }

    async fn forget_trusted_devices(
        &self,
        request: Request<pb::ForgetTrustedDevicesRequest>,
    ) -> RpcResult<pb::ForgetTrustedDevicesResponse> {
        let token = bearer(&request);
        reply(
            self.service
                .forget_trusted_devices(token.as_deref())
                .await
                .map(|revoked| pb::ForgetTrustedDevicesResponse {
                    revoked: u32::try_from(revoked).unwrap_or(u32::MAX),
                }),
        )
    }

    async fn issue_access_token(
        &self,
        request: Request<pb::IssueAccessTokenRequest>,
    ) -> RpcResult<pb::IssueAccessTokenResponse> {
        let token = bearer(&request);
        reply(
            self.service
                .issue_access_token(token.as_deref())
                .await
                .map(|t| pb::IssueAccessTokenResponse {
                    access_token: t.token.expose_secret().to_owned(),
                    expires_at: Some(timestamp(t.expires_at)),
                }),
        )
    }

    async fn get_jwks(
        &self,
        _request: Request<pb::GetJwksRequest>,
    ) -> RpcResult<pb::GetJwksResponse> {
        Ok(Response::new(pb::GetJwksResponse {
            jwks_json: self.service.jwks_json().to_owned(),
        }))
    }
}
