//! A composite model has no own id to be its group.
use diesel::{Queryable, Selectable};
use stratasync::SyncModel;
use uuid::Uuid;

diesel::table! {
    use diesel::sql_types::*;
    use stratasync::sql_types::*;

    task_labels (task_id, label_id) {
        task_id -> PortableUuid,
        label_id -> PortableUuid,
    }
}

#[derive(Queryable, Selectable, SyncModel)]
#[diesel(table_name = task_labels)]
#[sync(composite(task_id, label_id), group = self)]
pub struct TaskLabel {
    pub task_id: Uuid,
    pub label_id: Uuid,
}

fn main() {}
