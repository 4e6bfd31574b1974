//! Per-model hooks run inside the mutation's transaction: they can change the
//! row, reject the mutation, and their own queries commit or roll back with it.

use diesel_async::RunQueryDsl;
use serde_json::json;
use stratasync::{FilterContext, HookResult, JsonMap, ModelHooks, Registry, SyncModel, Tx};
use stratasync_tests::harness::{Fixture, TestDb, new_id, tx};
use stratasync_tests::models::{Task, TaskLabel};
use stratasync_tests::on_each_backend;

/// Trims titles on insert; on update, bumps every task's priority to 99
/// through the transaction and then rejects titles that say "veto".
struct TaskHooks;

async fn run_in(tx: Tx<'_>, sql: &str) -> Result<usize, String> {
    let query = diesel::sql_query(sql);
    match tx {
        Tx::Postgres(conn) => query.execute(conn).await,
        Tx::Sqlite(conn) => query.execute(conn).await,
    }
    .map_err(|e| e.to_string())
}

impl ModelHooks<Task> for TaskHooks {
    async fn before_insert(&self, _tx: Tx<'_>, ctx: &FilterContext, row: &mut Task) -> HookResult {
        if ctx.user_id == "intern" {
            return Err("interns may not create tasks".into());
        }
        row.title = row.title.trim().to_owned();
        Ok(())
    }

    async fn before_update(
        &self,
        tx: Tx<'_>,
        _ctx: &FilterContext,
        _key: &<Task as SyncModel>::Key,
        changes: &JsonMap,
    ) -> HookResult {
        run_in(tx, "UPDATE tasks SET priority = 99").await?;
        if changes.get("title").and_then(|t| t.as_str()) == Some("veto") {
            return Err("vetoed by the hook".into());
        }
        Ok(())
    }
}

async fn hooks_change_reject_and_share_the_transaction(db: &TestDb) {
    let registry = Registry::new()
        .model_with_hooks::<Task>(TaskHooks)
        .model::<TaskLabel>();
    let server = Fixture::on(db)
        .registry(registry)
        .members(&[("alice", "w1"), ("intern", "w1")])
        .start()
        .await;
    let alice = server.client("user:alice");

    let id = new_id();
    let insert = json!({"title": "  padded  ", "priority": 1, "workspaceId": "w1"});
    let reply = alice
        .mutate_one(tx("i1", "Task", &id, "INSERT", insert.clone()))
        .await;
    assert_eq!(reply.json["success"], true, "{}", reply.text);
    let rows = alice.get("/sync/bootstrap").await.lines();
    assert_eq!(
        rows[1]["title"], "padded",
        "before_insert changed the stored row"
    );

    let refused = server
        .client("user:intern")
        .mutate_one(tx("i2", "Task", &new_id(), "INSERT", insert))
        .await;
    assert_eq!(
        refused.json["results"][0]["error"],
        "interns may not create tasks"
    );

    let vetoed = alice
        .mutate_one(tx("u1", "Task", &id, "UPDATE", json!({"title": "veto"})))
        .await;
    assert_eq!(vetoed.json["results"][0]["error"], "vetoed by the hook");
    let rows = alice.get("/sync/bootstrap").await.lines();
    assert_eq!(rows[1]["title"], "padded");
    assert_eq!(
        rows[1]["priority"], 1,
        "the hook's own write rolled back with the rejection"
    );

    let accepted = alice
        .mutate_one(tx("u2", "Task", &id, "UPDATE", json!({"title": "fine"})))
        .await;
    assert_eq!(accepted.json["success"], true, "{}", accepted.text);
    let rows = alice.get("/sync/bootstrap").await.lines();
    assert_eq!(rows[1]["title"], "fine");
    assert_eq!(
        rows[1]["priority"], 99,
        "the hook's write committed with the mutation"
    );

    let deltas = alice.get("/sync/deltas?after=0").await;
    assert_eq!(
        deltas.json["actions"].as_array().map(Vec::len),
        Some(2),
        "rejected mutations leave no action"
    );
}

on_each_backend!(hooks_change_reject_and_share_the_transaction);
