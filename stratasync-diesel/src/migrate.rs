//! Running the embedded migrations that create the sync tables, safely when
//! several nodes start at once on a fresh database.
//!
//! Without a lock, two nodes both find the tables missing and both create
//! them; the second fails (on PostgreSQL with a duplicate key in
//! `pg_type`, on SQLite with "table already exists"). So the check and the
//! migrations run under a lock that one node holds at a time: a PostgreSQL
//! session advisory lock, or an exclusive SQLite transaction. A node that
//! waited then finds the migrations applied and goes on.

use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

use crate::StoreError;

/// The advisory-lock key that serializes migrations ("SMIGRA").
#[cfg(feature = "postgres")]
const MIGRATION_LOCK_KEY: i64 = 0x534d_4947_5241;

/// Runs the pending `migrations` on `conn` under a session advisory lock
/// (on a blocking thread: diesel's migration harness is synchronous).
#[cfg(feature = "postgres")]
pub(crate) async fn postgres(
    conn: crate::PgConn,
    migrations: EmbeddedMigrations,
) -> Result<(), StoreError> {
    use diesel::connection::SimpleConnection as _;
    use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;

    tokio::task::spawn_blocking(move || {
        let mut wrapper = AsyncConnectionWrapper::<crate::PgConn>::from(conn);
        wrapper
            .batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
            .map_err(|e| e.to_string())?;
        let applied = wrapper
            .run_pending_migrations(migrations)
            .map(drop)
            .map_err(|e| e.to_string());
        // Closing the session would release the lock too; say so explicitly.
        let released = wrapper
            .batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
            .map_err(|e| e.to_string());
        applied.and(released)
    })
    .await
    .map_err(|e| StoreError::Migration(e.to_string()))?
    .map_err(StoreError::Migration)
}

/// Runs the pending `migrations` on `conn` inside one exclusive transaction:
/// a second process waits (the connection's busy timeout) and then finds
/// them applied.
#[cfg(feature = "sqlite")]
pub(crate) async fn sqlite(
    mut conn: crate::SqliteConn,
    migrations: EmbeddedMigrations,
) -> Result<(), StoreError> {
    /// A migration failure, or the transaction's own failure.
    struct Failed(String);
    impl From<diesel::result::Error> for Failed {
        fn from(error: diesel::result::Error) -> Self {
            Failed(error.to_string())
        }
    }

    conn.spawn_blocking(move |sqlite| {
        Ok(sqlite.exclusive_transaction(|sqlite| {
            sqlite
                .run_pending_migrations(migrations)
                .map(drop)
                .map_err(|e| Failed(e.to_string()))
        }))
    })
    .await
    .map_err(|e| StoreError::Migration(e.to_string()))?
    .map_err(|Failed(message)| StoreError::Migration(message))
}
