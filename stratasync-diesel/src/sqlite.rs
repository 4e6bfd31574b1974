//! SQLite: connection pool, migrations and (in-process) write ordering.

use diesel::ConnectionError;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncConnection, SimpleAsyncConnection};
use diesel_migrations::{EmbeddedMigrations, embed_migrations};

use crate::log::impl_log_conn;
use crate::pool::PoolOptions;
use crate::registry::{ModelOps, RegisteredModel};
use crate::{SqliteConn, StoreConn, StoreError};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Set on every connection: concurrent readers beside one writer, waiting
/// rather than failing on a busy database.
/// The busy timeout comes first: switching a fresh file to WAL takes a lock
/// that another process opening it at the same moment may hold.
const PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                       PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";

// SQLite runs one write transaction at a time, and the store runs its writes
// one at a time in process, so ids become visible in order without locks.
async fn lock_append_order(_conn: &mut SqliteConn) -> diesel::QueryResult<()> {
    Ok(())
}

impl_log_conn!(SqliteConn, lock_append_order: lock_append_order);

impl crate::hooks::HookConn for SqliteConn {
    fn tx(&mut self) -> crate::hooks::Tx<'_> {
        crate::hooks::Tx::Sqlite(self)
    }
}

impl StoreConn for SqliteConn {
    const BEGIN_SNAPSHOT: &'static str = "BEGIN DEFERRED";

    fn ops(model: &RegisteredModel) -> &dyn ModelOps<Self> {
        model.sqlite.as_ref()
    }

    crate::backend::impl_pooled!();
}

async fn establish(path: &str) -> Result<SqliteConn, ConnectionError> {
    let mut conn = SqliteConn::establish(path).await?;
    conn.batch_execute(PRAGMAS)
        .await
        .map_err(ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

/// Opens (creating it if needed) the database file at `path` and brings the
/// sync tables up to date.
pub(crate) async fn connect(
    path: &str,
    options: &PoolOptions,
) -> Result<Pool<SqliteConn>, StoreError> {
    let conn = establish(path)
        .await
        .map_err(|e| StoreError::Connect(e.to_string()))?;
    crate::migrate::sqlite(conn, MIGRATIONS).await?;
    let mut config = ManagerConfig::default();
    config.custom_setup = Box::new(|path| Box::pin(establish(path)));
    let manager = AsyncDieselConnectionManager::<SqliteConn>::new_with_config(path, config);
    Pool::builder(manager)
        .max_size(options.size)
        .wait_timeout(Some(options.wait_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Connect(e.to_string()))
}
