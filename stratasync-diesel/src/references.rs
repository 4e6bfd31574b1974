//! Same-group references: fields that hold ids of rows of other models,
//! which must be rows of the referencing row's own group.
//!
//! A model declares `#[sync(references(task_id = Task, label_id = Label))]`.
//! On an insert, and on an update that changes one of those fields (or the
//! group), the write path runs one query in the mutation's transaction that
//! finds every referenced row in the row's group:
//!
//! ```sql
//! SELECT 1 FROM tasks, labels
//! WHERE tasks.id IN ($1) AND tasks.workspace_id = $3
//!   AND labels.id IN ($2) AND labels.workspace_id = $3
//! FOR SHARE -- PostgreSQL
//! ```
//!
//! It returns the product of the distinct keys per model when every row is
//! found, fewer rows otherwise. A missing row and a row of another group
//! are the same rejection, [`REFERENCE_NOT_FOUND`]. On PostgreSQL the found
//! rows are locked until the transaction ends, so a concurrent move of a
//! referenced row to another group waits for it, or (when the move came
//! first) makes the check see the row in its new group; SQLite runs one
//! writing transaction at a time.

use diesel::QueryResult;
use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::Integer;
use stratasync_core::SyncModel;

pub use crate::model::ReferenceTarget;
use crate::{DieselModel, MutationError};

/// The rejection of a mutation whose referenced row is missing or in
/// another group (the two cannot be told apart).
pub const REFERENCE_NOT_FOUND: &str = "Invalid mutation: referenced record not found";

/// A model whose rows belong to groups: one that other models may
/// reference. Implemented by `#[derive(SyncModel)]` for models with
/// `group = "..."` or `group = self`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no sync group, so a reference to it cannot be checked against the row's group",
    label = "`references(...)` names models whose rows belong to groups",
    note = "help: reference a model declared with `#[sync(group = \"workspace_id\")]` or `#[sync(group = self)]`"
)]
pub trait Grouped: SyncModel {}

/// Asserts at compile time that `M` is [`Grouped`] (generated code).
#[doc(hidden)]
pub fn assert_grouped<M: Grouped>() {}

/// A field type that can hold an id of type `K` (the id itself, or an
/// optional one: `None` references nothing).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot hold an id of the referenced model, which is `{K}`",
    label = "this field's type does not match the referenced model's id",
    note = "help: give the field the referenced model's id type, or `Option` of it"
)]
pub trait ReferenceValue<K> {
    /// The id this value references, if any.
    fn referenced(&self) -> Option<&K>;
}

macro_rules! reference_values {
    ($($ty:ty),*) => {$(
        impl ReferenceValue<$ty> for $ty {
            fn referenced(&self) -> Option<&$ty> {
                Some(self)
            }
        }
        impl ReferenceValue<$ty> for Option<$ty> {
            fn referenced(&self) -> Option<&$ty> {
                self.as_ref()
            }
        }
    )*};
}

reference_values!(String, uuid::Uuid, i32, i64);

/// A reference check being built: the targets of the referenced models.
pub struct ReferenceCheck<DB: Backend> {
    targets: Vec<ReferenceTarget<DB>>,
    /// Set when a target could not be built: the check fails.
    unmatched: bool,
}

impl<DB: Backend> Default for ReferenceCheck<DB> {
    fn default() -> Self {
        ReferenceCheck {
            targets: Vec::new(),
            unmatched: false,
        }
    }
}

impl<DB: Backend> ReferenceCheck<DB> {
    /// Adds the rows of model `M` with `keys` (duplicates counted once),
    /// which must be in `group`.
    pub fn add<M, C>(&mut self, keys: Vec<M::Key>, group: &str)
    where
        M: DieselModel<C>,
        C: diesel_async::AsyncConnectionCore<Backend = DB>,
    {
        let mut seen = std::collections::HashSet::new();
        let keys: Vec<M::Key> = keys
            .into_iter()
            .filter(|key| seen.insert(M::model_id(key)))
            .collect();
        if keys.is_empty() {
            return;
        }
        match M::reference_target(keys, group) {
            Some(target) => self.targets.push(target),
            None => self.unmatched = true,
        }
    }

    /// The query to run and how many rows it returns when every referenced
    /// row is found; `Err(())` when some key or the group cannot name a row
    /// of its model; `Ok(None)` when nothing is referenced.
    #[allow(clippy::result_unit_err)]
    pub fn finish(self) -> Result<Option<(ReferenceQuery<DB>, usize)>, ()> {
        if self.unmatched {
            return Err(());
        }
        if self.targets.is_empty() {
            return Ok(None);
        }
        let rows = self.targets.iter().fold(1usize, |product, target| {
            product.saturating_mul(target.rows)
        });
        Ok(Some((
            ReferenceQuery {
                targets: self.targets,
            },
            rows,
        )))
    }
}

/// `SELECT 1 FROM <tables> WHERE <conditions>`, locking the rows found on
/// PostgreSQL.
pub struct ReferenceQuery<DB: Backend> {
    targets: Vec<ReferenceTarget<DB>>,
}

impl<DB: Backend> ReferenceQuery<DB> {
    fn walk<'b>(&'b self, mut out: AstPass<'_, 'b, DB>, lock: &str) -> QueryResult<()> {
        out.unsafe_to_cache_prepared();
        out.push_sql("SELECT 1 FROM ");
        for (i, target) in self.targets.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            target.table.walk_ast(out.reborrow())?;
        }
        out.push_sql(" WHERE ");
        for (i, target) in self.targets.iter().enumerate() {
            if i > 0 {
                out.push_sql(" AND ");
            }
            out.push_sql("(");
            target.condition.walk_ast(out.reborrow())?;
            out.push_sql(")");
        }
        out.push_sql(lock);
        Ok(())
    }
}

#[cfg(feature = "postgres")]
impl QueryFragment<diesel::pg::Pg> for ReferenceQuery<diesel::pg::Pg> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, diesel::pg::Pg>) -> QueryResult<()> {
        self.walk(out, " FOR SHARE")
    }
}

#[cfg(feature = "sqlite")]
impl QueryFragment<diesel::sqlite::Sqlite> for ReferenceQuery<diesel::sqlite::Sqlite> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, diesel::sqlite::Sqlite>) -> QueryResult<()> {
        // One writing transaction at a time: nothing moves under the check.
        self.walk(out, "")
    }
}

impl<DB: Backend> QueryId for ReferenceQuery<DB> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB: Backend> Query for ReferenceQuery<DB> {
    type SqlType = Integer;
}

/// Refuses `row` unless every row it references is in its group.
pub(crate) async fn check_row<T, C>(conn: &mut C, row: &T) -> Result<(), MutationError>
where
    T: DieselModel<C>,
{
    if T::references_in_group(conn, row).await? {
        Ok(())
    } else {
        Err(MutationError::rejected(REFERENCE_NOT_FOUND))
    }
}
