//! A standard model needs an `id` field.
use diesel::{Queryable, Selectable};
use stratasync::SyncModel;
use uuid::Uuid;

diesel::table! {
    use diesel::sql_types::*;
    use stratasync::sql_types::*;

    tasks (key) {
        key -> PortableUuid,
        title -> Text,
        workspace_id -> Text,
    }
}

#[derive(Queryable, Selectable, SyncModel)]
#[diesel(table_name = tasks)]
#[sync(group = "workspace_id")]
pub struct Task {
    pub key: Uuid,
    pub title: String,
    pub workspace_id: String,
}

fn main() {}
