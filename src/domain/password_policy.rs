//! The password policy applied to new passwords (Register and ChangePassword's
//! `new_password`), and the normalisation applied to every password.

use std::collections::HashSet;
use std::sync::LazyLock;

use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

use crate::domain::error::AuthError;

/// The longest password (in bytes) accepted where a password is only compared
/// against its hash; bounds the work a request can ask for.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The longest new password, in Unicode scalar values after NFKC.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// The 10,000 most common passwords (see `common_passwords.NOTICE`).
static COMMON: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("common_passwords.txt").lines().collect());

/// NFKC-normalises a password, so that the same password typed on different
/// keyboards or platforms hashes the same. Never truncates or case-folds.
pub fn normalize(raw: &str) -> Zeroizing<String> {
    Zeroizing::new(raw.nfkc().collect())
}

/// Checks a password that is only compared against a stored hash (Login,
/// step-up `password`, `current_password`): only emptiness and size, so that
/// raising the policy's minimum never locks anyone out.
pub fn check_presented(raw: &str, field: &'static str) -> Result<Zeroizing<String>, AuthError> {
    if raw.is_empty() {
        return Err(AuthError::InvalidRequest {
            field,
            description: "password is required",
        });
    }
    if raw.len() > MAX_PASSWORD_BYTES {
        return Err(AuthError::InvalidRequest {
            field,
            description: "password is too long",
        });
    }
    Ok(normalize(raw))
}

/// The rules a new password must meet.
#[derive(Debug, Clone, Copy)]
pub struct PasswordPolicy {
    /// Minimum length in Unicode scalar values after NFKC.
    pub min_chars: usize,
}

impl PasswordPolicy {
    /// Normalises and checks a new password, returning the form to hash.
    pub fn check_new(
        &self,
        raw: &str,
        field: &'static str,
    ) -> Result<Zeroizing<String>, AuthError> {
        let invalid = |description| AuthError::InvalidRequest { field, description };
        if raw.is_empty() {
            return Err(invalid("password is required"));
        }
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(invalid("password is too long"));
        }
        let normalized = normalize(raw);
        if normalized.chars().any(char::is_control) {
            return Err(invalid("password must not contain control characters"));
        }
        let chars = normalized.chars().count();
        if chars < self.min_chars {
            return Err(invalid("password is too short"));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(invalid("password is too long"));
        }
        let lowered = Zeroizing::new(normalized.to_lowercase());
        if COMMON.contains(lowered.as_str()) {
            return Err(invalid("password is too common"));
        }
        Ok(normalized)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const POLICY: PasswordPolicy = PasswordPolicy { min_chars: 8 };

    /// The rule a new password breaks (its description), or None when it
    /// passes; panics on any other error or on the wrong field.
    fn broken_rule(raw: &str) -> Option<&'static str> {
        match POLICY.check_new(raw, "new_password") {
            Ok(_) => None,
            Err(AuthError::InvalidRequest { field, description }) => {
                assert_eq!(field, "new_password", "the error names the field");
                Some(description)
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }

    /// The same for a presented (login) password.
    fn presented(raw: &str) -> Option<&'static str> {
        match check_presented(raw, "password") {
            Ok(_) => None,
            Err(AuthError::InvalidRequest { field, description }) => {
                assert_eq!(field, "password");
                Some(description)
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn nfkc_makes_compatibility_forms_equal() {
        // FULLWIDTH LATIN letters fold to ASCII under NFKC.
        assert_eq!(normalize("\u{FF21}bc").as_str(), "Abc");
    }

    #[test]
    fn counts_scalar_values_not_bytes() {
        // 7 scalar values but 14 bytes: still too short.
        assert_eq!(broken_rule("ééééééé"), Some("password is too short"));
        assert_eq!(broken_rule("éééééééé"), None);
        assert_eq!(broken_rule(&"é".repeat(128)), None);
        // 129 scalar values (258 bytes, under the byte cap): too long.
        assert_eq!(broken_rule(&"é".repeat(129)), Some("password is too long"));
    }

    #[test]
    fn length_is_counted_after_nfkc() {
        // U+FB03 (LATIN SMALL LIGATURE FFI) is one scalar value that NFKC
        // expands to three: 6 ligatures are 18 characters once normalised.
        assert_eq!(broken_rule(&"\u{FB03}".repeat(6)), None);
        assert_eq!(
            broken_rule(&"\u{FB03}".repeat(2)),
            Some("password is too short")
        );
    }

    #[test]
    fn the_minimum_is_configurable() {
        let strict = PasswordPolicy { min_chars: 15 };
        let fourteen = "abcdefghijklmn";
        assert!(matches!(
            strict.check_new(fourteen, "password"),
            Err(AuthError::InvalidRequest {
                description: "password is too short",
                ..
            })
        ));
        assert!(strict.check_new("abcdefghijklmno", "password").is_ok());
        assert_eq!(broken_rule(fourteen), None, "8 is the default minimum");
    }

    #[test]
    fn empty_and_over_the_byte_cap_are_refused_before_anything_else() {
        assert_eq!(broken_rule(""), Some("password is required"));
        // Over the byte cap and full of control characters: size first.
        assert_eq!(
            broken_rule(&"\0".repeat(MAX_PASSWORD_BYTES + 1)),
            Some("password is too long")
        );
    }

    #[test]
    fn rejects_common_passwords_in_any_case() {
        assert_eq!(broken_rule("password1"), Some("password is too common"));
        assert_eq!(broken_rule("PassWord1"), Some("password is too common"));
        assert_eq!(broken_rule("correct horse battery"), None);
    }

    #[test]
    fn rejects_control_characters() {
        assert_eq!(
            broken_rule("abcdefgh\0ij"),
            Some("password must not contain control characters")
        );
        // Control characters are checked before length.
        assert_eq!(
            broken_rule("ab\u{7}"),
            Some("password must not contain control characters")
        );
    }

    #[test]
    fn presented_passwords_are_checked_only_for_emptiness_and_size() {
        assert_eq!(presented(""), Some("password is required"));
        assert_eq!(
            presented(&"x".repeat(MAX_PASSWORD_BYTES + 1)),
            Some("password is too long")
        );
        assert_eq!(presented(&"x".repeat(MAX_PASSWORD_BYTES)), None);
        // Short, common or with control characters: judged against the hash.
        for raw in ["a", "password1", "abc\0def"] {
            assert_eq!(presented(raw), None, "{raw:?}");
        }
        assert_eq!(
            check_presented("\u{FF21}bc", "password").unwrap().as_str(),
            "Abc"
        );
    }

    #[test]
    fn never_truncates_or_folds_case() {
        assert_eq!(
            POLICY
                .check_new("Tr0ub4dor&3xyz", "password")
                .ok()
                .as_deref()
                .map(String::as_str),
            Some("Tr0ub4dor&3xyz")
        );
        let long = "Ab".repeat(64);
        assert_eq!(
            POLICY.check_new(&long, "password").unwrap().as_str(),
            long,
            "128 characters are kept whole"
        );
    }
}
