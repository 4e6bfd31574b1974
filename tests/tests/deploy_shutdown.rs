//! Graceful shutdown (issue 12, item 3): SIGTERM one of two real node
//! processes, joined by Redis, while clients write to it and subscribers
//! listen on it. Every acknowledged write is in the log, and reaches every
//! subscriber, who is closed with 1001 and resumes on the other node.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use stratasync::{Store, SyncId};
use stratasync_tests::harness::{Backend, TestDb, new_id, registry, tx};
use stratasync_tests::live::{Frame, Ws, delta_id, redis_addr, unique_channel};
use tokio::sync::watch;

const NODE: &str = env!("CARGO_BIN_EXE_sync_node");
const WRITERS: usize = 4;
const SUBSCRIBERS: usize = 3;

/// A node process, killed if the test ends before it exits.
struct Node {
    child: Child,
    url: String,
}

impl Node {
    fn start(database: &str, redis: &str, channel: &str) -> Node {
        let mut child = Command::new(NODE)
            .env("DATABASE_URL", database)
            .env("REDIS_URL", redis)
            .env("REDIS_CHANNEL", channel)
            .env("BIND", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a node");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the node's address");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Node { child, url }
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn until_ready(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(reply) = client.get(format!("{url}/sync/ready")).send().await
            && reply.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never became ready");
}

/// Writes tasks to `url` until a write fails or `stop` is set; returns the
/// acknowledged sync ids.
async fn writer(url: String, k: usize, stop: watch::Receiver<bool>) -> Vec<u64> {
    let client = reqwest::Client::new();
    let mut acknowledged = Vec::new();
    for i in 0.. {
        if *stop.borrow() {
            break;
        }
        let payload =
            serde_json::json!({ "title": format!("w{k}-{i}"), "priority": 1, "workspaceId": "w1" });
        let body = serde_json::json!({
            "batchId": new_id(),
            "transactions": [tx(&new_id(), "Task", &new_id(), "INSERT", payload)],
        });
        let reply = client
            .post(format!("{url}/sync/mutate"))
            .bearer_auth("user:alice")
            .json(&body)
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        let Ok(reply) = reply else { break };
        if reply.status() != 200 {
            break;
        }
        let Ok(json) = reply.json::<serde_json::Value>().await else {
            break;
        };
        assert_eq!(json["results"][0]["success"], true, "{json}");
        let id = json["results"][0]["syncId"].as_str().expect("syncId");
        acknowledged.push(id.parse().expect("digits"));
    }
    acknowledged
}

/// Listens on `first`; when closed, resumes on `second` from its cursor.
/// Stops once it has seen every id of `expected` (set when the writers are
/// done). Returns the ids received, in order, and the close code seen.
async fn subscriber(
    first: String,
    second: String,
    mut expected: watch::Receiver<Option<BTreeSet<u64>>>,
) -> (Vec<u64>, Option<u16>) {
    let mut ws = Ws::connect(&first, "user:alice").await;
    ws.subscribe("user:alice", "0", None).await;
    let (mut received, _) = ws.until_subscribed().await;
    let mut close = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let done = expected
            .borrow_and_update()
            .as_ref()
            .is_some_and(|all| all.iter().all(|id| received.contains(id)));
        if done || tokio::time::Instant::now() > deadline {
            return (received, close);
        }
        match ws.next_within(Duration::from_millis(200)).await {
            Frame::Json(frame) if frame["type"] == "delta" => received.push(delta_id(&frame)),
            Frame::Json(_) | Frame::Timeout => {}
            Frame::Close(code, _) if close.is_none() => {
                close = Some(code);
                let after = received.last().copied().unwrap_or(0).to_string();
                ws = Ws::connect(&second, "user:alice").await;
                ws.subscribe("user:alice", &after, None).await;
                let (replayed, _) = ws.until_subscribed().await;
                received.extend(replayed);
            }
            other => panic!("unexpected frame after failing over: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_loses_no_acknowledged_write() {
    let Some(db) = TestDb::create(Backend::Postgres).await else {
        return;
    };
    let Some(redis) = redis_addr().await else {
        db.drop_database().await;
        return;
    };
    let store = Store::connect(&db.url, registry()).await.expect("store");
    store
        .add_member("alice", "w1", "workspace")
        .await
        .expect("member");
    let channel = unique_channel();
    let redis = format!("redis://{redis}");
    let mut doomed = Node::start(&db.url, &redis, &channel);
    let survivor = Node::start(&db.url, &redis, &channel);
    until_ready(&doomed.url).await;
    until_ready(&survivor.url).await;

    let (expected_tx, expected_rx) = watch::channel(None);
    let subscribers: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| {
            tokio::spawn(subscriber(
                doomed.url.clone(),
                survivor.url.clone(),
                expected_rx.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await; // subscribed
    let (stop_tx, stop_rx) = watch::channel(false);
    let writers: Vec<_> = (0..WRITERS)
        .map(|k| tokio::spawn(writer(doomed.url.clone(), k, stop_rx.clone())))
        .collect();

    tokio::time::sleep(Duration::from_secs(1)).await; // under load
    doomed.terminate();
    let exited = tokio::task::spawn_blocking(move || {
        let status = doomed.child.wait().expect("wait");
        (status, doomed)
    });
    let (status, _doomed) = tokio::time::timeout(Duration::from_secs(25), exited)
        .await
        .expect("the node exits within the grace period")
        .expect("join");
    assert!(status.success(), "a graceful exit: {status}");
    stop_tx.send_replace(true);

    let mut acknowledged = BTreeSet::new();
    for writer in writers {
        acknowledged.extend(writer.await.expect("writer"));
    }
    assert!(acknowledged.len() >= 10, "load: {}", acknowledged.len());

    // Acknowledged means committed.
    let log: BTreeSet<u64> = store
        .read_actions(SyncId::ZERO, 1_000_000, None)
        .await
        .expect("log")
        .iter()
        .map(|action| action.id.get())
        .collect();
    assert!(
        acknowledged.is_subset(&log),
        "acknowledged but not committed"
    );

    expected_tx.send_replace(Some(acknowledged.clone()));
    for subscriber in subscribers {
        let (received, close) = subscriber.await.expect("subscriber");
        assert_eq!(close, Some(1001), "closed as going away");
        let missing: Vec<_> = acknowledged
            .iter()
            .filter(|id| !received.contains(id))
            .collect();
        assert!(missing.is_empty(), "missed {missing:?}");
        assert!(
            received.windows(2).all(|w| w[0] < w[1]),
            "in order, once each"
        );
    }
    drop(store);
    db.drop_database().await;
}
