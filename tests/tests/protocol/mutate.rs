//! PROTOCOL §7: `POST /sync/mutate`, every action and every error.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use stratasync::MutationEvent;
use stratasync_tests::harness::{Client, Fixture, TestDb, TestServer, new_id, tx};
use stratasync_tests::on_each_backend;
use stratasync_tests::protocol::{assert_invalid_body, composite_id, error_body};

const NOT_FOUND: &str = "Invalid mutation: record not found";

/// The error of a one-transaction request that must fail; checks the
/// failure's shape and that no database text leaks.
async fn error_of(client: &Client, tx: Value) -> String {
    let client_tx_id = tx["clientTxId"].clone();
    let reply = client.mutate_one(tx).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json,
        json!({ "lastSyncId": "0", "results": [{ "clientTxId": client_tx_id, "success": false,
                "error": reply.json["results"][0]["error"] }], "success": false }),
        "{}",
        reply.text
    );
    let error = reply.json["results"][0]["error"]
        .as_str()
        .expect("error text")
        .to_owned();
    let lower = error.to_lowercase();
    for leak in [
        "sql",
        "relation",
        "constraint",
        "duplicate key",
        "syntax",
        "tasks",
        "column",
        "diesel",
    ] {
        assert!(!lower.contains(leak), "database text in {error:?}");
    }
    error
}

/// The error of a `Task` transaction that must fail (see [`error_of`]).
async fn task_error(client: &Client, action: &str, id: &str, payload: Value) -> String {
    error_of(client, tx(&new_id(), "Task", id, action, payload)).await
}

/// The rows alice's bootstrap holds, by id.
async fn rows(client: &Client) -> Vec<Value> {
    client
        .get("/sync/bootstrap")
        .await
        .lines()
        .into_iter()
        .skip(1)
        .collect()
}

async fn row(client: &Client, id: &str) -> Option<Value> {
    rows(client).await.into_iter().find(|r| r["id"] == id)
}

/// The actions visible to `client`, all of them.
async fn actions(client: &Client) -> Vec<Value> {
    let reply = client.get("/sync/deltas?after=0&limit=5000").await;
    reply.json["actions"].as_array().expect("actions").clone()
}

async fn every_action_applies_and_logs(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice = server.client("user:alice");
    let id = new_id();

    // INSERT: the answer, byte for byte.
    let reply = alice
        .mutate_one(tx(
            "t1",
            "Task",
            &id,
            "INSERT",
            json!({ "title": "a", "priority": 2, "workspaceId": "w1", "dueOn": 1_795_564_800_000_i64, "unknown": 1 }),
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.content_type, "application/json");
    let inserted = reply.json["results"][0]["syncId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        reply.text,
        format!(
            r#"{{"lastSyncId":"{inserted}","results":[{{"clientTxId":"t1","success":true,"syncId":"{inserted}"}}],"success":true}}"#
        )
    );
    let stored = row(&alice, &id).await.expect("inserted");
    assert_eq!(
        (stored["title"].clone(), stored["priority"].clone()),
        (json!("a"), json!(2))
    );
    assert_eq!(stored["completedAt"], Value::Null);
    assert_eq!(stored["dueOn"], 1_795_564_800_000_i64);
    assert!(stored["createdAt"].as_i64().is_some(), "created_at = now");

    // UPDATE: only the payload's updatable fields, through their codecs.
    alice
        .mutate_ok(tx(
            "t2",
            "Task",
            &id,
            "UPDATE",
            json!({ "title": "b", "completedAt": 1_795_632_180_123_i64, "createdAt": 5, "bogus": true }),
        ))
        .await;
    let stored = row(&alice, &id).await.expect("updated");
    assert_eq!(stored["title"], "b");
    assert_eq!(stored["completedAt"], 1_795_632_180_123_i64);
    assert_ne!(stored["createdAt"], 5, "createdAt is not an update field");
    assert_eq!(stored["priority"], 2);
    // An update with nothing updatable succeeds with data {}.
    alice
        .mutate_ok(tx("t3", "Task", &id, "UPDATE", json!({ "nothing": 1 })))
        .await;
    // A field set to null.
    alice
        .mutate_ok(tx(
            "t3b",
            "Task",
            &id,
            "UPDATE",
            json!({ "completedAt": null }),
        ))
        .await;
    assert_eq!(
        row(&alice, &id).await.expect("row")["completedAt"],
        Value::Null
    );

    // ARCHIVE / UNARCHIVE.
    alice
        .mutate_ok(tx(
            "t4",
            "Task",
            &id,
            "ARCHIVE",
            json!({ "archivedAt": 1_795_632_180_000_i64 }),
        ))
        .await;
    assert_eq!(
        row(&alice, &id).await.expect("row")["archivedAt"],
        1_795_632_180_000_i64
    );
    alice
        .mutate_ok(tx("t5", "Task", &id, "UNARCHIVE", json!({})))
        .await;
    assert_eq!(
        row(&alice, &id).await.expect("row")["archivedAt"],
        Value::Null
    );

    // DELETE: data is the payload.
    alice
        .mutate_ok(tx(
            "t6",
            "Task",
            &id,
            "DELETE",
            json!({ "title": "b", "extra": [1] }),
        ))
        .await;
    assert!(row(&alice, &id).await.is_none());

    let log = actions(&alice).await;
    let letters: Vec<&str> = log.iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(letters, ["I", "U", "U", "U", "A", "V", "D"]);
    let data: Vec<&Value> = log.iter().map(|a| &a["data"]).collect();
    assert_eq!(data[0]["id"], id.as_str());
    assert_eq!(data[0]["title"], "a");
    assert_eq!(data[0]["dueOn"], 1_795_564_800_000_i64);
    assert!(data[0].get("unknown").is_none());
    assert_eq!(
        data[1],
        &json!({ "title": "b", "completedAt": 1_795_632_180_123_i64 })
    );
    assert_eq!(data[2], &json!({}));
    assert_eq!(data[3], &json!({ "completedAt": null }));
    assert_eq!(data[4], &json!({ "archivedAt": 1_795_632_180_000_i64 }));
    assert_eq!(data[5], &json!({ "archivedAt": null }));
    assert_eq!(data[6], &json!({ "title": "b", "extra": [1] }));
    assert!(log.iter().all(|a| a["groupId"] == "w1"
        && a["modelId"] == id.as_str()
        && a["clientId"] == "test-client"));
}

async fn missing_rows_and_rows_of_other_groups_look_the_same(db: &TestDb) {
    let server = Fixture::on(db)
        .members(&[("alice", "w1"), ("bob", "w2")])
        .start()
        .await;
    let alice = server.client("user:alice");
    let bob = server.client("user:bob");
    let (theirs, _) = bob.insert_task("w2", "secret").await;
    let missing = new_id();
    for (action, payload) in [
        ("UPDATE", json!({ "title": "x" })),
        ("DELETE", json!({})),
        ("ARCHIVE", json!({ "archivedAt": 1 })),
        ("UNARCHIVE", json!({})),
    ] {
        for target in [theirs.as_str(), missing.as_str(), "not-a-uuid"] {
            let error = task_error(&alice, action, target, payload.clone()).await;
            assert_eq!(error, NOT_FOUND, "{action} {target}");
        }
    }
    let stored = row(&bob, &theirs).await.expect("bob's row is untouched");
    assert_eq!(stored["title"], "secret");
    assert_eq!(stored["archivedAt"], Value::Null);
    assert_eq!(actions(&bob).await.len(), 1);
}

async fn group_rules(db: &TestDb) {
    let server = Fixture::on(db)
        .members(&[("alice", "w1"), ("bob", "w2")])
        .start()
        .await;
    let alice = server.client("user:alice");
    let bob = server.client("user:bob");
    let insert =
        |workspace: Value| json!({ "title": "x", "priority": 1, "workspaceId": workspace });

    assert_eq!(
        error_of(
            &alice,
            tx("g1", "Task", &new_id(), "INSERT", insert(json!("w2")))
        )
        .await,
        "Access denied"
    );
    for missing in [json!(""), Value::Null] {
        assert_eq!(
            task_error(&alice, "INSERT", &new_id(), insert(missing)).await,
            "Invalid mutation: missing required group identifier"
        );
    }
    let error = error_of(
        &alice,
        tx(
            "g3",
            "Task",
            &new_id(),
            "INSERT",
            json!({ "title": "x", "priority": 1 }),
        ),
    )
    .await;
    assert_eq!(error, "Invalid mutation: missing required group identifier");

    // The personal group is held.
    alice.insert_task("alice", "mine").await;

    // `Task` does not declare `move_between_groups`: its group column is not
    // updatable, so an update's `workspaceId` is ignored while the rest
    // applies. (Moves of a model that allows them: protocol_move.rs.)
    let (id, _) = alice.insert_task("w1", "stay").await;
    let sync_id = alice
        .mutate_ok(tx(
            "g4",
            "Task",
            &id,
            "UPDATE",
            json!({ "workspaceId": "w2", "title": "moved?" }),
        ))
        .await;
    let stored = row(&alice, &id).await.expect("still alice's");
    assert_eq!(stored["workspaceId"], "w1");
    assert_eq!(stored["title"], "moved?");
    let logged = actions(&alice).await;
    let update = logged
        .iter()
        .find(|a| a["syncId"] == sync_id.as_str())
        .expect("the update is logged");
    assert_eq!(update["groupId"], "w1");
    assert_eq!(update["data"], json!({ "title": "moved?" }));
    assert!(
        row(&bob, &id).await.is_none(),
        "bob must not see alice's row"
    );
    assert!(
        actions(&bob)
            .await
            .iter()
            .all(|a| a["modelId"] != id.as_str())
    );
}

async fn codec_errors_name_the_field(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice = server.client("user:alice");
    let base = json!({ "title": "x", "priority": 1, "workspaceId": "w1" });
    let with = |field: &str, value: Value| {
        let mut payload = base.clone();
        payload[field] = value;
        payload
    };
    for (field, value, expected) in [
        (
            "completedAt",
            json!("yesterday"),
            "Invalid instant value for completedAt",
        ),
        (
            "dueOn",
            json!("2026-01-01"),
            "Invalid dateOnly value for dueOn",
        ),
    ] {
        let error = task_error(&alice, "INSERT", &new_id(), with(field, value)).await;
        assert_eq!(error, expected);
    }
    // A wrong JSON type in any field fails that transaction, naming the field.
    let wrong = [
        ("title", json!(5)),
        ("title", json!({ "a": 1 })),
        ("title", json!(["x"])),
        ("priority", json!("high")),
        ("priority", json!(1.5)),
        ("priority", json!(4_294_967_296_i64)),
        ("priority", json!(true)),
        ("completedAt", json!(true)),
        ("completedAt", json!({})),
        ("dueOn", json!([1])),
        ("workspaceId", json!(5)),
        ("workspaceId", json!(["w1"])),
    ];
    for (field, value) in wrong {
        let error = task_error(&alice, "INSERT", &new_id(), with(field, value.clone())).await;
        assert!(error.contains(field), "INSERT {field}={value}: {error:?}");
    }
    // Required fields without a default.
    let error = task_error(
        &alice,
        "INSERT",
        &new_id(),
        json!({ "priority": 1, "workspaceId": "w1" }),
    )
    .await;
    assert!(error.contains("title"), "{error:?}");

    // Updates check types too.
    let (id, _) = alice.insert_task("w1", "a").await;
    for (field, value) in [
        ("title", json!(5)),
        ("title", Value::Null),
        ("priority", json!("x")),
        ("completedAt", json!("x")),
        ("dueOn", json!(false)),
    ] {
        let error = task_error(&alice, "UPDATE", &id, json!({ field: value.clone() })).await;
        assert!(error.contains(field), "UPDATE {field}={value}: {error:?}");
    }
    let stored = row(&alice, &id).await.expect("row");
    assert_eq!(
        (stored["title"].clone(), stored["priority"].clone()),
        (json!("a"), json!(1))
    );

    // A composite key part that is not a UUID.
    for (action, payload, field) in [
        (
            "INSERT",
            json!({ "taskId": "nope", "labelId": new_id(), "workspaceId": "w1" }),
            "taskId",
        ),
        (
            "DELETE",
            json!({ "taskId": new_id(), "labelId": 3 }),
            "labelId",
        ),
    ] {
        let error = error_of(&alice, tx(&new_id(), "TaskLabel", "x", action, payload)).await;
        assert!(error.contains(field), "{action}: {error:?}");
    }

    // Nothing was written by any of these.
    assert_eq!(actions(&alice).await.len(), 1);
}

async fn archive_rules(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice = server.client("user:alice");
    let (id, _) = alice.insert_task("w1", "a").await;
    for payload in [
        json!({}),
        json!({ "archivedAt": null }),
        json!({ "archivedAt": "2026-01-01T00:00:00Z" }),
    ] {
        assert_eq!(
            task_error(&alice, "ARCHIVE", &id, payload).await,
            "archivedAt is required"
        );
    }
    // Fractions of a millisecond are truncated.
    alice
        .mutate_ok(tx(
            "a",
            "Task",
            &id,
            "ARCHIVE",
            json!({ "archivedAt": 1_795_632_180_123.9_f64 }),
        ))
        .await;
    assert_eq!(
        row(&alice, &id).await.expect("row")["archivedAt"],
        1_795_632_180_123_i64
    );
}

async fn unknown_models_and_unsupported_actions(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice = server.client("user:alice");
    assert_eq!(
        error_of(&alice, tx("u1", "Nope", &new_id(), "INSERT", json!({}))).await,
        "Unknown model \"Nope\""
    );
    let label = json!({ "taskId": new_id(), "labelId": new_id(), "workspaceId": "w1" });
    for (action, letter) in [("UPDATE", "U"), ("ARCHIVE", "A"), ("UNARCHIVE", "V")] {
        assert_eq!(
            error_of(
                &alice,
                tx(&new_id(), "TaskLabel", "x", action, label.clone())
            )
            .await,
            format!("Unsupported action \"{letter}\" for this model")
        );
    }
}

async fn composite_insert_and_delete(db: &TestDb) {
    let server = Fixture::on(db)
        .members(&[("alice", "w1"), ("bob", "w2")])
        .start()
        .await;
    let alice = server.client("user:alice");
    let bob = server.client("user:bob");
    let (task, label) = (new_id(), new_id());
    let composite = composite_id(&task, &label);
    let keys = json!({ "taskId": task, "labelId": label });

    assert_eq!(
        error_of(
            &bob,
            tx(
                "b1",
                "TaskLabel",
                "x",
                "INSERT",
                json!({ "taskId": task, "labelId": label, "workspaceId": "w1" })
            )
        )
        .await,
        "Access denied"
    );
    alice
        .mutate_ok(tx(
            "l1",
            "TaskLabel",
            "client-chosen",
            "INSERT",
            json!({ "taskId": task, "labelId": label, "workspaceId": "w1" }),
        ))
        .await;
    let log = actions(&alice).await;
    assert_eq!(
        log[0]["modelId"],
        composite.as_str(),
        "the canonical id, not the client's"
    );
    assert_eq!(log[0]["groupId"], "w1");
    assert_eq!(log[0]["data"]["taskId"], task.as_str());
    assert!(
        log[0]["data"].get("id").is_none(),
        "composite insert data holds the insert fields"
    );
    assert!(row(&alice, &composite).await.is_some());
    // Linking the pair again relinks it: logged again, as the row is
    // (protocol_mutate_moot.rs).
    alice
        .mutate_ok(tx(
            "l2",
            "TaskLabel",
            "x",
            "INSERT",
            json!({ "taskId": task, "labelId": label, "workspaceId": "w1" }),
        ))
        .await;
    let log = actions(&alice).await;
    assert_eq!(
        (log[1]["action"].clone(), log[1]["data"].clone()),
        (json!("I"), log[0]["data"].clone())
    );

    // Another group's caller cannot delete it, even by claiming their group.
    let mut lie = keys;
    lie["workspaceId"] = json!("w2");
    assert_eq!(
        error_of(&bob, tx("b2", "TaskLabel", "x", "DELETE", lie.clone())).await,
        NOT_FOUND
    );
    assert!(row(&alice, &composite).await.is_some());

    // Alice deletes it; the group comes from the stored row, not the payload.
    alice
        .mutate_ok(tx("l3", "TaskLabel", "x", "DELETE", lie))
        .await;
    assert!(row(&alice, &composite).await.is_none());
    let log = actions(&alice).await;
    assert_eq!(log[2]["action"], "D");
    assert_eq!(log[2]["groupId"], "w1");
    assert_eq!(log[2]["modelId"], composite.as_str());
    assert!(actions(&bob).await.is_empty(), "nothing leaked to w2");

    // Deleting a composite row that never existed is an error (one deleted
    // before answers its delete: protocol_mutate_deleted.rs).
    let never = json!({ "taskId": task, "labelId": new_id() });
    assert_eq!(
        error_of(&alice, tx("l4", "TaskLabel", "x", "DELETE", never)).await,
        NOT_FOUND
    );
}

async fn one_failure_does_not_stop_the_rest(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice = server.client("user:alice");
    let (first, second) = (new_id(), new_id());
    let payload = json!({ "title": "x", "priority": 1, "workspaceId": "w1" });
    let reply = alice
        .post(
            "/sync/mutate",
            &json!({ "batchId": "b1", "transactions": [
                tx("t1", "Task", &first, "INSERT", payload.clone()),
                tx("t2", "Task", &new_id(), "INSERT", json!({ "title": "x", "priority": 1, "workspaceId": "w9" })),
                tx("t3", "Task", &new_id(), "DELETE", json!({})),
                tx("t4", "Task", &second, "INSERT", payload),
            ]}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["success"], false);
    let results = reply.json["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    let outcome: Vec<(&str, bool)> = results
        .iter()
        .map(|r| {
            (
                r["clientTxId"].as_str().unwrap(),
                r["success"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcome,
        [("t1", true), ("t2", false), ("t3", false), ("t4", true)]
    );
    assert_eq!(results[1]["error"], "Access denied");
    assert_eq!(results[2]["error"], NOT_FOUND);
    assert!(results[1].get("syncId").is_none());
    let last: u64 = reply.json["lastSyncId"].as_str().unwrap().parse().unwrap();
    let fourth: u64 = results[3]["syncId"].as_str().unwrap().parse().unwrap();
    let first_id: u64 = results[0]["syncId"].as_str().unwrap().parse().unwrap();
    assert!(first_id < fourth, "processed in order");
    assert_eq!(last, fourth);
    assert!(row(&alice, &first).await.is_some() && row(&alice, &second).await.is_some());
}

async fn retries_are_deduplicated(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice = server.client("user:alice");
    let id = new_id();
    let insert = tx(
        "same",
        "Task",
        &id,
        "INSERT",
        json!({ "title": "x", "priority": 1, "workspaceId": "w1" }),
    );
    let first = alice.mutate_ok(insert.clone()).await;
    let again = alice.mutate_ok(insert).await;
    assert_eq!(first, again);
    // Even when the retry's content differs, the first outcome stands.
    let changed = tx("same", "Task", &id, "UPDATE", json!({ "title": "other" }));
    assert_eq!(alice.mutate_ok(changed).await, first);
    assert_eq!(actions(&alice).await.len(), 1);
    assert_eq!(row(&alice, &id).await.expect("row")["title"], "x");
    // The same clientTxId from another client is another transaction.
    let mut other = tx("same", "Task", &id, "UPDATE", json!({ "title": "y" }));
    other["clientId"] = json!("other-client");
    assert_ne!(alice.mutate_ok(other).await, first);
}

async fn body_validation(db: &TestDb) {
    let server = TestServer::start(db).await;
    let alice = server.client("user:alice");
    let good = tx(
        "t",
        "Task",
        &new_id(),
        "INSERT",
        json!({ "title": "x", "priority": 1, "workspaceId": "alice" }),
    );
    let without = |key: &str| {
        let mut t = good.clone();
        t.as_object_mut().unwrap().remove(key);
        json!({ "transactions": [t] })
    };
    let with = |key: &str, value: Value| {
        let mut t = good.clone();
        t[key] = value;
        json!({ "transactions": [t] })
    };
    let cases = [
        (json!({}), "transactions"),
        (json!({ "transactions": [] }), "transactions"),
        (json!({ "transactions": {} }), "transactions"),
        (
            json!({ "transactions": vec![good.clone(); 101] }),
            "transactions",
        ),
        (
            json!({ "batchId": 5, "transactions": [good.clone()] }),
            "batchId",
        ),
        (json!({ "transactions": [7] }), "transactions[0]"),
        (without("clientTxId"), "transactions[0].clientTxId"),
        (without("clientId"), "transactions[0].clientId"),
        (without("modelName"), "transactions[0].modelName"),
        (without("modelId"), "transactions[0].modelId"),
        (without("action"), "transactions[0].action"),
        (with("action", json!("UPSERT")), "transactions[0].action"),
        (with("action", json!("I")), "transactions[0].action"),
        (with("clientTxId", json!(4)), "transactions[0].clientTxId"),
        (with("modelName", json!("")), "transactions[0].modelName"),
        (with("modelId", json!("")), "transactions[0].modelId"),
        (with("payload", json!([1])), "transactions[0].payload"),
        (with("payload", json!("x")), "transactions[0].payload"),
        (json!("transactions"), "body"),
    ];
    for (body, field) in cases {
        assert_invalid_body(&alice.post("/sync/mutate", &body).await, field);
    }
    assert_invalid_body(
        &alice.post_raw("/sync/mutate", "{\"transactions\":").await,
        "body",
    );
    // A schema failure applies nothing, not even the valid transactions.
    let mut bad = good.clone();
    bad["action"] = json!("NOPE");
    let reply = alice
        .post(
            "/sync/mutate",
            &json!({ "transactions": [good.clone(), bad] }),
        )
        .await;
    assert_invalid_body(&reply, "transactions[1].action");
    assert!(actions(&alice).await.is_empty());
    // 100 transactions are fine.
    let many: Vec<Value> = (0..100)
        .map(|i| {
            tx(
                &format!("m{i}"),
                "Task",
                &new_id(),
                "INSERT",
                json!({ "title": "x", "priority": 1, "workspaceId": "alice" }),
            )
        })
        .collect();
    let reply = alice
        .post("/sync/mutate", &json!({ "transactions": many }))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["success"], true);
    // A null payload is an empty one.
    let reply = alice
        .mutate_one(with("payload", Value::Null)["transactions"][0].clone())
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

async fn after_mutation_hook_failures_are_warnings(db: &TestDb) {
    let seen: Arc<Mutex<Vec<MutationEvent>>> = Arc::default();
    let recorder = Arc::clone(&seen);
    let server = Fixture::on(db)
        .configure(move |builder| {
            builder.after_mutation(move |event: MutationEvent| {
                let recorder = Arc::clone(&recorder);
                async move {
                    let boom = event.action.data.get().contains("boom");
                    recorder.lock().unwrap().push(event);
                    if boom {
                        Err("the search index is down".into())
                    } else {
                        Ok(())
                    }
                }
            })
        })
        .members(&[("alice", "w1")])
        .start()
        .await;
    let alice = server.client("user:alice");
    let id = new_id();
    let boom = tx(
        "t1",
        "Task",
        &id,
        "INSERT",
        json!({ "title": "boom", "priority": 1, "workspaceId": "w1" }),
    );
    let reply = alice.mutate_one(boom.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let sync = reply.json["results"][0]["syncId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        reply.text,
        format!(
            r#"{{"lastSyncId":"{sync}","results":[{{"clientTxId":"t1","success":true,"syncId":"{sync}","warnings":["onAfterMutation hook failed: the search index is down"]}}],"success":true}}"#
        )
    );
    assert!(
        row(&alice, &id).await.is_some(),
        "the mutation stays applied"
    );
    let quiet = alice
        .mutate_one(tx("t2", "Task", &id, "UPDATE", json!({ "title": "fine" })))
        .await;
    assert!(
        quiet.json["results"][0].get("warnings").is_none(),
        "{}",
        quiet.text
    );
    // A failed transaction and a duplicate run no hook.
    error_of(&alice, tx("t3", "Task", &new_id(), "DELETE", json!({}))).await;
    alice.mutate_ok(boom).await;
    let events = seen.lock().unwrap().clone();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].user.user_id, "alice");
    assert_eq!(events[0].action.id.to_string(), sync);
    assert_eq!(events[0].action.action, "I");
    assert_eq!(events[1].action.action, "U");
}

async fn a_store_failure_is_a_500_without_database_text(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice = server.client("user:alice");
    let (id, _) = alice.insert_task("w1", "a").await;
    db.execute("DROP TABLE tasks").await;
    for t in [
        tx("f1", "Task", &id, "UPDATE", json!({ "title": "b" })),
        tx(
            "f2",
            "Task",
            &new_id(),
            "INSERT",
            json!({ "title": "b", "priority": 1, "workspaceId": "w1" }),
        ),
    ] {
        let reply = alice.mutate_one(t).await;
        assert_eq!(reply.status, 500, "{}", reply.text);
        assert_eq!(
            error_body(&reply.json),
            json!({ "error": "Internal server error" })
        );
    }
}

on_each_backend!(
    every_action_applies_and_logs,
    missing_rows_and_rows_of_other_groups_look_the_same,
    group_rules,
    codec_errors_name_the_field,
    archive_rules,
    unknown_models_and_unsupported_actions,
    composite_insert_and_delete,
    one_failure_does_not_stop_the_rest,
    retries_are_deduplicated,
    body_validation,
    after_mutation_hook_failures_are_warnings,
    a_store_failure_is_a_500_without_database_text,
);

/// Text no database column can hold (a NUL character) is a client mistake:
/// a per-transaction error naming the field, never a 500 the client would
/// retry forever.
async fn nul_characters_are_refused_per_transaction(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice = server.client("user:alice");
    let id = new_id();
    let insert = tx(
        "nul-insert",
        "Task",
        &id,
        "INSERT",
        json!({ "title": "a\u{0}b", "priority": 1, "workspaceId": "w1" }),
    );
    let reply = alice.mutate_one(insert).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json["results"][0]["error"],
        "Invalid value for title: expected a string without NUL characters"
    );

    let (task, _) = alice.insert_task("w1", "kept").await;
    let delete = tx(
        "nul-delete",
        "Task",
        &task,
        "DELETE",
        json!({ "note": "x\u{0}" }),
    );
    let reply = alice.mutate_one(delete).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json["results"][0]["error"],
        "Invalid mutation: the payload contains a NUL character"
    );
}

on_each_backend!(nul_characters_are_refused_per_transaction);

/// Identifiers with a NUL character are invalid request fields (400 naming
/// the field), not database failures.
async fn nul_characters_in_identifiers_are_validation_errors(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice = server.client("user:alice");
    let payload = json!({ "title": "t", "priority": 1, "workspaceId": "w1" });
    let reply = alice
        .mutate_one(tx("t\u{0}", "Task", &new_id(), "INSERT", payload.clone()))
        .await;
    assert_invalid_body(&reply, "transactions[0].clientTxId");
    let reply = alice
        .mutate_one(tx("t1", "Task", "x\u{0}", "UPDATE", payload))
        .await;
    assert_invalid_body(&reply, "transactions[0].modelId");
    let batch = json!({ "requests": [{ "modelName": "Task", "indexedKey": "workspaceId", "keyValue": "w\u{0}" }] });
    assert_invalid_body(
        &alice.post("/sync/batch", &batch).await,
        "requests[0].keyValue",
    );
}

on_each_backend!(nul_characters_in_identifiers_are_validation_errors);
