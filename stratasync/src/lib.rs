#![doc = include_str!("../README.md")]

mod auth;
mod error;
pub mod fanout;
mod group_cache;
mod health;
mod http;
#[cfg(feature = "jwt")]
mod jwt;
pub mod limits;
mod listen;
pub mod live;
mod log_page;
mod membership;
pub mod metrics;
mod origins;
mod quota;
mod request_id;
pub mod retention;
mod schema_check;
mod scrape;
mod serve;
mod server;
pub mod shutdown;
mod state;

pub use auth::{Auth, AuthUser, AuthorizeError, BoxError, Caller, TokenError};
pub use error::{ApiError, Error, FieldIssue, RequestPart};
#[cfg(feature = "jwt")]
pub use jwt::{JwtAuth, JwtKeyError};
pub use limits::{Limits, LimitsError};
pub use live::{LiveContext, LiveHooks, LiveSocket};
pub use serve::{DEFAULT_BIND, DEFAULT_DATABASE, ServeConfig, parse_duration, serve, serve_with};
pub use server::SyncServerBuilder;
pub use state::{MutationEvent, SyncServer};
pub use stratasync_core::{
    ActionKind, ClientSchema, ClientType, FieldCodec, FieldError, FilterContext, GroupValue,
    JsonMap, LoadStrategy, ModelMeta, SyncAction, SyncId, SyncModel,
};
// What a `ModelMeta` is made of (its group key, its action set, its fields),
// so applications can read and compare a model's description; and PROTOCOL's
// composite id, the id a client computes for a join-table row.
pub use stratasync_core::{ActionSet, FieldMeta, GroupKey, composite_id};
pub use stratasync_derive::SyncModel;
pub use stratasync_diesel::codegen;
pub use stratasync_diesel::{
    Applied, Bind, DieselModel, GroupLog, HookResult, LogBounds, LogStats, ModelHooks, Mutation,
    MutationError, PoolOptions, PoolStatus, REFERENCE_NOT_FOUND, ReadScope, Redacted, Registry,
    RowScope, ScopeExpression, ScopeFn, Store, StoreError, StoreModel, Tx, sql_types,
};
#[cfg(feature = "postgres")]
pub use stratasync_diesel::{PgConn, RETENTION_LOCK_KEY, connect_postgres};

/// What `#[derive(SyncModel)]` generates code against. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use chrono;
    pub use diesel;
    pub use diesel_async;
    pub use futures::future::BoxFuture;
    pub use serde_json;
    pub use stratasync_core::{
        ActionKind, ActionSet, FieldCodec, FieldError, FieldMeta, FilterContext, GroupKey,
        GroupValue, JsonMap, LoadStrategy, ModelMeta, SyncModel, composite_id, write_json_string,
    };
    pub use stratasync_diesel::references::{
        Grouped, ReferenceCheck, ReferenceTarget, ReferenceValue, assert_grouped,
    };
    pub use stratasync_diesel::scope::scope_filter;
    pub use stratasync_diesel::{Bind, BySql, DieselModel, RowScope, for_each_backend};
}
