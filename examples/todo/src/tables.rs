//! Creating the example's own tables (an application would use its migrations).

use diesel_async::{AsyncConnection, SimpleAsyncConnection};

use stratasync::Redacted;

use crate::schema::{POSTGRES_TABLES, SQLITE_TABLES};

type SqliteConn =
    diesel_async::sync_connection_wrapper::SyncConnectionWrapper<diesel::SqliteConnection>;

/// Creates the tables in the database at `url` when they are missing.
pub async fn create(url: &str) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| {
        format!(
            "cannot prepare the database at {}: {e} (check DATABASE_URL)",
            Redacted(url)
        )
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut conn = stratasync::connect_postgres(url)
            .await
            .map_err(|e| fail(&e))?;
        conn.batch_execute(POSTGRES_TABLES)
            .await
            .map_err(|e| fail(&e))
    } else if let Some(path) = url
        .strip_prefix("sqlite://")
        .or((!url.contains("://")).then_some(url))
    {
        let mut conn = SqliteConn::establish(path).await.map_err(|e| fail(&e))?;
        conn.batch_execute(SQLITE_TABLES)
            .await
            .map_err(|e| fail(&e))
    } else {
        Err(format!(
            "unsupported DATABASE_URL {}: use postgres://... or sqlite://<file>",
            Redacted(url)
        ))
    }
}
