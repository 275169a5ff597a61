//! Storage: one code path for SQLite (the embedded default) and PostgreSQL.
//!
//! Repositories build statements with sea-query; [`Db`] renders them in the dialect of
//! the configured backend and runs them through sqlx. Migrations are per dialect,
//! embedded in the binary. Times are stored in UTC.

pub mod api_keys;
pub mod attendance;
pub mod attendance_counts;
pub mod audit;
pub mod camera_watchers;
pub mod cameras;
pub mod disputes;
pub mod evidence;
pub mod face_index_changes;
pub mod incidents;
pub mod lease;
pub mod liveness_challenges;
pub mod local_time;
pub mod refresh_tokens;
pub mod sealed;
pub mod sites;
pub mod tasks;
pub mod templates;
pub mod users;
pub mod visitors;
pub mod webhooks;
pub mod worker_processes;

use std::future::Future;
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

    /// Reclaims the space of deleted rows and refreshes the planner's statistics:
    /// `VACUUM` then `ANALYZE` on SQLite, `VACUUM (ANALYZE)` on PostgreSQL. Outside any
    /// transaction; SQLite's `VACUUM` holds the write lock while it runs.
    pub async fn vacuum(&self) -> StoreResult<()> {
        match self {
            Self::Sqlite(pool) => {
                sqlx::query("VACUUM").execute(pool).await?;
                sqlx::query("ANALYZE").execute(pool).await?;
            }
            Self::Postgres(pool) => {
                sqlx::query("VACUUM (ANALYZE)").execute(pool).await?;
            }
        }
        Ok(())
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend() {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The pool's connections: (in use, idle).
    pub fn connections(&self) -> (u32, u32) {
        let (size, idle) = match self {
            Self::Sqlite(pool) => (pool.size(), pool.num_idle()),
            Self::Postgres(pool) => (pool.size(), pool.num_idle()),
        };
        let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
        (size - idle, idle)
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }

    /// Starts a transaction. Its writes are serialised by the database so that a check
    /// and the write that depends on it hold across processes: on SQLite it takes the
    /// write lock at once (`BEGIN IMMEDIATE`); on PostgreSQL callers lock the rows they
    /// decide on (`SELECT … FOR UPDATE`, see [`users::lock`]). Dropped uncommitted, it
    /// rolls back.
    pub async fn begin(&self) -> StoreResult<Tx> {
        let inner = match self {
            Self::Sqlite(pool) => TxInner::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Self::Postgres(pool) => TxInner::Postgres(pool.begin().await?),
        };
        Ok(Tx { backend: self.backend(), inner: tokio::sync::Mutex::new(inner) })
    }
}

/// Which SQL dialect a statement is rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A transaction on either backend. Statements run in it through [`Exec`], like on
/// [`Db`]; [`Tx::commit`] makes its writes visible, dropping it rolls them back.
pub struct Tx {
    backend: Backend,
    // A transaction is one connection used by one task at a time; the lock only lets
    // repository functions take `&self` on both the pool and a transaction.
    inner: tokio::sync::Mutex<TxInner>,
}

enum TxInner {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    pub async fn commit(self) -> StoreResult<()> {
        match self.inner.into_inner() {
            TxInner::Sqlite(tx) => tx.commit().await?,
            TxInner::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// A connection for one statement: one taken from the pool, or the transaction's own.
pub struct Connection<'a>(ConnectionInner<'a>);

enum ConnectionInner<'a> {
    SqlitePool(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    PostgresPool(sqlx::pool::PoolConnection<sqlx::Postgres>),
    Tx(tokio::sync::MutexGuard<'a, TxInner>),
}

impl Connection<'_> {
    fn raw(&mut self) -> RawConnection<'_> {
        match &mut self.0 {
            ConnectionInner::SqlitePool(connection) => RawConnection::Sqlite(connection),
            ConnectionInner::PostgresPool(connection) => RawConnection::Postgres(connection),
            ConnectionInner::Tx(guard) => match &mut **guard {
                TxInner::Sqlite(tx) => RawConnection::Sqlite(tx),
                TxInner::Postgres(tx) => RawConnection::Postgres(tx),
            },
        }
    }
}

enum RawConnection<'c> {
    Sqlite(&'c mut sqlx::SqliteConnection),
    Postgres(&'c mut sqlx::PgConnection),
}

/// A statement rendered in one dialect, with its bound values.
struct Rendered {
    sql: String,
    values: sea_query_binder::SqlxValues,
}

impl Rendered {
    fn new(backend: Backend, statement: &impl SqlxBinder) -> Self {
        let (sql, values) = match backend {
            Backend::Sqlite => statement.build_sqlx(SqliteQueryBuilder),
            Backend::Postgres => statement.build_sqlx(PostgresQueryBuilder),
        };
        Self { sql, values }
    }
}

impl RawConnection<'_> {
    async fn fetch_all<T: Record>(self, query: Rendered) -> Result<Vec<T>, sqlx::Error> {
        match self {
            Self::Sqlite(c) => sqlx::query_as_with(&query.sql, query.values).fetch_all(c).await,
            Self::Postgres(c) => sqlx::query_as_with(&query.sql, query.values).fetch_all(c).await,
        }
    }

    async fn fetch_optional<T: Record>(self, query: Rendered) -> Result<Option<T>, sqlx::Error> {
        match self {
            Self::Sqlite(c) => sqlx::query_as_with(&query.sql, query.values).fetch_optional(c).await,
            Self::Postgres(c) => sqlx::query_as_with(&query.sql, query.values).fetch_optional(c).await,
        }
    }

    async fn fetch_one<T: Record>(self, query: Rendered) -> Result<T, sqlx::Error> {
        match self {
            Self::Sqlite(c) => sqlx::query_as_with(&query.sql, query.values).fetch_one(c).await,
            Self::Postgres(c) => sqlx::query_as_with(&query.sql, query.values).fetch_one(c).await,
        }
    }

    async fn execute(self, query: Rendered) -> Result<u64, sqlx::Error> {
        match self {
            Self::Sqlite(c) => sqlx::query_with(&query.sql, query.values).execute(c).await.map(|r| r.rows_affected()),
            Self::Postgres(c) => sqlx::query_with(&query.sql, query.values).execute(c).await.map(|r| r.rows_affected()),
        }
    }
}

/// Where statements run: the pool ([`Db`], each statement on its own) or one
/// transaction ([`Tx`]). Repository functions that may be part of a transaction take
/// `&impl Exec`.
pub trait Exec: Sync {
    fn backend(&self) -> Backend;

    /// A connection to run one statement on.
    fn connection(&self) -> impl Future<Output = StoreResult<Connection<'_>>> + Send;

    fn fetch_all<T: Record>(&self, statement: &impl SqlxBinder) -> impl Future<Output = StoreResult<Vec<T>>> + Send {
        let query = Rendered::new(self.backend(), statement);
        async move { Ok(self.connection().await?.raw().fetch_all(query).await?) }
    }

    fn fetch_optional<T: Record>(
        &self,
        statement: &impl SqlxBinder,
    ) -> impl Future<Output = StoreResult<Option<T>>> + Send {
        let query = Rendered::new(self.backend(), statement);
        async move { Ok(self.connection().await?.raw().fetch_optional(query).await?) }
    }

    /// Runs a statement that returns one row (e.g. `INSERT … RETURNING`); unique
    /// violations on `unique_fields` become [`StoreError::Conflict`].
    fn fetch_one_unique<T: Record>(
        &self,
        statement: &impl SqlxBinder,
        unique_fields: &'static [&'static str],
    ) -> impl Future<Output = StoreResult<T>> + Send {
        let query = Rendered::new(self.backend(), statement);
        async move {
            let mut connection = self.connection().await?;
            connection.raw().fetch_one(query).await.map_err(|e| StoreError::classify(e, unique_fields))
        }
    }

    /// [`Exec::fetch_one_unique`] for a statement that may return no row (e.g. `UPDATE …
    /// RETURNING` of a row that may be gone).
    fn fetch_optional_unique<T: Record>(
        &self,
        statement: &impl SqlxBinder,
        unique_fields: &'static [&'static str],
    ) -> impl Future<Output = StoreResult<Option<T>>> + Send {
        let query = Rendered::new(self.backend(), statement);
        async move {
            let mut connection = self.connection().await?;
            connection.raw().fetch_optional(query).await.map_err(|e| StoreError::classify(e, unique_fields))
        }
    }

    /// Runs a statement and returns how many rows it changed.
    fn execute(&self, statement: &impl SqlxBinder) -> impl Future<Output = StoreResult<u64>> + Send {
        self.execute_unique(statement, &[])
    }

    fn execute_unique(
        &self,
        statement: &impl SqlxBinder,
        unique_fields: &'static [&'static str],
    ) -> impl Future<Output = StoreResult<u64>> + Send {
        let query = Rendered::new(self.backend(), statement);
        async move {
            let mut connection = self.connection().await?;
            connection.raw().execute(query).await.map_err(|e| StoreError::classify(e, unique_fields))
        }
    }

    /// `SELECT COUNT(*)` of a statement whose single column is a count.
    fn count(&self, statement: &impl SqlxBinder) -> impl Future<Output = StoreResult<i64>> + Send {
        let row = self.fetch_optional::<Count>(statement);
        async move { Ok(row.await?.map_or(0, |c| c.count)) }
    }
}

impl Exec for Db {
    fn backend(&self) -> Backend {
        Db::backend(self)
    }

    async fn connection(&self) -> StoreResult<Connection<'_>> {
        Ok(match self {
            Self::Sqlite(pool) => Connection(ConnectionInner::SqlitePool(pool.acquire().await?)),
            Self::Postgres(pool) => Connection(ConnectionInner::PostgresPool(pool.acquire().await?)),
        })
    }
}

impl Exec for Tx {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn connection(&self) -> StoreResult<Connection<'_>> {
        Ok(Connection(ConnectionInner::Tx(self.inner.lock().await)))
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
