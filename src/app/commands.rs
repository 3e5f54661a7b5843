//! The one-shot subcommands: `migrate` and `rotate-keys`.

use std::sync::Arc;

use anyhow::bail;

use super::{build_service, open_database, validate};
use crate::config::Config;
use crate::storage::{self, SchemaStatus};

/// `warden migrate`: applies pending migrations; refuses a newer schema.
pub async fn migrate_command(config: &Config) -> anyhow::Result<()> {
    validate(config)?;
    let db = storage::connect(&config.database.url, 1).await?;
    match storage::migrate(&db).await? {
        SchemaStatus::Known => {
            println!("migrations applied");
            Ok(())
        }
        SchemaStatus::Newer(unknown) => {
            bail!(
                "the database schema is newer than this binary (unknown migrations: {unknown:?}); refusing to migrate"
            )
        }
    }
}

/// `warden rotate-keys`: re-encrypts every TOTP secret under the primary key.
pub async fn rotate_keys_command(config: &Config) -> anyhow::Result<()> {
    validate(config)?;
    let db = open_database(config, config.database.migrate_on_start).await?;
    let service = build_service(config, db, Arc::new(crate::domain::clock::SystemClock)).await?;
    let changed = service.rotate_keys().await?;
    println!("re-encrypted {changed} secrets");
    Ok(())
}
