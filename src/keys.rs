//! Loading the key ring, the token key and the access-token signing keys
//! from configuration, and the development-key bootstrap for the embedded
//! SQLite default.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use data_encoding::BASE64;
use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

use crate::config::{Config, KeySettings, SigningSettings};
use crate::crypto::Keys;
use crate::crypto::keyring::{KeyRing, decode_key};
use crate::crypto::random_bytes;
use crate::crypto::signing::SigningKeys;
use crate::crypto::tokens::TokenKey;
use crate::storage::{self, Backend};

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

fn build(
    keys: &str,
    token_key: &str,
    primary: Option<&str>,
) -> anyhow::Result<(KeyRing, TokenKey)> {
    let ring = KeyRing::parse(keys, primary).context("WARDEN_KEYS")?;
    let token = decode_key(token_key).context("WARDEN_TOKEN_KEY must be base64 of 32 bytes")?;
    Ok((ring, TokenKey::new(*token)))
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
pub fn require_for_postgres(config: &Config) -> anyhow::Result<()> {
    if Backend::of_url(&config.database.url) != Some(Backend::Postgres) {
        return Ok(());
    }
    if !config.keys.are_configured() {
        bail!(
            "WARDEN_KEYS and WARDEN_TOKEN_KEY are required with PostgreSQL; development keys exist only for SQLite"
        );
    }
    if !config.signing.are_configured() {
        bail!(
            "WARDEN_SIGNING_KEYS (or WARDEN_SIGNING_KEYS_FILE) is required with PostgreSQL; development keys exist only for SQLite"
        );
    }
    Ok(())
}

/// Resolves every key a server runs with (see [`load_ring_and_token`] and
/// [`load_signing`]).
pub fn load(config: &Config, database_has_users: bool) -> anyhow::Result<Keys> {
    require_for_postgres(config)?;
    let (ring, token) =
        load_ring_and_token(&config.keys, &config.database.url, database_has_users)?;
    let signing = load_signing(&config.signing, &config.database.url)?;
    Ok(Keys {
        ring,
        token,
        signing,
    })
}

/// Resolves the key ring and token key. Configured keys win. With SQLite
/// and none configured, a development key file next to the database is
/// used, created only while the database has no users (so existing secrets
/// are never orphaned by a fresh key). PostgreSQL never gets generated keys.
fn load_ring_and_token(
    settings: &KeySettings,
    database_url: &str,
    database_has_users: bool,
) -> anyhow::Result<(KeyRing, TokenKey)> {
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
    write_private_file(path, &text)?;
    tracing::warn!(path = %path.display(), "created a development key file");
    Ok(text)
}

/// Writes `text` to a new file (never an existing one) with mode 0600.
fn write_private_file(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("create development key file {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("write development key file {}", path.display()))
}

/// The development signing-key file that sits next to a SQLite database.
pub fn dev_signing_key_path(database_url: &str) -> Option<PathBuf> {
    storage::sqlite_path(database_url).map(|db| {
        let mut name = db.into_os_string();
        name.push(".dev-signing-keys");
        PathBuf::from(name)
    })
}

fn parse_signing(spec: &str, primary: Option<&str>) -> anyhow::Result<SigningKeys> {
    SigningKeys::parse(spec, primary).context("WARDEN_SIGNING_KEYS")
}

/// Resolves the access-token signing keys. Configured keys win. With SQLite
/// and none configured, a development signing-key file next to the
/// database is used, and created when missing: unlike the TOTP key ring,
/// nothing stored depends on it (a new key only ends the access tokens of
/// the last few minutes), so it is made even when the database has users —
/// which also lets a development database from before access tokens start.
/// PostgreSQL never gets generated keys.
fn load_signing(settings: &SigningSettings, database_url: &str) -> anyhow::Result<SigningKeys> {
    let primary = settings.signing_key_id.as_deref();
    if let Some(spec) = configured(&settings.keys, &settings.keys_file, "WARDEN_SIGNING_KEYS")? {
        return parse_signing(spec.expose_secret(), primary);
    }
    if primary.is_some() {
        bail!("WARDEN_SIGNING_KEY_ID is set but WARDEN_SIGNING_KEYS is not");
    }
    let Some(path) = dev_signing_key_path(database_url) else {
        tracing::warn!("using an ephemeral development signing key for an in-memory database");
        return parse_signing(&SigningKeys::fresh_entry(), None);
    };
    let text = match read_dev_signing_file(&path)? {
        Some(text) => text,
        None => {
            let entry = SigningKeys::fresh_entry();
            let text = Zeroizing::new(format!(
                "# Warden development signing key: for local use only.\nWARDEN_SIGNING_KEYS={}\n",
                entry.as_str()
            ));
            match write_private_file(&path, &text) {
                Ok(()) => {
                    tracing::warn!(path = %path.display(), "created a development signing-key file");
                    text
                }
                // Another process on the same database made it first.
                Err(_) if path.exists() => read_dev_signing_file(&path)?.with_context(|| {
                    format!("read development signing-key file {}", path.display())
                })?,
                Err(e) => return Err(e),
            }
        }
    };
    tracing::warn!(path = %path.display(), "DEVELOPMENT SIGNING KEY IN USE: configure WARDEN_SIGNING_KEYS for production");
    let spec = text
        .lines()
        .find_map(|l| l.strip_prefix("WARDEN_SIGNING_KEYS="))
        .with_context(|| {
            format!(
                "development signing-key file {} has no WARDEN_SIGNING_KEYS",
                path.display()
            )
        })?;
    parse_signing(spec, None)
}

/// The file's text, or `None` when it does not exist.
fn read_dev_signing_file(path: &Path) -> anyhow::Result<Option<Zeroizing<String>>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(Zeroizing::new(text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => {
            Err(e).with_context(|| format!("read development signing-key file {}", path.display()))
        }
    }
}
