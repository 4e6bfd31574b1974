//! PROTOCOL §4: `GET /sync/bootstrap`.

use serde_json::{Value, json};
use stratasync_tests::harness::{Client, Fixture, Reply, TestDb, TestServer, new_id, tx};
use stratasync_tests::on_each_backend;
use stratasync_tests::protocol::{assert_invalid_query, composite_id, details};

/// A query validation failure, whose detail for `field` carries a message and
/// whose body holds nothing but `error`, `source`, `requestId` and `details`.
fn assert_validation(reply: &Reply, field: &str) {
    assert_invalid_query(reply, field);
    assert!(
        details(reply)
            .iter()
            .any(|d| d["field"] == field && d["message"].as_str().is_some_and(|m| !m.is_empty())),
        "no message for {field}: {}",
        reply.text
    );
    let keys: Vec<&str> = reply
        .json
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 4, "{}", reply.text);
}

async fn metadata_and_rows_have_the_wire_shape(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice = server.client("user:alice");
    let id = new_id();
    let sync = alice
        .mutate_ok(tx(
            "t1",
            "Task",
            &id,
            "INSERT",
            json!({ "title": "Say \"hi\"", "priority": 3, "workspaceId": "w1",
                    "completedAt": 1_795_632_180_123.9_f64, "dueOn": 1_795_564_800_000_i64 }),
        ))
        .await;
    let (task_id, label_id) = (new_id(), new_id());
    let label_sync = alice
        .mutate_ok(tx(
            "t2",
            "TaskLabel",
            "ignored",
            "INSERT",
            json!({ "taskId": task_id, "labelId": label_id, "workspaceId": "w1" }),
        ))
        .await;

    let reply = alice.get("/sync/bootstrap?schemaHash=abc123").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.content_type, "application/x-ndjson");
    assert!(reply.text.ends_with('\n'), "{:?}", reply.text);
    let text_lines: Vec<&str> = reply.text.lines().collect();
    assert_eq!(text_lines.len(), 3, "{}", reply.text);
    // The metadata line, byte for byte.
    assert_eq!(
        text_lines[0],
        format!(
            r#"{{"lastSyncId":"{label_sync}","returnedModelsCount":{{"Task":1,"TaskLabel":1}},"schemaHash":"abc123","subscribedSyncGroups":["w1","alice"]}}"#
        )
    );
    assert_ne!(label_sync, sync);

    // A task row: declared fields in order, `id` where declared, instants
    // and dates as epoch ms (sub-millisecond truncated).
    let lines = reply.lines();
    let created_at = lines[1]["createdAt"]
        .as_i64()
        .expect("createdAt is epoch ms");
    assert_eq!(
        text_lines[1],
        format!(
            r#"{{"__class":"Task","id":"{id}","title":"Say \"hi\"","completedAt":1795632180123,"dueOn":1795564800000,"priority":3,"workspaceId":"w1","createdAt":{created_at},"archivedAt":null}}"#
        )
    );
    // A composite row: the synthetic id comes last.
    let composite = composite_id(&task_id, &label_id);
    let created_at = lines[2]["createdAt"]
        .as_i64()
        .expect("createdAt is epoch ms");
    assert_eq!(
        text_lines[2],
        format!(
            r#"{{"__class":"TaskLabel","taskId":"{task_id}","labelId":"{label_id}","workspaceId":"w1","createdAt":{created_at},"id":"{composite}"}}"#
        )
    );
}

async fn headers_and_empty_database(db: &TestDb) {
    let server = TestServer::start(db).await;
    let response = reqwest::Client::new()
        .get(format!("{}/sync/bootstrap", server.url))
        .bearer_auth("user:alice")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    assert_eq!(response.headers()["cache-control"], "no-cache");
    assert!(
        response.headers().get("content-length").is_none(),
        "streamed, not buffered"
    );
    let text = response.text().await.expect("body");
    assert_eq!(
        text,
        "{\"lastSyncId\":\"0\",\"returnedModelsCount\":{\"Task\":0,\"TaskLabel\":0},\"schemaHash\":\"\",\"subscribedSyncGroups\":[\"alice\"]}\n"
    );
}

async fn last_sync_id_counts_visible_actions_only(db: &TestDb) {
    let server = Fixture::on(db)
        .members(&[("alice", "w1"), ("bob", "w2")])
        .start()
        .await;
    let alice = server.client("user:alice");
    let bob = server.client("user:bob");
    let (_, mine) = alice.insert_task("w1", "a").await;
    let (_, theirs) = bob.insert_task("w2", "b").await;
    let meta = &alice.get("/sync/bootstrap").await.lines()[0];
    assert_eq!(meta["lastSyncId"], mine.as_str());
    let meta = &bob.get("/sync/bootstrap").await.lines()[0];
    assert_eq!(meta["lastSyncId"], theirs.as_str());
}

async fn only_models_selects_and_orders(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice = server.client("user:alice");
    alice.insert_task("w1", "a").await;
    alice
        .mutate_ok(tx(
            "l",
            "TaskLabel",
            "x",
            "INSERT",
            json!({ "taskId": new_id(), "labelId": new_id(), "workspaceId": "w1" }),
        ))
        .await;

    let lines = alice
        .get("/sync/bootstrap?onlyModels=TaskLabel,Task")
        .await
        .lines();
    let classes: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l["__class"].as_str().unwrap())
        .collect();
    assert_eq!(classes, ["TaskLabel", "Task"]);
    let lines = alice.get("/sync/bootstrap?onlyModels=Task").await.lines();
    assert_eq!(lines[0]["returnedModelsCount"], json!({ "Task": 1 }));
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["__class"], "Task");

    let reply = alice.get("/sync/bootstrap?onlyModels=Task,Nope").await;
    assert_validation(&reply, "onlyModels");
}

async fn query_validation(db: &TestDb) {
    let server = TestServer::start(db).await;
    let alice = server.client("user:alice");
    assert_validation(
        &alice.get("/sync/bootstrap?type=partial").await,
        "firstSyncId",
    );
    for bad in ["abc", "-1", "1.5", "", "18446744073709551616", "+3", " 4"] {
        let query = format!(
            "/sync/bootstrap?type=partial&firstSyncId={}",
            bad.replace(' ', "%20").replace('+', "%2B")
        );
        assert_validation(&alice.get(&query).await, "firstSyncId");
    }
    assert_validation(&alice.get("/sync/bootstrap?type=delta").await, "type");
    assert_validation(
        &alice.get("/sync/bootstrap?noSyncPackets=maybe").await,
        "noSyncPackets",
    );
    // Every issue is reported at once.
    let reply = alice.get("/sync/bootstrap?type=nope&firstSyncId=x").await;
    assert_validation(&reply, "type");
    assert_validation(&reply, "firstSyncId");

    // What the client also sends is accepted and ignored.
    let reply = alice
        .get("/sync/bootstrap?type=full&useCFCaching=true&noCache=1&modelsHash=zz&noSyncPackets=true&firstSyncId=0")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = alice
        .get("/sync/bootstrap?type=partial&firstSyncId=18446744073709551615")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

async fn partial_bootstrap_returns_touched_rows_at_their_current_state(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice = server.client("user:alice");
    let (untouched, _) = alice.insert_task("w1", "old").await;
    let (touched, first) = alice.insert_task("w1", "before").await;
    alice
        .mutate_ok(tx(
            "u",
            "Task",
            &touched,
            "UPDATE",
            json!({ "title": "after", "priority": 9 }),
        ))
        .await;

    let reply = alice
        .get(&format!("/sync/bootstrap?type=partial&firstSyncId={first}"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let lines = reply.lines();
    assert_eq!(lines[0]["returnedModelsCount"]["Task"], 2);
    let row = lines
        .iter()
        .find(|l| l["id"] == touched.as_str())
        .expect("the touched row is present");
    assert_eq!(row["title"], "after");
    assert_eq!(row["priority"], 9);
    assert!(lines.iter().any(|l| l["id"] == untouched.as_str()));
    // Whole rows, exactly what a full bootstrap of the same state holds (the
    // original left touched rows out, and a client then applied an update
    // of the changed fields to a row it never received).
    let full = alice.get("/sync/bootstrap").await.lines();
    assert_eq!(lines, full);
}

async fn rows_are_paged_in_cursor_order(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    db.seed_tasks("w1", 2_345, 1).await;
    db.seed_tasks("w9", 100, 2).await;
    let alice = server.client("user:alice");
    let lines = alice.get("/sync/bootstrap").await.lines();
    assert_eq!(lines[0]["returnedModelsCount"]["Task"], 2_345);
    let ids: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2_345);
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(ids, sorted, "rows in cursor order, none repeated");
    assert!(lines[1..].iter().all(|l| l["workspaceId"] == "w1"));
}

async fn archived_rows_are_included(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice = server.client("user:alice");
    let (id, _) = alice.insert_task("w1", "a").await;
    alice
        .mutate_ok(tx(
            "a",
            "Task",
            &id,
            "ARCHIVE",
            json!({ "archivedAt": 1_795_632_180_000_i64 }),
        ))
        .await;
    let lines = alice.get("/sync/bootstrap").await.lines();
    assert_eq!(lines[1]["archivedAt"], 1_795_632_180_000_i64);
}

async fn a_failing_read_ends_with_an_error_line_without_database_text(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice: Client = server.client("user:alice");
    alice.insert_task("w1", "a").await;
    db.execute("DROP TABLE task_labels").await;
    let reply = alice.get("/sync/bootstrap").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let lines = reply.lines();
    let last: &Value = lines.last().expect("a line");
    assert_eq!(
        last,
        &json!({ "message": "Bootstrap failed", "type": "error" }),
        "{}",
        reply.text
    );
    assert!(
        !reply.text.contains("task_labels") && !reply.text.to_lowercase().contains("sql"),
        "{}",
        reply.text
    );
}

on_each_backend!(
    metadata_and_rows_have_the_wire_shape,
    headers_and_empty_database,
    last_sync_id_counts_visible_actions_only,
    only_models_selects_and_orders,
    query_validation,
    partial_bootstrap_returns_touched_rows_at_their_current_state,
    rows_are_paged_in_cursor_order,
    archived_rows_are_included,
    a_failing_read_ends_with_an_error_line_without_database_text,
);
