//! `load_strategy` names one of the client's strategies.
use chrono::{DateTime, Utc};
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
        created_at -> Instant,
        archived_at -> Nullable<Instant>,
    }
}

#[derive(Queryable, Selectable, SyncModel)]
#[diesel(table_name = tasks)]
#[sync(group = "workspace_id", load_strategy = "eager")]
pub struct Task {
    pub id: Uuid,
    pub title: String,
    pub priority: i32,
    pub workspace_id: String,
    pub created_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
}

fn main() {}
