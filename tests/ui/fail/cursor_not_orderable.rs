//! A cursor column must be ordered.
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
        score -> Double,
    }
}

#[derive(Queryable, Selectable, SyncModel)]
#[diesel(table_name = tasks)]
#[sync(group = "workspace_id", cursor = "score")]
pub struct Task {
    pub id: Uuid,
    pub title: String,
    pub priority: i32,
    pub workspace_id: String,
    pub score: f64,
}

fn main() {}
