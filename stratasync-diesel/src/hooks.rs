//! Per-model hooks run inside a mutation's database transaction.

use futures::future::BoxFuture;
use stratasync_core::{FilterContext, JsonMap, SyncModel};

/// The open transaction of a mutation, on whichever backend the store uses.
///
/// Queries a hook runs here commit or roll back with the mutation.
pub enum Tx<'a> {
    /// A PostgreSQL connection inside the transaction.
    #[cfg(feature = "postgres")]
    Postgres(&'a mut crate::PgConn),
    /// A SQLite connection inside the transaction.
    #[cfg(feature = "sqlite")]
    Sqlite(&'a mut crate::SqliteConn),
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            #[cfg(feature = "postgres")]
            Tx::Postgres(_) => f.write_str("Tx::Postgres"),
            #[cfg(feature = "sqlite")]
            Tx::Sqlite(_) => f.write_str("Tx::Sqlite"),
        }
    }
}

/// A connection that can hand its open transaction to a hook.
pub(crate) trait HookConn {
    /// The connection as a hook sees it.
    fn tx(&mut self) -> Tx<'_>;
}

/// What a hook answers: `Err(message)` rejects the mutation with `message`
/// and rolls back everything it did.
pub type HookResult = Result<(), String>;

/// Hooks of model `T`, run inside the mutation's transaction before the
/// change is written. Each method defaults to doing nothing; implement the
/// ones you need with `async fn`s (their futures must be `Send`).
///
/// ```
/// use stratasync_core::{FilterContext, JsonMap, SyncModel};
/// use stratasync_diesel::{HookResult, ModelHooks, Tx};
///
/// /// Refuses titles that are only white space.
/// struct NoBlankTitles;
///
/// impl<T: SyncModel> ModelHooks<T> for NoBlankTitles {
///     async fn before_update(
///         &self,
///         _tx: Tx<'_>,
///         _ctx: &FilterContext,
///         _key: &T::Key,
///         changes: &JsonMap,
///     ) -> HookResult {
///         match changes.get("title").and_then(|t| t.as_str()) {
///             Some(title) if title.trim().is_empty() => Err("title must not be blank".into()),
///             _ => Ok(()),
///         }
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not implement `ModelHooks<{T}>`",
    note = "add `impl ModelHooks<{T}> for {Self} {{}}` and override the hooks you need with `async fn`s"
)]
pub trait ModelHooks<T: SyncModel>: Send + Sync + 'static {
    /// Before a row is inserted; may change the row.
    fn before_insert(
        &self,
        tx: Tx<'_>,
        ctx: &FilterContext,
        row: &mut T,
    ) -> impl Future<Output = HookResult> + Send {
        let _ = (tx, ctx, row);
        async { Ok(()) }
    }

    /// Before a row is updated; `changes` are the decoded wire fields.
    fn before_update(
        &self,
        tx: Tx<'_>,
        ctx: &FilterContext,
        key: &T::Key,
        changes: &JsonMap,
    ) -> impl Future<Output = HookResult> + Send {
        let _ = (tx, ctx, key, changes);
        async { Ok(()) }
    }

    /// Before a row is deleted.
    fn before_delete(
        &self,
        tx: Tx<'_>,
        ctx: &FilterContext,
        key: &T::Key,
    ) -> impl Future<Output = HookResult> + Send {
        let _ = (tx, ctx, key);
        async { Ok(()) }
    }
}

/// [`ModelHooks`] in the object-safe form the registry stores.
pub(crate) trait DynModelHooks<T: SyncModel>: Send + Sync + 'static {
    /// [`ModelHooks::before_insert`], boxed.
    fn before_insert<'a>(
        &'a self,
        tx: Tx<'a>,
        ctx: &'a FilterContext,
        row: &'a mut T,
    ) -> BoxFuture<'a, HookResult>;

    /// [`ModelHooks::before_update`], boxed.
    fn before_update<'a>(
        &'a self,
        tx: Tx<'a>,
        ctx: &'a FilterContext,
        key: &'a T::Key,
        changes: &'a JsonMap,
    ) -> BoxFuture<'a, HookResult>;

    /// [`ModelHooks::before_delete`], boxed.
    fn before_delete<'a>(
        &'a self,
        tx: Tx<'a>,
        ctx: &'a FilterContext,
        key: &'a T::Key,
    ) -> BoxFuture<'a, HookResult>;
}

impl<T: SyncModel, H: ModelHooks<T>> DynModelHooks<T> for H {
    fn before_insert<'a>(
        &'a self,
        tx: Tx<'a>,
        ctx: &'a FilterContext,
        row: &'a mut T,
    ) -> BoxFuture<'a, HookResult> {
        Box::pin(ModelHooks::before_insert(self, tx, ctx, row))
    }

    fn before_update<'a>(
        &'a self,
        tx: Tx<'a>,
        ctx: &'a FilterContext,
        key: &'a T::Key,
        changes: &'a JsonMap,
    ) -> BoxFuture<'a, HookResult> {
        Box::pin(ModelHooks::before_update(self, tx, ctx, key, changes))
    }

    fn before_delete<'a>(
        &'a self,
        tx: Tx<'a>,
        ctx: &'a FilterContext,
        key: &'a T::Key,
    ) -> BoxFuture<'a, HookResult> {
        Box::pin(ModelHooks::before_delete(self, tx, ctx, key))
    }
}
