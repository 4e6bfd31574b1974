//! `crate = path` for code that reaches stratasync through a re-export.
use diesel::{Queryable, Selectable};

mod reexport {
    pub use stratasync;
}

// Only the re-export is in scope: no `stratasync` name is used below.
use reexport::stratasync::SyncModel;

diesel::table! {
    notes (id) {
        id -> Integer,
        body -> Text,
        owner -> Text,
    }
}

diesel::table! {
    tags (id) {
        id -> Integer,
        owner -> Text,
    }
}

#[derive(Queryable, Selectable, SyncModel)]
#[diesel(table_name = notes)]
#[sync(crate = reexport::stratasync, group = "owner", actions(delete))]
pub struct Note {
    pub id: i32,
    pub body: String,
    pub owner: String,
}

#[derive(Queryable, Selectable, SyncModel)]
#[diesel(table_name = tags)]
#[sync(crate = "reexport::stratasync", group = "owner")]
pub struct Tag {
    pub id: i32,
    pub owner: String,
}

fn main() {
    assert_eq!(<Note as SyncModel>::META.name, "Note");
    assert_eq!(<Tag as SyncModel>::META.name, "Tag");
}
