//! The scope function must be `fn(&FilterContext) -> ReadScope<table>`.
use diesel::prelude::*;
use stratasync::{FilterContext, ReadScope, SyncModel};
use uuid::Uuid;

diesel::table! {
    use diesel::sql_types::*;
    use stratasync::sql_types::*;

    todos (id) {
        id -> PortableUuid,
        title -> Text,
        private -> Bool,
        owner -> Text,
        workspace_id -> Text,
    }
}

#[derive(Queryable, Selectable, SyncModel)]
#[diesel(table_name = todos)]
#[sync(group = "workspace_id", scope = visible_todos)]
pub struct Todo {
    pub id: Uuid,
    pub title: String,
    pub private: bool,
    pub owner: String,
    pub workspace_id: String,
}

fn visible_todos(ctx: &FilterContext) -> bool {
    ctx.user_id.is_empty()
}

fn main() {
    let _ = ReadScope::<todos::table>::new(todos::private.eq(false));
}
