//! Looking inside: raw database bytes and counts, audit log lines.

use super::*;
use sea_orm::ConnectionTrait as _;

/// Tables Warden keeps.
pub const TABLES: [&str; 6] = [
    "users",
    "sessions",
    "login_challenges",
    "totp_secrets",
    "recovery_codes",
    "failure_budgets",
];

/// Every byte the database holds for Warden's tables: the SQLite files
/// (database and WAL) or, for PostgreSQL, each table's rows as text (bytea
/// shows as hex).
pub async fn raw_database(db: &TestDatabase) -> Vec<u8> {
    if !db.is_postgres() {
        let mut bytes = Vec::new();
        for name in ["warden.db", "warden.db-wal"] {
            if let Ok(b) = std::fs::read(db.dir().join(name)) {
                bytes.extend(b);
            }
        }
        return bytes;
    }
    let conn = raw_connect(&db.url).await;
    let mut text = String::new();
    for table in TABLES {
        let row = conn
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!("SELECT coalesce(string_agg(t::text, '|'), '') AS dump FROM {table} t"),
            ))
            .await
            .expect("dump table")
            .expect("one row");
        text.push_str(&row.try_get::<String>("", "dump").expect("dump column"));
    }
    text.into_bytes()
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Runs one SQL statement against the test database.
pub async fn execute_sql(db: &TestDatabase, sql: &str) {
    let conn = raw_connect(&db.url).await;
    conn.execute_unprepared(sql).await.expect("SQL runs");
}

/// Runs a `SELECT count(*) …` against the test database.
pub async fn count(db: &TestDatabase, sql: &str) -> i64 {
    let conn = raw_connect(&db.url).await;
    let row = conn
        .query_one_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            sql.to_owned(),
        ))
        .await
        .expect("query runs")
        .expect("one row");
    row.try_get_by_index::<i64>(0).expect("a count")
}

/// How many audit log lines of `event` name the account `user_id`.
pub fn audit_events(event: &str, user_id: &str) -> usize {
    // Matched on the quoted value: field names may carry colour codes.
    let event = format!("\"{event}\"");
    logs()
        .lines()
        .filter(|line| line.contains("warden::audit") && line.contains(&event))
        .filter(|line| line.contains(user_id))
        .count()
}
