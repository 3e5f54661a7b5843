//! RFC 6238 TOTP (HMAC-SHA1, 30-second steps, six digits), written apart
//! from the server's implementation so the tool drives it as an app would.

use hmac::{KeyInit as _, Mac as _};

/// The step length the server uses.
pub const STEP_SECS: u64 = 30;

/// The six-digit code for `step` (RFC 4226 dynamic truncation).
pub fn code_at_step(secret: &[u8], step: u64) -> anyhow::Result<String> {
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret)
        .map_err(|e| anyhow::anyhow!("TOTP key: {e}"))?;
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    Ok(format!("{:06}", binary % 1_000_000))
}

/// The current step by this machine's clock.
pub fn current_step() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / STEP_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_rfc_6238_sha1_vectors() -> anyhow::Result<()> {
        // RFC 6238 appendix B, truncated to six digits.
        let secret = b"12345678901234567890";
        assert_eq!(code_at_step(secret, 59 / STEP_SECS)?, "287082");
        assert_eq!(code_at_step(secret, 1_111_111_109 / STEP_SECS)?, "081804");
        assert_eq!(code_at_step(secret, 2_000_000_000 / STEP_SECS)?, "279037");
        Ok(())
    }
}
