//! ListUsers' request fields: the page size, the opaque page token (the
//! last name of the previous page), and the name prefix.

use data_encoding::BASE64URL_NOPAD;

use crate::domain::error::AuthError;
use crate::domain::username::Username;

/// Accounts on a page when the request says 0.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// The largest page a request may ask for.
pub const MAX_PAGE_SIZE: u32 = 500;

/// Marks the token's format, so a later one can be told apart.
const TOKEN_VERSION: &str = "1:";

/// The page size a request asks for: 0 is the default, above the maximum
/// is refused.
pub fn page_size(requested: u32) -> Result<u32, AuthError> {
    match requested {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n <= MAX_PAGE_SIZE => Ok(n),
        _ => Err(AuthError::InvalidRequest {
            field: "page_size",
            description: "page_size must be at most 500",
        }),
    }
}

/// The token that continues after `last`.
pub fn encode_token(last: &Username) -> String {
    BASE64URL_NOPAD.encode(format!("{TOKEN_VERSION}{}", last.as_str()).as_bytes())
}

/// The name a token continues after; `None` for the first page.
pub fn decode_token(token: &str) -> Result<Option<Username>, AuthError> {
    if token.is_empty() {
        return Ok(None);
    }
    let malformed = || AuthError::InvalidRequest {
        field: "page_token",
        description: "page_token is not one this server issued",
    };
    let bytes = BASE64URL_NOPAD
        .decode(token.as_bytes())
        .map_err(|_| malformed())?;
    let text = String::from_utf8(bytes).map_err(|_| malformed())?;
    let name = text.strip_prefix(TOKEN_VERSION).ok_or_else(malformed)?;
    // Only canonical names are ever encoded: anything else was not issued.
    match Username::parse(name) {
        Ok(parsed) if parsed.as_str() == name => Ok(Some(parsed)),
        _ => Err(malformed()),
    }
}

/// A name prefix normalised like a username (ASCII, folded to lower case),
/// refused when no name could start with it.
pub fn name_prefix(raw: &str) -> Result<String, AuthError> {
    let invalid = |description| AuthError::InvalidRequest {
        field: "username_prefix",
        description,
    };
    if !raw.is_ascii() {
        return Err(invalid("username_prefix must be ASCII"));
    }
    let folded = raw.to_ascii_lowercase();
    if folded.len() > 64 {
        return Err(invalid("username_prefix must be at most 64 characters"));
    }
    if !folded
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return Err(invalid(
            "username_prefix may contain only a-z, 0-9, '.', '_' and '-'",
        ));
    }
    Ok(folded)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_token_reads_back_as_its_name_and_others_are_refused() {
        let name = Username::parse("alice.b").unwrap();
        let token = encode_token(&name);
        assert_eq!(decode_token(&token).unwrap(), Some(name));
        assert_eq!(decode_token("").unwrap(), None);
        for bad in ["!!", "bm9wZQ", &BASE64URL_NOPAD.encode(b"1:UPPER")] {
            assert!(matches!(
                decode_token(bad),
                Err(AuthError::InvalidRequest {
                    field: "page_token",
                    ..
                })
            ));
        }
    }

    #[test]
    fn page_sizes_default_and_cap() {
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(500).unwrap(), 500);
        assert!(page_size(501).is_err());
    }

    #[test]
    fn prefixes_fold_like_names() {
        assert_eq!(name_prefix("Al").unwrap(), "al");
        assert_eq!(name_prefix("").unwrap(), "");
        assert!(name_prefix("a%").is_err());
        assert!(name_prefix("é").is_err());
    }
}
