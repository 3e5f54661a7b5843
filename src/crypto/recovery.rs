//! Recovery codes: 16 Crockford base32 characters (80 bits) from the CSPRNG,
//! shown as `XXXX-XXXX-XXXX-XXXX`.

use zeroize::Zeroizing;

/// Crockford's base32 alphabet: no I, L, O or U.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters per code.
pub const CODE_LEN: usize = 16;

/// A fresh code in its canonical (undashed, upper-case) form.
pub fn generate() -> Zeroizing<String> {
    let bytes = super::random_bytes::<10>();
    let mut bits: u128 = 0;
    for b in bytes.iter() {
        bits = (bits << 8) | u128::from(*b);
    }
    let mut code = Zeroizing::new(String::with_capacity(CODE_LEN));
    for i in (0..CODE_LEN).rev() {
        let index = ((bits >> (i * 5)) & 0x1f) as usize;
        code.push(char::from(ALPHABET[index]));
    }
    code
}

/// The canonical form grouped for display: `XXXX-XXXX-XXXX-XXXX`.
pub fn display(canonical: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(CODE_LEN + 3));
    for (i, c) in canonical.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push(c);
    }
    out
}

/// Reads user input as a code: ignores case, spaces and dashes, reads I and L
/// as 1 and O as 0. Answers `None` unless the result is 16 alphabet characters.
pub fn normalize(input: &str) -> Option<Zeroizing<String>> {
    let mut out = Zeroizing::new(String::with_capacity(CODE_LEN));
    for c in input.chars() {
        let c = match c.to_ascii_uppercase() {
            ' ' | '-' => continue,
            'I' | 'L' => '1',
            'O' => '0',
            c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
            _ => return None,
        };
        if out.len() == CODE_LEN {
            return None;
        }
        out.push(c);
    }
    (out.len() == CODE_LEN).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_are_canonical_and_distinct() {
        let a = generate();
        assert_eq!(
            normalize(&a).as_deref().map(String::as_str),
            Some(a.as_str())
        );
        assert_ne!(a, generate());
    }

    #[test]
    fn accepts_every_spelling() {
        let canonical = "0123456789ABCDEF";
        for spelling in [
            "0123-4567-89ab-cdef",
            "o123 4567 89AB CDEF",
            "0123456789abcdef",
            "O1Z3",
        ] {
            let got = normalize(spelling);
            if spelling.len() >= 16 {
                assert_eq!(
                    got.as_deref().map(String::as_str),
                    Some(canonical),
                    "{spelling}"
                );
            } else {
                assert!(got.is_none());
            }
        }
        assert_eq!(
            normalize("iL00-0000-0000-0000")
                .as_deref()
                .map(String::as_str),
            Some("1100000000000000")
        );
        assert!(normalize("U000-0000-0000-0000").is_none());
        assert_eq!(display("0123456789ABCDEF").as_str(), "0123-4567-89AB-CDEF");
    }
}
