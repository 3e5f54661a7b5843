//! Domain errors to gRPC statuses, in one place. Every non-INTERNAL status
//! carries `google.rpc.ErrorInfo` (domain `warden`) with a reason from the
//! contract's closed list; INVALID_ARGUMENT also carries `BadRequest`, and
//! waits are given as `RetryInfo`. Messages never echo submitted values or
//! carry database or library text.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::domain::AuthError;

/// The `ErrorInfo` domain.
pub const DOMAIN: &str = "warden";

/// A status with ErrorInfo `reason`.
pub fn with_reason(code: Code, reason: &str, message: &str) -> Status {
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason, DOMAIN, HashMap::new()),
    )
}

/// INVALID_ARGUMENT `INVALID_REQUEST` naming `field`.
pub fn invalid_request(field: &str, description: &str) -> Status {
    let mut details = ErrorDetails::with_error_info("INVALID_REQUEST", DOMAIN, HashMap::new());
    details.add_bad_request_violation(field, description);
    Status::with_error_details(Code::InvalidArgument, description, details)
}

/// A status with ErrorInfo and, where known, RetryInfo.
pub fn with_retry(
    code: Code,
    reason: &str,
    message: &str,
    retry_after: Option<Duration>,
) -> Status {
    let mut details = ErrorDetails::with_error_info(reason, DOMAIN, HashMap::new());
    if let Some(wait) = retry_after {
        details.set_retry_info(Some(wait));
    }
    Status::with_error_details(code, message, details)
}

/// The gRPC status of a response: trailers-only answers (every error from a
/// unary handler or a layer) carry it in the headers; a response without it
/// succeeded.
pub fn code_of<B>(response: &http::Response<B>) -> Code {
    response
        .headers()
        .get("grpc-status")
        .map_or(Code::Ok, |v| Code::from_bytes(v.as_bytes()))
}

/// The message of every INTERNAL Warden sends.
pub const INTERNAL_MESSAGE: &str = "internal error";

/// Generic INTERNAL; the cause goes to the server log only.
pub fn internal() -> Status {
    Status::internal(INTERNAL_MESSAGE)
}

impl From<AuthError> for Status {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidRequest { field, description } => invalid_request(field, description),
            AuthError::SecondFactorRequired => {
                let mut details =
                    ErrorDetails::with_error_info("SECOND_FACTOR_REQUIRED", DOMAIN, HashMap::new());
                details.add_bad_request_violation("code", "a second factor is required");
                Status::with_error_details(
                    Code::InvalidArgument,
                    "a second factor is required",
                    details,
                )
            }
            AuthError::UsernameTaken => {
                with_reason(Code::AlreadyExists, "USERNAME_TAKEN", "username is taken")
            }
            AuthError::InvalidCredentials => with_reason(
                Code::Unauthenticated,
                "INVALID_CREDENTIALS",
                "invalid credentials",
            ),
            AuthError::SessionInvalid => with_reason(
                Code::Unauthenticated,
                "SESSION_INVALID",
                "session is not valid",
            ),
            AuthError::ChallengeInvalid => with_reason(
                Code::Unauthenticated,
                "CHALLENGE_INVALID",
                "challenge is not valid",
            ),
            AuthError::TotpAlreadyEnabled => with_reason(
                Code::FailedPrecondition,
                "TOTP_ALREADY_ENABLED",
                "TOTP is already enabled",
            ),
            AuthError::NoPendingEnrollment => with_reason(
                Code::FailedPrecondition,
                "NO_PENDING_ENROLLMENT",
                "no TOTP enrollment is pending",
            ),
            AuthError::TotpNotEnabled => with_reason(
                Code::FailedPrecondition,
                "TOTP_NOT_ENABLED",
                "TOTP is not enabled",
            ),
            AuthError::TotpEnrollmentRequired => with_reason(
                Code::PermissionDenied,
                "TOTP_ENROLLMENT_REQUIRED",
                "TOTP enrolment is required before this call",
            ),
            AuthError::AccountLocked { retry_after } => with_retry(
                Code::ResourceExhausted,
                "ACCOUNT_LOCKED",
                "too many failed attempts; try later",
                Some(retry_after),
            ),
            AuthError::AdminUnauthenticated => with_reason(
                Code::Unauthenticated,
                "ADMIN_UNAUTHENTICATED",
                "admin token missing or wrong",
            ),
            // The contract's one NOT_FOUND reason covers unknown user and
            // session ids alike; the message tells them apart.
            AuthError::UserNotFound => {
                with_reason(Code::NotFound, "USER_NOT_FOUND", "user not found")
            }
            AuthError::SessionNotFound => {
                with_reason(Code::NotFound, "USER_NOT_FOUND", "session not found")
            }
            AuthError::Overloaded => with_retry(
                Code::Unavailable,
                "OVERLOADED",
                "server is busy; retry shortly",
                Some(Duration::from_secs(1)),
            ),
            AuthError::DatabaseUnavailable(source) => {
                tracing::error!(error = ?source, "database unavailable");
                with_retry(
                    Code::Unavailable,
                    "DATABASE_UNAVAILABLE",
                    "database unavailable; retry shortly",
                    Some(Duration::from_secs(1)),
                )
            }
            AuthError::Internal(source) => {
                tracing::error!(error = ?source, "internal error");
                internal()
            }
        }
    }
}
