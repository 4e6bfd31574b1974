//! Storage for stratasync on diesel.
mod backend;
mod bind;
mod model;
pub mod sql_types;

#[cfg(feature = "postgres")]
pub use backend::PgConn;
#[cfg(feature = "sqlite")]
pub use backend::SqliteConn;
pub use bind::Bind;
pub use model::{DieselModel, RowScope};

#[doc(hidden)]
pub use diesel as __diesel;
