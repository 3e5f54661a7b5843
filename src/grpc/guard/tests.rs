//! The guard's unit tests: time limits, the in-flight cap, waiting for the
//! message, status mapping and `grpc-timeout` parsing.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use tonic::Code;
use tonic_types::StatusExt as _;

use super::body::client_timeout;
use super::*;
use crate::grpc::status;

fn config(max_in_flight: usize, timeout: Duration) -> GuardConfig {
    GuardConfig {
        rate_limits: None,
        max_in_flight,
        request_timeout: timeout,
        body_timeout: timeout,
    }
}

/// A unary request carrying one (empty) framed message.
fn request(path: &str) -> Request {
    let framed = Bytes::from_static(&[0, 0, 0, 0, 0]);
    http::Request::builder()
        .uri(path)
        .body(tonic::body::Body::new(Full::new(framed)))
        .unwrap_or_default()
}

/// A request whose message never comes.
fn headers_only(path: &str) -> Request {
    let never = http_body_util::StreamBody::new(futures_pending());
    http::Request::builder()
        .uri(path)
        .body(tonic::body::Body::new(never))
        .unwrap_or_default()
}

fn futures_pending()
-> impl tokio_stream::Stream<Item = Result<http_body::Frame<Bytes>, Infallible>> + Send + 'static {
    tokio_stream::pending()
}

fn reason(response: &Response) -> (Option<String>, String) {
    let status = tonic::Status::from_header_map(response.headers());
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let reason = status
        .and_then(|s| s.get_error_details().error_info().map(|i| i.reason.clone()))
        .unwrap_or_default();
    (code, reason)
}

fn pending_service()
-> impl Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone {
    tower::service_fn(|_: Request| std::future::pending::<Result<Response, Infallible>>())
}

#[tokio::test]
async fn calls_past_the_time_limit_get_deadline_exceeded_timeout() -> Result<(), Infallible> {
    let layer =
        GuardLayer::new(config(8, Duration::from_millis(20))).map_err(|_| unreachable!())?;
    let mut guard = layer.layer(pending_service());

    let response = guard.call(request("/warden.v1.AuthService/Login")).await?;

    assert_eq!(reason(&response), (Some("4".into()), "TIMEOUT".into()));
    Ok(())
}

#[tokio::test]
async fn calls_beyond_the_in_flight_cap_are_refused_at_once() -> Result<(), Infallible> {
    let layer = GuardLayer::new(config(1, Duration::from_secs(60))).map_err(|_| unreachable!())?;
    let mut guard = layer.layer(pending_service());
    let _first = tokio::spawn(guard.call(request("/warden.v1.AuthService/Login")));
    tokio::task::yield_now().await;
    while layer.state.in_flight.available_permits() > 0 {
        tokio::task::yield_now().await;
    }

    let second = guard.call(request("/warden.v1.AuthService/Login")).await?;

    assert_eq!(reason(&second), (Some("14".into()), "OVERLOADED".into()));
    Ok(())
}

#[tokio::test]
async fn a_stream_without_its_message_holds_no_slot_and_times_out() -> Result<(), Infallible> {
    let layer =
        GuardLayer::new(config(1, Duration::from_millis(50))).map_err(|_| unreachable!())?;
    let mut guard = layer.layer(tower::service_fn(|_: Request| {
        std::future::ready(Ok::<Response, Infallible>(http::Response::default()))
    }));
    let waiting = tokio::spawn(guard.call(headers_only("/warden.v1.AuthService/Login")));
    tokio::task::yield_now().await;

    let ordinary = guard.call(request("/warden.v1.AuthService/Login")).await?;
    let free = layer.state.in_flight.available_permits();
    let waited = waiting.await.map_err(|_| unreachable!())??;

    assert_eq!(status::code_of(&ordinary), Code::Ok);
    assert_eq!(free, 1);
    assert_eq!(reason(&waited), (Some("4".into()), "TIMEOUT".into()));
    Ok(())
}

#[tokio::test]
async fn statuses_made_below_the_handlers_are_mapped_to_the_contract() -> Result<(), Infallible> {
    let layer = GuardLayer::new(config(8, Duration::from_secs(60))).map_err(|_| unreachable!())?;
    for (code, expected, reason_expected) in [
        (Code::OutOfRange, "3", "INVALID_REQUEST"),
        (Code::Unimplemented, "3", "INVALID_REQUEST"),
        (Code::Cancelled, "3", "INVALID_REQUEST"),
        (Code::Unknown, "13", ""),
        (Code::Internal, "13", ""),
        (Code::Unavailable, "14", "OVERLOADED"),
        (Code::DeadlineExceeded, "4", "TIMEOUT"),
        (Code::Unauthenticated, "13", ""),
    ] {
        let mut guard = layer.layer(tower::service_fn(move |_: Request| {
            std::future::ready(Ok::<_, Infallible>(
                tonic::Status::new(code, "raw h2 text: gzip").into_http(),
            ))
        }));
        let response = guard.call(request("/warden.v1.AuthService/Login")).await?;
        let message = tonic::Status::from_header_map(response.headers())
            .map(|s| s.message().to_owned())
            .unwrap_or_default();
        assert_eq!(
            reason(&response),
            (Some(expected.into()), reason_expected.into()),
            "{code:?}"
        );
        assert!(!message.contains("gzip"), "{code:?}: {message}");
    }
    Ok(())
}

#[tokio::test]
async fn out_of_range_and_unknown_never_leave_health_either() -> Result<(), Infallible> {
    let layer = GuardLayer::new(config(8, Duration::from_secs(60))).map_err(|_| unreachable!())?;
    for (code, expected) in [
        (Code::OutOfRange, "3"),
        (Code::Unknown, "13"),
        (Code::NotFound, "5"),
    ] {
        let mut guard = layer.layer(tower::service_fn(move |_: Request| {
            std::future::ready(Ok::<_, Infallible>(
                tonic::Status::new(code, "raw").into_http(),
            ))
        }));
        let response = guard.call(request("/grpc.health.v1.Health/Check")).await?;
        assert_eq!(reason(&response).0.as_deref(), Some(expected));
    }
    Ok(())
}

#[tokio::test]
async fn an_unsupported_encoding_is_invalid_request_without_echo() -> Result<(), Infallible> {
    let layer = GuardLayer::new(config(8, Duration::from_secs(60))).map_err(|_| unreachable!())?;
    let mut guard = layer.layer(pending_service());
    let mut call = request("/warden.v1.AuthService/Login");
    call.headers_mut().insert(
        "grpc-encoding",
        http::HeaderValue::from_static("x-evil-secret"),
    );

    let response = guard.call(call).await?;

    let text = format!("{:?}", response.headers());
    assert_eq!(
        reason(&response),
        (Some("3".into()), "INVALID_REQUEST".into())
    );
    assert!(!text.contains("x-evil-secret"));
    Ok(())
}

#[test]
fn grpc_timeouts_parse_per_the_spec() {
    let parse = |v: &[u8]| {
        let mut headers = http::HeaderMap::new();
        if let Ok(value) = http::HeaderValue::from_bytes(v) {
            headers.insert("grpc-timeout", value);
        }
        client_timeout(&headers)
    };
    assert_eq!(parse(b"1S"), Some(Duration::from_secs(1)));
    assert_eq!(parse(b"250m"), Some(Duration::from_millis(250)));
    assert_eq!(parse(b"2H"), Some(Duration::from_secs(7200)));
    assert_eq!(parse(b"123456789S"), None);
    assert_eq!(parse(b"S"), None);
    assert_eq!(parse(b"10x"), None);
    assert_eq!(parse(b"1\xc3\xa9"), None);
}
