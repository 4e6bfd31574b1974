//! The synced models: todos, labels, and the join table between them.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::{BoolExpressionMethods, ExpressionMethods, Queryable, Selectable};
use stratasync::{FilterContext, HookResult, ModelHooks, ReadScope, Registry, SyncModel, Tx};
use uuid::Uuid;

use crate::schema::{labels, todo_labels, todos};

/// A todo of a workspace; a private one is loaded by its owner only.
#[derive(Debug, Clone, Queryable, Selectable, SyncModel)]
#[diesel(table_name = todos)]
#[sync(
    group = "workspace_id",
    scope = visible_todos,
    actions(insert, update, delete, archive, unarchive),
    insert(
        title, notes, priority, estimate, completed_at, due_on, private, owner = default,
        workspace_id, created_at = now
    ),
    update(title, notes, priority, estimate, completed_at, due_on, private),
    indexed(workspace_id)
)]
pub struct Todo {
    /// Client-generated id.
    pub id: Uuid,
    /// What to do.
    pub title: String,
    /// Free text.
    pub notes: Option<String>,
    /// Higher is more urgent.
    pub priority: i32,
    /// Hours, when estimated.
    pub estimate: Option<f64>,
    /// When it was done.
    pub completed_at: Option<DateTime<Utc>>,
    /// The day it is due.
    pub due_on: Option<NaiveDate>,
    /// Whether only its owner loads it.
    pub private: bool,
    /// The user who created it (set by the server, see [`Owner`]).
    pub owner: String,
    /// The workspace (sync group) it belongs to.
    pub workspace_id: String,
    /// When it was created (set by the server).
    pub created_at: DateTime<Utc>,
    /// When it was archived.
    pub archived_at: Option<DateTime<Utc>>,
}

/// Public todos, and the reader's own private ones.
fn visible_todos(ctx: &FilterContext) -> ReadScope<todos::table> {
    ReadScope::new(
        todos::private
            .eq(false)
            .or(todos::owner.eq(ctx.user_id.clone())),
    )
}

/// Makes the writing user the owner of the todos they create.
struct Owner;

impl ModelHooks<Todo> for Owner {
    async fn before_insert(&self, _tx: Tx<'_>, ctx: &FilterContext, row: &mut Todo) -> HookResult {
        row.owner.clone_from(&ctx.user_id);
        Ok(())
    }
}

/// A label todos can carry.
#[derive(Debug, Clone, Queryable, Selectable, SyncModel)]
#[diesel(table_name = labels)]
#[sync(
    group = "workspace_id",
    actions(insert, update, delete),
    insert(name, color, workspace_id),
    update(name, color)
)]
pub struct Label {
    /// Client-generated id.
    pub id: Uuid,
    /// Shown on the label.
    pub name: String,
    /// A CSS color.
    pub color: String,
    /// The workspace it belongs to.
    pub workspace_id: String,
}

/// That a todo carries a label; both are rows of the join row's workspace.
#[derive(Debug, Clone, Queryable, Selectable, SyncModel)]
#[diesel(table_name = todo_labels)]
#[sync(
    composite(todo_id, label_id),
    group = "workspace_id",
    references(todo_id = Todo, label_id = Label),
    actions(insert, delete),
    insert(todo_id, label_id, workspace_id, created_at = now)
)]
pub struct TodoLabel {
    /// The todo.
    pub todo_id: Uuid,
    /// The label.
    pub label_id: Uuid,
    /// The workspace both belong to.
    pub workspace_id: String,
    /// When the label was put on.
    pub created_at: DateTime<Utc>,
}

/// The models the example syncs, in bootstrap order.
pub fn registry() -> Registry {
    Registry::new()
        .model::<Label>()
        .model_with_hooks::<Todo>(Owner)
        .model::<TodoLabel>()
}
