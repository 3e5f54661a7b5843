//! Cryptographic building blocks: password hashing on a bounded pool, the
//! AES-GCM key ring, keyed token hashing, TOTP and recovery codes. Nothing
//! here knows about requests, gRPC or the database.

pub mod admin_token;
pub mod keyring;
pub mod password;
pub mod recovery;
pub mod tokens;
pub mod totp;

/// Fills a fresh buffer from the operating system's CSPRNG (via the
/// thread-local generator that `rand` seeds from it).
pub fn random_bytes<const N: usize>() -> zeroize::Zeroizing<[u8; N]> {
    let mut buf = zeroize::Zeroizing::new([0u8; N]);
    rand::fill(&mut buf[..]);
    buf
}
