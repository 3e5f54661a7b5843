//! Only the contract's statuses leave the server: what tonic, hyper or h2
//! answer below the handlers is mapped here, and the guard's own refusals
//! are made here.

use std::time::Duration;

use tonic::Code;
use tonic_types::StatusExt as _;

use super::Response;
use crate::grpc::status;

/// UNKNOWN and OUT_OF_RANGE, which Warden never answers, from any service.
fn never_sent(code: Code) -> Option<tonic::Status> {
    match code {
        // Oversized messages: tonic says OUT_OF_RANGE.
        Code::OutOfRange => Some(status::invalid_request(
            "request",
            "request is malformed or too large",
        )),
        Code::Unknown => Some(status::internal()),
        _ => None,
    }
}

/// Health and reflection keep their own protocols' statuses (probes expect
/// health's NOT_FOUND, grpcurl reflection's UNIMPLEMENTED), minus the two
/// codes Warden never sends.
pub(super) fn sanitize(response: Response) -> Response {
    match never_sent(status::code_of(&response)) {
        Some(status) => status.into_http(),
        None => response,
    }
}

/// Whether `status` is one Warden's own code made: INTERNAL with the generic
/// message and nothing else, or a contract code carrying Warden's ErrorInfo.
fn is_wardens(status: &tonic::Status) -> bool {
    match status.code() {
        Code::Ok => true,
        Code::Internal => status.message() == status::INTERNAL_MESSAGE,
        Code::InvalidArgument
        | Code::AlreadyExists
        | Code::Unauthenticated
        | Code::FailedPrecondition
        | Code::ResourceExhausted
        | Code::Unavailable
        | Code::DeadlineExceeded
        | Code::PermissionDenied
        | Code::NotFound => status
            .get_error_details()
            .error_info()
            .is_some_and(|info| info.domain == status::DOMAIN),
        Code::Cancelled
        | Code::Unknown
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unimplemented
        | Code::DataLoss => false,
    }
}

/// The contract status standing in for one made below the handlers (by
/// tonic, hyper or h2), which may echo request values or carry library text.
fn replacement(code: Code) -> tonic::Status {
    match code {
        // Request-side faults: undecodable, oversized, cut short, or asking
        // for a method or form Warden does not serve.
        Code::InvalidArgument | Code::OutOfRange | Code::Cancelled | Code::Unimplemented => {
            status::invalid_request("request", "request is malformed, incomplete or unsupported")
        }
        Code::DeadlineExceeded => timeout_status(),
        Code::Unavailable | Code::ResourceExhausted => overloaded(),
        Code::Ok
        | Code::Unknown
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::FailedPrecondition
        | Code::Aborted
        | Code::Internal
        | Code::DataLoss
        | Code::Unauthenticated
        | Code::NotFound => status::internal(),
    }
}

/// Makes an AuthService response obey the contract (see `replacement`).
pub(super) fn conform(response: Response) -> Response {
    let code = status::code_of(&response);
    if code == Code::Ok {
        return response;
    }
    let ours = tonic::Status::from_header_map(response.headers()).is_some_and(|s| is_wardens(&s));
    if ours {
        return response;
    }
    // Only the code: the message may echo what the client sent.
    tracing::warn!(?code, "replaced a status made below the handlers");
    replacement(code).into_http()
}

/// UNAVAILABLE `OVERLOADED`: no slot free.
pub(super) fn overloaded() -> tonic::Status {
    status::with_retry(
        Code::Unavailable,
        "OVERLOADED",
        "server is busy; retry shortly",
        Some(Duration::from_secs(1)),
    )
}

/// DEADLINE_EXCEEDED `TIMEOUT`: the message or the call took too long.
pub(super) fn timeout_status() -> tonic::Status {
    status::with_reason(Code::DeadlineExceeded, "TIMEOUT", "the call took too long")
}

/// Warden accepts uncompressed messages only. tonic would answer any other
/// `grpc-encoding` with UNIMPLEMENTED and the header's value in the message.
pub(super) fn unsupported_encoding(headers: &http::HeaderMap) -> Option<Response> {
    let encoding = headers.get("grpc-encoding")?;
    if encoding.as_bytes() == b"identity" {
        return None;
    }
    let mut response: Response =
        status::invalid_request("grpc-encoding", "request compression is not supported")
            .into_http();
    response.headers_mut().insert(
        "grpc-accept-encoding",
        http::HeaderValue::from_static("identity"),
    );
    Some(response)
}
