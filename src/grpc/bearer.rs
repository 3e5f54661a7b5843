//! The one reading of `authorization: Bearer <token>` both listeners use:
//! exactly one value, the scheme case-insensitive, the token trimmed.

/// The token of the `authorization` values given, or `None` when there is
/// not exactly one value or its scheme is not Bearer.
pub fn token<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Option<&'a [u8]> {
    let mut values = values.into_iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let space = value.iter().position(|b| *b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| rest.trim_ascii())
}
