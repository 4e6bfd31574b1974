//! The queries a synced model answers, per database backend.

use chrono::{DateTime, Utc};
use diesel::QueryResult;
use diesel::backend::Backend;
use diesel::query_builder::QueryFragment;
use futures::future::BoxFuture;
use stratasync_core::{FilterContext, SyncModel};

/// Which rows of a model a read may return.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowScope {
    /// The groups whose rows are visible (ignored by global models).
    pub groups: Vec<String>,
    /// The reading user: with `groups`, the [`FilterContext`] a model's
    /// scope function receives (see [`RowScope::context`]).
    pub user_id: String,
    /// An indexed-key restriction: rows whose wire field `.0` equals `.1`.
    pub index: Option<(String, String)>,
}

impl RowScope {
    /// What a model's scope function receives for this read: the user and
    /// the groups read.
    pub fn context(&self) -> FilterContext {
        FilterContext::new(self.user_id.clone(), self.groups.clone())
    }
}

/// The typed diesel queries of a [`SyncModel`] on the connection type `C`.
///
/// `#[derive(SyncModel)]` implements this for every backend the `stratasync`
/// crate is built with; the store drives it. Every method runs on the
/// connection it is given, inside whatever transaction is open there.
pub trait DieselModel<C>: SyncModel {
    /// Up to `limit` rows in scope after `after`, in cursor order.
    fn load_page<'a>(
        conn: &'a mut C,
        scope: &'a RowScope,
        after: Option<&'a Self::Cursor>,
        limit: i64,
    ) -> BoxFuture<'a, QueryResult<Vec<Self>>>;

    /// How many rows are in scope.
    fn count<'a>(conn: &'a mut C, scope: &'a RowScope) -> BoxFuture<'a, QueryResult<i64>>;

    /// The group of the row with `key`: `None` when there is no such row,
    /// `Some(None)` for a row of a global model.
    fn find_group<'a>(
        conn: &'a mut C,
        key: &'a Self::Key,
    ) -> BoxFuture<'a, QueryResult<Option<Option<String>>>>;

    /// For a model whose rows belong to groups, with an own id: the part of
    /// a reference check that finds its rows with `keys` in `group` (see
    /// [`references`](crate::references)). `None` when `group` cannot be a
    /// group of this model, and for other models.
    fn reference_target(
        _keys: Vec<Self::Key>,
        _group: &str,
    ) -> Option<ReferenceTarget<<C as diesel_async::AsyncConnectionCore>::Backend>>
    where
        C: diesel_async::AsyncConnectionCore,
    {
        None
    }

    /// Whether every row `row` references (`#[sync(references(...))]`) is
    /// in `row`'s group, checked with one query that, on PostgreSQL, locks
    /// the rows found until the transaction ends. Models without references
    /// answer `true` without a query.
    fn references_in_group<'a>(
        _conn: &'a mut C,
        _row: &'a Self,
    ) -> BoxFuture<'a, QueryResult<bool>> {
        Box::pin(async { Ok(true) })
    }

    /// The row with `key`, if there is one.
    fn find<'a>(conn: &'a mut C, key: &'a Self::Key) -> BoxFuture<'a, QueryResult<Option<Self>>>;

    /// Inserts `row`; returns the number of rows written.
    fn insert<'a>(conn: &'a mut C, row: &'a Self) -> BoxFuture<'a, QueryResult<usize>>;

    /// Applies `changes` to the row with `key`; returns the rows touched.
    fn update<'a>(
        conn: &'a mut C,
        key: &'a Self::Key,
        changes: Self::Changes,
    ) -> BoxFuture<'a, QueryResult<usize>>;

    /// Deletes the row with `key`; returns the rows touched.
    fn delete<'a>(conn: &'a mut C, key: &'a Self::Key) -> BoxFuture<'a, QueryResult<usize>>;

    /// Sets (`Some`) or clears (`None`) the row's `archived_at`; returns the
    /// rows touched. Models without archive actions answer `Ok(0)`.
    fn set_archived<'a>(
        conn: &'a mut C,
        key: &'a Self::Key,
        at: Option<DateTime<Utc>>,
    ) -> BoxFuture<'a, QueryResult<usize>>;

    /// The group of the row with `key` (`Some(None)` for a global model)
    /// when the caller of `ctx` may write it: its group is one `ctx` holds
    /// (any row of a global model) and it is in the caller's read scope
    /// (`#[sync(scope = ...)]`). `None` for any other row, and when there is
    /// no such row.
    fn find_visible_group<'a>(
        conn: &'a mut C,
        key: &'a Self::Key,
        ctx: &'a FilterContext,
    ) -> BoxFuture<'a, QueryResult<Option<Option<String>>>>;

    /// [`update`](Self::update) in one statement that also checks the row
    /// is the caller's to write: its group is one `ctx` holds (any row of a
    /// global model) and it is in the caller's read scope. The updated row's
    /// group (`Some(None)` for a global model); `None` when no row matched.
    fn update_visible<'a>(
        conn: &'a mut C,
        key: &'a Self::Key,
        changes: Self::Changes,
        ctx: &'a FilterContext,
    ) -> BoxFuture<'a, QueryResult<Option<Option<String>>>>;

    /// [`delete`](Self::delete) of a row the caller may write, like
    /// [`update_visible`](Self::update_visible).
    fn delete_visible<'a>(
        conn: &'a mut C,
        key: &'a Self::Key,
        ctx: &'a FilterContext,
    ) -> BoxFuture<'a, QueryResult<Option<Option<String>>>>;

    /// [`set_archived`](Self::set_archived) on a row the caller may write,
    /// like [`update_visible`](Self::update_visible). Models without archive
    /// actions answer `Ok(None)`.
    fn set_archived_visible<'a>(
        conn: &'a mut C,
        key: &'a Self::Key,
        at: Option<DateTime<Utc>>,
        ctx: &'a FilterContext,
    ) -> BoxFuture<'a, QueryResult<Option<Option<String>>>>;
}

/// The part of a reference check for one referenced model: its table and
/// the condition `key IN (...) AND group = ...`.
pub struct ReferenceTarget<DB: Backend> {
    pub(crate) table: Box<dyn QueryFragment<DB> + Send>,
    pub(crate) condition: Box<dyn QueryFragment<DB> + Send>,
    pub(crate) rows: usize,
}

impl<DB: Backend> ReferenceTarget<DB> {
    /// `table` (as a `FROM` item) and `condition`, which matches `rows`
    /// distinct rows when every referenced row is in the group.
    pub fn new(
        table: impl QueryFragment<DB> + Send + 'static,
        condition: impl QueryFragment<DB> + Send + 'static,
        rows: usize,
    ) -> Self {
        ReferenceTarget {
            table: Box::new(table),
            condition: Box::new(condition),
            rows,
        }
    }
}
