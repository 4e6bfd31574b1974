//! Demo data, written through the sync protocol's own mutation path so it
//! arrives in the log like any client write. Seeding twice changes nothing:
//! every seed transaction has a fixed client transaction id.

use serde_json::{Value, json};
use stratasync::{ActionKind, FilterContext, Mutation, SyncServer};

/// The demo workspace (a sync group).
pub const WORKSPACE: &str = "demo";

/// Users of the demo workspace; `carol` exists but belongs to no workspace.
pub const MEMBERS: [&str; 2] = ["alice", "bob"];

const LABEL_BUG: &str = "6f1c1f7e-8f6e-4a53-9a51-3f0c2f6b6a01";
const LABEL_DOCS: &str = "6f1c1f7e-8f6e-4a53-9a51-3f0c2f6b6a02";
const TODO_SHIP: &str = "0b8f8a3e-3c55-4d8c-9a4f-2d9d3c1e7b01";
const TODO_DOCS: &str = "0b8f8a3e-3c55-4d8c-9a4f-2d9d3c1e7b02";
const TODO_DONE: &str = "0b8f8a3e-3c55-4d8c-9a4f-2d9d3c1e7b03";
const TODO_PRIVATE: &str = "0b8f8a3e-3c55-4d8c-9a4f-2d9d3c1e7b04";

/// The title of alice's private todo, which bob does not load.
const PRIVATE_TITLE: &str = "Alice's private todo";

fn insert(tx: &str, model: &str, id: &str, payload: Value) -> Mutation {
    Mutation {
        client_id: "seed".to_owned(),
        client_tx_id: tx.to_owned(),
        model: model.to_owned(),
        model_id: id.to_owned(),
        action: ActionKind::Insert,
        payload: payload.as_object().cloned().unwrap_or_default(),
    }
}

/// Adds the demo members and rows when they are missing.
pub async fn seed(server: &SyncServer) -> Result<(), String> {
    for member in MEMBERS {
        server
            .store()
            .add_member(member, WORKSPACE, "workspace")
            .await
            .map_err(|e| e.to_string())?;
    }
    let mutations = [
        insert(
            "seed-label-bug",
            "Label",
            LABEL_BUG,
            json!({"name": "bug", "color": "#d73a4a", "workspaceId": WORKSPACE}),
        ),
        insert(
            "seed-label-docs",
            "Label",
            LABEL_DOCS,
            json!({"name": "docs", "color": "#0075ca", "workspaceId": WORKSPACE}),
        ),
        insert(
            "seed-todo-ship",
            "Todo",
            TODO_SHIP,
            json!({
                "title": "Ship the sync server", "notes": "Every codec has a value here",
                "priority": 3, "estimate": 2.5, "completedAt": 1_767_225_600_123_i64,
                "dueOn": 1_767_225_600_000_i64, "workspaceId": WORKSPACE
            }),
        ),
        insert(
            "seed-todo-docs",
            "Todo",
            TODO_DOCS,
            json!({"title": "Write the guide", "priority": 1, "workspaceId": WORKSPACE}),
        ),
        insert(
            "seed-todo-done",
            "Todo",
            TODO_DONE,
            json!({"title": "Set up CI", "priority": 2, "workspaceId": WORKSPACE}),
        ),
        insert(
            "seed-todo-label",
            "TodoLabel",
            "",
            json!({"todoId": TODO_SHIP, "labelId": LABEL_BUG, "workspaceId": WORKSPACE}),
        ),
    ];
    let seeder = FilterContext::new("seed", vec![WORKSPACE.to_owned()]);
    // Written as alice, who then owns it.
    let alice = FilterContext::new("alice", vec![WORKSPACE.to_owned()]);
    let private = insert(
        "seed-todo-private",
        "Todo",
        TODO_PRIVATE,
        json!({"title": PRIVATE_TITLE, "priority": 0, "private": true, "workspaceId": WORKSPACE}),
    );
    let writes = mutations
        .iter()
        .map(|mutation| (&seeder, mutation))
        .chain([(&alice, &private)]);
    for (writer, mutation) in writes {
        server
            .store()
            .mutate(writer, mutation)
            .await
            .map_err(|e| format!("seeding {}: {e}", mutation.client_tx_id))?;
    }
    Ok(())
}
