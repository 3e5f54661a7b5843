//! Warden's access tokens: compact JWS (RFC 7515) signed with Ed25519
//! (`alg` `EdDSA`, RFC 8037), checked locally.
//!
//! Only what Warden issues is accepted: header `alg` exactly `EdDSA` with a
//! `kid`, no `crit`; the key comes from Warden's JWK Set, never from the
//! token (`jwk`, `jku`, `x5u` are ignored). The signature is checked before
//! any claim is believed, then `iss`, `aud`, `exp` and `iat`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use data_encoding::BASE64URL_NOPAD;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::Deserialize;

/// The longest token looked at; Warden's are a few hundred bytes.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why an access token was refused. Every kind means "not signed in"
/// (401 / UNAUTHENTICATED); none says Warden is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum AccessTokenError {
    /// Not a compact JWS of Warden's shape: undecodable parts, bad JSON, a
    /// missing claim or header field, `crit` present, or too long.
    #[error("malformed access token")]
    Malformed,
    /// The header's `alg` is not `EdDSA` (`none`, `HS256`, `RS256`, …).
    #[error("access token algorithm not accepted")]
    Algorithm,
    /// No key with the token's `kid` is published (even after a refresh).
    #[error("access token signed with an unknown key")]
    UnknownKey,
    /// The signature does not verify: tampered, or signed by another key.
    #[error("access token signature invalid")]
    BadSignature,
    /// `exp` has passed (beyond the leeway).
    #[error("access token expired")]
    Expired,
    /// `iat` lies in the future (beyond the leeway).
    #[error("access token not yet valid")]
    NotYetValid,
    /// `iss` is not the expected issuer.
    #[error("access token from another issuer")]
    WrongIssuer,
    /// `aud` does not name this backend's audience, or names one while the
    /// backend expects none.
    #[error("access token for another audience")]
    WrongAudience,
}

/// The claims of a verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    /// `sub`: the account's immutable id.
    pub user_id: String,
    /// `sid`: the public id of the session the token was issued for.
    pub session_id: String,
    /// `amr`: how the user authenticated (compare as a set).
    pub amr: Vec<String>,
    /// `auth_time`: when the session was issued.
    pub auth_time: SystemTime,
    /// `iat`: when the token was issued.
    pub issued_at: SystemTime,
    /// `exp`: when the token stops being accepted.
    pub expires_at: SystemTime,
    /// `iss`.
    pub issuer: String,
    /// `aud` (empty when the token has none).
    pub audience: Vec<String>,
    /// `jti`: the token's unique id, if present (for replay logs).
    pub token_id: Option<String>,
    /// The header's `kid`: which published key signed it.
    pub key_id: String,
}

/// What a backend expects of a token.
#[derive(Debug, Clone)]
pub(crate) struct Expectations {
    pub issuer: String,
    pub audience: Option<String>,
    pub leeway: Duration,
}

/// A token split and its header checked, signature not yet verified.
pub(crate) struct Unverified<'a> {
    pub kid: String,
    signing_input: &'a str,
    signature: Signature,
    payload: Vec<u8>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    sid: String,
    #[serde(default)]
    amr: Vec<String>,
    auth_time: u64,
    iat: u64,
    exp: u64,
    jti: Option<String>,
    aud: Option<OneOrMany>,
}

/// Whether `token` has the shape of a compact JWS (three base64url parts),
/// as opposed to an opaque session token (which has no dots).
pub(crate) fn looks_like_jws(token: &str) -> bool {
    let mut parts = 0;
    for part in token.split('.') {
        parts += 1;
        if part.is_empty()
            || !part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return false;
        }
    }
    parts == 3
}

/// Splits `token` and checks its header.
pub(crate) fn parse(token: &str) -> Result<Unverified<'_>, AccessTokenError> {
    use AccessTokenError::{Algorithm, Malformed};
    if token.len() > MAX_TOKEN_LEN {
        return Err(Malformed);
    }
    let (signing_input, signature) = token.rsplit_once('.').ok_or(Malformed)?;
    let (header, payload) = signing_input.split_once('.').ok_or(Malformed)?;
    let decode = |part: &str| {
        BASE64URL_NOPAD
            .decode(part.as_bytes())
            .map_err(|_| Malformed)
    };
    let header: Header = serde_json::from_slice(&decode(header)?).map_err(|_| Malformed)?;
    // `alg` first, so `none` and HMAC tokens are named for what they are.
    if header.alg != "EdDSA" {
        return Err(Algorithm);
    }
    // No extension is understood, so any critical one must be refused.
    if header.crit.is_some() {
        return Err(Malformed);
    }
    if header.typ.is_some_and(|t| !t.eq_ignore_ascii_case("JWT")) {
        return Err(Malformed);
    }
    let kid = header.kid.filter(|k| !k.is_empty()).ok_or(Malformed)?;
    let signature: [u8; 64] = decode(signature)?.try_into().map_err(|_| Malformed)?;
    Ok(Unverified {
        kid,
        signing_input,
        signature: Signature::from_bytes(&signature),
        payload: decode(payload)?,
    })
}

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(seconds))
        .unwrap_or(UNIX_EPOCH)
}

impl Unverified<'_> {
    /// Verifies the signature with `key`, then the claims against `expect`
    /// at wall time `now`.
    pub(crate) fn verify(
        self,
        key: &VerifyingKey,
        expect: &Expectations,
        now: SystemTime,
    ) -> Result<AccessClaims, AccessTokenError> {
        // verify_strict also refuses small-order keys and malleable
        // signatures, so one token has exactly one valid signature.
        key.verify_strict(self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| AccessTokenError::BadSignature)?;
        let claims: Claims =
            serde_json::from_slice(&self.payload).map_err(|_| AccessTokenError::Malformed)?;
        if claims.sub.is_empty() || claims.sid.is_empty() {
            return Err(AccessTokenError::Malformed);
        }
        if claims.iss != expect.issuer {
            return Err(AccessTokenError::WrongIssuer);
        }
        let audience = match claims.aud {
            None => Vec::new(),
            Some(OneOrMany::One(a)) => vec![a],
            Some(OneOrMany::Many(a)) => a,
        };
        // RFC 7519 §4.1.3: a token naming audiences is refused by anyone not
        // among them, including a backend that expects none.
        let audience_ok = match &expect.audience {
            Some(expected) => audience.iter().any(|a| a == expected),
            None => audience.is_empty(),
        };
        if !audience_ok {
            return Err(AccessTokenError::WrongAudience);
        }
        let (expires_at, issued_at) = (at(claims.exp), at(claims.iat));
        if expires_at
            .checked_add(expect.leeway)
            .is_none_or(|end| now >= end)
        {
            return Err(AccessTokenError::Expired);
        }
        if now
            .checked_add(expect.leeway)
            .is_some_and(|late| issued_at > late)
        {
            return Err(AccessTokenError::NotYetValid);
        }
        Ok(AccessClaims {
            user_id: claims.sub,
            session_id: claims.sid,
            amr: claims.amr,
            auth_time: at(claims.auth_time),
            issued_at,
            expires_at,
            issuer: claims.iss,
            audience,
            token_id: claims.jti,
            key_id: self.kid,
        })
    }
}

#[cfg(test)]
mod tests;
