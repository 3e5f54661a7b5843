//! The AES-256-GCM key ring that encrypts TOTP secrets at rest.
//!
//! Every ciphertext names the key that made it, carries a random 96-bit
//! nonce, and binds associated data (user id and purpose), so a ciphertext
//! copied to another row or purpose does not decrypt. The ring decrypts with
//! any of its keys and encrypts with the primary, which is what makes
//! `rotate-keys` possible.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use data_encoding::BASE64;
use zeroize::Zeroizing;

/// Why a key ring could not be built from its configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyRingError {
    /// An entry is not `id:base64(32 bytes)`.
    #[error("key entry {0} is not of the form id:base64(32 bytes)")]
    Malformed(usize),
    /// Two entries share an id.
    #[error("key id {0:?} appears twice")]
    Duplicate(String),
    /// No entries at all.
    #[error("the key ring is empty")]
    Empty,
    /// The configured primary id names no key.
    #[error("primary key id {0:?} is not in the key ring")]
    UnknownPrimary(String),
}

/// Why a ciphertext could not be opened. Deliberately says no more.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// The ciphertext names a key the ring does not hold.
    #[error("unknown key id")]
    UnknownKey,
    /// Authentication failed: wrong key, wrong associated data or tampering.
    #[error("ciphertext does not authenticate")]
    Corrupt,
}

/// A sealed secret, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Id of the key that sealed it.
    pub key_id: String,
    /// The 96-bit nonce.
    pub nonce: Vec<u8>,
    /// Ciphertext with the GCM tag appended.
    pub ciphertext: Vec<u8>,
}

/// A set of named AES-256 keys, one of them primary.
pub struct KeyRing {
    keys: Vec<(String, Aes256Gcm)>,
    primary: usize,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("KeyRing")
            .field("ids", &ids)
            .field("primary", &self.primary_id())
            .finish()
    }
}

/// Parses one key's base64 into 32 bytes.
pub fn decode_key(b64: &str) -> Option<Zeroizing<[u8; 32]>> {
    let bytes = Zeroizing::new(BASE64.decode(b64.trim().as_bytes()).ok()?);
    let mut key = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        return None;
    }
    key.copy_from_slice(&bytes);
    Some(key)
}

impl KeyRing {
    /// Parses `id:base64(32 bytes)[,id:…]`; the primary is `primary` or the first key.
    pub fn parse(spec: &str, primary: Option<&str>) -> Result<Self, KeyRingError> {
        let mut keys: Vec<(String, Aes256Gcm)> = Vec::new();
        for (i, entry) in spec
            .split([',', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let (id, b64) = entry
                .split_once(':')
                .ok_or(KeyRingError::Malformed(i + 1))?;
            let id = id.trim();
            let valid_id = !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            let key = decode_key(b64)
                .filter(|_| valid_id)
                .ok_or(KeyRingError::Malformed(i + 1))?;
            if keys.iter().any(|(k, _)| k == id) {
                return Err(KeyRingError::Duplicate(id.to_owned()));
            }
            let cipher =
                Aes256Gcm::new_from_slice(&key[..]).map_err(|_| KeyRingError::Malformed(i + 1))?;
            keys.push((id.to_owned(), cipher));
        }
        if keys.is_empty() {
            return Err(KeyRingError::Empty);
        }
        let primary = match primary {
            None => 0,
            Some(p) => keys
                .iter()
                .position(|(id, _)| id == p)
                .ok_or_else(|| KeyRingError::UnknownPrimary(p.to_owned()))?,
        };
        Ok(Self { keys, primary })
    }

    /// The id new ciphertexts are sealed under.
    pub fn primary_id(&self) -> &str {
        &self.keys[self.primary].0
    }

    /// Encrypts `plaintext` under the primary key, bound to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Sealed {
        let (id, cipher) = &self.keys[self.primary];
        let nonce_bytes = super::random_bytes::<12>();
        let nonce = Nonce::from(*nonce_bytes);
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .unwrap_or_else(|_| unreachable!("AES-GCM encryption of a short secret cannot fail"));
        Sealed {
            key_id: id.clone(),
            nonce: nonce_bytes.to_vec(),
            ciphertext,
        }
    }

    /// Decrypts `sealed` with the key it names, checking `aad`.
    pub fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(id, _)| *id == sealed.key_id)
            .ok_or(OpenError::UnknownKey)?;
        let nonce: [u8; 12] = sealed
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| OpenError::Corrupt)?;
        cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| OpenError::Corrupt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, byte: u8) -> String {
        format!("{id}:{}", BASE64.encode(&[byte; 32]))
    }

    #[test]
    fn round_trips_and_binds_associated_data() -> Result<(), KeyRingError> {
        let ring = KeyRing::parse(&spec("k1", 1), None)?;
        let sealed = ring.seal(b"secret", b"user-a:active");
        assert_eq!(sealed.key_id, "k1");
        assert_eq!(
            ring.open(&sealed, b"user-a:active")
                .as_deref()
                .map(Vec::as_slice),
            Ok(&b"secret"[..])
        );
        assert_eq!(
            ring.open(&sealed, b"user-b:active"),
            Err(OpenError::Corrupt)
        );
        assert_eq!(
            ring.open(&sealed, b"user-a:pending"),
            Err(OpenError::Corrupt)
        );
        Ok(())
    }

    #[test]
    fn decrypts_with_old_keys_and_seals_with_the_primary() -> Result<(), KeyRingError> {
        let old = KeyRing::parse(&spec("old", 1), None)?;
        let sealed = old.seal(b"s", b"ad");
        let ring = KeyRing::parse(
            &format!("{},{}", spec("old", 1), spec("new", 2)),
            Some("new"),
        )?;
        assert!(ring.open(&sealed, b"ad").is_ok());
        assert_eq!(ring.seal(b"s", b"ad").key_id, "new");
        assert_eq!(
            KeyRing::parse(&spec("new", 2), None)?.open(&sealed, b"ad"),
            Err(OpenError::UnknownKey)
        );
        Ok(())
    }

    #[test]
    fn nonces_are_fresh() -> Result<(), KeyRingError> {
        let ring = KeyRing::parse(&spec("k", 3), None)?;
        assert_ne!(ring.seal(b"s", b"ad").nonce, ring.seal(b"s", b"ad").nonce);
        Ok(())
    }

    #[test]
    fn rejects_bad_configuration() {
        assert_eq!(KeyRing::parse("", None).err(), Some(KeyRingError::Empty));
        assert_eq!(
            KeyRing::parse("k1:c2hvcnQ=", None).err(),
            Some(KeyRingError::Malformed(1))
        );
        assert_eq!(
            KeyRing::parse(&format!("{},{}", spec("a", 1), spec("a", 2)), None).err(),
            Some(KeyRingError::Duplicate("a".into()))
        );
        assert_eq!(
            KeyRing::parse(&spec("a", 1), Some("b")).err(),
            Some(KeyRingError::UnknownPrimary("b".into()))
        );
    }
}
