//! Waiting for the request message: how long (the client's `grpc-timeout`
//! or the server's own limit, whichever ends first) and how much.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use tokio::time::Instant;

use super::MAX_MESSAGE_BYTES;
use crate::grpc::status;

/// A unary request body is one gRPC frame: a 5-byte prefix (compressed flag,
/// length) and the message.
const MAX_BODY_BYTES: usize = MAX_MESSAGE_BYTES + 5;

/// The client's `grpc-timeout` (gRPC over HTTP/2: up to 8 digits and a unit).
pub(super) fn client_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = value.split_at_checked(split)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// When the client's deadline ends the call, answered by the guard as
/// DEADLINE_EXCEEDED `TIMEOUT`. tonic's own timer for the same header runs
/// outside this layer and would answer CANCELLED with library text; ending a
/// little earlier than it makes sure Warden's answer is the one sent (tonic
/// polls the call before its timer, and both timers share tokio's clock).
pub(super) fn client_deadline(headers: &http::HeaderMap, start: Instant) -> Option<Instant> {
    let timeout = client_timeout(headers)?;
    let margin = (timeout / 10).min(Duration::from_millis(5));
    start.checked_add(timeout.saturating_sub(margin))
}

/// Reads the whole (size-capped) request body, so that the call takes its
/// slot only once its message is here.
pub(super) async fn read_body(body: tonic::body::Body) -> Result<Bytes, tonic::Status> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(status::invalid_request(
            "request",
            "request is malformed or too large",
        )),
        Err(e) => {
            // A reset or broken stream: the client has usually gone.
            tracing::debug!(error = %e, "request body did not arrive whole");
            Err(status::invalid_request(
                "request",
                "request is malformed, incomplete or unsupported",
            ))
        }
    }
}
