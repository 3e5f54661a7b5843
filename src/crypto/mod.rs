//! Cryptographic building blocks: password hashing on a bounded pool, the
//! AES-GCM key ring, keyed token hashing, TOTP, recovery codes, and the
//! Ed25519 keys and compact JWS of access tokens. Nothing here knows about
//! requests, gRPC or the database.

pub mod jws;
pub mod keyring;
pub mod password;
pub mod recovery;
pub mod signing;
pub mod tokens;
pub mod totp;

/// The keys a server runs with (loaded by `crate::keys`).
pub struct Keys {
    /// Encrypts TOTP secrets.
    pub ring: keyring::KeyRing,
    /// Hashes session and challenge tokens.
    pub token: tokens::TokenKey,
    /// Signs access tokens; every key is published in the JWK Set.
    pub signing: signing::SigningKeys,
}

/// Fills a fresh buffer from the operating system's CSPRNG (via the
/// thread-local generator that `rand` seeds from it).
pub fn random_bytes<const N: usize>() -> zeroize::Zeroizing<[u8; N]> {
    let mut buf = zeroize::Zeroizing::new([0u8; N]);
    rand::fill(&mut buf[..]);
    buf
}
