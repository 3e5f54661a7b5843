//! Usernames in their canonical form.

use crate::domain::error::AuthError;

/// A username in canonical form: 3–64 characters of `[a-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    const MIN: usize = 3;
    const MAX: usize = 64;

    /// Canonicalises a submitted username. Non-ASCII input is rejected before
    /// folding, so look-alike Unicode can never map onto an existing name.
    pub fn parse(raw: &str) -> Result<Self, AuthError> {
        let invalid = |description| AuthError::InvalidRequest {
            field: "username",
            description,
        };
        if raw.is_empty() {
            return Err(invalid("username is required"));
        }
        if !raw.is_ascii() {
            return Err(invalid("username must be ASCII"));
        }
        let folded = raw.to_ascii_lowercase();
        if !(Self::MIN..=Self::MAX).contains(&folded.len()) {
            return Err(invalid("username must be 3 to 64 characters"));
        }
        if !folded
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        {
            return Err(invalid(
                "username may contain only a-z, 0-9, '.', '_' and '-'",
            ));
        }
        Ok(Self(folded))
    }

    /// Rebuilds a username read back from storage, where it is already canonical.
    pub fn from_canonical(s: String) -> Self {
        Self(s)
    }

    /// The canonical form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_ascii_case() {
        assert_eq!(
            Username::parse("Alice.B-1").ok().map(|u| u.0),
            Some("alice.b-1".into())
        );
    }

    #[test]
    fn rejects_non_ascii_before_folding() {
        // U+212A KELVIN SIGN lower-cases to ASCII 'k' under Unicode rules.
        assert!(Username::parse("\u{212A}elvin").is_err());
    }

    #[test]
    fn rejects_bad_lengths_and_characters() {
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse(&"a".repeat(65)).is_err());
        assert!(Username::parse("a b c").is_err());
        assert!(Username::parse("abc\0").is_err());
        assert!(Username::parse(&"a".repeat(64)).is_ok());
    }
}
