//! Binding any Rust value to a column of any SQL type it can serialize to.

use std::marker::PhantomData;

use diesel::QueryResult;
use diesel::backend::Backend;
use diesel::expression::{
    AppearsOnTable, AsExpression, Expression, SelectableExpression, TypedExpressionType,
    ValidGrouping,
};
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, SqlType};

/// A value to bind as a query parameter of whatever SQL type the column
/// compared with has, as long as the value serializes to it.
///
/// Diesel's own binding needs an `AsExpression` impl per (Rust type, SQL
/// type) pair, which only diesel can write for foreign pairs such as
/// `Uuid` and [`PortableUuid`](crate::sql_types::PortableUuid). `Bind` needs
/// only `ToSql`, so `tasks::id.eq(Bind(uuid))` works on both backends.
#[derive(Debug, Clone, Copy)]
pub struct Bind<T>(pub T);

/// The expression a [`Bind`] becomes.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct BoundValue<ST, T> {
    value: T,
    sql_type: PhantomData<ST>,
}

impl<T, ST> AsExpression<ST> for Bind<T>
where
    ST: SqlType + TypedExpressionType,
{
    type Expression = BoundValue<ST, T>;

    fn as_expression(self) -> Self::Expression {
        BoundValue {
            value: self.0,
            sql_type: PhantomData,
        }
    }
}

impl<ST: SqlType + TypedExpressionType, T> Expression for BoundValue<ST, T> {
    type SqlType = ST;
}

impl<ST, T, DB> QueryFragment<DB> for BoundValue<ST, T>
where
    DB: Backend + HasSqlType<ST>,
    T: ToSql<ST, DB>,
{
    fn walk_ast<'b>(&'b self, mut pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        pass.push_bind_param(&self.value)
    }
}

impl<ST, T> QueryId for BoundValue<ST, T> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<ST, T, QS> SelectableExpression<QS> for BoundValue<ST, T> where Self: AppearsOnTable<QS> {}

impl<ST, T, QS> AppearsOnTable<QS> for BoundValue<ST, T> where Self: Expression {}

impl<ST, T, GB> ValidGrouping<GB> for BoundValue<ST, T> {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

impl<ST, T, DB> ToSql<ST, DB> for Bind<T>
where
    DB: Backend,
    T: ToSql<ST, DB>,
{
    fn to_sql<'b>(
        &'b self,
        out: &mut diesel::serialize::Output<'b, '_, DB>,
    ) -> diesel::serialize::Result {
        self.0.to_sql(out)
    }
}
