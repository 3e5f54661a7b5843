//! A tower layer that lets through only requests with a valid session or
//! access token.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use tonic::Code;

use crate::WardenClient;
use crate::access::looks_like_jws;

/// Which bearer tokens the layer takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accept {
    /// Session tokens (asked of Warden, through the cache) and access tokens
    /// (verified locally). The default.
    #[default]
    Any,
    /// Only session tokens, for routes where a revocation must count within
    /// the cache TTL rather than an access token's lifetime.
    SessionTokens,
    /// Only access tokens: no call to Warden per request.
    AccessTokens,
}

/// What the layer answers when Warden cannot be asked (unreachable, timed
/// out, overloaded, keys not fetchable). Neither lets the request through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenUnavailable {
    /// UNAVAILABLE (gRPC) / 503 with `retry-after` (HTTP): the caller can
    /// tell an outage from a bad token and retry. The default.
    #[default]
    Refuse,
    /// UNAUTHENTICATED / 401, for clients that treat every other status as
    /// a fault of their own.
    Unauthenticated,
}

/// Requires `authorization: Bearer <token>` on every request: a Warden
/// session token or access token (see [`WardenClient::authenticate`]).
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
    policy: Policy,
}

#[derive(Clone, Copy, Debug, Default)]
struct Policy {
    accept: Accept,
    when_unavailable: WhenUnavailable,
}

impl RequireSession {
    /// A layer validating with `client` (and its cache and keys), taking
    /// either kind of token and failing closed with 503 / UNAVAILABLE.
    pub fn new(client: WardenClient) -> Self {
        Self {
            client,
            policy: Policy::default(),
        }
    }

    /// Which tokens to take (default [`Accept::Any`]).
    pub fn accept(mut self, accept: Accept) -> Self {
        self.policy.accept = accept;
        self
    }

    /// What to answer when Warden cannot be asked (default
    /// [`WhenUnavailable::Refuse`]).
    pub fn when_unavailable(mut self, policy: WhenUnavailable) -> Self {
        self.policy.when_unavailable = policy;
        self
    }
}

impl<S> tower::Layer<S> for RequireSession {
    type Service = RequireSessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireSessionService {
            inner,
            client: self.client.clone(),
            policy: self.policy,
        }
    }
}

/// The service [`RequireSession`] wraps around an inner service.
#[derive(Clone, Debug)]
pub struct RequireSessionService<S> {
    inner: S,
    client: WardenClient,
    policy: Policy,
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
        let policy = self.policy;
        Box::pin(async move {
            let grpc = is_grpc(&request);
            let Some(token) = bearer(&request) else {
                return Ok(deny(grpc, Denial::NoToken));
            };
            let taken = match policy.accept {
                Accept::Any => true,
                Accept::SessionTokens => !looks_like_jws(&token),
                Accept::AccessTokens => looks_like_jws(&token),
            };
            if !taken {
                return Ok(deny(grpc, Denial::BadToken));
            }
            match client.authenticate(&token).await {
                Ok(identity) => {
                    request.extensions_mut().insert(identity);
                    inner.call(request).await
                }
                Err(e) if e.is_rejected() => Ok(deny(grpc, Denial::BadToken)),
                Err(e) => {
                    tracing::warn!(error = %e, "Warden unavailable; refusing the request");
                    Ok(deny(
                        grpc,
                        match policy.when_unavailable {
                            WhenUnavailable::Refuse => Denial::Unavailable,
                            WhenUnavailable::Unauthenticated => Denial::BadToken,
                        },
                    ))
                }
            }
        })
    }
}

/// Why a request is turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Denial {
    NoToken,
    BadToken,
    Unavailable,
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

fn deny<B: Default>(grpc: bool, denial: Denial) -> Response<B> {
    if grpc {
        let status = match denial {
            Denial::NoToken | Denial::BadToken => {
                tonic::Status::new(Code::Unauthenticated, "not signed in")
            }
            Denial::Unavailable => {
                tonic::Status::new(Code::Unavailable, "authentication unavailable")
            }
        };
        return status.into_http();
    }
    let mut response = Response::new(B::default());
    let headers = response.headers_mut();
    match denial {
        Denial::NoToken => {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // RFC 6750 §3.1: a token was presented and is not good.
        Denial::BadToken => {
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        Denial::Unavailable => {
            headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
    }
    *response.status_mut() = match denial {
        Denial::NoToken | Denial::BadToken => StatusCode::UNAUTHORIZED,
        Denial::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    };
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
        let r: Response<String> = deny(true, Denial::BadToken);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["grpc-status"], "16");
        assert_eq!(r.headers()[CONTENT_TYPE], "application/grpc");
        let r: Response<String> = deny(true, Denial::NoToken);
        assert_eq!(r.headers()["grpc-status"], "16");
        let r: Response<String> = deny(true, Denial::Unavailable);
        assert_eq!(r.headers()["grpc-status"], "14");
        let r: Response<String> = deny(false, Denial::NoToken);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer");
        let r: Response<String> = deny(false, Denial::BadToken);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\""
        );
        let r: Response<String> = deny(false, Denial::Unavailable);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[RETRY_AFTER], "1");
    }
}
