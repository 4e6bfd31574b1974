//! What the store needs of a backend's connection, and the macros that
//! expand code once per backend.

use diesel_async::AsyncConnection;

use futures::future::BoxFuture;

use crate::StoreError;
use crate::log::LogConn;
use crate::registry::{ModelOps, RegisteredModel};

/// A backend connection the store can drive.
pub(crate) trait StoreConn:
    LogConn + AsyncConnection + diesel_async::SimpleAsyncConnection + Send + 'static
{
    /// Opens a read-only transaction whose reads all see one snapshot.
    const BEGIN_SNAPSHOT: &'static str;

    /// This backend's operations of a registered model.
    fn ops(model: &RegisteredModel) -> &dyn ModelOps<Self>;

    /// The pool this backend's connections come from.
    type Pool: Clone + Send + Sync + 'static;

    /// A connection lent by the pool (back to the pool when dropped).
    type Pooled: std::ops::DerefMut<Target = Self> + Send;

    /// A connection from `pool`.
    fn lease(pool: &Self::Pool) -> BoxFuture<'_, Result<Self::Pooled, StoreError>>;

    /// Closes `conn` instead of returning it to the pool.
    fn discard(conn: Self::Pooled);
}

/// Implements the pool half of [`StoreConn`] for a connection type.
macro_rules! impl_pooled {
    () => {
        type Pool = ::diesel_async::pooled_connection::deadpool::Pool<Self>;
        type Pooled = ::diesel_async::pooled_connection::deadpool::Object<Self>;

        fn lease(
            pool: &Self::Pool,
        ) -> ::futures::future::BoxFuture<'_, Result<Self::Pooled, $crate::StoreError>> {
            Box::pin(async move {
                pool.get()
                    .await
                    .map_err(|e| $crate::StoreError::Pool(e.to_string()))
            })
        }

        fn discard(conn: Self::Pooled) {
            drop(::diesel_async::pooled_connection::deadpool::Object::take(
                conn,
            ));
        }
    };
}
pub(crate) use impl_pooled;

/// Invokes `$m!(<connection type>, <diesel backend type>)` once for every
/// backend this crate is built with. Generated code uses it to implement
/// [`DieselModel`](crate::DieselModel) for each of them.
#[doc(hidden)]
#[macro_export]
macro_rules! for_each_backend {
    ($m:ident) => {
        $crate::__for_postgres!($m);
        $crate::__for_sqlite!($m);
    };
}

#[cfg(feature = "postgres")]
#[doc(hidden)]
#[macro_export]
macro_rules! __for_postgres {
    ($m:ident) => {
        $m!($crate::PgConn, $crate::__diesel::pg::Pg);
    };
}

#[cfg(not(feature = "postgres"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __for_postgres {
    ($m:ident) => {};
}

#[cfg(feature = "sqlite")]
#[doc(hidden)]
#[macro_export]
macro_rules! __for_sqlite {
    ($m:ident) => {
        $m!($crate::SqliteConn, $crate::__diesel::sqlite::Sqlite);
    };
}

#[cfg(not(feature = "sqlite"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __for_sqlite {
    ($m:ident) => {};
}
