//! The example's tables, in portable SQL types so one schema serves
//! PostgreSQL and SQLite.

diesel::table! {
    use diesel::sql_types::*;
    use stratasync::sql_types::*;

    todos (id) {
        id -> PortableUuid,
        title -> Text,
        notes -> Nullable<Text>,
        priority -> Integer,
        estimate -> Nullable<Double>,
        completed_at -> Nullable<Instant>,
        due_on -> Nullable<Date>,
        private -> Bool,
        owner -> Text,
        workspace_id -> Text,
        created_at -> Instant,
        archived_at -> Nullable<Instant>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use stratasync::sql_types::*;

    labels (id) {
        id -> PortableUuid,
        name -> Text,
        color -> Text,
        workspace_id -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use stratasync::sql_types::*;

    todo_labels (todo_id, label_id) {
        todo_id -> PortableUuid,
        label_id -> PortableUuid,
        workspace_id -> Text,
        created_at -> Instant,
    }
}

/// Creates the tables on PostgreSQL when they are missing.
pub const POSTGRES_TABLES: &str = "
CREATE TABLE IF NOT EXISTS todos (
    id UUID PRIMARY KEY,
    title TEXT NOT NULL,
    notes TEXT,
    priority INTEGER NOT NULL,
    estimate DOUBLE PRECISION,
    completed_at TIMESTAMPTZ,
    due_on DATE,
    private BOOLEAN NOT NULL DEFAULT FALSE,
    owner TEXT NOT NULL DEFAULT '',
    workspace_id TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    archived_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS todos_workspace_id_idx ON todos (workspace_id, id);
CREATE TABLE IF NOT EXISTS labels (
    id UUID PRIMARY KEY,
    name TEXT NOT NULL,
    color TEXT NOT NULL,
    workspace_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS todo_labels (
    todo_id UUID NOT NULL,
    label_id UUID NOT NULL,
    workspace_id TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (todo_id, label_id)
);";

/// Migration 2 on PostgreSQL: private todos and their owners, for tables
/// created before them (existing todos are public, of no one).
pub const POSTGRES_PRIVATE_TODOS: &str = "
ALTER TABLE todos ADD COLUMN IF NOT EXISTS private BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE todos ADD COLUMN IF NOT EXISTS owner TEXT NOT NULL DEFAULT '';";

/// Migration 2 on SQLite (run when `todos` has no `private` column).
pub const SQLITE_PRIVATE_TODOS: &str = "
ALTER TABLE todos ADD COLUMN private INTEGER NOT NULL DEFAULT 0;
ALTER TABLE todos ADD COLUMN owner TEXT NOT NULL DEFAULT '';";

/// Creates the tables on SQLite when they are missing.
pub const SQLITE_TABLES: &str = "
CREATE TABLE IF NOT EXISTS todos (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    notes TEXT,
    priority INTEGER NOT NULL,
    estimate REAL,
    completed_at TEXT,
    due_on TEXT,
    private INTEGER NOT NULL DEFAULT 0,
    owner TEXT NOT NULL DEFAULT '',
    workspace_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX IF NOT EXISTS todos_workspace_id_idx ON todos (workspace_id, id);
CREATE TABLE IF NOT EXISTS labels (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    color TEXT NOT NULL,
    workspace_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS todo_labels (
    todo_id TEXT NOT NULL,
    label_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (todo_id, label_id)
);";
