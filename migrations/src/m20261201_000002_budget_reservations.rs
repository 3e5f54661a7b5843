//! Pending credential checks get a table of their own, apart from failures.
//!
//! Until now a reservation was counted in `failure_budgets.failures` exactly
//! like a failure, so concurrent right answers locked an account out and a
//! reservation whose call was cancelled stayed counted for good. Each pending
//! check is now one row with a lease: it counts only while the lease runs and
//! is deleted when the check is settled.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum BudgetReservations {
    Table,
    Id,
    Name,
    LeaseUntil,
    CreatedAt,
    ChallengeId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // No foreign key: like the budget itself, reservations exist the same
        // way for names that have no account.
        manager
            .create_table(
                Table::create()
                    .table(BudgetReservations::Table)
                    .col(string_len(BudgetReservations::Id, 36).primary_key())
                    .col(string_len(BudgetReservations::Name, 64))
                    .col(big_integer(BudgetReservations::LeaseUntil))
                    .col(big_integer(BudgetReservations::CreatedAt))
                    // The challenge whose try this check holds, if any: given
                    // back with the reservation when the check ends unjudged.
                    .col(string_len_null(BudgetReservations::ChallengeId, 36))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("budget_reservations_name_lease")
                    .table(BudgetReservations::Table)
                    .col(BudgetReservations::Name)
                    .col(BudgetReservations::LeaseUntil)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("budget_reservations_lease")
                    .table(BudgetReservations::Table)
                    .col(BudgetReservations::LeaseUntil)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(BudgetReservations::Table).to_owned())
            .await
    }
}
