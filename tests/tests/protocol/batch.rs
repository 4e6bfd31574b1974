//! PROTOCOL §5: `POST /sync/batch`.

use serde_json::{Value, json};
use stratasync_tests::harness::{Client, Fixture, Reply, TestDb, TestServer, new_id, tx};
use stratasync_tests::on_each_backend;
use stratasync_tests::protocol::assert_invalid_body;

async fn batch(client: &Client, body: Value) -> Reply {
    client.post("/sync/batch", &body).await
}

fn ids(reply: &Reply) -> Vec<String> {
    let mut ids: Vec<String> = reply
        .lines()
        .iter()
        .map(|l| l["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids
}

/// A server where alice holds w1 and bob holds w2, with two tasks and a
/// label in w1 and one task in w2; with alice's client, her task ids (sorted)
/// and bob's task id.
async fn setup(db: &TestDb) -> (TestServer, Client, Vec<String>, String) {
    let server = Fixture::on(db)
        .members(&[("alice", "w1"), ("bob", "w2")])
        .start()
        .await;
    let alice = server.client("user:alice");
    let bob = server.client("user:bob");
    let (a, _) = alice.insert_task("w1", "a").await;
    let (b, _) = alice.insert_task("w1", "b").await;
    alice
        .mutate_ok(tx(
            "l",
            "TaskLabel",
            "x",
            "INSERT",
            json!({ "taskId": a, "labelId": new_id(), "workspaceId": "w1" }),
        ))
        .await;
    let (theirs, _) = bob.insert_task("w2", "c").await;
    let mut mine = vec![a, b];
    mine.sort();
    (server, alice, mine, theirs)
}

async fn by_group(db: &TestDb) {
    let (_server, alice, mine, _) = setup(db).await;
    let reply = batch(
        &alice,
        json!({ "requests": [{ "modelName": "Task", "groupId": "w1" }] }),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.content_type, "application/x-ndjson");
    // Row lines only: no metadata line.
    assert!(
        reply
            .lines()
            .iter()
            .all(|l| l["__class"] == "Task" && l.get("lastSyncId").is_none())
    );
    assert_eq!(ids(&reply), mine);

    let reply = batch(
        &alice,
        json!({ "requests": [{ "modelName": "TaskLabel", "groupId": "w1" }] }),
    )
    .await;
    let lines = reply.lines();
    assert_eq!(lines.len(), 1, "{}", reply.text);
    assert_eq!(lines[0]["__class"], "TaskLabel");

    // A group the caller does not hold yields nothing, also next to one it holds.
    let reply = batch(
        &alice,
        json!({ "requests": [{ "modelName": "Task", "groupId": "w2" }] }),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.text, "");
    let reply = batch(
        &alice,
        json!({ "requests": [{ "modelName": "Task", "groupId": "w2" }, { "modelName": "Task", "groupId": "w1" }] }),
    )
    .await;
    assert_eq!(ids(&reply), mine);
}

async fn by_indexed_key(db: &TestDb) {
    let (_server, alice, mine, _) = setup(db).await;
    let reply = batch(
        &alice,
        json!({ "requests": [{ "modelName": "Task", "indexedKey": "workspaceId", "keyValue": "w1" }] }),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(ids(&reply), mine);
    // Within the caller's scope only.
    let reply =
        batch(&alice, json!({ "requests": [{ "modelName": "Task", "indexedKey": "workspaceId", "keyValue": "w2" }] }))
            .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.text, "");
    // A key that is not among the model's indexed keys is rejected.
    for key in ["title", "id", "workspace_id", "nope"] {
        let reply = batch(
            &alice,
            json!({ "requests": [{ "modelName": "Task", "indexedKey": key, "keyValue": "w1" }] }),
        )
        .await;
        assert_invalid_body(&reply, "requests[0].indexedKey");
    }
}

async fn rows_touched_after_first_sync_id_come_at_their_current_state(db: &TestDb) {
    let (_server, alice, mine, _) = setup(db).await;
    let first = alice.get("/sync/deltas?after=0").await.json["lastSyncId"]
        .as_str()
        .unwrap()
        .to_owned();
    alice
        .mutate_ok(tx(
            "u",
            "Task",
            &mine[0],
            "UPDATE",
            json!({ "title": "renamed" }),
        ))
        .await;
    let reply = batch(
        &alice,
        json!({ "firstSyncId": first, "requests": [{ "modelName": "Task", "groupId": "w1" }] }),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let lines = reply.lines();
    let row = lines
        .iter()
        .find(|l| l["id"] == mine[0].as_str())
        .expect("row present");
    assert_eq!(row["title"], "renamed");
    // Whole rows, the same as a load that names no firstSyncId.
    let without = batch(
        &alice,
        json!({ "requests": [{ "modelName": "Task", "groupId": "w1" }] }),
    )
    .await;
    assert_eq!(lines, without.lines());
    assert_eq!(lines.len(), mine.len());
}

async fn request_count_is_1_to_100(db: &TestDb) {
    let (_server, alice, mine, _) = setup(db).await;
    assert_invalid_body(&batch(&alice, json!({ "requests": [] })).await, "requests");
    assert_invalid_body(&batch(&alice, json!({})).await, "requests");
    assert_invalid_body(&batch(&alice, json!({ "requests": {} })).await, "requests");
    let one = json!({ "modelName": "Task", "groupId": "w1" });
    assert_invalid_body(
        &batch(&alice, json!({ "requests": vec![one.clone(); 101] })).await,
        "requests",
    );
    let reply = batch(&alice, json!({ "requests": vec![one; 100] })).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.lines().len(), 100 * mine.len());
}

async fn body_validation(db: &TestDb) {
    let server = TestServer::start(db).await;
    let alice = server.client("user:alice");
    let cases = [
        (
            json!({ "requests": [{ "groupId": "w1" }] }),
            "requests[0].modelName",
        ),
        (
            json!({ "requests": [{ "modelName": "Nope", "groupId": "w1" }] }),
            "requests[0].modelName",
        ),
        (
            json!({ "requests": [{ "modelName": 3, "groupId": "w1" }] }),
            "requests[0].modelName",
        ),
        (
            json!({ "requests": [{ "modelName": "Task" }] }),
            "requests[0].groupId",
        ),
        (
            json!({ "requests": [{ "modelName": "Task", "groupId": 7 }] }),
            "requests[0].groupId",
        ),
        (
            json!({ "requests": [{ "modelName": "Task", "indexedKey": "workspaceId" }] }),
            "requests[0].keyValue",
        ),
        (json!({ "requests": ["Task"] }), "requests[0]"),
        (
            json!({ "firstSyncId": "abc", "requests": [{ "modelName": "Task", "groupId": "w1" }] }),
            "firstSyncId",
        ),
        (
            json!({ "firstSyncId": 5, "requests": [{ "modelName": "Task", "groupId": "w1" }] }),
            "firstSyncId",
        ),
        (
            json!({ "firstSyncId": "-1", "requests": [{ "modelName": "Task", "groupId": "w1" }] }),
            "firstSyncId",
        ),
        (json!([1]), "body"),
    ];
    for (body, field) in cases {
        assert_invalid_body(&batch(&alice, body).await, field);
    }
    assert_invalid_body(&alice.post_raw("/sync/batch", "{not json").await, "body");
    // Every issue of one body is reported together.
    let reply = batch(
        &alice,
        json!({ "firstSyncId": "x", "requests": [{ "modelName": "Nope", "groupId": "w1" }, { "modelName": "Task" }] }),
    )
    .await;
    for field in [
        "firstSyncId",
        "requests[0].modelName",
        "requests[1].groupId",
    ] {
        assert_invalid_body(&reply, field);
    }
}

async fn an_indexed_load_over_50000_rows_fails_with_an_error_line(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    db.seed_tasks("w1", 50_001, 1).await;
    let alice = server.client("user:alice");
    let reply =
        batch(&alice, json!({ "requests": [{ "modelName": "Task", "indexedKey": "workspaceId", "keyValue": "w1" }] }))
            .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        &reply.text[..reply.text.len().min(500)]
    );
    let lines = reply.lines();
    assert_eq!(lines.len(), 1, "no rows before the error line");
    assert_eq!(lines[0]["type"], "error");
    assert!(
        lines[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("50000")),
        "{}",
        reply.text
    );
}

on_each_backend!(
    by_group,
    by_indexed_key,
    rows_touched_after_first_sync_id_come_at_their_current_state,
    request_count_is_1_to_100,
    body_validation,
    an_indexed_load_over_50000_rows_fails_with_an_error_line,
);
