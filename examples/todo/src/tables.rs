//! Creating the example's own tables and bringing older ones up to date
//! (an application would use its migrations).

use diesel::QueryableByName;
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};

use stratasync::Redacted;

use crate::schema::{POSTGRES_PRIVATE_TODOS, POSTGRES_TABLES, SQLITE_PRIVATE_TODOS, SQLITE_TABLES};

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
            .map_err(|e| fail(&e))?;
        conn.batch_execute(POSTGRES_PRIVATE_TODOS)
            .await
            .map_err(|e| fail(&e))
    } else if let Some(path) = url
        .strip_prefix("sqlite://")
        .or((!url.contains("://")).then_some(url))
    {
        let mut conn = SqliteConn::establish(path).await.map_err(|e| fail(&e))?;
        conn.batch_execute(SQLITE_TABLES)
            .await
            .map_err(|e| fail(&e))?;
        if !sqlite_has_column(&mut conn, "todos", "private")
            .await
            .map_err(|e| fail(&e))?
        {
            conn.batch_execute(SQLITE_PRIVATE_TODOS)
                .await
                .map_err(|e| fail(&e))?;
        }
        Ok(())
    } else {
        Err(format!(
            "unsupported DATABASE_URL {}: use postgres://... or sqlite://<file>",
            Redacted(url)
        ))
    }
}

/// A count of rows.
#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Whether SQLite table `table` has a column `column` (SQLite has no
/// `ADD COLUMN IF NOT EXISTS`).
async fn sqlite_has_column(
    conn: &mut SqliteConn,
    table: &str,
    column: &str,
) -> diesel::QueryResult<bool> {
    let found = diesel::sql_query("SELECT COUNT(*) AS n FROM pragma_table_info(?) WHERE name = ?")
        .bind::<diesel::sql_types::Text, _>(table)
        .bind::<diesel::sql_types::Text, _>(column)
        .get_result::<Count>(conn)
        .await?;
    Ok(found.n > 0)
}
