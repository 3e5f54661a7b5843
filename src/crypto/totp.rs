//! TOTP (RFC 6238): SHA-1, 6 digits, 30-second steps, with the current time
//! passed in, and the enrolment artefacts (otpauth URI, QR codes).

use std::io::Cursor;

use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Builder};
use zeroize::Zeroizing;

/// Seconds per TOTP time step.
pub const STEP_SECS: u64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;
/// Secret length: 160 bits, as RFC 4226 recommends.
pub const SECRET_LEN: usize = 20;

/// A TOTP shared secret.
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl TotpSecret {
    /// A fresh 160-bit secret from the CSPRNG.
    pub fn generate() -> Self {
        Self(Zeroizing::new(super::random_bytes::<SECRET_LEN>().to_vec()))
    }

    /// Wraps decrypted secret bytes.
    pub fn from_bytes(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }

    /// The raw bytes, for sealing.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// RFC 4648 base32 without padding, as authenticator apps expect.
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(data_encoding::BASE32_NOPAD.encode(&self.0))
    }

    /// The code for the step containing `unix_secs`, with `digits` digits.
    pub fn code_at(&self, unix_secs: u64, digits: usize) -> Zeroizing<String> {
        let totp = Builder::new()
            .with_algorithm(Algorithm::SHA1)
            // 6 and 8 are the only lengths used; generate() panics only at 10+.
            .with_digits(if digits == 8 { 8 } else { 6 })
            .with_step_duration(STEP_SECS)
            .with_secret(self.0.to_vec())
            .build_noncompliant();
        Zeroizing::new(totp.generate(unix_secs).to_string())
    }
}

/// The time step containing `unix_secs`.
pub fn step_of(unix_secs: u64) -> u64 {
    unix_secs / STEP_SECS
}

/// What a presented code matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeMatch {
    /// The code belongs to this step, inside the window and after the last
    /// accepted step.
    Fresh(u64),
    /// The code belongs to a step inside the window, but at or before the last
    /// accepted step: a replay.
    Replayed,
    /// No step in the window has this code.
    Wrong,
}

/// Checks `code` against every step within ±`skew` of `now`, in constant time
/// per step, refusing steps at or before `last_step` (RFC 6238 §5.2: a code is
/// accepted only once).
pub fn check_code(
    secret: &TotpSecret,
    code: &str,
    now_unix: u64,
    skew: u64,
    last_step: Option<u64>,
) -> CodeMatch {
    let origin = step_of(now_unix);
    let mut fresh = None;
    let mut replayed = false;
    for step in origin.saturating_sub(skew)..=origin.saturating_add(skew) {
        let expected = secret.code_at(step * STEP_SECS, DIGITS);
        let matches: bool = expected.as_bytes().ct_eq(code.as_bytes()).into();
        if matches {
            if last_step.is_some_and(|last| step <= last) {
                replayed = true;
            } else if fresh.is_none() {
                fresh = Some(step);
            }
        }
    }
    match (fresh, replayed) {
        (Some(step), _) => CodeMatch::Fresh(step),
        (None, true) => CodeMatch::Replayed,
        (None, false) => CodeMatch::Wrong,
    }
}

/// Whether `code` has the shape of a TOTP code: exactly six ASCII digits.
pub fn is_code_shaped(code: &str) -> bool {
    code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit())
}

/// The Key Uri Format URI authenticator apps scan:
/// `otpauth://totp/ISSUER:USERNAME?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`.
pub fn otpauth_uri(issuer: &str, username: &str, secret_base32: &str) -> Zeroizing<String> {
    let issuer = percent_encode(issuer);
    Zeroizing::new(format!(
        "otpauth://totp/{issuer}:{}?secret={secret_base32}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        percent_encode(username)
    ))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Why a QR code could not be rendered.
#[derive(Debug, thiserror::Error)]
#[error("QR rendering failed: {0}")]
pub struct QrError(String);

/// The URI as a QR code, in PNG and SVG.
pub fn qr_codes(uri: &str) -> Result<(Vec<u8>, String), QrError> {
    let code = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| QrError(e.to_string()))?;
    let image = code
        .render::<image::Luma<u8>>()
        .min_dimensions(256, 256)
        .build();
    let mut png = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| QrError(e.to_string()))?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(256, 256)
        .build();
    Ok((png, svg))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 rows: the seed is ASCII "12345678901234567890".
    #[test]
    fn rfc6238_appendix_b_sha1_vectors() {
        let secret = TotpSecret::from_bytes(Zeroizing::new(b"12345678901234567890".to_vec()));
        for (time, code) in [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(secret.code_at(time, 8).as_str(), code, "T={time}");
        }
    }

    #[test]
    fn accepts_within_skew_and_refuses_replays() {
        let secret = TotpSecret::generate();
        let now = 1_700_000_000;
        let previous = secret.code_at(now - STEP_SECS, DIGITS);
        assert_eq!(
            check_code(&secret, &previous, now, 1, None),
            CodeMatch::Fresh(step_of(now) - 1)
        );
        assert_eq!(
            check_code(&secret, &previous, now, 0, None),
            CodeMatch::Wrong
        );
        assert_eq!(
            check_code(&secret, &previous, now, 1, Some(step_of(now) - 1)),
            CodeMatch::Replayed
        );
        let two_back = secret.code_at(now - 2 * STEP_SECS, DIGITS);
        assert_eq!(
            check_code(&secret, &two_back, now, 1, None),
            CodeMatch::Wrong
        );
    }

    #[test]
    fn uri_has_the_contract_form() {
        let uri = otpauth_uri("Acme Corp", "alice", "JBSWY3DPEHPK3PXP");
        assert_eq!(
            uri.as_str(),
            "otpauth://totp/Acme%20Corp:alice?secret=JBSWY3DPEHPK3PXP&issuer=Acme%20Corp&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn code_shape_is_six_ascii_digits() {
        assert!(is_code_shaped("012345"));
        assert!(!is_code_shaped("12345"));
        assert!(!is_code_shaped("+12345"));
        assert!(!is_code_shaped("１２３４５６"));
    }
}
