//! The admin token check, in front of everything the admin listener
//! serves (AdminService and its reflection): a call without the token, or
//! with a wrong one, is UNAUTHENTICATED `ADMIN_UNAUTHENTICATED` before any
//! service sees it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use crate::crypto::admin_token::AdminToken;
use crate::domain::AuthError;

/// The admin-token layer.
#[derive(Clone)]
pub struct AdminAuthLayer {
    token: Arc<AdminToken>,
}

impl AdminAuthLayer {
    /// Admits calls that carry `token`.
    pub fn new(token: AdminToken) -> Self {
        Self {
            token: Arc::new(token),
        }
    }
}

impl<S> Layer<S> for AdminAuthLayer {
    type Service = AdminAuth<S>;

    fn layer(&self, inner: S) -> AdminAuth<S> {
        AdminAuth {
            inner,
            token: self.token.clone(),
        }
    }
}

/// The admin-token service.
#[derive(Clone)]
pub struct AdminAuth<S> {
    inner: S,
    token: Arc<AdminToken>,
}

type Response = http::Response<tonic::body::Body>;

/// The presented token of `authorization: Bearer <token>`: exactly one
/// value, scheme case-insensitive, as on the main listener.
fn presented(headers: &http::HeaderMap) -> Option<&[u8]> {
    let values = headers.get_all(http::header::AUTHORIZATION);
    crate::grpc::bearer::token(values.iter().map(http::HeaderValue::as_bytes))
}

impl<S, B> Service<http::Request<B>> for AdminAuth<S>
where
    S: Service<http::Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let admitted = presented(request.headers()).is_some_and(|t| self.token.matches(t));
        if !admitted {
            // The presented value is never logged: it may be a real token
            // pasted into the wrong place.
            tracing::warn!(
                path = request.uri().path(),
                "admin call refused: token missing or wrong"
            );
            let refusal = tonic::Status::from(AuthError::AdminUnauthenticated).into_http();
            return Box::pin(std::future::ready(Ok(refusal)));
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(inner.call(request))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for v in values {
            map.append(http::header::AUTHORIZATION, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn only_one_bearer_value_is_read() {
        assert_eq!(presented(&headers(&["Bearer abc"])), Some(&b"abc"[..]));
        assert_eq!(presented(&headers(&["bEaReR  abc "])), Some(&b"abc"[..]));
        assert_eq!(presented(&headers(&["Basic abc"])), None);
        assert_eq!(presented(&headers(&["Bearer a", "Bearer b"])), None);
        assert_eq!(presented(&headers(&[])), None);
    }
}
