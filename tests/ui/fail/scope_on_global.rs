//! A global model cannot have a scope.
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
#[sync(global, scope = visible_todos)]
pub struct Todo {
    pub id: Uuid,
    pub title: String,
    pub private: bool,
    pub owner: String,
    pub workspace_id: String,
}

fn visible_todos(ctx: &FilterContext) -> ReadScope<todos::table> {
    ReadScope::new(todos::private.eq(false).or(todos::owner.eq(ctx.user_id.clone())))
}

fn main() {}
