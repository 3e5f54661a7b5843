//! SeaORM entities: row shapes of the tables the migrations create. Only
//! `storage` sees these; the domain gets its own types.

pub mod budget_reservations;
pub mod failure_budgets;
pub mod login_challenges;
pub mod recovery_codes;
pub mod sessions;
pub mod totp_secrets;
pub mod trusted_devices;
pub mod users;
