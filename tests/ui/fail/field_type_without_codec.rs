//! A field type without a codec is reported at the field.
use diesel::{Queryable, Selectable};
use stratasync::SyncModel;
use uuid::Uuid;

diesel::table! {
    use diesel::sql_types::*;
    use stratasync::sql_types::*;

    tasks (id) {
        id -> PortableUuid,
        title -> Text,
        priority -> Integer,
        workspace_id -> Text,
        avatar -> Binary,
    }
}

#[derive(Queryable, Selectable, SyncModel)]
#[diesel(table_name = tasks)]
#[sync(group = "workspace_id")]
pub struct Task {
    pub id: Uuid,
    pub title: String,
    pub priority: i32,
    pub workspace_id: String,
    pub avatar: Vec<u8>,
}

fn main() {}
