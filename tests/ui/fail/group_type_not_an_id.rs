//! A group column needs a canonical string form.
use diesel::{Queryable, Selectable};
use stratasync::SyncModel;
use uuid::Uuid;

diesel::table! {
    use diesel::sql_types::*;
    use stratasync::sql_types::*;

    tasks (id) {
        id -> PortableUuid,
        title -> Text,
        done -> Bool,
    }
}

#[derive(Queryable, Selectable, SyncModel)]
#[diesel(table_name = tasks)]
#[sync(group = "done")]
pub struct Task {
    pub id: Uuid,
    pub title: String,
    pub done: bool,
}

fn main() {}
