//! Loading the key ring and token key from configuration, and the
//! development-key bootstrap for the embedded SQLite default.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use data_encoding::BASE64;
use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

use crate::config::KeySettings;
use crate::crypto::keyring::{KeyRing, decode_key};
use crate::crypto::random_bytes;
use crate::crypto::tokens::TokenKey;
use crate::storage::{self, Backend};

/// The keys a server runs with.
pub struct Keys {
    /// Encrypts TOTP secrets.
    pub ring: KeyRing,
    /// Hashes session and challenge tokens.
    pub token: TokenKey,
}

fn read_secret_file(path: &Path, what: &str) -> anyhow::Result<SecretString> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read {what} from {}", path.display()))?;
    Ok(SecretString::from(text.trim().to_owned()))
}

fn configured(
    value: &Option<SecretString>,
    file: &Option<PathBuf>,
    what: &str,
) -> anyhow::Result<Option<SecretString>> {
    match (value, file) {
        (Some(v), _) => Ok(Some(v.clone())),
        (None, Some(path)) => read_secret_file(path, what).map(Some),
        (None, None) => Ok(None),
    }
}

fn build(keys: &str, token_key: &str, primary: Option<&str>) -> anyhow::Result<Keys> {
    let ring = KeyRing::parse(keys, primary).context("WARDEN_KEYS")?;
    let token = decode_key(token_key).context("WARDEN_TOKEN_KEY must be base64 of 32 bytes")?;
    Ok(Keys {
        ring,
        token: TokenKey::new(*token),
    })
}

/// The development key file that sits next to a SQLite database.
pub fn dev_key_path(database_url: &str) -> Option<PathBuf> {
    storage::sqlite_path(database_url).map(|db| {
        let mut name = db.clone().into_os_string();
        name.push(".dev-keys");
        PathBuf::from(name)
    })
}

/// Refuses, before any connection is made, a PostgreSQL configuration
/// without keys: development keys exist only for SQLite.
pub fn require_for_postgres(keys: &KeySettings, database_url: &str) -> anyhow::Result<()> {
    if !keys.are_configured() && Backend::of_url(database_url) == Some(Backend::Postgres) {
        bail!(
            "WARDEN_KEYS and WARDEN_TOKEN_KEY are required with PostgreSQL; development keys exist only for SQLite"
        );
    }
    Ok(())
}

/// Resolves the keys. Configured keys win. With SQLite and none configured,
/// a development key file next to the database is used, created only while
/// the database has no users (so existing secrets are never orphaned by a
/// fresh key). PostgreSQL never gets generated keys.
pub fn load(
    settings: &KeySettings,
    database_url: &str,
    database_has_users: bool,
) -> anyhow::Result<Keys> {
    let keys = configured(&settings.ring, &settings.ring_file, "WARDEN_KEYS")?;
    let token = configured(&settings.token, &settings.token_file, "WARDEN_TOKEN_KEY")?;
    let primary = settings.primary_key_id.as_deref();
    match (keys, token) {
        (Some(keys), Some(token)) => {
            return build(keys.expose_secret(), token.expose_secret(), primary);
        }
        (Some(_), None) | (None, Some(_)) => {
            bail!("WARDEN_KEYS and WARDEN_TOKEN_KEY must be configured together")
        }
        (None, None) => {}
    }
    require_for_postgres(settings, database_url)?;
    let Some(path) = dev_key_path(database_url) else {
        // An in-memory database lives and dies with the process; so do its keys.
        tracing::warn!("using ephemeral development keys for an in-memory database");
        let (keys, token) = fresh_dev_keys();
        return build(&keys, &token, None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => Zeroizing::new(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if database_has_users {
                bail!(
                    "development key file {} is missing but the database has users; restore the file or configure WARDEN_KEYS and WARDEN_TOKEN_KEY",
                    path.display()
                );
            }
            create_dev_key_file(&path)?
        }
        Err(e) => {
            return Err(e).with_context(|| format!("read development key file {}", path.display()));
        }
    };
    tracing::warn!(path = %path.display(), "DEVELOPMENT KEYS IN USE: configure WARDEN_KEYS and WARDEN_TOKEN_KEY for production");
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
            .map(str::trim)
            .with_context(|| format!("development key file {} has no {name}", path.display()))
    };
    build(field("WARDEN_KEYS")?, field("WARDEN_TOKEN_KEY")?, None)
}

fn fresh_dev_keys() -> (Zeroizing<String>, Zeroizing<String>) {
    let ring = Zeroizing::new(format!("dev:{}", BASE64.encode(&random_bytes::<32>()[..])));
    let token = Zeroizing::new(BASE64.encode(&random_bytes::<32>()[..]));
    (ring, token)
}

/// Creates the key file exclusively with mode 0600.
fn create_dev_key_file(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    let (ring, token) = fresh_dev_keys();
    let text = Zeroizing::new(format!(
        "# Warden development keys: for local use only.\nWARDEN_KEYS={}\nWARDEN_TOKEN_KEY={}\n",
        ring.as_str(),
        token.as_str()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("create development key file {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("write development key file {}", path.display()))?;
    tracing::warn!(path = %path.display(), "created a development key file");
    Ok(text)
}
