//! PostgreSQL: connection pool, migrations and the ordering locks.

use diesel::sql_types::BigInt;
use std::sync::Arc;

use diesel_async::RunQueryDsl;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_migrations::{EmbeddedMigrations, embed_migrations};

use crate::log::impl_log_conn;
use crate::pg_tls::PgTarget;
use crate::pool::PoolOptions;
use crate::registry::{ModelOps, RegisteredModel};
use crate::{BySql, PgConn, StoreConn, StoreError};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// The advisory-lock key that orders appends ("STRATA").
const APPEND_ORDER_KEY: i64 = 0x5354_5241_5441;

/// The session advisory-lock key held by the node that trims the log
/// ("STRTRM"); an operator can hold it to pause scheduled retention.
pub const RETENTION_LOCK_KEY: i64 = 0x5354_5254_524d;

#[derive(diesel::QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

/// Takes the retention lock for this session if no other session holds it.
pub(crate) async fn try_lock_retention(conn: &mut PgConn) -> diesel::QueryResult<bool> {
    let row: Locked = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
        .bind::<BigInt, _>(RETENTION_LOCK_KEY)
        .get_result(conn)
        .await?;
    Ok(row.locked)
}

/// Releases the retention lock of this session.
pub(crate) async fn unlock_retention(conn: &mut PgConn) -> diesel::QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(RETENTION_LOCK_KEY)
        .execute(conn)
        .await
        .map(drop)
}

/// Takes the append lock, prepared once per connection ([`BySql`]): it is
/// taken once per write transaction.
async fn lock_append_order(conn: &mut PgConn) -> diesel::QueryResult<()> {
    BySql(diesel::sql_query("SELECT pg_advisory_xact_lock($1)").bind::<BigInt, _>(APPEND_ORDER_KEY))
        .execute(conn)
        .await
        .map(drop)
}

impl_log_conn!(PgConn, lock_append_order: lock_append_order);

impl crate::hooks::HookConn for PgConn {
    fn tx(&mut self) -> crate::hooks::Tx<'_> {
        crate::hooks::Tx::Postgres(self)
    }
}

impl StoreConn for PgConn {
    const BEGIN_SNAPSHOT: &'static str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

    fn ops(model: &RegisteredModel) -> &dyn ModelOps<Self> {
        model.postgres.as_ref()
    }

    crate::backend::impl_pooled!();
}

/// Opens one connection to the PostgreSQL at `url` as the store does: over
/// TLS as the URL's `sslmode` and `sslrootcert` say. For an application's
/// own setup (its tables, its migrations) on the same database.
pub async fn connect_postgres(url: &str) -> Result<PgConn, StoreError> {
    PgTarget::parse(url)
        .map_err(StoreError::Connect)?
        .establish()
        .await
        .map_err(|e| StoreError::Connect(e.to_string()))
}

/// Opens a pool on `url` and brings the sync tables up to date.
///
/// TLS follows the URL's `sslmode` and `sslrootcert` ([`crate::pg_tls`]).
pub(crate) async fn connect(url: &str, options: &PoolOptions) -> Result<Pool<PgConn>, StoreError> {
    let target = Arc::new(PgTarget::parse(url).map_err(StoreError::Connect)?);
    let conn = target
        .establish()
        .await
        .map_err(|e| StoreError::Connect(e.to_string()))?;
    crate::migrate::postgres(conn, MIGRATIONS).await?;
    let mut config = ManagerConfig::default();
    // A checkout asks no query of the database (`Verified` sends `SELECT 1`
    // first, a round trip per checkout): a connection whose session ended
    // while it sat in the pool (a restart, a terminated backend) is closed
    // on the client's side too and is dropped by the broken check, and one
    // lost while in use is retried by the write path.
    config.recycling_method = RecyclingMethod::Fast;
    config.custom_setup = Box::new(move |_url| {
        let target = Arc::clone(&target);
        Box::pin(async move { target.establish().await })
    });
    let manager = AsyncDieselConnectionManager::<PgConn>::new_with_config(url, config);
    Pool::builder(manager)
        .max_size(options.size)
        .wait_timeout(Some(options.wait_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Connect(e.to_string()))
}
