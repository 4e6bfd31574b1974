//! Running the embedded migrations that create the sync tables.

use diesel::backend::Backend;
use diesel_async::AsyncConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

use crate::StoreError;

/// Runs the pending `migrations` on `conn` (on a blocking thread: diesel's
/// migration harness is synchronous).
pub(crate) async fn run<C>(conn: C, migrations: EmbeddedMigrations) -> Result<(), StoreError>
where
    C: AsyncConnection + Send + 'static,
    C::Backend: Backend,
    AsyncConnectionWrapper<C>: MigrationHarness<C::Backend>,
{
    tokio::task::spawn_blocking(move || {
        let mut wrapper = AsyncConnectionWrapper::<C>::from(conn);
        wrapper
            .run_pending_migrations(migrations)
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| StoreError::Migration(e.to_string()))?
    .map_err(StoreError::Migration)
}
