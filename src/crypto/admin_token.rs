//! The admin token: how strong it must be, and how a presented token is
//! compared with it.
//!
//! Both sides are hashed with HMAC-SHA-256 under a key drawn at start and
//! held only in memory, then the two digests are compared in constant time:
//! the comparison's time depends neither on where the first differing byte
//! is nor on the presented token's length, so timing tells an attacker
//! nothing about the token.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

/// The least strength a token must have, in bits (32 random bytes).
pub const MIN_BITS: u32 = 256;

/// The fewest distinct characters a token must use, so a repetition
/// (`aaaa…`, `abab…`) is refused however long it is. Random tokens of the
/// accepted lengths use far more.
pub const MIN_DISTINCT: usize = 12;

/// The longest token accepted (it travels in one header value).
pub const MAX_LEN: usize = 1024;

/// Why a configured admin token was refused. Never names the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WeakToken {
    /// A character outside visible ASCII (`!` to `~`): it could not travel
    /// in a header value unchanged.
    #[error("the admin token may hold only visible ASCII characters (no spaces)")]
    Charset,
    /// Longer than [`MAX_LEN`].
    #[error("the admin token is longer than 1024 characters")]
    TooLong,
    /// Fewer than [`MIN_BITS`] by the alphabet estimate.
    #[error(
        "the admin token carries less than 256 bits: use at least 64 hex, 43 base64 or 40 other characters (e.g. `openssl rand -base64 32`)"
    )]
    TooShort,
    /// Fewer than [`MIN_DISTINCT`] distinct characters.
    #[error("the admin token repeats itself: use at least 12 distinct characters")]
    Repetitive,
}

/// The strength of `token` in bits, estimated from the smallest of three
/// alphabets that holds it: hex digits (4 bits a character), the base64 and
/// base64url alphabets (6 bits; `=` padding counts nothing), or visible
/// ASCII (6.5 bits). What `openssl rand -hex 32` or `-base64 32` prints
/// reaches 256.
pub fn estimated_bits(token: &str) -> u32 {
    let body = token.trim_end_matches('=');
    let half_bits_per_char: u32 = if body.bytes().all(|b| b.is_ascii_hexdigit()) {
        8
    } else if body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'))
    {
        12
    } else {
        13
    };
    u32::try_from(body.len())
        .unwrap_or(u32::MAX)
        .saturating_mul(half_bits_per_char)
        / 2
}

/// The admin token, held only as its keyed hash.
pub struct AdminToken {
    key: SecretBox<[u8; 32]>,
    expected: [u8; 32],
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl AdminToken {
    /// Accepts `token` if it is strong enough (see [`WeakToken`]).
    pub fn new(token: &SecretString) -> Result<Self, WeakToken> {
        let value = token.expose_secret();
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(WeakToken::Charset);
        }
        if value.len() > MAX_LEN {
            return Err(WeakToken::TooLong);
        }
        if estimated_bits(value) < MIN_BITS {
            return Err(WeakToken::TooShort);
        }
        let mut seen = [false; 128];
        for b in value.bytes() {
            seen[usize::from(b & 0x7f)] = true;
        }
        if seen.iter().filter(|s| **s).count() < MIN_DISTINCT {
            return Err(WeakToken::Repetitive);
        }
        let key = SecretBox::new(Box::new(*super::random_bytes::<32>()));
        let expected = digest(key.expose_secret(), value.as_bytes());
        Ok(Self { key, expected })
    }

    /// Whether `presented` is the token, in time independent of both.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let got = digest(self.key.expose_secret(), presented);
        bool::from(got.ct_eq(&self.expected))
    }
}

fn digest(key: &[u8; 32], value: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(value);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn token(s: &str) -> Result<AdminToken, WeakToken> {
        AdminToken::new(&SecretString::from(s.to_owned()))
    }

    #[test]
    fn what_the_documented_commands_print_is_accepted() {
        // `openssl rand -base64 32`, `openssl rand -hex 32`.
        let base64 = "q8Jk1b3xY0Zf5mLwN2vR9sT4uPaCdE6gHhIiJjKkLl0=";
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert!(token(base64).is_ok());
        assert!(token(hex).is_ok());
    }

    #[test]
    fn short_repetitive_or_odd_tokens_are_refused() {
        assert_eq!(token("short").err(), Some(WeakToken::TooShort));
        // 42 base64 characters: 252 bits.
        let base64_42 = "q8Jk1b3xY0Zf5mLwN2vR9sT4uPaCdE6gHhIiJjKkLl";
        assert_eq!(token(base64_42).err(), Some(WeakToken::TooShort));
        // 63 hex characters: 252 bits.
        let hex_63 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0";
        assert_eq!(token(hex_63).err(), Some(WeakToken::TooShort));
        assert_eq!(token(&"ab".repeat(100)).err(), Some(WeakToken::Repetitive));
        let spaced = format!("{} x", "q8Jk1b3xY0Zf5mLwN2vR9sT4uPaCdE6gHhIiJjKkLl0");
        assert_eq!(token(&spaced).err(), Some(WeakToken::Charset));
        assert_eq!(
            token(&"q8Jk1b3xY0Zf5mLw".repeat(100)).err(),
            Some(WeakToken::TooLong)
        );
    }

    #[test]
    fn only_the_exact_token_matches() {
        let right = "q8Jk1b3xY0Zf5mLwN2vR9sT4uPaCdE6gHhIiJjKkLl0=";
        let admin = token(right).unwrap();
        assert!(admin.matches(right.as_bytes()));
        assert!(!admin.matches(&right.as_bytes()[..right.len() - 1]));
        assert!(!admin.matches(format!("{right}x").as_bytes()));
        assert!(!admin.matches(b""));
    }
}
