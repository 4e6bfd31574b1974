//! The reference models of the suites: a standard model (`Task`), a
//! composite join table (`TaskLabel`) and a model whose rows may move between
//! groups (`Note`), declared with `#[derive(SyncModel)]`;
//! `tests/tests/derive_expansion.rs` pins the behaviour the derive generates
//! for them.
#![allow(missing_docs)]

use chrono::{DateTime, NaiveDate, Utc};
use stratasync::SyncModel;
use uuid::Uuid;

pub mod schema {
    diesel::table! {
        use diesel::sql_types::*;
        use stratasync::sql_types::*;

        tasks (id) {
            id -> PortableUuid,
            title -> Text,
            completed_at -> Nullable<Instant>,
            due_on -> Nullable<Date>,
            priority -> Integer,
            workspace_id -> Text,
            created_at -> Instant,
            archived_at -> Nullable<Instant>,
        }
    }

    diesel::table! {
        use diesel::sql_types::*;
        use stratasync::sql_types::*;

        task_labels (task_id, label_id) {
            task_id -> PortableUuid,
            label_id -> PortableUuid,
            workspace_id -> Text,
            created_at -> Instant,
        }
    }

    diesel::table! {
        use diesel::sql_types::*;
        use stratasync::sql_types::*;

        notes (id) {
            id -> PortableUuid,
            title -> Text,
            workspace_id -> Text,
        }
    }
}

use schema::{notes, task_labels, tasks};

/// A task of a workspace: every action, a group column, an indexed key.
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable, SyncModel)]
#[diesel(table_name = tasks)]
#[sync(
    group = "workspace_id",
    cursor = "id",
    actions(insert, update, delete, archive, unarchive),
    insert(title, completed_at, due_on, priority, workspace_id, created_at = now),
    update(title, completed_at, due_on, priority),
    indexed(workspace_id)
)]
pub struct Task {
    pub id: Uuid,
    pub title: String,
    pub completed_at: Option<DateTime<Utc>>,
    pub due_on: Option<NaiveDate>,
    pub priority: i32,
    pub workspace_id: String,
    pub created_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
}

/// A label on a task: a join table identified by `(task_id, label_id)`.
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable, SyncModel)]
#[diesel(table_name = task_labels)]
#[sync(
    composite(task_id, label_id),
    group = "workspace_id",
    actions(insert, delete),
    insert(task_id, label_id, workspace_id, created_at = now)
)]
pub struct TaskLabel {
    pub task_id: Uuid,
    pub label_id: Uuid,
    pub workspace_id: String,
    pub created_at: DateTime<Utc>,
}

/// A note whose updates may move it to another workspace
/// (`move_between_groups`): the caller must hold both workspaces.
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable, SyncModel)]
#[diesel(table_name = notes)]
#[sync(
    group = "workspace_id",
    move_between_groups,
    actions(insert, update, delete),
    insert(title, workspace_id),
    update(title, workspace_id)
)]
pub struct Note {
    pub id: Uuid,
    pub title: String,
    pub workspace_id: String,
}
