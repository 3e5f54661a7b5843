//! A bounded cache of positive ValidateSession answers.
//!
//! Keys are SHA-256 digests of the token, never the token itself. An entry
//! lives at most the configured TTL and never past the session's
//! `expires_at`; only successes are stored. When full, expired entries go
//! first, then the oldest insertions.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest as _, Sha256};

use crate::clock::Clock;
use crate::{ClientError, Identity};

/// The digest a token is cached under.
pub(crate) type Key = [u8; 32];

/// The cache key for `token`.
pub(crate) fn key(token: &str) -> Key {
    Sha256::digest(token.as_bytes()).into()
}

/// When an entry made at `now` (wall clock `wall`) must go: after `ttl`,
/// and never past `expires_at`. `None` when it must not be stored at all.
pub(crate) fn deadline(
    now: Instant,
    wall: SystemTime,
    ttl: Duration,
    expires_at: SystemTime,
) -> Option<Instant> {
    let remaining = expires_at.duration_since(wall).ok()?;
    let life = ttl.min(remaining);
    if life.is_zero() {
        return None;
    }
    now.checked_add(life)
}

struct Entry {
    identity: Identity,
    deadline: Instant,
    /// Which insertion this is, to skip stale places in the queue.
    generation: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Key, Entry>,
    /// Insertion order: (key, generation).
    order: VecDeque<(Key, u64)>,
    next_generation: u64,
}

/// A size-capped, TTL'd map from token digests to identities.
pub(crate) struct Cache {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl Cache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a consistent map.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The identity cached for `key`, if still live at `now`.
    pub(crate) fn get(&self, key: &Key, now: Instant) -> Option<Identity> {
        let mut inner = self.lock();
        match inner.entries.get(key) {
            Some(entry) if now < entry.deadline => Some(entry.identity.clone()),
            Some(_) => {
                inner.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores `identity` under `key` until `deadline`, evicting if full.
    pub(crate) fn insert(&self, key: Key, identity: Identity, deadline: Instant, now: Instant) {
        if self.capacity == 0 || deadline <= now {
            return;
        }
        let mut inner = self.lock();
        let inner = &mut *inner;
        if !inner.entries.contains_key(&key) && inner.entries.len() >= self.capacity {
            inner.entries.retain(|_, e| now < e.deadline);
            let entries = &inner.entries;
            inner
                .order
                .retain(|(k, g)| entries.get(k).is_some_and(|e| e.generation == *g));
            while inner.entries.len() >= self.capacity {
                let Some((k, g)) = inner.order.pop_front() else {
                    break;
                };
                if inner.entries.get(&k).is_some_and(|e| e.generation == g) {
                    inner.entries.remove(&k);
                }
            }
        }
        let generation = inner.next_generation;
        inner.next_generation += 1;
        inner.entries.insert(
            key,
            Entry {
                identity,
                deadline,
                generation,
            },
        );
        inner.order.push_back((key, generation));
        // Re-insertions leave stale places behind; keep the queue bounded.
        if inner.order.len() > self.capacity.saturating_mul(2).max(16) {
            let entries = &inner.entries;
            inner
                .order
                .retain(|(k, g)| entries.get(k).is_some_and(|e| e.generation == *g));
        }
    }

    /// The cached identity for `key`, or `fetch`'s answer, stored only when
    /// it is a success (until `ttl`, never past its `expires_at`), with
    /// times read from `clock`.
    pub(crate) async fn get_or_fetch<Fut>(
        &self,
        key: Key,
        ttl: Duration,
        clock: &dyn Clock,
        fetch: impl FnOnce() -> Fut,
    ) -> Result<Identity, ClientError>
    where
        Fut: Future<Output = Result<Identity, ClientError>>,
    {
        if let Some(identity) = self.get(&key, clock.instant()) {
            return Ok(identity);
        }
        let result = fetch().await;
        match &result {
            Ok(identity) => {
                // Measured after the answer: a slow call does not extend it
                // past `expires_at`, and the TTL starts when it was known.
                let now = clock.instant();
                if let Some(deadline) = deadline(now, clock.wall(), ttl, identity.expires_at) {
                    self.insert(key, identity.clone(), deadline, now);
                }
            }
            Err(_) => self.remove(&key),
        }
        result
    }

    /// Forgets `key` (e.g. after Warden rejected it).
    pub(crate) fn remove(&self, key: &Key) {
        self.lock().entries.remove(key);
    }

    /// How many entries are held (live or not yet purged).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::clock::{ManualClock, SystemClock};

    fn identity(user: &str) -> Identity {
        Identity {
            user_id: user.into(),
            username: Some(user.into()),
            session_id: format!("s-{user}"),
            amr: vec!["pwd".into()],
            expires_at: SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000),
            authenticated_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000),
            credential: crate::Credential::SessionToken,
        }
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn key_is_a_digest_not_the_token() {
        let k = key("secret-token");
        assert_eq!(k.len(), 32);
        assert_ne!(&k[..], &b"secret-token"[..]);
        assert_eq!(k, key("secret-token"));
        assert_ne!(k, key("secret-tokeN"));
    }

    #[test]
    fn entries_live_for_the_ttl_only() {
        let cache = Cache::new(10);
        let t0 = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let id = identity("a");
        let d = deadline(t0, wall, 5 * S, id.expires_at).unwrap();
        assert_eq!(d, t0 + 5 * S);
        cache.insert(key("a"), id.clone(), d, t0);
        assert_eq!(cache.get(&key("a"), t0 + 4 * S), Some(id));
        assert_eq!(cache.get(&key("a"), t0 + 5 * S), None);
        assert_eq!(cache.len(), 0, "an expired entry is dropped when seen");
    }

    #[test]
    fn entries_never_outlive_expires_at() {
        let t0 = Instant::now();
        let expires_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let wall = expires_at - 2 * S;
        assert_eq!(deadline(t0, wall, 5 * S, expires_at), Some(t0 + 2 * S));
        // Already over, or exactly at the end: not stored.
        assert_eq!(deadline(t0, expires_at, 5 * S, expires_at), None);
        assert_eq!(deadline(t0, expires_at + S, 5 * S, expires_at), None);
        // A zero TTL disables caching.
        assert_eq!(deadline(t0, wall, Duration::ZERO, expires_at), None);

        let cache = Cache::new(10);
        let mut id = identity("b");
        id.expires_at = expires_at;
        cache.insert(key("b"), id.clone(), t0 + 2 * S, t0);
        assert_eq!(cache.get(&key("b"), t0 + S), Some(id));
        assert_eq!(cache.get(&key("b"), t0 + 2 * S), None);
    }

    #[test]
    fn size_is_capped_oldest_evicted_first() {
        let cache = Cache::new(3);
        let t0 = Instant::now();
        for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
            let now = t0 + Duration::from_millis(i as u64);
            cache.insert(key(name), identity(name), t0 + 10 * S, now);
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&key("a"), t0), None, "the oldest went");
        for name in ["b", "c", "d"] {
            assert!(cache.get(&key(name), t0).is_some(), "{name} kept");
        }
    }

    #[test]
    fn expired_entries_are_evicted_before_live_ones() {
        let cache = Cache::new(2);
        let t0 = Instant::now();
        cache.insert(key("old-live"), identity("x"), t0 + 10 * S, t0);
        cache.insert(key("short"), identity("y"), t0 + S, t0);
        cache.insert(key("new"), identity("z"), t0 + 10 * S, t0 + 2 * S);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&key("old-live"), t0 + 2 * S).is_some());
        assert!(cache.get(&key("new"), t0 + 2 * S).is_some());
    }

    #[test]
    fn reinsertion_refreshes_and_does_not_grow() {
        let cache = Cache::new(2);
        let t0 = Instant::now();
        for i in 0..100u64 {
            let now = t0 + Duration::from_millis(i);
            cache.insert(key("same"), identity("s"), now + S, now);
        }
        assert_eq!(cache.len(), 1);
        assert!(cache.lock().order.len() <= 16);
        cache.insert(key("other"), identity("o"), t0 + 10 * S, t0);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn zero_capacity_stores_nothing() {
        let cache = Cache::new(0);
        let t0 = Instant::now();
        cache.insert(key("a"), identity("a"), t0 + S, t0);
        assert_eq!(cache.get(&key("a"), t0), None);
    }

    fn far_future() -> SystemTime {
        SystemTime::now() + Duration::from_secs(3600)
    }

    #[tokio::test]
    async fn successes_are_reused_failures_are_not_cached() {
        let cache = Cache::new(10);
        let calls = std::cell::Cell::new(0);
        let ok = || {
            calls.set(calls.get() + 1);
            let mut id = identity("ok");
            id.expires_at = far_future();
            async move { Ok(id) }
        };
        cache
            .get_or_fetch(key("ok"), 5 * S, &SystemClock, ok)
            .await
            .unwrap();
        cache
            .get_or_fetch(key("ok"), 5 * S, &SystemClock, ok)
            .await
            .unwrap();
        assert_eq!(calls.get(), 1, "the second answer came from the cache");

        calls.set(0);
        let rejected = || {
            calls.set(calls.get() + 1);
            async {
                Err(ClientError::Rejected {
                    reason: "SESSION_INVALID".into(),
                })
            }
        };
        let unavailable = || {
            calls.set(calls.get() + 1);
            async {
                Err(ClientError::Unavailable {
                    code: tonic::Code::Unavailable,
                    reason: String::new(),
                })
            }
        };
        for _ in 0..2 {
            let r = cache.get_or_fetch(key("bad"), 5 * S, &SystemClock, rejected);
            assert!(r.await.is_err());
            let r = cache.get_or_fetch(key("down"), 5 * S, &SystemClock, unavailable);
            assert!(r.await.is_err());
        }
        assert_eq!(calls.get(), 4, "every failure asked again");
        assert_eq!(cache.len(), 1, "only the success is held");
    }

    #[tokio::test]
    async fn zero_ttl_always_asks() {
        let cache = Cache::new(10);
        let calls = std::cell::Cell::new(0);
        let ok = || {
            calls.set(calls.get() + 1);
            let mut id = identity("ok");
            id.expires_at = far_future();
            async move { Ok(id) }
        };
        for _ in 0..3 {
            cache
                .get_or_fetch(key("ok"), Duration::ZERO, &SystemClock, ok)
                .await
                .unwrap();
        }
        assert_eq!(calls.get(), 3);
        assert_eq!(cache.len(), 0);
    }

    #[tokio::test]
    async fn on_a_manual_clock_an_answer_lives_for_the_ttl_then_is_asked_again() {
        let clock = ManualClock::new();
        let cache = Cache::new(10);
        let calls = std::cell::Cell::new(0);
        let expires_at = clock.wall() + 60 * S;
        let ok = || {
            calls.set(calls.get() + 1);
            let mut id = identity("m");
            id.expires_at = expires_at;
            async move { Ok(id) }
        };
        let fetch = || cache.get_or_fetch(key("m"), 5 * S, &clock, ok);
        fetch().await.unwrap();
        clock.advance(4 * S);
        fetch().await.unwrap();
        assert_eq!(calls.get(), 1, "within the TTL");
        clock.advance(S);
        fetch().await.unwrap();
        assert_eq!(calls.get(), 2, "asked again at the TTL");
        // Near the session's end the entry lives only until expires_at.
        clock.advance(53 * S);
        fetch().await.unwrap();
        clock.advance(2 * S);
        fetch().await.unwrap();
        assert_eq!(calls.get(), 4, "never served past expires_at");
        // An answer that is already past its end is not stored.
        fetch().await.unwrap();
        assert_eq!((calls.get(), cache.len()), (5, 0));
    }

    #[test]
    fn removal_forgets() {
        let cache = Cache::new(2);
        let t0 = Instant::now();
        cache.insert(key("a"), identity("a"), t0 + S, t0);
        cache.remove(&key("a"));
        assert_eq!(cache.get(&key("a"), t0), None);
    }
}
