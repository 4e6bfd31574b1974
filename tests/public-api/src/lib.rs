//! The public API of stratasync as an application uses it: the suites in
//! `tests/` implement every user trait with `async fn` and extract `Caller`
//! in an application route, in a crate whose dependencies are only what an
//! application needs (no `futures`).

use stratasync::SyncModel;

/// The table of [`Note`].
pub mod schema {
    diesel::table! {
        use diesel::sql_types::*;
        use stratasync::sql_types::*;

        /// Notes of a workspace.
        notes (id) {
            /// The note's id.
            id -> PortableUuid,
            /// Its text.
            body -> Text,
            /// Its sync group.
            workspace_id -> Text,
        }
    }
}

/// A note of a workspace.
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable, SyncModel)]
#[diesel(table_name = schema::notes, check_for_backend(diesel::sqlite::Sqlite))]
#[sync(
    group = "workspace_id",
    actions(insert, update, delete),
    insert(body, workspace_id),
    update(body)
)]
pub struct Note {
    /// The note's id.
    pub id: uuid::Uuid,
    /// Its text.
    pub body: String,
    /// Its sync group.
    pub workspace_id: String,
}

/// A fresh SQLite file holding the `notes` table, in the system's temporary
/// directory; removed (with its journal files) when dropped.
#[derive(Debug)]
pub struct SqliteFile {
    /// The file's path, to give to `SyncServerBuilder::database_url`.
    pub path: String,
}

impl SqliteFile {
    /// Creates the file and its `notes` table.
    pub fn create() -> Self {
        use diesel::Connection as _;
        use diesel::connection::SimpleConnection as _;

        let path = std::env::temp_dir().join(format!(
            "stratasync-public-api-{}.sqlite3",
            uuid::Uuid::new_v4().simple()
        ));
        let path = path.to_string_lossy().into_owned();
        let mut conn = diesel::SqliteConnection::establish(&path).expect("create the SQLite file");
        conn.batch_execute(
            "CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT NOT NULL, workspace_id TEXT NOT NULL)",
        )
        .expect("create the notes table");
        SqliteFile { path }
    }
}

impl Drop for SqliteFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path));
        }
    }
}
