//! The queries a synced model answers, per database backend.

use chrono::{DateTime, Utc};
use diesel::QueryResult;
use futures::future::BoxFuture;
use stratasync_core::SyncModel;

/// Which rows of a model a read may return.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowScope {
    /// The groups whose rows are visible (ignored by global models).
    pub groups: Vec<String>,
    /// An indexed-key restriction: rows whose wire field `.0` equals `.1`.
    pub index: Option<(String, String)>,
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
}
