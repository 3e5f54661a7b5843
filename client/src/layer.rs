//! A tower layer that lets through only requests with a valid session.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use tonic::Code;

use crate::{ClientError, WardenClient};

/// Requires `authorization: Bearer <session token>` on every request.
///
/// A valid token puts its [`Identity`](crate::Identity) into the request's
/// extensions for the inner service. Otherwise the inner service is not
/// called and the answer is, for gRPC requests (`content-type:
/// application/grpc…`), a trailers-only HTTP 200 with `grpc-status`
/// UNAUTHENTICATED (16), or UNAVAILABLE (14) when Warden gave no answer;
/// for other requests 401 (with `www-authenticate: Bearer`) or 503.
///
/// Works with tonic (`Server::builder().layer(..)`) and with any
/// `http::Request`/`http::Response` service (axum, hyper) whose response body
/// implements `Default`.
#[derive(Clone, Debug)]
pub struct RequireSession {
    client: WardenClient,
}

impl RequireSession {
    /// A layer validating with `client` (and its cache).
    pub fn new(client: WardenClient) -> Self {
        Self { client }
    }
}

impl<S> tower::Layer<S> for RequireSession {
    type Service = RequireSessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireSessionService {
            inner,
            client: self.client.clone(),
        }
    }
}

/// The service [`RequireSession`] wraps around an inner service.
#[derive(Clone, Debug)]
pub struct RequireSessionService<S> {
    inner: S,
    client: WardenClient,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for RequireSessionService<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The clone is not ready; keep the one that is for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let client = self.client.clone();
        Box::pin(async move {
            let grpc = is_grpc(&request);
            let Some(token) = bearer(&request) else {
                return Ok(deny(
                    grpc,
                    &ClientError::Rejected {
                        reason: "SESSION_INVALID".into(),
                    },
                ));
            };
            match client.validate(&token).await {
                Ok(identity) => {
                    request.extensions_mut().insert(identity);
                    inner.call(request).await
                }
                Err(e) => {
                    if !e.is_rejected() {
                        tracing::warn!(error = %e, "Warden unavailable; refusing the request");
                    }
                    Ok(deny(grpc, &e))
                }
            }
        })
    }
}

fn is_grpc<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// The token of `authorization: Bearer <token>` (scheme case-insensitive).
fn bearer<B>(request: &Request<B>) -> Option<String> {
    let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

fn deny<B: Default>(grpc: bool, error: &ClientError) -> Response<B> {
    let rejected = error.is_rejected();
    if grpc {
        let status = if rejected {
            tonic::Status::new(Code::Unauthenticated, "session invalid")
        } else {
            tonic::Status::new(Code::Unavailable, "authentication unavailable")
        };
        return status.into_http();
    }
    let mut response = Response::new(B::default());
    if rejected {
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    } else {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn request(auth: Option<&str>) -> Request<()> {
        let mut builder = Request::builder();
        if let Some(a) = auth {
            builder = builder.header(AUTHORIZATION, a);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn bearer_is_parsed() {
        assert_eq!(bearer(&request(Some("Bearer abc"))).as_deref(), Some("abc"));
        assert_eq!(bearer(&request(Some("bearer abc"))).as_deref(), Some("abc"));
        assert_eq!(bearer(&request(Some("Basic abc"))), None);
        assert_eq!(bearer(&request(Some("Bearer "))), None);
        assert_eq!(bearer(&request(Some("Bearer"))), None);
        assert_eq!(bearer(&request(None)), None);
    }

    #[test]
    fn denials_follow_the_protocol() {
        let rejected = ClientError::Rejected {
            reason: "SESSION_INVALID".into(),
        };
        let down = ClientError::Unavailable {
            code: Code::Unavailable,
            reason: String::new(),
        };
        let r: Response<String> = deny(true, &rejected);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["grpc-status"], "16");
        assert_eq!(r.headers()[CONTENT_TYPE], "application/grpc");
        let r: Response<String> = deny(true, &down);
        assert_eq!(r.headers()["grpc-status"], "14");
        let r: Response<String> = deny(false, &rejected);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer");
        let r: Response<String> = deny(false, &down);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
