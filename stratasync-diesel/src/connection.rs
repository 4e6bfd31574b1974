//! The connection types of the database backends.

/// A PostgreSQL connection (diesel-async over tokio-postgres).
#[cfg(feature = "postgres")]
pub type PgConn = diesel_async::AsyncPgConnection;

/// A SQLite connection (diesel's, run on a blocking thread by diesel-async).
#[cfg(feature = "sqlite")]
pub type SqliteConn =
    diesel_async::sync_connection_wrapper::SyncConnectionWrapper<diesel::SqliteConnection>;
