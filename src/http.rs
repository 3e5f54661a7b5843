//! The plaintext HTTP listener (`WARDEN_HTTP_LISTEN`): `GET /metrics` for
//! Prometheus, and `GET /.well-known/jwks.json`, the JWK Set that backends
//! verify access tokens against (the same document GetJwks answers).

use std::sync::Arc;

use axum::response::{IntoResponse as _, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::metrics::Metrics;

/// Where the JWK Set is served (RFC 8414's well-known name).
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// How long a backend or cache may keep the JWK Set without asking again.
/// It bounds the rotation procedure's wait (a new key must be in every
/// cached copy before it signs), so it is short: five minutes. A 304 for
/// an unchanged set makes asking again nearly free.
pub const JWKS_MAX_AGE_SECS: u32 = 300;

/// The JWK Set and its entity tag, fixed for the life of the process.
#[derive(Clone)]
pub struct JwksDocument {
    json: Arc<str>,
    etag: Arc<str>,
}

impl JwksDocument {
    /// The document `json` with the quoted entity tag `etag`.
    pub fn new(json: &str, etag: &str) -> Self {
        Self {
            json: json.into(),
            etag: etag.into(),
        }
    }

    /// The answer to a GET with `headers`: the set, or 304 when the client
    /// already holds it.
    fn respond(&self, headers: &HeaderMap) -> Response {
        let cache = HeaderValue::from_static(JWKS_CACHE_CONTROL);
        let etag = HeaderValue::from_str(&self.etag).ok();
        let mut response = if holds(headers, &self.etag) {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            (
                [(CONTENT_TYPE, "application/jwk-set+json")],
                self.json.to_string(),
            )
                .into_response()
        };
        let answer = response.headers_mut();
        answer.insert(CACHE_CONTROL, cache);
        if let Some(etag) = etag {
            answer.insert(ETAG, etag);
        }
        response
    }
}

/// `Cache-Control` of the JWK Set; in step with [`JWKS_MAX_AGE_SECS`] (a
/// unit test checks).
const JWKS_CACHE_CONTROL: &str = "public, max-age=300";

/// Whether `If-None-Match` names `etag` (weak comparison, RFC 9110 §13.1.2).
fn holds(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// Serves the metrics and the JWK Set on `listener` until dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    jwks: JwksDocument,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = crate::metrics::routes(metrics).route(
        JWKS_PATH,
        get(move |headers: HeaderMap| {
            let jwks = jwks.clone();
            async move { jwks.respond(&headers) }
        }),
    );
    axum::serve(listener, app).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn document() -> JwksDocument {
        JwksDocument::new(r#"{"keys":[]}"#, "\"abc\"")
    }

    fn asking(tags: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(IF_NONE_MATCH, HeaderValue::from_str(tags).unwrap());
        headers
    }

    #[test]
    fn the_set_is_served_cacheable_with_its_etag() {
        let response = document().respond(&HeaderMap::new());

        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/jwk-set+json");
        assert_eq!(
            response.headers()[CACHE_CONTROL].to_str().unwrap(),
            format!("public, max-age={JWKS_MAX_AGE_SECS}")
        );
        assert_eq!(response.headers()[ETAG], "\"abc\"");
    }

    #[test]
    fn a_client_holding_the_set_gets_304() {
        for tags in ["\"abc\"", "W/\"abc\"", "\"x\", \"abc\"", "*"] {
            let response = document().respond(&asking(tags));

            assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{tags}");
            assert_eq!(response.headers()[ETAG], "\"abc\"");
        }
    }

    #[test]
    fn a_client_holding_another_set_gets_the_new_one() {
        let response = document().respond(&asking("\"old\""));

        assert_eq!(response.status(), StatusCode::OK);
    }
}
