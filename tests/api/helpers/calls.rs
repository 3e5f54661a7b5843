//! Building requests and judging answers: metadata, statuses, TOTP codes,
//! and calls released together.

use std::sync::Arc;

use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt as _;
use warden::grpc::pb::auth_service_client::AuthServiceClient;

/// A request carrying `authorization: Bearer <token>`.
pub fn bearer<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header value"),
    );
    request
}

/// Asserts a status's code and its ErrorInfo reason (domain `warden`).
#[track_caller]
pub fn assert_status(status: &Status, code: Code, reason: &str) {
    assert_eq!(status.code(), code, "status {status:?}");
    let details = status.get_error_details();
    let info = details.error_info().expect("ErrorInfo present");
    assert_eq!(info.reason, reason, "status {status:?}");
    assert_eq!(info.domain, "warden");
}

/// Asserts INVALID_ARGUMENT INVALID_REQUEST with a BadRequest naming `field`.
#[track_caller]
pub fn assert_invalid(status: &Status, field: &str) {
    assert_status(status, Code::InvalidArgument, "INVALID_REQUEST");
    let details = status.get_error_details();
    let bad = details.bad_request().expect("BadRequest present");
    assert!(
        bad.field_violations.iter().any(|v| v.field == field),
        "{status:?} names {field}"
    );
}

/// A password that passes the policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// RFC 6238 TOTP (SHA-1, 6 digits, 30 s), written here from the RFC so the
/// server is checked against an implementation other than its own.
pub fn independent_totp(secret: &[u8], unix_secs: u64) -> String {
    use hmac::{KeyInit as _, Mac as _};
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret).expect("any key length");
    mac.update(&(unix_secs / 30).to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", binary % 1_000_000)
}

/// The RetryInfo wait of a status, in whole seconds.
pub fn retry_secs(status: &Status) -> Option<u64> {
    status
        .get_error_details()
        .retry_info()
        .and_then(|r| r.retry_delay)
        .map(|d| d.as_secs())
}

/// A well-formed TOTP code that is not `right`.
pub fn wrong_code(right: &str) -> &'static str {
    if right == "000000" {
        "111111"
    } else {
        "000000"
    }
}

/// Runs `call` once per channel, every call released at the same moment: all
/// connections are made first and the calls wait at a barrier, so they
/// really overlap (run the test on a multi-thread runtime). Returns the
/// answers in channel order.
pub async fn race<T, F, Fut>(channels: Vec<Channel>, call: F) -> Vec<Result<T, Status>>
where
    F: Fn(AuthServiceClient<Channel>, usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<T, Status>> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(channels.len()));
    let calls: Vec<_> = channels
        .into_iter()
        .enumerate()
        .map(|(i, channel)| {
            let (barrier, call) = (barrier.clone(), call.clone());
            tokio::spawn(async move {
                let client = AuthServiceClient::new(channel);
                barrier.wait().await;
                call(client, i).await
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(calls.len());
    for call in calls {
        answers.push(call.await.expect("call task"));
    }
    answers
}
