//! The set of synced models a store serves.

use std::any::Any;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::QueryResult;
use futures::future::BoxFuture;
use stratasync_core::{ActionKind, ClientSchema, FilterContext, JsonMap, ModelMeta, SyncModel};

use crate::hooks::{DynModelHooks, HookConn, ModelHooks};
use crate::log::LogConn;
use crate::mutate::{Change, Mutation, apply};
use crate::{DieselModel, MutationError, RowScope};

/// Where a model's bootstrap read stopped: the cursor of its last row.
pub(crate) type PageCursor = Option<Box<dyn Any + Send + Sync>>;

/// A model's operations with its type erased, on one backend's connection.
pub(crate) trait ModelOps<C>: Send + Sync {
    /// Applies a mutation inside the open transaction; sets `hook_ran`
    /// before one of the model's hooks runs (it may write, and refuse).
    fn apply<'a>(
        &'a self,
        conn: &'a mut C,
        mutation: &'a Mutation,
        ctx: &'a FilterContext,
        now: DateTime<Utc>,
        hook_ran: &'a mut bool,
    ) -> BoxFuture<'a, Result<Change, MutationError>>;

    /// Whether [`apply`](Self::apply) writes before it may refuse
    /// `mutation`, so that only a savepoint around it can undo the write:
    /// an update whose references are checked after the row is written.
    /// Otherwise a refusal leaves the transaction as it found it, or (a
    /// statement the database refused) aborted, or, when a hook ran, holding
    /// what the hook wrote (`hook_ran`).
    fn needs_savepoint(&self, mutation: &Mutation) -> bool;

    /// Appends up to `limit` NDJSON row lines after `cursor` to `out` and
    /// advances `cursor`; returns how many rows were written.
    fn write_page<'a>(
        &'a self,
        conn: &'a mut C,
        scope: &'a RowScope,
        cursor: &'a mut PageCursor,
        limit: i64,
        out: &'a mut Vec<u8>,
    ) -> BoxFuture<'a, QueryResult<usize>>;

    /// How many rows are in `scope`.
    fn count<'a>(&'a self, conn: &'a mut C, scope: &'a RowScope)
    -> BoxFuture<'a, QueryResult<i64>>;
}

struct Erased<T> {
    /// The application's hooks, if it registered any.
    hooks: Option<Arc<dyn DynModelHooks<T>>>,
}

impl<T, C> ModelOps<C> for Erased<T>
where
    T: DieselModel<C>,
    C: HookConn + LogConn + Send + 'static,
{
    fn apply<'a>(
        &'a self,
        conn: &'a mut C,
        mutation: &'a Mutation,
        ctx: &'a FilterContext,
        now: DateTime<Utc>,
        hook_ran: &'a mut bool,
    ) -> BoxFuture<'a, Result<Change, MutationError>> {
        Box::pin(apply::<T, C>(
            conn,
            mutation,
            ctx,
            now,
            self.hooks.as_deref(),
            hook_ran,
        ))
    }

    fn needs_savepoint(&self, mutation: &Mutation) -> bool {
        mutation.action == ActionKind::Update
            && T::decode_changes(&mutation.payload)
                .is_ok_and(|(changes, _)| T::touches_references(&changes))
    }

    fn write_page<'a>(
        &'a self,
        conn: &'a mut C,
        scope: &'a RowScope,
        cursor: &'a mut PageCursor,
        limit: i64,
        out: &'a mut Vec<u8>,
    ) -> BoxFuture<'a, QueryResult<usize>> {
        Box::pin(async move {
            let after = cursor.as_ref().and_then(|c| c.downcast_ref::<T::Cursor>());
            let rows = T::load_page(conn, scope, after, limit).await?;
            for row in &rows {
                row.write_row(out);
                out.push(b'\n');
            }
            if let Some(last) = rows.last() {
                *cursor = Some(Box::new(last.cursor()));
            }
            Ok(rows.len())
        })
    }

    fn count<'a>(
        &'a self,
        conn: &'a mut C,
        scope: &'a RowScope,
    ) -> BoxFuture<'a, QueryResult<i64>> {
        T::count(conn, scope)
    }
}

/// A model the store can serve on every backend it is built with.
///
/// Implemented for every `#[derive(SyncModel)]` type.
pub trait StoreModel: SyncModel + backends::Postgres + backends::Sqlite {}

impl<T: SyncModel + backends::Postgres + backends::Sqlite> StoreModel for T {}

/// Per-backend requirements of [`StoreModel`], empty for backends left out of the build.
pub mod backends {
    /// The model's queries on PostgreSQL (when built with the `postgres` feature).
    #[cfg(feature = "postgres")]
    pub trait Postgres: crate::DieselModel<crate::PgConn> {}
    #[cfg(feature = "postgres")]
    impl<T: crate::DieselModel<crate::PgConn>> Postgres for T {}
    /// The model's queries on PostgreSQL (when built with the `postgres` feature).
    #[cfg(not(feature = "postgres"))]
    pub trait Postgres {}
    #[cfg(not(feature = "postgres"))]
    impl<T> Postgres for T {}

    /// The model's queries on SQLite (when built with the `sqlite` feature).
    #[cfg(feature = "sqlite")]
    pub trait Sqlite: crate::DieselModel<crate::SqliteConn> {}
    #[cfg(feature = "sqlite")]
    impl<T: crate::DieselModel<crate::SqliteConn>> Sqlite for T {}
    /// The model's queries on SQLite (when built with the `sqlite` feature).
    #[cfg(not(feature = "sqlite"))]
    pub trait Sqlite {}
    #[cfg(not(feature = "sqlite"))]
    impl<T> Sqlite for T {}
}

/// The model id of the row `mutation` names in model `T`.
fn row_id<T: SyncModel>(mutation: &Mutation) -> Option<String> {
    T::key_from_request(&mutation.model_id, &mutation.payload)
        .ok()
        .map(|key| T::model_id(&key))
}

/// One registered model.
pub struct RegisteredModel {
    meta: ModelMeta,
    payload_references: fn(&JsonMap) -> Vec<(&'static str, String)>,
    row_id: fn(&Mutation) -> Option<String>,
    #[cfg(feature = "postgres")]
    pub(crate) postgres: Box<dyn ModelOps<crate::PgConn>>,
    #[cfg(feature = "sqlite")]
    pub(crate) sqlite: Box<dyn ModelOps<crate::SqliteConn>>,
}

impl RegisteredModel {
    /// The model's static description.
    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    /// The rows `payload` references ([`SyncModel::payload_references`]).
    pub(crate) fn payload_references(&self, payload: &JsonMap) -> Vec<(&'static str, String)> {
        (self.payload_references)(payload)
    }

    /// The model id of the row `mutation` names, as the log names it (for a
    /// composite model, built from the payload's key fields); `None` when
    /// the mutation names no valid key.
    pub(crate) fn row_id(&self, mutation: &Mutation) -> Option<String> {
        (self.row_id)(mutation)
    }
}

impl std::fmt::Debug for RegisteredModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredModel")
            .field("name", &self.meta.name)
            .finish()
    }
}

/// The models a server syncs, in registration order (the bootstrap order).
///
/// ```ignore
/// let registry = Registry::new().model::<Task>().model::<Label>();
/// ```
#[derive(Debug, Default)]
pub struct Registry {
    models: Vec<RegisteredModel>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers `T`.
    ///
    /// # Panics
    ///
    /// When a model with the same wire name is already registered: a
    /// configuration mistake found at startup.
    #[must_use]
    pub fn model<T: StoreModel>(self) -> Self {
        self.register::<T>(None)
    }

    /// Registers `T` with hooks that run inside each of its mutations'
    /// transactions.
    ///
    /// # Panics
    ///
    /// Like [`Registry::model`], when the wire name is already registered.
    #[must_use]
    pub fn model_with_hooks<T: StoreModel>(self, hooks: impl ModelHooks<T>) -> Self {
        self.register::<T>(Some(Arc::new(hooks)))
    }

    /// Registers `T` with the application's `hooks`, if any.
    fn register<T: StoreModel>(mut self, hooks: Option<Arc<dyn DynModelHooks<T>>>) -> Self {
        assert!(
            self.get(T::META.name).is_none(),
            "stratasync: model `{}` is registered twice",
            T::META.name
        );
        self.models.push(RegisteredModel {
            meta: T::META,
            payload_references: T::payload_references,
            row_id: row_id::<T>,
            #[cfg(feature = "postgres")]
            postgres: Box::new(Erased::<T> {
                hooks: hooks.clone(),
            }),
            #[cfg(feature = "sqlite")]
            sqlite: Box::new(Erased::<T> {
                hooks: hooks.clone(),
            }),
        });
        self
    }

    /// The model with wire name `name`.
    pub fn get(&self, name: &str) -> Option<&RegisteredModel> {
        self.models.iter().find(|m| m.meta.name == name)
    }

    /// Every model, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &RegisteredModel> {
        self.models.iter()
    }

    /// The TypeScript client's schema of these models.
    pub fn client_schema(&self) -> ClientSchema {
        ClientSchema::new(self.models.iter().map(|m| &m.meta))
    }

    /// The client schema as a TypeScript module: the `schema` object,
    /// a row interface per model and `SCHEMA_HASH` (see
    /// [`codegen`](crate::codegen) for writing and checking the file).
    pub fn typescript(&self) -> String {
        stratasync_core::typescript(&self.client_schema())
    }

    /// The `schemaHash` a client whose schema was generated from these
    /// models sends (`computeSchemaHash` of `@stratasync/core`).
    pub fn schema_hash(&self) -> String {
        self.client_schema().hash()
    }
}
