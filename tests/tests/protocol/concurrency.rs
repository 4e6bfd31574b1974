//! Where we beat the original, with real concurrent requests: duplicate
//! retries applied once, bootstrap + deltas = server state under concurrent
//! writes, and a polling reader that never misses a late-committing id.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use serde_json::{Map, Value, json};
use stratasync_tests::harness::{Client, Fixture, TestDb, TestServer, new_id, tx};
use stratasync_tests::on_each_backend;
use tokio::sync::Barrier;

/// Every action visible to `client` after `after`, paging like the client.
async fn all_actions(client: &Client, mut after: u64) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let reply = client
            .get(&format!("/sync/deltas?after={after}&limit=5000"))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        out.extend(
            reply.json["actions"]
                .as_array()
                .expect("actions")
                .iter()
                .cloned(),
        );
        let last: u64 = reply.json["lastSyncId"].as_str().unwrap().parse().unwrap();
        if last == after || reply.json["hasMore"] == false {
            return out;
        }
        after = last;
    }
}

async fn concurrent_duplicate_retries_apply_once(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice = server.client("user:alice");
    let (target, _) = alice.insert_task("w1", "t").await;
    let (gone, _) = alice.insert_task("w1", "gone").await;
    alice
        .mutate_ok(tx(&new_id(), "Task", &gone, "DELETE", json!({})))
        .await;
    for round in 0..6 {
        let id = new_id();
        let transaction = match round % 3 {
            0 => tx(
                &format!("dup-{round}"),
                "Task",
                &id,
                "INSERT",
                json!({ "title": "once", "priority": 1, "workspaceId": "w1" }),
            ),
            1 => tx(
                &format!("dup-{round}"),
                "Task",
                &target,
                "UPDATE",
                json!({ "title": format!("round {round}") }),
            ),
            // Moot: the delete it logs is logged once too.
            _ => tx(
                &format!("dup-{round}"),
                "Task",
                &gone,
                "UPDATE",
                json!({ "title": "too late" }),
            ),
        };
        let retries = 6;
        let barrier = Arc::new(Barrier::new(retries));
        let mut tasks = Vec::new();
        for _ in 0..retries {
            // A client each: separate connections, really concurrent.
            let client = server.client("user:alice");
            let (barrier, transaction) = (Arc::clone(&barrier), transaction.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                client.mutate_one(transaction).await
            }));
        }
        let mut sync_ids = BTreeSet::new();
        for task in tasks {
            let reply = task.await.expect("task");
            assert_eq!(reply.status, 200, "{}", reply.text);
            assert_eq!(reply.json["success"], true, "round {round}: {}", reply.text);
            assert_eq!(reply.json["results"][0]["success"], true, "{}", reply.text);
            sync_ids.insert(
                reply.json["results"][0]["syncId"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        assert_eq!(
            sync_ids.len(),
            1,
            "round {round}: every retry answers the same syncId: {sync_ids:?}"
        );
        let log = all_actions(&server.client("user:alice"), 0).await;
        let applied = log
            .iter()
            .filter(|a| a["clientTxId"] == format!("dup-{round}"))
            .count();
        assert_eq!(applied, 1, "round {round}: applied once");
        assert_eq!(
            log.last().unwrap()["syncId"].as_str().unwrap(),
            sync_ids.first().unwrap()
        );
    }
}

/// The rows of a bootstrap, by id.
type Rows = BTreeMap<String, Map<String, Value>>;

/// Applies one delta to bootstrapped rows, as a client does.
fn apply(rows: &mut Rows, action: &Value) {
    let id = action["modelId"].as_str().expect("modelId").to_owned();
    let data = action["data"].as_object().cloned().unwrap_or_default();
    match action["action"].as_str().expect("action") {
        "I" => {
            let mut row = Map::new();
            row.insert("__class".into(), action["modelName"].clone());
            row.extend(data);
            row.insert("id".into(), Value::String(id.clone()));
            if action["modelName"] == "Task" {
                row.entry("archivedAt").or_insert(Value::Null);
            }
            rows.insert(id, row);
        }
        "U" | "A" | "V" => {
            let row = rows
                .get_mut(&id)
                .unwrap_or_else(|| panic!("delta {action} for a row the client lacks"));
            row.extend(data);
        }
        "D" => {
            rows.remove(&id)
                .unwrap_or_else(|| panic!("delete {action} of a row the client lacks"));
        }
        other => panic!("unexpected action {other}"),
    }
}

/// Reads a bootstrap slowly (pausing between chunks) so that writes land
/// while its snapshot is open; returns lastSyncId and the rows.
async fn slow_bootstrap(server: &TestServer, token: &str) -> (u64, Rows) {
    let response = reqwest::Client::new()
        .get(format!("{}/sync/bootstrap", server.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("bootstrap");
    assert_eq!(response.status().as_u16(), 200);
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.expect("chunk"));
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let text = String::from_utf8(body).expect("utf-8");
    let mut lines = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json line"));
    let meta = lines.next().expect("metadata");
    let last = meta["lastSyncId"].as_str().unwrap().parse().unwrap();
    let rows = lines
        .map(|line| {
            assert_ne!(line["type"], "error", "{line}");
            let row = line.as_object().unwrap().clone();
            (row["id"].as_str().unwrap().to_owned(), row)
        })
        .collect();
    (last, rows)
}

/// One writer: updates, archives, inserts and deletes tasks and labels of
/// `w1` until `stop`.
async fn writer(client: Client, seeded: Vec<String>, n: usize, stop: Arc<AtomicBool>) -> usize {
    let mut mine: Vec<String> = Vec::new();
    let mut labels: Vec<Value> = Vec::new();
    let mut step = 0_usize;
    while !stop.load(Ordering::Relaxed) {
        step += 1;
        let pick = seeded[(step * 7 + n * 13) % seeded.len()].clone();
        let t = match step % 9 {
            0 | 1 => tx(
                &new_id(),
                "Task",
                &pick,
                "UPDATE",
                json!({ "title": format!("w{n} s{step}"), "priority": step % 7 }),
            ),
            2 => tx(
                &new_id(),
                "Task",
                &pick,
                "UPDATE",
                json!({ "completedAt": 1_795_632_180_000_i64 + step as i64, "dueOn": null }),
            ),
            3 => tx(
                &new_id(),
                "Task",
                &pick,
                "ARCHIVE",
                json!({ "archivedAt": 1_795_632_180_000_i64 + step as i64 }),
            ),
            4 => tx(&new_id(), "Task", &pick, "UNARCHIVE", json!({})),
            5 => {
                let id = new_id();
                mine.push(id.clone());
                tx(
                    &new_id(),
                    "Task",
                    &id,
                    "INSERT",
                    json!({ "title": "new", "priority": 1, "workspaceId": "w1", "dueOn": 1_795_564_800_000_i64 }),
                )
            }
            6 if !mine.is_empty() => tx(&new_id(), "Task", &mine.remove(0), "DELETE", json!({})),
            7 => {
                let keys = json!({ "taskId": pick, "labelId": new_id(), "workspaceId": "w1" });
                labels.push(keys.clone());
                tx(&new_id(), "TaskLabel", "x", "INSERT", keys)
            }
            8 if !labels.is_empty() => tx(&new_id(), "TaskLabel", "x", "DELETE", labels.remove(0)),
            _ => tx(&new_id(), "Task", &pick, "UPDATE", json!({ "title": "x" })),
        };
        let reply = client.mutate_one(t).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json["success"], true, "{}", reply.text);
    }
    step
}

async fn bootstrap_then_deltas_equals_server_state_under_writes(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    db.seed_tasks("w1", 3_000, 7).await;
    let seeded: Vec<String> = (1..=40)
        .map(|g| format!("{g:08x}-0007-4000-8000-000000000000"))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|n| {
            tokio::spawn(writer(
                server.client("user:alice"),
                seeded.clone(),
                n,
                Arc::clone(&stop),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Several bootstraps, each overlapping the writes.
    let mut snapshots = Vec::new();
    for _ in 0..3 {
        snapshots.push(slow_bootstrap(&server, "user:alice").await);
    }
    stop.store(true, Ordering::Relaxed);
    let mut steps = 0;
    for w in writers {
        steps += w.await.expect("writer");
    }
    assert!(steps > 40, "the writers wrote ({steps})");

    let (final_last, final_rows) = slow_bootstrap(&server, "user:alice").await;
    let alice = server.client("user:alice");
    let mut advanced = 0;
    for (last, mut rows) in snapshots {
        let deltas = all_actions(&alice, last).await;
        if !deltas.is_empty() {
            advanced += 1;
        }
        for action in &deltas {
            apply(&mut rows, action);
        }
        let reached = deltas
            .last()
            .map_or(last, |a| a["syncId"].as_str().unwrap().parse().unwrap());
        assert_eq!(reached, final_last);
        assert_eq!(rows.len(), final_rows.len());
        for (id, row) in &final_rows {
            assert_eq!(
                rows.get(id),
                Some(row),
                "row {id} differs after bootstrap at {last} + {} deltas",
                deltas.len()
            );
        }
    }
    assert!(
        advanced > 0,
        "writes happened after some bootstrap's snapshot"
    );
}

async fn a_polling_reader_never_misses_an_id(db: &TestDb) {
    let server = Fixture::on(db)
        .members(&[("alice", "w1"), ("alice", "w2"), ("alice", "w3")])
        .start()
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (client, stop) = (server.client("user:alice"), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut cursor = 0_u64;
            let mut finishing = false;
            loop {
                let reply = client
                    .get(&format!("/sync/deltas?after={cursor}&limit=7"))
                    .await;
                assert_eq!(reply.status, 200, "{}", reply.text);
                for action in reply.json["actions"].as_array().unwrap() {
                    seen.push(action["syncId"].as_str().unwrap().parse::<u64>().unwrap());
                }
                cursor = reply.json["lastSyncId"].as_str().unwrap().parse().unwrap();
                if reply.json["hasMore"] == false {
                    if finishing {
                        return seen;
                    }
                    if stop.load(Ordering::Relaxed) {
                        // One more full pass after the writers are done.
                        finishing = true;
                    }
                }
            }
        })
    };
    let barrier = Arc::new(Barrier::new(8));
    let writers: Vec<_> = (0..8)
        .map(|n| {
            let (client, barrier) = (server.client("user:alice"), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                for i in 0..25 {
                    let group = ["w1", "w2", "w3"][(n + i) % 3];
                    // Bigger payloads take longer to commit: ids race.
                    let title = "x".repeat((n * 977 + i * 131) % 4000);
                    client
                        .mutate_ok(tx(
                            &new_id(),
                            "Task",
                            &new_id(),
                            "INSERT",
                            json!({ "title": title, "priority": i, "workspaceId": group }),
                        ))
                        .await;
                }
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer");
    }
    stop.store(true, Ordering::Relaxed);
    let seen = reader.await.expect("reader");
    let log: Vec<u64> = all_actions(&server.client("user:alice"), 0)
        .await
        .iter()
        .map(|a| a["syncId"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(log.len(), 200);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "ascending, no repeats"
    );
    assert_eq!(
        seen, log,
        "the polling reader saw every id of the final log"
    );
}

on_each_backend!(
    concurrent_duplicate_retries_apply_once,
    bootstrap_then_deltas_equals_server_state_under_writes,
    a_polling_reader_never_misses_an_id,
);
