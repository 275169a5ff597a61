//! Storage: one code path for SQLite (the embedded default) and PostgreSQL.
//!
//! Repositories build statements with sea-query; [`Db`] renders them in the dialect of
//! the configured backend and runs them through sqlx. Migrations are per dialect,
//! embedded in the binary. Times are stored in UTC.

pub mod api_keys;
pub mod attendance;
pub mod audit;
pub mod incidents;
pub mod refresh_tokens;
pub mod tasks;
pub mod templates;
pub mod users;
pub mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};
use sea_query_binder::SqlxBinder;
use sqlx::FromRow;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};

/// Errors of the storage layer. Constraint hits are told apart so that the API can
/// answer 409 instead of 500.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("a record with this {0} already exists")]
    Conflict(&'static str),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Turns a unique-constraint violation into [`StoreError::Conflict`], naming the
    /// field whose column appears in the constraint message.
    fn classify(error: sqlx::Error, unique_fields: &[&'static str]) -> Self {
        if let sqlx::Error::Database(db) = &error
            && db.is_unique_violation()
        {
            let message = format!("{} {}", db.message(), db.constraint().unwrap_or_default());
            let field = unique_fields.iter().find(|field| message.contains(*field)).copied().unwrap_or("value");
            return Self::Conflict(field);
        }
        Self::Database(error)
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A row type that decodes from both backends.
pub trait Record: Send + Unpin + for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> {}
impl<T> Record for T where T: Send + Unpin + for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> {}

/// The database, on whichever backend the URL named.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Db {
    /// Connects to `sqlite://PATH` (the file and its folder are created) or `postgres://…`.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        if url.starts_with("sqlite:") {
            Self::connect_sqlite(url).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            Ok(Self::Postgres(pool))
        } else {
            Err(StoreError::UnsupportedUrl(url.to_owned()))
        }
    }

    async fn connect_sqlite(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // With WAL, NORMAL is durable across process crashes (not power loss).
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        if let Some(parent) = options.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(sqlx::Error::Io)?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Self::Sqlite(pool))
    }

    /// Applies the migrations of this backend's dialect that have not run yet.
    pub async fn migrate(&self) -> StoreResult<()> {
        match self {
            Self::Sqlite(pool) => sqlx::migrate!("../../migrations/sqlite").run(pool).await?,
            Self::Postgres(pool) => sqlx::migrate!("../../migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> StoreResult<()> {
        match self {
            Self::Sqlite(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
            Self::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }

    pub async fn fetch_all<T: Record>(&self, statement: &impl SqlxBinder) -> StoreResult<Vec<T>> {
        Ok(match self {
            Self::Sqlite(pool) => {
                let (sql, values) = statement.build_sqlx(SqliteQueryBuilder);
                sqlx::query_as_with(&sql, values).fetch_all(pool).await?
            }
            Self::Postgres(pool) => {
                let (sql, values) = statement.build_sqlx(PostgresQueryBuilder);
                sqlx::query_as_with(&sql, values).fetch_all(pool).await?
            }
        })
    }

    pub async fn fetch_optional<T: Record>(&self, statement: &impl SqlxBinder) -> StoreResult<Option<T>> {
        Ok(match self {
            Self::Sqlite(pool) => {
                let (sql, values) = statement.build_sqlx(SqliteQueryBuilder);
                sqlx::query_as_with(&sql, values).fetch_optional(pool).await?
            }
            Self::Postgres(pool) => {
                let (sql, values) = statement.build_sqlx(PostgresQueryBuilder);
                sqlx::query_as_with(&sql, values).fetch_optional(pool).await?
            }
        })
    }

    /// Runs a statement that returns one row (e.g. `INSERT … RETURNING`); unique
    /// violations on `unique_fields` become [`StoreError::Conflict`].
    pub async fn fetch_one_unique<T: Record>(
        &self,
        statement: &impl SqlxBinder,
        unique_fields: &[&'static str],
    ) -> StoreResult<T> {
        let result = match self {
            Self::Sqlite(pool) => {
                let (sql, values) = statement.build_sqlx(SqliteQueryBuilder);
                sqlx::query_as_with(&sql, values).fetch_one(pool).await
            }
            Self::Postgres(pool) => {
                let (sql, values) = statement.build_sqlx(PostgresQueryBuilder);
                sqlx::query_as_with(&sql, values).fetch_one(pool).await
            }
        };
        result.map_err(|e| StoreError::classify(e, unique_fields))
    }

    /// Runs an `INSERT … RETURNING` whose row may already exist under a unique key (a task
    /// run again after a crash): `None` when it does.
    pub async fn insert_unless_duplicate<T: Record>(&self, statement: &impl SqlxBinder) -> StoreResult<Option<T>> {
        match self.fetch_one_unique(statement, &[]).await {
            Ok(record) => Ok(Some(record)),
            Err(StoreError::Conflict(_)) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// Runs a statement and returns how many rows it changed.
    pub async fn execute(&self, statement: &impl SqlxBinder) -> StoreResult<u64> {
        self.execute_unique(statement, &[]).await
    }

    pub async fn execute_unique(
        &self,
        statement: &impl SqlxBinder,
        unique_fields: &[&'static str],
    ) -> StoreResult<u64> {
        let result = match self {
            Self::Sqlite(pool) => {
                let (sql, values) = statement.build_sqlx(SqliteQueryBuilder);
                sqlx::query_with(&sql, values).execute(pool).await.map(|r| r.rows_affected())
            }
            Self::Postgres(pool) => {
                let (sql, values) = statement.build_sqlx(PostgresQueryBuilder);
                sqlx::query_with(&sql, values).execute(pool).await.map(|r| r.rows_affected())
            }
        };
        result.map_err(|e| StoreError::classify(e, unique_fields))
    }

    /// `SELECT COUNT(*)` of a statement whose single column is a count.
    pub async fn count(&self, statement: &impl SqlxBinder) -> StoreResult<i64> {
        let row: Option<Count> = self.fetch_optional(statement).await?;
        Ok(row.map_or(0, |c| c.count))
    }
}

/// Column aliases shared by the tables' queries.
#[derive(sea_query::Iden)]
pub(super) enum Alias {
    /// The `COUNT(..)` column that [`Db::count`] reads.
    Count,
}

#[derive(sqlx::FromRow)]
struct Count {
    count: i64,
}

/// An `INSERT … RETURNING id` result.
#[derive(sqlx::FromRow)]
pub struct Id {
    pub id: i64,
}
