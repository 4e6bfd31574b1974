//! The database backends and their connection types.

/// A PostgreSQL connection (diesel-async over tokio-postgres).
#[cfg(feature = "postgres")]
pub type PgConn = diesel_async::AsyncPgConnection;

/// A SQLite connection (diesel's, run on a blocking thread by diesel-async).
#[cfg(feature = "sqlite")]
pub type SqliteConn =
    diesel_async::sync_connection_wrapper::SyncConnectionWrapper<diesel::SqliteConnection>;

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
