//! PROTOCOL §7 as the client needs it (docs/protocol.md, "Moot writes"): a
//! write to a row that a committed delete removed is moot: nothing is
//! applied, a delete of the row is logged with the write's clientTxId, and
//! the answer is a success with that delete's syncId whose warning names the
//! action that settled the row. The client then neither rolls its own change
//! back over that action nor re-applies it over a later one. A link
//! of a composite pair that is linked already is a relink: logged as an
//! insert of the row as it is, answered with its syncId ("Relinks").

use serde_json::{Value, json};
use stratasync_tests::harness::{Client, Fixture, TestDb, new_id, tx};
use stratasync_tests::on_each_backend;
use stratasync_tests::protocol::composite_id;

const NOT_FOUND: &str = "Invalid mutation: record not found";

/// Every action visible to `client`.
async fn actions(client: &Client) -> Vec<Value> {
    let reply = client.get("/sync/deltas?after=0&limit=5000").await;
    reply.json["actions"].as_array().expect("actions").clone()
}

/// The one result of a one-transaction request, checked to be a 200.
async fn result_of(client: &Client, tx: Value) -> (Value, Value) {
    let reply = client.mutate_one(tx).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    (reply.json["results"][0].clone(), reply.json)
}

async fn writes_to_a_deleted_row_answer_the_delete(db: &TestDb) {
    let server = Fixture::on(db)
        .members(&[("alice", "w1"), ("bob", "w1")])
        .start()
        .await;
    let alice = server.client("user:alice");
    let bob = server.client("user:bob");
    let (id, _) = alice.insert_task("w1", "shared").await;
    let deleted = bob
        .mutate_ok(tx(
            "bob-d",
            "Task",
            &id,
            "DELETE",
            json!({ "title": "shared" }),
        ))
        .await;

    // Alice has not seen bob's delete yet: each of her writes is moot, and
    // names the latest delete of the row (bob's, then her previous one's).
    let mut answered: Vec<String> = Vec::new();
    for (n, (action, payload)) in [
        ("UPDATE", json!({ "title": "too late" })),
        ("ARCHIVE", json!({ "archivedAt": 1_795_632_180_000_i64 })),
        ("UNARCHIVE", json!({})),
        ("DELETE", json!({ "title": "shared" })),
    ]
    .into_iter()
    .enumerate()
    {
        let client_tx_id = format!("alice-{n}");
        let (result, body) =
            result_of(&alice, tx(&client_tx_id, "Task", &id, action, payload)).await;
        let sync_id = result["syncId"].as_str().unwrap_or_default().to_owned();
        let settled_by = answered.last().unwrap_or(&deleted);
        assert_eq!(
            body,
            json!({
                "lastSyncId": sync_id,
                "results": [{
                    "clientTxId": client_tx_id,
                    "success": true,
                    "syncId": sync_id,
                    "warnings": [format!(
                        "The record was already deleted (by syncId {settled_by}); nothing was applied"
                    )],
                }],
                "success": true,
            }),
            "{action} of a row bob deleted answers bob's delete"
        );
        answered.push(sync_id);
    }
    let log = actions(&alice).await;
    let logged: Vec<(&str, &str, &str)> = log
        .iter()
        .map(|a| {
            (
                a["syncId"].as_str().unwrap(),
                a["action"].as_str().unwrap(),
                a["clientTxId"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        logged[1..],
        [
            (deleted.as_str(), "D", "bob-d"),
            (answered[0].as_str(), "D", "alice-0"),
            (answered[1].as_str(), "D", "alice-1"),
            (answered[2].as_str(), "D", "alice-2"),
            (answered[3].as_str(), "D", "alice-3"),
        ],
        "each moot write logs a delete of the row under its own clientTxId, nothing else"
    );
    assert!(
        log.iter().all(|a| a["groupId"] == "w1"),
        "in the group of the delete"
    );
    assert_eq!(log[2]["data"], json!({}), "a moot delete carries no data");
    let rows = alice.get("/sync/bootstrap").await.lines();
    assert_eq!(rows.len(), 1, "the row stays deleted: {rows:?}");

    // Asked again, the same transaction gets the same syncId.
    let (again, body) = result_of(
        &alice,
        tx(
            "alice-0",
            "Task",
            &id,
            "UPDATE",
            json!({ "title": "too late" }),
        ),
    )
    .await;
    assert_eq!(
        (again["success"].clone(), again["syncId"].clone()),
        (json!(true), json!(answered[0])),
        "{body}"
    );
    assert_eq!(
        actions(&alice).await.len(),
        log.len(),
        "a retry logs nothing"
    );
}

async fn a_delete_the_caller_cannot_see_stays_not_found(db: &TestDb) {
    let server = Fixture::on(db)
        .members(&[("alice", "w1"), ("bob", "w2")])
        .start()
        .await;
    let alice = server.client("user:alice");
    let bob = server.client("user:bob");
    let (theirs, _) = bob.insert_task("w2", "secret").await;
    bob.mutate_ok(tx("bob-d", "Task", &theirs, "DELETE", json!({})))
        .await;
    let never = new_id();
    for target in [theirs.as_str(), never.as_str()] {
        let (result, body) = result_of(
            &alice,
            tx(&new_id(), "Task", target, "UPDATE", json!({ "title": "x" })),
        )
        .await;
        assert_eq!(
            (result["success"].clone(), result["error"].clone()),
            (json!(false), json!(NOT_FOUND)),
            "another group's delete leaks nothing, a row that never existed is not found: {body}"
        );
    }
}

async fn a_composite_row_unlinked_before_answers_the_unlink(db: &TestDb) {
    let server = Fixture::on(db)
        .members(&[("alice", "w1"), ("bob", "w1")])
        .start()
        .await;
    let alice = server.client("user:alice");
    let bob = server.client("user:bob");
    let (task, label) = (new_id(), new_id());
    let keys = json!({ "taskId": task, "labelId": label, "workspaceId": "w1" });

    // A pair that was never linked: strict, as before.
    let (result, body) = result_of(
        &alice,
        tx("never", "TaskLabel", "x", "DELETE", keys.clone()),
    )
    .await;
    assert_eq!(result["error"], NOT_FOUND, "{body}");

    alice
        .mutate_ok(tx("link", "TaskLabel", "x", "INSERT", keys.clone()))
        .await;
    let unlinked = bob
        .mutate_ok(tx("bob-unlink", "TaskLabel", "x", "DELETE", keys.clone()))
        .await;
    let (result, body) = result_of(
        &alice,
        tx("alice-unlink", "TaskLabel", "x", "DELETE", keys.clone()),
    )
    .await;
    assert_eq!(
        (result["success"].clone(), result["warnings"][0].clone()),
        (
            json!(true),
            json!(format!(
                "The record was already deleted (by syncId {unlinked}); nothing was applied"
            ))
        ),
        "unlinking an unlinked pair answers the unlink: {body}"
    );
    let moot = result["syncId"].as_str().unwrap_or_default();
    let pair = composite_id(&task, &label);
    assert_eq!(
        pair_log(&alice, &pair).await,
        [
            ("I".to_owned(), "link".to_owned()),
            ("D".to_owned(), "bob-unlink".to_owned()),
            ("D".to_owned(), "alice-unlink".to_owned()),
        ],
        "the moot unlink logs a delete of the pair (by its key fields, not the id sent)"
    );
    assert_ne!(moot, unlinked.as_str());

    // Linked again, the pair is an ordinary row once more.
    alice
        .mutate_ok(tx("relink", "TaskLabel", "x", "INSERT", keys.clone()))
        .await;
    let again = alice
        .mutate_ok(tx("unlink-again", "TaskLabel", "x", "DELETE", keys))
        .await;
    assert_ne!(again, unlinked, "a real delete logs its own action");
}

/// The (action, clientTxId) of every action on the pair `pair`, in log order.
async fn pair_log(client: &Client, pair: &str) -> Vec<(String, String)> {
    actions(client)
        .await
        .iter()
        .filter(|a| a["modelId"] == pair)
        .map(|a| {
            (
                a["action"].as_str().unwrap().to_owned(),
                a["clientTxId"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn linking_a_linked_pair_relinks_it(db: &TestDb) {
    let server = Fixture::on(db)
        .members(&[("alice", "w1"), ("bob", "w1"), ("carol", "w2")])
        .start()
        .await;
    let alice = server.client("user:alice");
    let bob = server.client("user:bob");
    let carol = server.client("user:carol");
    let (task, label) = (new_id(), new_id());
    let pair = composite_id(&task, &label);
    let keys = json!({ "taskId": task, "labelId": label, "workspaceId": "w1" });
    let linked = alice
        .mutate_ok(tx("alice-link", "TaskLabel", "x", "INSERT", keys.clone()))
        .await;

    // Bob links the same pair before he has seen alice's link: logged again,
    // as the row is, under his clientTxId, and answered with its syncId.
    let (result, body) = result_of(
        &bob,
        tx("bob-link", "TaskLabel", "x", "INSERT", keys.clone()),
    )
    .await;
    let relinked = result["syncId"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        (result["success"].clone(), result.get("warnings")),
        (json!(true), None),
        "{body}"
    );
    assert!(relinked.parse::<u64>().unwrap() > linked.parse::<u64>().unwrap());
    assert_eq!(
        pair_log(&alice, &pair).await,
        [
            ("I".to_owned(), "alice-link".to_owned()),
            ("I".to_owned(), "bob-link".to_owned())
        ]
    );
    let log = actions(&alice).await;
    assert_eq!(
        log[1]["data"], log[0]["data"],
        "the relink logs the row as it is"
    );
    // A retry is the same relink.
    let (retry, body) = result_of(
        &bob,
        tx("bob-link", "TaskLabel", "x", "INSERT", keys.clone()),
    )
    .await;
    assert_eq!(retry["syncId"], relinked.as_str(), "{body}");
    assert_eq!(pair_log(&alice, &pair).await.len(), 2);

    // Outside the group, nothing changes: no access, and no syncId leaks.
    let (result, body) =
        result_of(&carol, tx("carol-link", "TaskLabel", "x", "INSERT", keys)).await;
    assert_eq!(
        (result["success"].clone(), result["error"].clone()),
        (json!(false), json!("Access denied")),
        "{body}"
    );
    let theirs = json!({ "taskId": task, "labelId": label, "workspaceId": "w2" });
    let (result, body) =
        result_of(&carol, tx("carol-own", "TaskLabel", "x", "INSERT", theirs)).await;
    assert_eq!(
        result["error"], "Invalid mutation: record already exists",
        "{body}"
    );
    assert_eq!(pair_log(&alice, &pair).await.len(), 2);
}

/// Two clients link one pair at once: the insert that waited on the other's
/// uncommitted link relinks it once it is committed, instead of being
/// refused as a row that exists (which the client would roll back over the
/// other client's link).
async fn concurrent_links_of_a_pair_both_apply(db: &TestDb) {
    let server = Fixture::on(db)
        .members(&[("alice", "w1"), ("bob", "w1")])
        .start()
        .await;
    let alice = server.client("user:alice");
    let bob = server.client("user:bob");
    for n in 0..20 {
        let (task, label) = (new_id(), new_id());
        // The canonical id, as the client sends it: the group-commit path
        // finds an earlier link of the pair in its group by it.
        let pair = composite_id(&task, &label);
        let keys = json!({ "taskId": task, "labelId": label, "workspaceId": "w1" });
        let (a, b) = tokio::join!(
            alice.mutate_one(tx(
                &format!("a{n}"),
                "TaskLabel",
                &pair,
                "INSERT",
                keys.clone()
            )),
            bob.mutate_one(tx(&format!("b{n}"), "TaskLabel", &pair, "INSERT", keys)),
        );
        for reply in [a, b] {
            assert_eq!(reply.json["results"][0]["success"], true, "{}", reply.text);
            assert!(
                reply.json["results"][0]["syncId"].is_string(),
                "{}",
                reply.text
            );
        }
    }
}

/// An unlink and a relink of one pair at once: the log ends as the table
/// does. When the relink is logged last, the pair is linked, and unlinking
/// it applies (a relink that did not wait for the unlink logged an insert of
/// a row the table no longer had).
async fn a_relink_racing_an_unlink_ends_as_the_table(db: &TestDb) {
    let server = Fixture::on(db)
        .members(&[("alice", "w1"), ("bob", "w1")])
        .start()
        .await;
    let alice = server.client("user:alice");
    let bob = server.client("user:bob");
    for n in 0..20 {
        let (task, label) = (new_id(), new_id());
        let pair = composite_id(&task, &label);
        let keys = json!({ "taskId": task, "labelId": label, "workspaceId": "w1" });
        alice
            .mutate_ok(tx(
                &format!("link{n}"),
                "TaskLabel",
                &pair,
                "INSERT",
                keys.clone(),
            ))
            .await;
        tokio::join!(
            alice.mutate_one(tx(
                &format!("unlink{n}"),
                "TaskLabel",
                &pair,
                "DELETE",
                keys.clone()
            )),
            bob.mutate_one(tx(
                &format!("relink{n}"),
                "TaskLabel",
                &pair,
                "INSERT",
                keys.clone()
            )),
        );
        let log = pair_log(&alice, &pair).await;
        if log.last().is_some_and(|(action, _)| action == "I") {
            let (result, body) = result_of(
                &alice,
                tx(&format!("check{n}"), "TaskLabel", &pair, "DELETE", keys),
            )
            .await;
            assert!(result["syncId"].is_string(), "{log:?}: {body}");
        }
    }
}

/// A link and its unlink in one request, of a pair another client linked:
/// a relink, then the unlink, both logged in order. Two links of one pair in
/// one request: the second relinks the first, on the group-commit path as
/// on the single one.
async fn links_within_one_request(db: &TestDb) {
    let server = Fixture::on(db)
        .members(&[("alice", "w1"), ("bob", "w1")])
        .start()
        .await;
    let alice = server.client("user:alice");
    let bob = server.client("user:bob");
    let (task, label) = (new_id(), new_id());
    let pair = composite_id(&task, &label);
    let keys = json!({ "taskId": task, "labelId": label, "workspaceId": "w1" });
    alice
        .mutate_ok(tx("alice-link", "TaskLabel", &pair, "INSERT", keys.clone()))
        .await;
    let reply = bob
        .post(
            "/sync/mutate",
            &json!({ "batchId": "b", "transactions": [
                tx("bob-link", "TaskLabel", &pair, "INSERT", keys.clone()),
                tx("bob-unlink", "TaskLabel", &pair, "DELETE", keys.clone()),
            ] }),
        )
        .await;
    assert_eq!(reply.json["success"], true, "{}", reply.text);
    let results = reply.json["results"].as_array().unwrap();
    assert!(
        results.iter().all(|r| r["syncId"].is_string()),
        "{}",
        reply.text
    );

    let reply = bob
        .post(
            "/sync/mutate",
            &json!({ "batchId": "b2", "transactions": [
                tx("link-1", "TaskLabel", &pair, "INSERT", keys.clone()),
                tx("link-2", "TaskLabel", &pair, "INSERT", keys),
            ] }),
        )
        .await;
    assert_eq!(reply.json["success"], true, "{}", reply.text);
    let letters = pair_log(&alice, &pair).await;
    let expected: Vec<(String, String)> = [
        ("I", "alice-link"),
        ("I", "bob-link"),
        ("D", "bob-unlink"),
        ("I", "link-1"),
        ("I", "link-2"),
    ]
    .iter()
    .map(|&(a, t)| (a.to_owned(), t.to_owned()))
    .collect();
    assert_eq!(letters, expected);
    let log = actions(&alice).await;
    assert_eq!(
        log[4]["data"], log[3]["data"],
        "the relink logs link-1's row"
    );
}

/// Several transactions of one request (one group commit on PostgreSQL):
/// the moot one answers the delete and logs its own, the others apply and
/// log as usual.
async fn a_moot_write_in_a_batch_leaves_the_rest_alone(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice = server.client("user:alice");
    let (gone, _) = alice.insert_task("w1", "gone").await;
    let deleted = alice
        .mutate_ok(tx(&new_id(), "Task", &gone, "DELETE", json!({})))
        .await;
    let fresh = new_id();
    let reply = alice
        .post(
            "/sync/mutate",
            &json!({ "batchId": "b", "transactions": [
                tx("m1", "Task", &gone, "UPDATE", json!({ "title": "moot" })),
                tx("m2", "Task", &fresh, "INSERT", json!({ "title": "new", "priority": 1, "workspaceId": "w1" })),
                tx("m3", "Task", &new_id(), "UPDATE", json!({ "title": "never existed" })),
            ] }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let results = reply.json["results"].as_array().unwrap();
    let moot = results[0]["syncId"].as_str().unwrap_or_default();
    assert_eq!(
        (
            results[0]["success"].clone(),
            results[0]["warnings"][0].clone()
        ),
        (
            json!(true),
            json!(format!(
                "The record was already deleted (by syncId {deleted}); nothing was applied"
            ))
        ),
        "{}",
        reply.text
    );
    assert_eq!(results[1]["success"], true, "{}", reply.text);
    assert_eq!(results[2]["error"], NOT_FOUND, "{}", reply.text);
    assert_eq!(reply.json["success"], false);
    assert_eq!(
        reply.json["lastSyncId"], results[1]["syncId"],
        "the highest success"
    );
    let logged: Vec<(String, String)> = actions(&alice)
        .await
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap().to_owned(),
                a["syncId"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let letters: Vec<&str> = logged.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(letters, ["I", "D", "D", "I"]);
    assert_eq!(logged[2].1, moot, "m1's own delete, before m2's insert");
}

/// The client's view of the race this answer exists for: a client unlinks a
/// pair another client has just unlinked and links it again, in one request.
/// Its unlink is moot; had it no syncId of its own, the client would wait
/// for the link's id, and when that delta came before the answer it
/// re-applied the pending unlink over the link and lost the pair. Logged,
/// the unlink's delta settles it before the link's delta arrives.
async fn a_moot_unlink_and_a_link_in_one_request_settle_in_order(db: &TestDb) {
    let server = Fixture::on(db)
        .members(&[("alice", "w1"), ("bob", "w1")])
        .start()
        .await;
    let alice = server.client("user:alice");
    let bob = server.client("user:bob");
    let (task, label) = (new_id(), new_id());
    let pair = composite_id(&task, &label);
    let keys = json!({ "taskId": task, "labelId": label, "workspaceId": "w1" });
    alice
        .mutate_ok(tx("link", "TaskLabel", &pair, "INSERT", keys.clone()))
        .await;
    bob.mutate_ok(tx("bob-unlink", "TaskLabel", &pair, "DELETE", keys.clone()))
        .await;
    let reply = alice
        .post(
            "/sync/mutate",
            &json!({ "batchId": "b", "transactions": [
                tx("alice-unlink", "TaskLabel", &pair, "DELETE", keys.clone()),
                tx("alice-link", "TaskLabel", &pair, "INSERT", keys),
            ] }),
        )
        .await;
    assert_eq!(reply.json["success"], true, "{}", reply.text);
    let results = reply.json["results"].as_array().unwrap();
    let ids: Vec<u64> = results
        .iter()
        .map(|r| {
            r["syncId"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .unwrap_or(0)
        })
        .collect();
    assert!(
        ids[0] > 0 && ids[0] < ids[1],
        "each has its own syncId, in request order: {}",
        reply.text
    );
    assert_eq!(
        pair_log(&alice, &pair).await,
        [
            ("I".to_owned(), "link".to_owned()),
            ("D".to_owned(), "bob-unlink".to_owned()),
            ("D".to_owned(), "alice-unlink".to_owned()),
            ("I".to_owned(), "alice-link".to_owned()),
        ]
    );
    let rows = alice.get("/sync/bootstrap").await.lines();
    assert!(
        rows.iter().any(|row| row["taskId"] == task.as_str()),
        "the pair is linked, as the log ends: {rows:?}"
    );
}

on_each_backend!(
    writes_to_a_deleted_row_answer_the_delete,
    a_delete_the_caller_cannot_see_stays_not_found,
    a_composite_row_unlinked_before_answers_the_unlink,
    linking_a_linked_pair_relinks_it,
    concurrent_links_of_a_pair_both_apply,
    a_relink_racing_an_unlink_ends_as_the_table,
    links_within_one_request,
    a_moot_write_in_a_batch_leaves_the_rest_alone,
    a_moot_unlink_and_a_link_in_one_request_settle_in_order,
);
