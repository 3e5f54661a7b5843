//! Remembered devices ("remember this device"): one row per live device
//! token, stored only as its keyed hash.
//!
//! Revoking a device deletes its row rather than marking it: a revoked
//! token can never be valid again, the audit trail lives in the audit
//! spans, and "live" stays one condition (`expires_at > now`) on an index.
//! Expand only: older binaries never read the table.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum TrustedDevices {
    Table,
    Id,
    UserId,
    TokenHash,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TrustedDevices::Table)
                    .col(string_len(TrustedDevices::Id, 36).primary_key())
                    .col(string_len(TrustedDevices::UserId, 36))
                    .col(blob(TrustedDevices::TokenHash))
                    .col(big_integer(TrustedDevices::CreatedAt))
                    .col(big_integer(TrustedDevices::ExpiresAt))
                    .col(big_integer_null(TrustedDevices::LastUsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(TrustedDevices::Table, TrustedDevices::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Login looks devices up by an indexed equality on the hash.
        manager
            .create_index(
                Index::create()
                    .name("trusted_devices_token_hash")
                    .table(TrustedDevices::Table)
                    .col(TrustedDevices::TokenHash)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The per-user cap ends the oldest; counts and revocations are per user.
        manager
            .create_index(
                Index::create()
                    .name("trusted_devices_user_created")
                    .table(TrustedDevices::Table)
                    .col(TrustedDevices::UserId)
                    .col(TrustedDevices::CreatedAt)
                    .to_owned(),
            )
            .await?;
        // Housekeeping deletes expired devices.
        manager
            .create_index(
                Index::create()
                    .name("trusted_devices_expires")
                    .table(TrustedDevices::Table)
                    .col(TrustedDevices::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TrustedDevices::Table).to_owned())
            .await
    }
}
