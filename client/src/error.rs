//! What can go wrong when asking Warden.

use tonic::Code;
use tonic_types::StatusExt as _;

use crate::AccessTokenError;

/// Why a token was not accepted.
///
/// [`ClientError::Rejected`] (Warden answered and said no) and
/// [`ClientError::AccessToken`] (the access token does not verify) mean the
/// caller is not signed in: 401 / UNAUTHENTICATED. Every other variant means
/// there is no answer to act on: fail closed (503 / UNAVAILABLE), never treat
/// the caller as signed in. [`ClientError::is_rejected`] tells the two apart.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Warden said no. `reason` is the `google.rpc.ErrorInfo` reason, e.g.
    /// `SESSION_INVALID` (unknown, expired, idle or revoked token),
    /// `INVALID_REQUEST` (empty or malformed token) or
    /// `TOTP_ENROLLMENT_REQUIRED` (restricted session).
    #[error("Warden rejected the token ({reason})")]
    Rejected {
        /// The ErrorInfo reason from Warden's contract.
        reason: String,
    },
    /// The access token was verified locally and refused; the kind says why.
    #[error("{0}")]
    AccessToken(#[from] AccessTokenError),
    /// Warden could not be reached, timed out, was overloaded or failed.
    #[error("Warden is unavailable ({code:?}{}{})", if reason.is_empty() { "" } else { ", " }, reason)]
    Unavailable {
        /// The gRPC status code (UNAVAILABLE for transport errors).
        code: Code,
        /// The ErrorInfo reason when Warden gave one (`OVERLOADED`,
        /// `DATABASE_UNAVAILABLE`, `TIMEOUT`), else empty.
        reason: String,
    },
    /// Warden answered OK but the answer lacks a required field.
    #[error("Warden's answer is malformed: {0}")]
    Protocol(&'static str),
    /// The endpoint or TLS settings are unusable.
    #[error("invalid client configuration: {0}")]
    Config(String),
}

impl ClientError {
    /// Whether the token was refused — by Warden or by local verification —
    /// as opposed to no answer.
    pub fn is_rejected(&self) -> bool {
        matches!(
            self,
            ClientError::Rejected { .. } | ClientError::AccessToken(_)
        )
    }

    /// Why an access token was refused, if that is the error.
    pub fn access_token_error(&self) -> Option<AccessTokenError> {
        match self {
            ClientError::AccessToken(kind) => Some(*kind),
            _ => None,
        }
    }

    /// The ErrorInfo reason, if any.
    pub fn reason(&self) -> Option<&str> {
        match self {
            ClientError::Rejected { reason } | ClientError::Unavailable { reason, .. }
                if !reason.is_empty() =>
            {
                Some(reason)
            }
            _ => None,
        }
    }

    /// Maps a status from ValidateSession (or GetJwks).
    pub(crate) fn from_status(status: &tonic::Status) -> Self {
        let reason = status
            .get_error_details()
            .error_info()
            .map(|info| info.reason.clone())
            .unwrap_or_default();
        match status.code() {
            // Warden's "no": the token is not (or not yet) a usable session.
            Code::Unauthenticated => ClientError::Rejected {
                reason: or(reason, "SESSION_INVALID"),
            },
            Code::InvalidArgument => ClientError::Rejected {
                reason: or(reason, "INVALID_REQUEST"),
            },
            Code::PermissionDenied => ClientError::Rejected {
                reason: or(reason, "PERMISSION_DENIED"),
            },
            // Everything else is no usable answer: fail closed.
            code => ClientError::Unavailable { code, reason },
        }
    }
}

fn or(reason: String, default: &str) -> String {
    if reason.is_empty() {
        default.to_owned()
    } else {
        reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_rejected_or_unavailable() {
        let e = ClientError::from_status(&tonic::Status::unauthenticated("no"));
        assert_eq!(e.reason(), Some("SESSION_INVALID"));
        assert!(e.is_rejected());
        let e = ClientError::from_status(&tonic::Status::invalid_argument("empty"));
        assert!(e.is_rejected());
        for status in [
            tonic::Status::unavailable("down"),
            tonic::Status::deadline_exceeded("slow"),
            tonic::Status::internal("oops"),
            tonic::Status::unknown("transport"),
        ] {
            assert!(!ClientError::from_status(&status).is_rejected());
        }
    }

    #[test]
    fn error_info_reason_is_kept() {
        let status = tonic::Status::with_error_details(
            Code::Unauthenticated,
            "session invalid",
            tonic_types::ErrorDetails::with_error_info(
                "SESSION_INVALID",
                "warden",
                std::collections::HashMap::new(),
            ),
        );
        let e = ClientError::from_status(&status);
        assert!(matches!(e, ClientError::Rejected { ref reason } if reason == "SESSION_INVALID"));
        let status = tonic::Status::with_error_details(
            Code::Unavailable,
            "overloaded",
            tonic_types::ErrorDetails::with_error_info(
                "OVERLOADED",
                "warden",
                std::collections::HashMap::new(),
            ),
        );
        let e = ClientError::from_status(&status);
        assert_eq!(e.reason(), Some("OVERLOADED"));
        assert!(!e.is_rejected());
    }
}
