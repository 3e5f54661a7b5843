//! The Ed25519 keys that sign access tokens (EdDSA, RFC 8037), and the
//! JWK Set (RFC 7517) that publishes their public halves.
//!
//! Every configured key is published; only the primary signs. That is what
//! makes rotation safe: a new key is listed (and so published) first, made
//! primary once every backend's cached JWK Set holds it, and removed once no
//! token it signed can still be live.
//!
//! `ed25519-dalek` holds the private keys: its `SigningKey` zeroizes itself
//! on drop, and seeds are only ever held in `Zeroizing` buffers here.

use data_encoding::{BASE64, BASE64URL_NOPAD};
use ed25519_dalek::Signer as _;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// Why a set of signing keys could not be built from its configuration.
/// No variant carries any part of an entry: a mistyped entry may be a seed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigningKeyError {
    /// No entries at all.
    #[error("no signing key is listed")]
    Empty,
    /// An entry is not `kid:base64(seed)`, or its key id is not 1–64 of
    /// `[A-Za-z0-9._-]`.
    #[error("entry {0} is not of the form kid:base64(32-byte Ed25519 seed)")]
    Malformed(usize),
    /// An entry's seed is not base64 of exactly 32 bytes.
    #[error("entry {0}: the seed must be base64 of exactly 32 bytes")]
    SeedLength(usize),
    /// Two entries share a key id.
    #[error("entries {first} and {second} have the same key id")]
    DuplicateKid {
        /// The earlier entry (from 1).
        first: usize,
        /// The later entry.
        second: usize,
    },
    /// The configured signing key id names no listed key.
    #[error("WARDEN_SIGNING_KEY_ID names no key listed in WARDEN_SIGNING_KEYS")]
    UnknownPrimary,
}

/// One named key.
struct NamedKey {
    kid: String,
    key: ed25519_dalek::SigningKey,
}

/// The signing keys: one primary that signs, all of them published.
pub struct SigningKeys {
    keys: Vec<NamedKey>,
    primary: usize,
    /// The JWK Set, serialised once: the keys never change while running.
    jwks: String,
    /// A strong validator for the JWK Set (RFC 9110 §8.8.3).
    etag: String,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("SigningKeys")
            .field("kids", &kids)
            .field("primary", &self.primary_kid())
            .finish()
    }
}

/// One public key as RFC 8037 §2 writes it in a JWK.
#[derive(Serialize)]
struct Jwk<'a> {
    kty: &'static str,
    crv: &'static str,
    x: String,
    kid: &'a str,
    #[serde(rename = "use")]
    use_: &'static str,
    alg: &'static str,
}

#[derive(Serialize)]
struct JwkSet<'a> {
    keys: Vec<Jwk<'a>>,
}

fn valid_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= 64
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Decodes one seed, holding every copy in zeroizing memory.
fn decode_seed(b64: &str) -> Option<Zeroizing<[u8; 32]>> {
    let bytes = Zeroizing::new(BASE64.decode(b64.trim().as_bytes()).ok()?);
    let seed: &[u8; 32] = bytes.as_slice().try_into().ok()?;
    Some(Zeroizing::new(*seed))
}

impl SigningKeys {
    /// Parses `kid:base64(32-byte seed)` entries separated by commas or
    /// newlines; `primary` names the signing key (default: the first).
    pub fn parse(spec: &str, primary: Option<&str>) -> Result<Self, SigningKeyError> {
        let mut keys: Vec<NamedKey> = Vec::new();
        for (i, entry) in spec
            .split([',', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let n = i + 1;
            let (kid, b64) = entry
                .split_once(':')
                .map(|(kid, b64)| (kid.trim(), b64))
                .filter(|(kid, _)| valid_kid(kid))
                .ok_or(SigningKeyError::Malformed(n))?;
            let seed = decode_seed(b64).ok_or(SigningKeyError::SeedLength(n))?;
            if let Some(first) = keys.iter().position(|k| k.kid == kid) {
                return Err(SigningKeyError::DuplicateKid {
                    first: first + 1,
                    second: n,
                });
            }
            keys.push(NamedKey {
                kid: kid.to_owned(),
                key: ed25519_dalek::SigningKey::from_bytes(&seed),
            });
        }
        if keys.is_empty() {
            return Err(SigningKeyError::Empty);
        }
        let primary = match primary.map(str::trim) {
            None => 0,
            Some(p) => keys
                .iter()
                .position(|k| k.kid == p)
                .ok_or(SigningKeyError::UnknownPrimary)?,
        };
        let jwks = jwk_set(&keys);
        let etag = format!(
            "\"{}\"",
            BASE64URL_NOPAD.encode(&Sha256::digest(jwks.as_bytes())[..16])
        );
        Ok(Self {
            keys,
            primary,
            jwks,
            etag,
        })
    }

    /// A fresh random entry for the development key file: `dev-<n>:<seed>`,
    /// named by a random suffix so a regenerated key never reuses a kid.
    pub fn fresh_entry() -> Zeroizing<String> {
        let seed = super::random_bytes::<32>();
        let suffix = super::random_bytes::<6>();
        Zeroizing::new(format!(
            "dev-{}:{}",
            BASE64URL_NOPAD.encode(&suffix[..]),
            BASE64.encode(&seed[..])
        ))
    }

    /// The key id of the key that signs.
    pub fn primary_kid(&self) -> &str {
        self.keys.get(self.primary).map_or("", |k| k.kid.as_str())
    }

    /// Every key id, primary or not, in configuration order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.kid.as_str())
    }

    /// Signs `message` with the primary key (a 64-byte Ed25519 signature).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        match self.keys.get(self.primary) {
            Some(k) => k.key.sign(message).to_bytes(),
            // `parse` refuses an empty set and checks the primary index.
            None => unreachable!("a parsed key set has its primary"),
        }
    }

    /// The JWK Set document: every key's public half.
    pub fn jwks_json(&self) -> &str {
        &self.jwks
    }

    /// The quoted entity tag of [`SigningKeys::jwks_json`].
    pub fn jwks_etag(&self) -> &str {
        &self.etag
    }
}

fn jwk_set(keys: &[NamedKey]) -> String {
    let set = JwkSet {
        keys: keys
            .iter()
            .map(|k| Jwk {
                kty: "OKP",
                crv: "Ed25519",
                x: BASE64URL_NOPAD.encode(k.key.verifying_key().as_bytes()),
                kid: &k.kid,
                use_: "sig",
                alg: "EdDSA",
            })
            .collect(),
    };
    // Serialising plain strings into a String cannot fail.
    serde_json::to_string(&set).unwrap_or_else(|_| unreachable!("a JWK Set serialises"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// RFC 8037 Appendix A.1: the Ed25519 example key.
    const RFC8037_SEED: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn rfc_seed_b64() -> String {
        BASE64.encode(&BASE64URL_NOPAD.decode(RFC8037_SEED.as_bytes()).unwrap())
    }

    fn b64(byte: u8) -> String {
        BASE64.encode(&[byte; 32])
    }

    #[test]
    fn the_jwk_set_publishes_every_key_as_rfc_8037_writes_it() {
        let spec = format!("new:{}\nold:{}", rfc_seed_b64(), b64(9));

        let keys = SigningKeys::parse(&spec, Some("old")).unwrap();
        let set: serde_json::Value = serde_json::from_str(keys.jwks_json()).unwrap();

        assert_eq!(keys.primary_kid(), "old");
        assert_eq!(keys.kids().collect::<Vec<_>>(), ["new", "old"]);
        assert_eq!(
            set["keys"][0],
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X,
                "kid": "new", "use": "sig", "alg": "EdDSA"})
        );
        assert_eq!(set["keys"][1]["kid"], "old");
        assert!(set["keys"][1].get("d").is_none(), "no private part");
    }

    #[test]
    fn the_primary_signs_and_the_first_key_is_primary_by_default() {
        let keys = SigningKeys::parse(&format!("a:{}, b:{}", b64(1), b64(2)), None).unwrap();
        let signature = ed25519_dalek::Signature::from_bytes(&keys.sign(b"message"));
        let a = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();

        assert_eq!(keys.primary_kid(), "a");
        assert!(a.verify_strict(b"message", &signature).is_ok());
    }

    #[test]
    fn malformed_entries_are_refused_by_position_without_echoing_them() {
        let seed = b64(3);
        for (spec, error) in [
            (String::new(), SigningKeyError::Empty),
            (" , \n".to_owned(), SigningKeyError::Empty),
            (seed.clone(), SigningKeyError::Malformed(1)),
            (format!("ok:{seed},:{seed}"), SigningKeyError::Malformed(2)),
            (format!("bad kid:{seed}"), SigningKeyError::Malformed(1)),
            (
                format!("k:{}", BASE64.encode(&[1; 31])),
                SigningKeyError::SeedLength(1),
            ),
            (
                format!("k:{}", BASE64.encode(&[1; 64])),
                SigningKeyError::SeedLength(1),
            ),
            ("k:not base64!".to_owned(), SigningKeyError::SeedLength(1)),
            (
                format!("a:{seed},b:{seed},a:{seed}"),
                SigningKeyError::DuplicateKid {
                    first: 1,
                    second: 3,
                },
            ),
        ] {
            let refused = SigningKeys::parse(&spec, None).unwrap_err();
            assert_eq!(refused, error, "{spec:?}");
            assert!(!refused.to_string().contains(&seed));
        }
    }

    #[test]
    fn an_unknown_primary_is_refused() {
        let refused = SigningKeys::parse(&format!("a:{}", b64(1)), Some("b"));

        assert_eq!(refused.unwrap_err(), SigningKeyError::UnknownPrimary);
    }

    #[test]
    fn the_etag_follows_the_published_keys() {
        let one = SigningKeys::parse(&format!("a:{}", b64(1)), None).unwrap();
        let same = SigningKeys::parse(&format!("a:{}", b64(1)), None).unwrap();
        let two = SigningKeys::parse(&format!("a:{},b:{}", b64(1), b64(2)), None).unwrap();

        assert_eq!(one.jwks_etag(), same.jwks_etag());
        assert_ne!(one.jwks_etag(), two.jwks_etag());
        assert!(one.jwks_etag().starts_with('"') && one.jwks_etag().ends_with('"'));
    }

    #[test]
    fn fresh_entries_parse_and_differ() {
        let (a, b) = (SigningKeys::fresh_entry(), SigningKeys::fresh_entry());
        let keys = SigningKeys::parse(&format!("{},{}", a.as_str(), b.as_str()), None).unwrap();

        assert_eq!(keys.kids().count(), 2);
        assert!(keys.primary_kid().starts_with("dev-"));
    }
}
