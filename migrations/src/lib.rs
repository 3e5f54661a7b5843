//! Warden's versioned schema migrations. Steps never change once landed; new
//! steps are new files, expand/contract so old and new binaries can share a
//! database during a rolling upgrade.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_initial;
mod m20261201_000002_budget_reservations;
mod m20261201_000004_trusted_devices;

/// All migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_initial::Migration),
            Box::new(m20261201_000002_budget_reservations::Migration),
            Box::new(m20261201_000004_trusted_devices::Migration),
        ]
    }
}
