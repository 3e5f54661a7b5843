//! Warden's public signing keys (an RFC 7517 JWK Set from GetJwks), cached
//! and refreshed.
//!
//! A fetched set is used for `ttl`; after that the next verification fetches
//! again, and if that fails, verifications fail closed (unavailable) until a
//! fetch succeeds, so a key Warden stopped publishing stops verifying within
//! `ttl`. A token naming an unknown `kid` triggers one early fetch (a key may
//! just have been added), but fetches are at least `min_interval` apart and
//! one at a time, so a flood of invented `kid`s costs Warden one call per
//! interval.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use data_encoding::BASE64URL_NOPAD;
use ed25519_dalek::VerifyingKey;
use serde::Deserialize;

use crate::ClientError;
use crate::access::AccessTokenError;
use crate::clock::Clock;

/// Where the JWK Set document comes from (GetJwks in production).
pub(crate) trait JwksSource: Send + Sync + 'static {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<String, ClientError>> + Send + '_>>;
}

/// The usable keys of one JWK Set, by `kid`.
#[derive(Debug, Default)]
pub(crate) struct KeySet(HashMap<String, VerifyingKey>);

#[derive(Deserialize)]
struct Document {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    crv: Option<String>,
    x: Option<String>,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
}

impl KeySet {
    /// Parses a JWK Set, keeping only Ed25519 signing keys with a `kid`;
    /// other keys (other types, encryption keys) are skipped, not errors, so
    /// Warden may publish more later.
    pub(crate) fn parse(json: &str) -> Result<Self, ClientError> {
        let document: Document =
            serde_json::from_str(json).map_err(|_| ClientError::Protocol("JWK Set malformed"))?;
        let mut keys = HashMap::new();
        for jwk in document.keys {
            let ed25519 = jwk.kty == "OKP" && jwk.crv.as_deref() == Some("Ed25519");
            let signing = jwk.use_.as_deref().is_none_or(|u| u == "sig")
                && jwk.alg.as_deref().is_none_or(|a| a == "EdDSA");
            let (Some(kid), Some(x)) = (jwk.kid, jwk.x) else {
                continue;
            };
            if !ed25519 || !signing || kid.is_empty() {
                continue;
            }
            let key = BASE64URL_NOPAD
                .decode(x.as_bytes())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .and_then(|b| VerifyingKey::from_bytes(&b).ok())
                .ok_or(ClientError::Protocol(
                    "JWK Set holds an invalid Ed25519 key",
                ))?;
            if keys.insert(kid, key).is_some() {
                return Err(ClientError::Protocol("JWK Set repeats a kid"));
            }
        }
        Ok(Self(keys))
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

struct Snapshot {
    keys: KeySet,
    fetched_at: Instant,
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    /// Why the last attempt failed; `None` after a success.
    last_error: Option<ClientError>,
}

/// The cached key set and its refresh policy.
pub(crate) struct Jwks {
    source: Box<dyn JwksSource>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    min_interval: Duration,
    current: RwLock<Option<Arc<Snapshot>>>,
    /// Held while fetching: one fetch at a time, waiters re-check after it.
    fetch: tokio::sync::Mutex<FetchState>,
}

impl Jwks {
    pub(crate) fn new(
        source: Box<dyn JwksSource>,
        clock: Arc<dyn Clock>,
        ttl: Duration,
        min_interval: Duration,
    ) -> Self {
        Self {
            source,
            clock,
            ttl,
            // A set must be refreshable once it is stale.
            min_interval: min_interval.min(ttl),
            current: RwLock::new(None),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
        }
    }

    fn fresh(&self, now: Instant) -> Option<Arc<Snapshot>> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        current
            .as_ref()
            .filter(|s| now.saturating_duration_since(s.fetched_at) < self.ttl)
            .cloned()
    }

    /// The published key named `kid`.
    pub(crate) async fn key(&self, kid: &str) -> Result<VerifyingKey, ClientError> {
        if let Some(key) = self
            .fresh(self.clock.instant())
            .and_then(|s| s.keys.0.get(kid).copied())
        {
            return Ok(key);
        }
        let mut state = self.fetch.lock().await;
        // Another caller may have fetched while this one waited.
        let now = self.clock.instant();
        let fresh = self.fresh(now);
        if let Some(key) = fresh.as_ref().and_then(|s| s.keys.0.get(kid).copied()) {
            return Ok(key);
        }
        let too_soon = state
            .last_attempt
            .is_some_and(|t| now.saturating_duration_since(t) < self.min_interval);
        if too_soon {
            return Err(match (&fresh, &state.last_error) {
                // The set is current and lacks the kid: a made-up key.
                (Some(_), _) | (None, None) => AccessTokenError::UnknownKey.into(),
                // No usable set, and Warden did not give one just now.
                (None, Some(e)) => e.clone(),
            });
        }
        state.last_attempt = Some(now);
        // Counted as failed until it returns: a cancelled fetch does not
        // let the next caller skip the interval.
        state.last_error = Some(ClientError::Unavailable {
            code: tonic::Code::Unavailable,
            reason: String::new(),
        });
        let fetched = self
            .source
            .fetch()
            .await
            .and_then(|json| KeySet::parse(&json));
        match fetched {
            Ok(keys) => {
                state.last_error = None;
                tracing::debug!(keys = keys.len(), "fetched Warden's signing keys");
                let found = keys.0.get(kid).copied();
                let snapshot = Arc::new(Snapshot {
                    keys,
                    fetched_at: self.clock.instant(),
                });
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(snapshot);
                found.ok_or_else(|| AccessTokenError::UnknownKey.into())
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot fetch Warden's signing keys");
                state.last_error = Some(e.clone());
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::clock::ManualClock;
    use crate::test_keys::{TestKey, jwks};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Serves whatever document it holds (or an outage), counting fetches.
    #[derive(Default)]
    struct Source {
        document: Mutex<Option<String>>,
        fetches: AtomicUsize,
    }

    impl JwksSource for Arc<Source> {
        fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<String, ClientError>> + Send + '_>> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let document = self.document.lock().unwrap().clone();
            Box::pin(async move {
                // Let concurrent callers pile up behind this fetch.
                tokio::task::yield_now().await;
                document.ok_or(ClientError::Unavailable {
                    code: tonic::Code::Unavailable,
                    reason: String::new(),
                })
            })
        }
    }

    const S: Duration = Duration::from_secs(1);

    fn setup(document: Option<String>) -> (Arc<Source>, Arc<ManualClock>, Jwks) {
        let source = Arc::new(Source::default());
        *source.document.lock().unwrap() = document;
        let clock = Arc::new(ManualClock::new());
        let jwks = Jwks::new(Box::new(source.clone()), clock.clone(), 300 * S, 10 * S);
        (source, clock, jwks)
    }

    fn fetches(source: &Source) -> usize {
        source.fetches.load(Ordering::SeqCst)
    }

    fn unknown(result: Result<VerifyingKey, ClientError>) -> bool {
        matches!(
            result,
            Err(ClientError::AccessToken(AccessTokenError::UnknownKey))
        )
    }

    #[tokio::test]
    async fn a_fetched_set_is_reused_until_its_ttl() {
        let k1 = TestKey::new("k1", 1);
        let (source, clock, jwks) = setup(Some(jwks(&[&k1])));
        for _ in 0..100 {
            jwks.key("k1").await.unwrap();
        }
        assert_eq!(fetches(&source), 1);
        clock.advance(299 * S);
        jwks.key("k1").await.unwrap();
        assert_eq!(fetches(&source), 1);
        clock.advance(S);
        jwks.key("k1").await.unwrap();
        assert_eq!(fetches(&source), 2, "fetched again at the TTL");
    }

    #[tokio::test]
    async fn invented_kids_cost_one_fetch_per_interval() {
        let k1 = TestKey::new("k1", 1);
        let (source, clock, jwks) = setup(Some(jwks(&[&k1])));
        jwks.key("k1").await.unwrap();
        let jwks = Arc::new(jwks);
        let flood: Vec<_> = (0..200)
            .map(|i| {
                let jwks = jwks.clone();
                tokio::spawn(async move { jwks.key(&format!("bogus-{i}")).await })
            })
            .collect();
        for call in flood {
            assert!(unknown(call.await.unwrap()));
        }
        assert_eq!(
            fetches(&source),
            1,
            "within the interval nothing is fetched"
        );
        clock.advance(10 * S);
        for i in 0..50 {
            assert!(unknown(jwks.key(&format!("other-{i}")).await));
        }
        assert_eq!(fetches(&source), 2, "one refresh after the interval");
        assert!(jwks.key("k1").await.is_ok(), "known keys are unaffected");
    }

    #[tokio::test]
    async fn a_new_kid_is_found_by_one_refresh_and_a_dropped_one_goes_at_the_ttl() {
        let (k1, k2) = (TestKey::new("k1", 1), TestKey::new("k2", 2));
        let (source, clock, jwks) = setup(Some(jwks(&[&k1])));
        jwks.key("k1").await.unwrap();
        // Warden starts publishing k2 (and signing with it).
        *source.document.lock().unwrap() = Some(jwks_of(&[&k2, &k1]));
        clock.advance(10 * S);
        jwks.key("k2").await.unwrap();
        jwks.key("k1").await.unwrap();
        assert_eq!(fetches(&source), 2);
        // Warden stops publishing k1: it verifies until the set's TTL.
        *source.document.lock().unwrap() = Some(jwks_of(&[&k2]));
        clock.advance(299 * S);
        jwks.key("k1").await.unwrap();
        clock.advance(S);
        assert!(unknown(jwks.key("k1").await));
        jwks.key("k2").await.unwrap();
    }

    #[tokio::test]
    async fn without_keys_verification_fails_closed_and_retries_after_the_interval() {
        let k1 = TestKey::new("k1", 1);
        let (source, clock, jwks) = setup(None);
        let down = |r: Result<VerifyingKey, ClientError>| {
            matches!(r, Err(ClientError::Unavailable { .. }))
        };
        assert!(down(jwks.key("k1").await));
        assert!(
            down(jwks.key("k1").await),
            "the failure stands within the interval"
        );
        assert_eq!(fetches(&source), 1);
        *source.document.lock().unwrap() = Some(jwks_of(&[&k1]));
        clock.advance(10 * S);
        jwks.key("k1").await.unwrap();
        // A stale set whose refresh fails is not used.
        *source.document.lock().unwrap() = None;
        clock.advance(300 * S);
        assert!(down(jwks.key("k1").await));
    }

    fn jwks_of(keys: &[&TestKey]) -> String {
        jwks(keys)
    }

    #[test]
    fn only_ed25519_signing_keys_are_kept() {
        let k1 = TestKey::new("k1", 1);
        let mut rsa = k1.jwk();
        rsa["kty"] = "RSA".into();
        rsa["kid"] = "rsa".into();
        let mut enc = k1.jwk();
        enc["use"] = "enc".into();
        enc["kid"] = "enc".into();
        let mut no_kid = k1.jwk();
        no_kid.as_object_mut().unwrap().remove("kid");
        let doc = serde_json::json!({"keys": [k1.jwk(), rsa, enc, no_kid]}).to_string();
        let set = KeySet::parse(&doc).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.0.contains_key("k1"));

        let mut bad = k1.jwk();
        bad["x"] = "AAAA".into();
        let doc = serde_json::json!({"keys": [bad]}).to_string();
        assert!(matches!(KeySet::parse(&doc), Err(ClientError::Protocol(_))));
        let doc = serde_json::json!({"keys": [k1.jwk(), k1.jwk()]}).to_string();
        assert!(matches!(KeySet::parse(&doc), Err(ClientError::Protocol(_))));
        assert!(matches!(KeySet::parse("{}"), Err(ClientError::Protocol(_))));
    }
}
