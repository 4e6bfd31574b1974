//! Read scopes: the rows of a model a user may read, beyond its group.
//!
//! A model declares `#[sync(group = "workspace_id", scope = visible_todos)]`
//! and the application writes the function, in Rust, over the model's
//! diesel table:
//!
//! ```ignore
//! use diesel::prelude::*;
//! use stratasync::{FilterContext, ReadScope};
//!
//! /// Private todos load only for their owner.
//! fn visible_todos(ctx: &FilterContext) -> ReadScope<todos::table> {
//!     ReadScope::new(todos::private.eq(false).or(todos::owner.eq(ctx.user_id.clone())))
//! }
//! ```
//!
//! The expression is ANDed with the group filter, so a scope narrows what a
//! user reads and never widens it. It applies to bootstraps (full and
//! partial), batch loads and the row lookups of update, delete, archive and
//! unarchive: a row out of scope is answered like a missing row. Inserts are
//! not scoped, and deltas stay routed by group (see
//! `docs/live-scope-changes.md`).

use diesel::backend::Backend;
use diesel::expression::BoxableExpression;
use diesel::sql_types::Bool;
use stratasync_core::FilterContext;

/// A boolean SQL expression over table `T`, built once for every database
/// backend the store is built with: what a model's scope function returns.
///
/// Build it with [`ReadScope::new`] from any diesel boolean expression over
/// the table's columns (`todos::private.eq(false)`), combined with `and`,
/// `or` and `not` as usual. A nullable comparison (`Nullable<Bool>`) must be
/// made non-null first (`.assume_not_null()`, `.is_not_distinct_from(..)`).
pub struct ReadScope<T> {
    #[cfg(feature = "postgres")]
    postgres: Box<dyn BoxableExpression<T, diesel::pg::Pg, SqlType = Bool>>,
    #[cfg(feature = "sqlite")]
    sqlite: Box<dyn BoxableExpression<T, diesel::sqlite::Sqlite, SqlType = Bool>>,
}

impl<T> ReadScope<T> {
    /// The scope of the rows for which `expression` holds.
    pub fn new<E: ScopeExpression<T>>(expression: E) -> Self {
        #[cfg(all(feature = "postgres", feature = "sqlite"))]
        let (postgres, sqlite) = (expression.clone(), expression);
        #[cfg(all(feature = "postgres", not(feature = "sqlite")))]
        let postgres = expression;
        #[cfg(all(feature = "sqlite", not(feature = "postgres")))]
        let sqlite = expression;
        ReadScope {
            #[cfg(feature = "postgres")]
            postgres: Box::new(postgres),
            #[cfg(feature = "sqlite")]
            sqlite: Box::new(sqlite),
        }
    }
}

impl<T> std::fmt::Debug for ReadScope<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadScope").finish_non_exhaustive()
    }
}

/// A diesel expression a [`ReadScope`] over table `T` can hold: boolean,
/// over `T`'s columns, renderable on every backend the store is built with.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the read scope of table `{T}`",
    label = "a read scope is a boolean expression over the model's own table",
    note = "build it from the table's columns, e.g. `ReadScope::new(todos::private.eq(false).or(todos::owner.eq(ctx.user_id.clone())))`"
)]
pub trait ScopeExpression<T>:
    Clone + Send + 'static + backends::Postgres<T> + backends::Sqlite<T>
{
}

impl<T, E> ScopeExpression<T> for E where
    E: Clone + Send + 'static + backends::Postgres<T> + backends::Sqlite<T>
{
}

/// Per-backend requirements of [`ScopeExpression`], empty for backends left
/// out of the build.
pub mod backends {
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    use diesel::{expression::BoxableExpression, sql_types::Bool};

    /// The expression renders on PostgreSQL (when built with `postgres`).
    #[cfg(feature = "postgres")]
    pub trait Postgres<T>: BoxableExpression<T, diesel::pg::Pg, SqlType = Bool> {}
    #[cfg(feature = "postgres")]
    impl<T, E: BoxableExpression<T, diesel::pg::Pg, SqlType = Bool>> Postgres<T> for E {}
    /// The expression renders on PostgreSQL (when built with `postgres`).
    #[cfg(not(feature = "postgres"))]
    pub trait Postgres<T> {}
    #[cfg(not(feature = "postgres"))]
    impl<T, E> Postgres<T> for E {}

    /// The expression renders on SQLite (when built with `sqlite`).
    #[cfg(feature = "sqlite")]
    pub trait Sqlite<T>: BoxableExpression<T, diesel::sqlite::Sqlite, SqlType = Bool> {}
    #[cfg(feature = "sqlite")]
    impl<T, E: BoxableExpression<T, diesel::sqlite::Sqlite, SqlType = Bool>> Sqlite<T> for E {}
    /// The expression renders on SQLite (when built with `sqlite`).
    #[cfg(not(feature = "sqlite"))]
    pub trait Sqlite<T> {}
    #[cfg(not(feature = "sqlite"))]
    impl<T, E> Sqlite<T> for E {}
}

/// A model's scope function: `fn(&FilterContext) -> ReadScope<table>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a scope function of table `{T}`",
    label = "`scope = ...` names a function `fn(&FilterContext) -> ReadScope<{T}>`",
    note = "help: the correct form is `fn visible_todos(ctx: &stratasync::FilterContext) -> stratasync::ReadScope<todos::table>`"
)]
pub trait ScopeFn<T> {
    /// The scope for the request described by `ctx`.
    fn scope(&self, ctx: &FilterContext) -> ReadScope<T>;
}

impl<T, F: Fn(&FilterContext) -> ReadScope<T>> ScopeFn<T> for F {
    fn scope(&self, ctx: &FilterContext) -> ReadScope<T> {
        self(ctx)
    }
}

/// The expression of a [`ReadScope`] on backend `DB`.
#[doc(hidden)]
pub trait ScopeOn<T, DB: Backend> {
    /// The boxed expression.
    fn on_backend(self) -> Box<dyn BoxableExpression<T, DB, SqlType = Bool>>;
}

#[cfg(feature = "postgres")]
impl<T> ScopeOn<T, diesel::pg::Pg> for ReadScope<T> {
    fn on_backend(self) -> Box<dyn BoxableExpression<T, diesel::pg::Pg, SqlType = Bool>> {
        self.postgres
    }
}

#[cfg(feature = "sqlite")]
impl<T> ScopeOn<T, diesel::sqlite::Sqlite> for ReadScope<T> {
    fn on_backend(self) -> Box<dyn BoxableExpression<T, diesel::sqlite::Sqlite, SqlType = Bool>> {
        self.sqlite
    }
}

/// The filter of scope function `scope` for `ctx` on backend `DB`: what
/// generated code adds to a model's scoped queries.
#[doc(hidden)]
pub fn scope_filter<T, DB, F>(
    scope: F,
    ctx: &FilterContext,
) -> Box<dyn BoxableExpression<T, DB, SqlType = Bool>>
where
    DB: Backend,
    F: ScopeFn<T>,
    ReadScope<T>: ScopeOn<T, DB>,
{
    scope.scope(ctx).on_backend()
}
