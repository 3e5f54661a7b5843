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
mod tests {
    use super::*;

    const POLICY: PasswordPolicy = PasswordPolicy { min_chars: 8 };

    #[test]
    fn nfkc_makes_compatibility_forms_equal() {
        // FULLWIDTH LATIN letters fold to ASCII under NFKC.
        assert_eq!(normalize("\u{FF21}bc").as_str(), "Abc");
    }

    #[test]
    fn counts_scalar_values_not_bytes() {
        assert!(POLICY.check_new("ééééééé", "password").is_err());
        assert!(POLICY.check_new("éééééééé", "password").is_ok());
        assert!(POLICY.check_new(&"é".repeat(129), "password").is_err());
    }

    #[test]
    fn rejects_common_passwords_in_any_case() {
        assert!(POLICY.check_new("password1", "password").is_err());
        assert!(POLICY.check_new("PassWord1", "password").is_err());
        assert!(
            POLICY
                .check_new("correct horse battery", "password")
                .is_ok()
        );
    }

    #[test]
    fn rejects_control_characters() {
        assert!(POLICY.check_new("abcdefgh\0ij", "password").is_err());
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
    }
}
