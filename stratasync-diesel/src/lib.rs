//! Storage for stratasync on diesel: the sync tables, the ordered log,
//! consistent snapshots and model queries, on PostgreSQL and SQLite.
//!
//! This crate knows nothing of HTTP. The `stratasync` crate drives a
//! [`Store`] from its routes; `#[derive(SyncModel)]` implements
//! [`DieselModel`] for each backend the build enables.
//!
//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `postgres` | PostgreSQL through diesel-async's pure-Rust driver |
//! | `sqlite` | SQLite, bundled, for embedded and first-run use |

#[cfg(not(any(feature = "postgres", feature = "sqlite")))]
compile_error!("stratasync-diesel needs at least one backend feature: `postgres` or `sqlite`");

mod backend;
mod bind;
mod by_sql;
pub mod codegen;
mod connection;
mod error;
mod hooks;
mod log;
mod migrate;
mod model;
mod mutate;
#[cfg(feature = "postgres")]
mod pg_tls;
mod pool;
#[cfg(feature = "postgres")]
mod postgres;
mod redact;
pub mod references;
mod registry;
mod schema;
pub mod scope;
mod snapshot;
pub mod sql_types;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;
mod write;

pub(crate) use backend::StoreConn;
pub use bind::Bind;
#[doc(hidden)]
pub use by_sql::BySql;
#[cfg(feature = "postgres")]
pub use connection::PgConn;
#[cfg(feature = "sqlite")]
pub use connection::SqliteConn;
pub use error::{MutationError, Settled, StoreError};
pub use hooks::{HookResult, ModelHooks, Tx};
pub use model::{DieselModel, RowScope};
pub use mutate::Mutation;
pub use pool::PoolOptions;
#[cfg(feature = "postgres")]
pub use postgres::{RETENTION_LOCK_KEY, connect_postgres};
pub use redact::Redacted;
pub use references::REFERENCE_NOT_FOUND;
pub use registry::{RegisteredModel, Registry, StoreModel, backends};
pub use scope::{ReadScope, ScopeExpression, ScopeFn};
pub use snapshot::{
    BootstrapHeader, DEFAULT_SNAPSHOT_PAGE_BYTES, SnapshotCutOff, SnapshotPart, SnapshotPlan,
};
pub use store::{GroupLog, LogBounds, LogStats, PoolStatus, Store};
pub use write::Applied;

#[doc(hidden)]
pub use diesel as __diesel;
