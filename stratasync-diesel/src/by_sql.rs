//! Statements prepared once per connection that diesel would prepare on
//! every execution.
//!
//! diesel-async keeps a cache of prepared statements per connection, keyed
//! by a query's type or, for a query without a static id, by its SQL text
//! and bind types. It caches only what diesel calls safe to cache, and
//! diesel calls no `UPDATE` safe: one changeset type of optional
//! assignments renders several SQL texts, which a cache keyed by type would
//! confuse. Keyed by its SQL text, such a statement is as safe to cache as
//! any other; [`BySql`] hands it to the cache that way, so an `UPDATE` costs
//! one round trip instead of two (its preparation and its execution). The
//! cache then holds one statement per SQL text: for a model's update, one
//! per set of fields a mutation changes.
//!
//! diesel declares `QueryFragment::is_safe_to_cache_prepared` hidden from
//! its docs (public only for third-party backends); overriding it is what
//! its statement cache reads.

use diesel::QueryResult;
use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};

/// The statement `Q`, cached by its SQL text (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct BySql<Q>(pub Q);

impl<Q> QueryId for BySql<Q> {
    type QueryId = ();
    // No static id: the cache keys the statement by its SQL.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for BySql<Q> {
    type SqlType = Q::SqlType;
}

impl<Q: QueryFragment<DB>, DB: Backend> QueryFragment<DB> for BySql<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}
