//! Opaque bearer tokens and their keyed hashes.
//!
//! A token is a short type prefix plus base64url of 32 CSPRNG bytes. The
//! database only ever sees HMAC-SHA-256(token key, token), so a copy of the
//! database cannot be replayed as sessions, and look-ups are an indexed
//! equality on the hash.

use data_encoding::BASE64URL_NOPAD;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;

/// What a token grants; each kind has its own prefix so one can never be
/// mistaken for the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A signed-in session (Bearer).
    Session,
    /// A login waiting for its second factor.
    Challenge,
    /// A remembered device, which stands in for the second factor at Login.
    Device,
}

impl TokenKind {
    fn prefix(self) -> &'static str {
        match self {
            Self::Session => "wss_",
            Self::Challenge => "wsc_",
            Self::Device => "wdt_",
        }
    }
}

/// Length of the random part: base64url of 32 bytes, unpadded.
const BODY_LEN: usize = 43;

/// The keyed hash a token is stored and looked up by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHash(pub [u8; 32]);

/// The HMAC key for token hashes (`WARDEN_TOKEN_KEY`).
pub struct TokenKey(SecretBox<[u8; 32]>);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// Wraps 32 key bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(SecretBox::new(Box::new(bytes)))
    }

    /// Makes a fresh token of `kind` and its hash.
    pub fn issue(&self, kind: TokenKind) -> (SecretString, TokenHash) {
        let body = super::random_bytes::<32>();
        let token = format!("{}{}", kind.prefix(), BASE64URL_NOPAD.encode(&body[..]));
        let hash = self.digest(&token);
        (SecretString::from(token), hash)
    }

    /// Hashes a presented token of `kind`, or answers `None` when it does not
    /// have that kind's shape (so it cannot be live).
    pub fn hash_presented(&self, kind: TokenKind, token: &str) -> Option<TokenHash> {
        let body = token.strip_prefix(kind.prefix())?;
        let well_formed = body.len() == BODY_LEN
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| self.digest(token))
    }

    fn digest(&self, token: &str) -> TokenHash {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(token.as_bytes());
        TokenHash(mac.finalize().into_bytes().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_have_the_contract_shape_and_verify() {
        let key = TokenKey::new([7; 32]);
        let (token, hash) = key.issue(TokenKind::Session);
        let token = token.expose_secret();
        assert!(token.len() <= 256);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(key.hash_presented(TokenKind::Session, token), Some(hash));
    }

    #[test]
    fn a_challenge_token_is_not_a_session_token() {
        let key = TokenKey::new([7; 32]);
        let (token, _) = key.issue(TokenKind::Challenge);
        assert_eq!(
            key.hash_presented(TokenKind::Session, token.expose_secret()),
            None
        );
    }

    #[test]
    fn a_device_token_is_neither_a_session_nor_a_challenge() {
        let key = TokenKey::new([7; 32]);
        let (token, hash) = key.issue(TokenKind::Device);
        let token = token.expose_secret();
        assert!(token.starts_with("wdt_"));
        assert_eq!(key.hash_presented(TokenKind::Device, token), Some(hash));
        for other in [TokenKind::Session, TokenKind::Challenge] {
            assert_eq!(key.hash_presented(other, token), None);
        }
    }

    #[test]
    fn hashes_depend_on_the_key() {
        let (token, hash) = TokenKey::new([1; 32]).issue(TokenKind::Session);
        let other =
            TokenKey::new([2; 32]).hash_presented(TokenKind::Session, token.expose_secret());
        assert_ne!(other, Some(hash));
    }
}
