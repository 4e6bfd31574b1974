//! A referenced model must have groups: the reference is checked against
//! the row's own group.
use diesel::{Queryable, Selectable};
use stratasync::SyncModel;
use uuid::Uuid;

diesel::table! {
    use diesel::sql_types::*;
    use stratasync::sql_types::*;

    tasks (id) {
        id -> PortableUuid,
        workspace_id -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use stratasync::sql_types::*;

    task_labels (task_id, label_id) {
        task_id -> PortableUuid,
        label_id -> Text,
        workspace_id -> Text,
    }
}

#[derive(Queryable, Selectable, SyncModel)]
#[diesel(table_name = tasks)]
#[sync(global)]
pub struct Task {
    pub id: Uuid,
    pub workspace_id: String,
}

#[derive(Queryable, Selectable, SyncModel)]
#[diesel(table_name = task_labels)]
#[sync(composite(task_id, label_id), group = "workspace_id", references(task_id = Task))]
pub struct TaskLabel {
    pub task_id: Uuid,
    pub label_id: String,
    pub workspace_id: String,
}

fn main() {}
