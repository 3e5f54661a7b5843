//! Where a `--spawn` run keeps its data: SQLite files in a temporary
//! directory (or the given SQLite file), or PostgreSQL databases of its own,
//! created beside the one `--database-url` names and dropped at the end.

use std::path::PathBuf;

use anyhow::Context as _;
use sea_orm::{ConnectionTrait as _, Database};

/// The databases of one run.
pub enum Databases {
    /// Fresh SQLite files in a directory removed at the end.
    SqliteTemp(tempfile::TempDir),
    /// The one SQLite database given; the commit baseline uses a sibling file.
    SqliteGiven(String, PathBuf),
    /// PostgreSQL: the server URL given (for connecting as an admin) and the
    /// databases created so far.
    Postgres {
        /// The URL given.
        admin_url: String,
        /// Databases created, dropped at the end.
        created: Vec<String>,
    },
}

impl Databases {
    /// Picks the kind from `--database-url` (none: temporary SQLite).
    pub fn new(url: Option<&str>) -> anyhow::Result<Self> {
        match url {
            None => Ok(Self::SqliteTemp(
                tempfile::Builder::new()
                    .prefix("warden-bench-")
                    .tempdir()
                    .context("create a temporary directory")?,
            )),
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                Ok(Self::Postgres {
                    admin_url: u.to_owned(),
                    created: Vec::new(),
                })
            }
            Some(u) => {
                let path = warden::storage::sqlite_path(u)
                    .context("--database-url must name a SQLite file or a PostgreSQL database")?;
                Ok(Self::SqliteGiven(u.to_owned(), path))
            }
        }
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::SqliteTemp(_) | Self::SqliteGiven(..) => "sqlite",
            Self::Postgres { .. } => "postgres",
        }
    }

    /// A database URL for `name` (a server group or the commit baseline).
    pub async fn url(&mut self, name: &str) -> anyhow::Result<String> {
        match self {
            Self::SqliteTemp(dir) => Ok(format!(
                "sqlite://{}?mode=rwc",
                dir.path().join(format!("{name}.db")).display()
            )),
            Self::SqliteGiven(url, path) => Ok(if name == "commit" {
                format!("sqlite://{}.bench-commit.db?mode=rwc", path.display())
            } else {
                url.clone()
            }),
            Self::Postgres { admin_url, created } => {
                let database = format!("warden_bench_{}_{name}", std::process::id());
                let admin = Database::connect(admin_url.as_str())
                    .await
                    .context("connect to PostgreSQL")?;
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {database}"))
                    .await
                    .context("drop an old bench database")?;
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {database}"))
                    .await
                    .context("create the bench database")?;
                admin.close().await.context("close")?;
                created.push(database.clone());
                Ok(replace_database(admin_url, &database))
            }
        }
    }

    /// Drops what was created (the temporary directory goes with `self`).
    pub async fn cleanup(self) -> anyhow::Result<()> {
        if let Self::Postgres { admin_url, created } = self {
            let admin = Database::connect(admin_url.as_str())
                .await
                .context("connect to PostgreSQL")?;
            for database in created {
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
                    .await
                    .with_context(|| format!("drop {database}"))?;
            }
            admin.close().await.context("close")?;
        }
        Ok(())
    }
}

/// `url` with its database name replaced by `database`.
fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base.find("://").map_or(0, |i| {
        i + 3 + base[i + 3..].find('/').unwrap_or(base.len() - i - 3)
    });
    let mut out = format!("{}/{database}", &base[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::replace_database;

    #[test]
    fn the_database_name_is_replaced_and_the_rest_kept() {
        assert_eq!(
            replace_database("postgres://postgres@127.0.0.1:5432/test", "b"),
            "postgres://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(
            replace_database("postgres://u:p@h/test?sslmode=disable", "b"),
            "postgres://u:p@h/b?sslmode=disable"
        );
        assert_eq!(replace_database("postgres://h:1", "b"), "postgres://h:1/b");
    }
}
