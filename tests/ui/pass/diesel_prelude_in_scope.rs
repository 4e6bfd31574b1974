//! A model file that imports diesel's prelude, as diesel applications do:
//! the derive's queries must not be ambiguous with diesel's own
//! `RunQueryDsl` (they call diesel-async's by path).
use diesel::prelude::*;
use stratasync::SyncModel;
use uuid::Uuid;

diesel::table! {
    use diesel::sql_types::*;
    use stratasync::sql_types::*;

    tasks (id) {
        id -> PortableUuid,
        title -> Text,
        workspace_id -> Text,
        archived_at -> Nullable<Instant>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use stratasync::sql_types::*;

    task_links (task_id, other_id) {
        task_id -> PortableUuid,
        other_id -> PortableUuid,
        workspace_id -> Text,
    }
}

fn open_tasks(_ctx: &stratasync::FilterContext) -> stratasync::ReadScope<tasks::table> {
    stratasync::ReadScope::new(tasks::title.ne(""))
}

#[derive(Queryable, Selectable, SyncModel)]
#[diesel(table_name = tasks)]
#[sync(
    group = "workspace_id",
    scope = open_tasks,
    actions(insert, update, delete, archive, unarchive),
    insert(title, workspace_id),
    update(title)
)]
pub struct Task {
    pub id: Uuid,
    pub title: String,
    pub workspace_id: String,
    pub archived_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Queryable, Selectable, SyncModel)]
#[diesel(table_name = task_links)]
#[sync(
    composite(task_id, other_id),
    group = "workspace_id",
    references(task_id = Task, other_id = Task),
    actions(insert, delete),
    insert(task_id, other_id, workspace_id)
)]
pub struct TaskLink {
    pub task_id: Uuid,
    pub other_id: Uuid,
    pub workspace_id: String,
}

fn main() {
    let _ = stratasync::Registry::new().model::<Task>().model::<TaskLink>();
}
