//! A scoped model, and a join table whose keys reference rows of its own
//! group: an id, and an optional id.
use diesel::{BoolExpressionMethods, ExpressionMethods, Queryable, Selectable};
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
        parent_id -> Nullable<PortableUuid>,
        workspace_id -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use stratasync::sql_types::*;

    labels (id) {
        id -> PortableUuid,
        workspace_id -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use stratasync::sql_types::*;

    todo_labels (todo_id, label_id) {
        todo_id -> PortableUuid,
        label_id -> PortableUuid,
        workspace_id -> Text,
    }
}

#[derive(Queryable, Selectable, SyncModel)]
#[diesel(table_name = todos)]
#[sync(
    group = "workspace_id",
    scope = visible_todos,
    references(parent_id = Todo),
    actions(insert, update),
    insert(title, private, owner, parent_id, workspace_id),
    update(title, private, parent_id)
)]
pub struct Todo {
    pub id: Uuid,
    pub title: String,
    pub private: bool,
    pub owner: String,
    pub parent_id: Option<Uuid>,
    pub workspace_id: String,
}

/// Private todos are read by their owner only.
fn visible_todos(ctx: &FilterContext) -> ReadScope<todos::table> {
    ReadScope::new(todos::private.eq(false).or(todos::owner.eq(ctx.user_id.clone())))
}

#[derive(Queryable, Selectable, SyncModel)]
#[diesel(table_name = labels)]
#[sync(group = "workspace_id")]
pub struct Label {
    pub id: Uuid,
    pub workspace_id: String,
}

#[derive(Queryable, Selectable, SyncModel)]
#[diesel(table_name = todo_labels)]
#[sync(
    composite(todo_id, label_id),
    group = "workspace_id",
    references(todo_id = Todo, label_id = Label),
    actions(insert, delete),
    insert(todo_id, label_id, workspace_id)
)]
pub struct TodoLabel {
    pub todo_id: Uuid,
    pub label_id: Uuid,
    pub workspace_id: String,
}

fn main() {
    let _ = stratasync::Registry::new()
        .model::<Todo>()
        .model::<Label>()
        .model::<TodoLabel>();
}
