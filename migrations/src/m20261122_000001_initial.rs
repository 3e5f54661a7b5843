//! The initial data model. Times are Unix milliseconds (BIGINT) so that
//! SQLite and PostgreSQL compare them identically; ids are UUID strings.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Username,
    PasswordHash,
    CreatedAt,
    PasswordChangedAt,
    LastLoginAt,
    DisabledAt,
    TotpLastStep,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
    TokenHash,
    CreatedAt,
    LastUsedAt,
    AuthenticatedAt,
    ExpiresAt,
    Amr,
    ClientAddress,
    UserAgent,
}

#[derive(DeriveIden)]
enum LoginChallenges {
    Table,
    Id,
    UserId,
    TokenHash,
    CreatedAt,
    ExpiresAt,
    FailedAttempts,
}

#[derive(DeriveIden)]
enum TotpSecrets {
    Table,
    UserId,
    Purpose,
    KeyId,
    Nonce,
    Ciphertext,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum RecoveryCodes {
    Table,
    Id,
    UserId,
    CodeHash,
    CreatedAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum FailureBudgets {
    Table,
    Name,
    Failures,
    LockLevel,
    LockedUntil,
    UpdatedAt,
}

/// A foreign key to `users.id` that deletes the row with its user.
fn owned_by_user<T: IntoIden + 'static>(table: T, column: T) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, column)
        .to(Users::Table, Users::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(string_len(Users::Id, 36).primary_key())
                    .col(string_len_uniq(Users::Username, 64))
                    .col(text(Users::PasswordHash))
                    .col(big_integer(Users::CreatedAt))
                    .col(big_integer(Users::PasswordChangedAt))
                    .col(big_integer_null(Users::LastLoginAt))
                    .col(big_integer_null(Users::DisabledAt))
                    .col(big_integer_null(Users::TotpLastStep))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(string_len(Sessions::Id, 36).primary_key())
                    .col(string_len(Sessions::UserId, 36))
                    .col(blob(Sessions::TokenHash))
                    .col(big_integer(Sessions::CreatedAt))
                    .col(big_integer(Sessions::LastUsedAt))
                    .col(big_integer(Sessions::AuthenticatedAt))
                    .col(big_integer(Sessions::ExpiresAt))
                    .col(string_len(Sessions::Amr, 128))
                    .col(string_len_null(Sessions::ClientAddress, 64))
                    .col(string_len_null(Sessions::UserAgent, 256))
                    .foreign_key(&mut owned_by_user(Sessions::Table, Sessions::UserId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sessions_token_hash")
                    .table(Sessions::Table)
                    .col(Sessions::TokenHash)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sessions_user_created")
                    .table(Sessions::Table)
                    .col(Sessions::UserId)
                    .col(Sessions::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sessions_expires")
                    .table(Sessions::Table)
                    .col(Sessions::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sessions_last_used")
                    .table(Sessions::Table)
                    .col(Sessions::LastUsedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(LoginChallenges::Table)
                    .col(string_len(LoginChallenges::Id, 36).primary_key())
                    .col(string_len(LoginChallenges::UserId, 36))
                    .col(blob(LoginChallenges::TokenHash))
                    .col(big_integer(LoginChallenges::CreatedAt))
                    .col(big_integer(LoginChallenges::ExpiresAt))
                    .col(integer(LoginChallenges::FailedAttempts).default(0))
                    .foreign_key(&mut owned_by_user(
                        LoginChallenges::Table,
                        LoginChallenges::UserId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("login_challenges_token_hash")
                    .table(LoginChallenges::Table)
                    .col(LoginChallenges::TokenHash)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("login_challenges_user")
                    .table(LoginChallenges::Table)
                    .col(LoginChallenges::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("login_challenges_expires")
                    .table(LoginChallenges::Table)
                    .col(LoginChallenges::ExpiresAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(TotpSecrets::Table)
                    .col(string_len(TotpSecrets::UserId, 36))
                    .col(string_len(TotpSecrets::Purpose, 16))
                    .col(string_len(TotpSecrets::KeyId, 64))
                    .col(blob(TotpSecrets::Nonce))
                    .col(blob(TotpSecrets::Ciphertext))
                    .col(big_integer(TotpSecrets::CreatedAt))
                    .col(big_integer_null(TotpSecrets::ExpiresAt))
                    .primary_key(
                        Index::create()
                            .col(TotpSecrets::UserId)
                            .col(TotpSecrets::Purpose),
                    )
                    .foreign_key(&mut owned_by_user(TotpSecrets::Table, TotpSecrets::UserId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("totp_secrets_expires")
                    .table(TotpSecrets::Table)
                    .col(TotpSecrets::ExpiresAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RecoveryCodes::Table)
                    .col(string_len(RecoveryCodes::Id, 36).primary_key())
                    .col(string_len(RecoveryCodes::UserId, 36))
                    .col(text(RecoveryCodes::CodeHash))
                    .col(big_integer(RecoveryCodes::CreatedAt))
                    .col(big_integer_null(RecoveryCodes::UsedAt))
                    .foreign_key(&mut owned_by_user(
                        RecoveryCodes::Table,
                        RecoveryCodes::UserId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("recovery_codes_user")
                    .table(RecoveryCodes::Table)
                    .col(RecoveryCodes::UserId)
                    .to_owned(),
            )
            .await?;

        // Keyed by canonical name, not user id: the budget exists the same way
        // for names that have no account, so it reveals nothing.
        manager
            .create_table(
                Table::create()
                    .table(FailureBudgets::Table)
                    .col(string_len(FailureBudgets::Name, 64).primary_key())
                    .col(integer(FailureBudgets::Failures).default(0))
                    .col(integer(FailureBudgets::LockLevel).default(0))
                    .col(big_integer_null(FailureBudgets::LockedUntil))
                    .col(big_integer(FailureBudgets::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("failure_budgets_updated")
                    .table(FailureBudgets::Table)
                    .col(FailureBudgets::UpdatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            FailureBudgets::Table.into_iden(),
            RecoveryCodes::Table.into_iden(),
            TotpSecrets::Table.into_iden(),
            LoginChallenges::Table.into_iden(),
            Sessions::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
