//! stratasync: a Linear-style local-first sync server for axum and diesel.

pub use stratasync_core::{FieldCodec, FieldError, GroupValue, SyncId, SyncModel};
pub use stratasync_derive::SyncModel;
pub use stratasync_diesel::{DieselModel, RowScope, sql_types};

/// What `#[derive(SyncModel)]` generates code against. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use chrono;
    pub use diesel;
    pub use diesel_async;
    pub use futures::future::BoxFuture;
    pub use serde_json;
    pub use stratasync_core::{
        ActionKind, ActionSet, FieldCodec, FieldError, FieldMeta, GroupKey, GroupValue, JsonMap,
        ModelMeta, SyncModel, composite_id, write_json_string,
    };
    pub use stratasync_diesel::{Bind, DieselModel, RowScope, for_each_backend};
}
