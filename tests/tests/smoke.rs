//! A first end-to-end pass over the four HTTP routes.

use serde_json::json;
use stratasync_tests::harness::{Fixture, TestDb, tx};
use stratasync_tests::on_each_backend;

async fn insert_then_read(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice = server.client("user:alice");
    let id = uuid::Uuid::new_v4().to_string();
    let reply = alice
        .mutate_one(tx(
            "t1",
            "Task",
            &id,
            "INSERT",
            json!({
                "title": "Write tests", "priority": 2, "workspaceId": "w1",
                "completedAt": 1_795_632_180_123_i64, "dueOn": 1_795_564_800_000_i64
            }),
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["success"], true, "{}", reply.text);
    let sync_id = reply.json["results"][0]["syncId"]
        .as_str()
        .expect("a syncId")
        .to_owned();

    let boot = alice.get("/sync/bootstrap").await;
    assert_eq!(boot.status, 200, "{}", boot.text);
    assert_eq!(boot.content_type, "application/x-ndjson");
    let lines = boot.lines();
    assert_eq!(lines[0]["lastSyncId"], sync_id.as_str());
    assert_eq!(
        lines[0]["returnedModelsCount"],
        json!({"Task": 1, "TaskLabel": 0})
    );
    assert_eq!(lines[1]["__class"], "Task");
    assert_eq!(lines[1]["id"], id.as_str());
    assert_eq!(lines[1]["completedAt"], 1_795_632_180_123_i64);
    assert_eq!(lines[1]["dueOn"], 1_795_564_800_000_i64);

    let deltas = alice.get("/sync/deltas?after=0").await;
    assert_eq!(deltas.status, 200, "{}", deltas.text);
    assert_eq!(deltas.json["actions"][0]["action"], "I");
    assert_eq!(deltas.json["lastSyncId"], sync_id.as_str());

    let outsider = server.client("user:mallory");
    let boot = outsider.get("/sync/bootstrap").await;
    assert_eq!(boot.lines().len(), 1, "{}", boot.text);
}

on_each_backend!(insert_then_read);
