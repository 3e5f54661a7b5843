//! Test-only Ed25519 keys and tokens, signed with `ring` so the verifier
//! (ed25519-dalek) is checked against an independent implementation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use data_encoding::BASE64URL_NOPAD;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::{Value, json};

/// One signing key with its `kid`.
pub(crate) struct TestKey {
    pub kid: String,
    pair: Ed25519KeyPair,
}

impl TestKey {
    pub(crate) fn new(kid: &str, seed: u8) -> Self {
        Self {
            kid: kid.into(),
            pair: Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap(),
        }
    }

    /// The key as an RFC 8037 JWK.
    pub(crate) fn jwk(&self) -> Value {
        json!({
            "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA",
            "kid": self.kid,
            "x": BASE64URL_NOPAD.encode(self.pair.public_key().as_ref()),
        })
    }

    /// A compact JWS of `header` and `claims`, signed with this key.
    pub(crate) fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            BASE64URL_NOPAD.encode(header.to_string().as_bytes()),
            BASE64URL_NOPAD.encode(claims.to_string().as_bytes())
        );
        let signature = self.pair.sign(input.as_bytes());
        format!("{input}.{}", BASE64URL_NOPAD.encode(signature.as_ref()))
    }

    /// Warden's header for this key.
    pub(crate) fn header(&self) -> Value {
        json!({"alg": "EdDSA", "typ": "JWT", "kid": self.kid})
    }
}

/// A JWK Set of `keys`.
pub(crate) fn jwks(keys: &[&TestKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string()
}

/// Warden's claims, issued at `iat` for `ttl` seconds.
pub(crate) fn claims(iat: u64, ttl: u64) -> Value {
    json!({
        "iss": "warden",
        "sub": "0190a8f2-7c1e-7b3a-9f00-5a1e2b3c4d5e",
        "sid": "0190a8f2-7c1e-7b3a-9f00-000000000001",
        "amr": ["pwd", "otp", "mfa"],
        "auth_time": iat - 60,
        "iat": iat,
        "exp": iat + ttl,
        "jti": "0190a8f2-7c1e-7b3a-9f00-00000000000a",
    })
}
