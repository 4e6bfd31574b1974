//! The delivery checker (issue 3): several nodes on one PostgreSQL database
//! and one Redis, concurrent writers spread over the nodes, sockets over
//! groups spread over the nodes. At the end, each socket's received sequence
//! must equal the log filtered by its groups: 0 lost, 0 duplicated, 0 out
//! of order, nothing foreign. The same run passes with Redis cut in the
//! middle, and with a node stopped and its clients resuming elsewhere from
//! their cursor. A control run shows the checker catches a naive delivery.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stratasync_tests::harness::{Backend, TestDb, TestServer, run};
use stratasync_tests::live::{
    CuttableProxy, Frame, Verdict, Ws, check, delta_id, log_ids, redis_addr, unique_channel,
};
use tokio::sync::watch;

const NODES: usize = 3;
const WRITERS: usize = 16;
const WRITES_EACH: usize = 30;
const SOCKETS: usize = 64;
const GROUPS: usize = 8;

/// What happens in the middle of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disturbance {
    None,
    /// Redis is cut for a while, then restored.
    RedisOutage,
    /// The last node stops; its sockets resume on the others.
    NodeStop,
}

/// A deterministic pseudo-random sequence (no dependency needed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

fn group(i: usize) -> String {
    format!("w{i}")
}

/// The groups socket `s` holds: one or two workspaces and its own.
fn socket_groups(s: usize) -> Vec<String> {
    let mut groups = vec![group(s % GROUPS)];
    let second = group((s / GROUPS) % GROUPS);
    if !groups.contains(&second) {
        groups.push(second);
    }
    groups.push(format!("reader{s}"));
    groups
}

/// Which nodes are up.
type Alive = Arc<Vec<AtomicBool>>;

fn next_alive(alive: &Alive, from: usize) -> usize {
    (0..NODES)
        .map(|i| (from + i) % NODES)
        .find(|i| alive[*i].load(Ordering::SeqCst))
        .unwrap_or(0)
}

/// One writer: inserts and updates tasks in random groups through the
/// nodes, moving to another node when its own is down (the retry of a
/// transaction is idempotent).
async fn writer(k: usize, urls: Arc<Vec<String>>, alive: Alive) -> usize {
    let http = reqwest::Client::new();
    let mut rng = Lcg(k as u64 + 1);
    let mut mine: Vec<(String, String)> = Vec::new();
    let mut node = k % NODES;
    let mut committed = 0;
    for i in 0..WRITES_EACH {
        let tx = if mine.is_empty() || rng.next(3) > 0 {
            let id = uuid::Uuid::new_v4().to_string();
            let workspace = group(rng.next(GROUPS as u64) as usize);
            mine.push((id.clone(), workspace.clone()));
            json!({ "clientTxId": format!("w{k}-{i}"), "clientId": format!("writer{k}"), "modelName": "Task",
                    "modelId": id, "action": "INSERT",
                    "payload": { "title": format!("t{k}-{i}"), "priority": 1, "workspaceId": workspace } })
        } else {
            let (id, _) = &mine[rng.next(mine.len() as u64) as usize];
            json!({ "clientTxId": format!("w{k}-{i}"), "clientId": format!("writer{k}"), "modelName": "Task",
                    "modelId": id, "action": "UPDATE", "payload": { "title": format!("u{k}-{i}") } })
        };
        let body = json!({ "batchId": format!("b{k}-{i}"), "transactions": [tx] });
        loop {
            node = next_alive(&alive, node);
            let sent = http
                .post(format!("{}/sync/mutate", urls[node]))
                .bearer_auth(format!("user:writer{k}"))
                .json(&body)
                .timeout(Duration::from_secs(10))
                .send()
                .await;
            match sent {
                Ok(response) if response.status().is_success() => {
                    let reply: Value = response.json().await.expect("mutate reply");
                    assert_eq!(reply["success"], true, "{reply}");
                    committed += 1;
                    break;
                }
                _ => node = (node + 1) % NODES,
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    committed
}

/// One socket: subscribes on its home node from 0 and records every delta;
/// when its node closes it, resumes on another node from its cursor.
async fn socket(
    s: usize,
    urls: Arc<Vec<String>>,
    alive: Alive,
    progress: Arc<AtomicU64>,
    ready: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> (Vec<u64>, usize) {
    let token = format!("user:reader{s}");
    let mut node = s % NODES;
    let mut received: Vec<u64> = Vec::new();
    let mut reconnects = 0;
    let mut first = true;
    'connect: loop {
        node = next_alive(&alive, node);
        let Some(mut ws) = Ws::connect_opt(&urls[node], &token).await else {
            node = (node + 1) % NODES;
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let cursor = received.last().copied().unwrap_or(0);
        ws.subscribe(&token, &cursor.to_string(), None).await;
        loop {
            match ws.next_within(Duration::from_millis(100)).await {
                Frame::Json(frame) => match frame["type"].as_str() {
                    Some("delta") => {
                        let id = delta_id(&frame);
                        received.push(id);
                        progress.store(id, Ordering::SeqCst);
                    }
                    Some("subscribed") => {
                        if first {
                            ready.fetch_add(1, Ordering::SeqCst);
                            first = false;
                        }
                    }
                    _ => panic!("socket {s}: unexpected frame {frame}"),
                },
                Frame::Close(..) | Frame::Ended => {
                    reconnects += 1;
                    node = (node + 1) % NODES;
                    continue 'connect;
                }
                Frame::Timeout => {
                    if *stop.borrow_and_update() {
                        ws.close().await;
                        return (received, reconnects);
                    }
                }
            }
        }
    }
}

/// Runs the checker once; returns the summed verdict.
async fn checker_run(db: &TestDb, redis: &str, disturbance: Disturbance) -> Verdict {
    let proxy = CuttableProxy::start(redis.to_owned()).await;
    let channel = unique_channel();
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        let (url, channel) = (proxy.url.clone(), channel.clone());
        nodes.push(Some(
            TestServer::start_with(db, move |b| {
                b.redis_url(url)
                    .redis_channel(channel)
                    .poll_interval(Duration::from_millis(250))
            })
            .await,
        ));
    }
    let first = nodes[0].as_ref().expect("node 0");
    for k in 0..WRITERS {
        for g in 0..GROUPS {
            first.add_member(&format!("writer{k}"), &group(g)).await;
        }
    }
    for s in 0..SOCKETS {
        for g in socket_groups(s).iter().filter(|g| g.starts_with('w')) {
            first.add_member(&format!("reader{s}"), g).await;
        }
    }
    let urls: Arc<Vec<String>> = Arc::new(
        nodes
            .iter()
            .map(|n| n.as_ref().expect("node").url.clone())
            .collect(),
    );
    let alive: Alive = Arc::new((0..NODES).map(|_| AtomicBool::new(true)).collect());
    let (stop, stopping) = watch::channel(false);
    let ready = Arc::new(AtomicU64::new(0));
    let progress: Vec<Arc<AtomicU64>> = (0..SOCKETS).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let sockets: Vec<_> = (0..SOCKETS)
        .map(|s| {
            tokio::spawn(socket(
                s,
                Arc::clone(&urls),
                Arc::clone(&alive),
                Arc::clone(&progress[s]),
                Arc::clone(&ready),
                stopping.clone(),
            ))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ready.load(Ordering::SeqCst) < SOCKETS as u64 {
        assert!(Instant::now() < deadline, "sockets did not all subscribe");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|k| tokio::spawn(writer(k, Arc::clone(&urls), Arc::clone(&alive))))
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    match disturbance {
        Disturbance::None => {}
        Disturbance::RedisOutage => {
            proxy.cut();
            tokio::time::sleep(Duration::from_millis(1200)).await;
            proxy.restore();
        }
        Disturbance::NodeStop => {
            let last = NODES - 1;
            alive[last].store(false, Ordering::SeqCst);
            if let Some(node) = nodes[last].take() {
                node.server.shutdown();
                drop(node);
            }
        }
    }
    let mut written = 0;
    for w in writers {
        written += w.await.expect("writer");
    }
    let write_time = started.elapsed();
    assert_eq!(written, WRITERS * WRITES_EACH);

    let reader = nodes[0].as_ref().expect("node 0");
    let mut expected = Vec::with_capacity(SOCKETS);
    for s in 0..SOCKETS {
        expected.push(log_ids(&reader.server, &socket_groups(s), 0).await);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let behind = (0..SOCKETS)
            .filter(|s| {
                expected[*s]
                    .last()
                    .is_some_and(|last| progress[*s].load(Ordering::SeqCst) < *last)
            })
            .count();
        if behind == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let settle = started.elapsed();
    // A little longer, for any duplicate still in flight.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send_replace(true);
    let mut total = Verdict::default();
    let (mut delivered, mut reconnects) = (0, 0);
    for (s, task) in sockets.into_iter().enumerate() {
        let (received, again) = task.await.expect("socket");
        let verdict = check(&received, &expected[s]);
        if !verdict.is_clean() {
            eprintln!("socket {s}: {verdict:?}");
        }
        total.add(verdict);
        delivered += received.len();
        reconnects += again;
    }
    let actions = log_ids(&reader.server, &["none".to_owned()], 0).await.len();
    eprintln!(
        "checker {disturbance:?}: {written} writes ({actions} global actions) in {write_time:?}, all delivered \
         by {settle:?}; {delivered} deliveries to {SOCKETS} sockets, {reconnects} reconnects; {total:?}"
    );
    total
}

async fn postgres_with_redis(disturbance: Disturbance) {
    let Some(redis) = redis_addr().await else {
        return;
    };
    run(Backend::Postgres, |db| {
        Box::pin(async move {
            let verdict = checker_run(db, &redis, disturbance).await;
            assert!(verdict.is_clean(), "{verdict:?}");
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_deliver_every_action_once_in_order() {
    postgres_with_redis(Disturbance::None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_outage_in_the_middle_loses_nothing() {
    postgres_with_redis(Disturbance::RedisOutage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stopped_node_clients_resume_elsewhere_from_their_cursor() {
    postgres_with_redis(Disturbance::NodeStop).await;
}

/// Redis carries the pokes: with the poll set to a minute, a write on one
/// node reaches a socket on another only through Redis, also after Redis
/// was cut and restored (the subscriber reconnects and re-subscribes).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_subscriber_reconnects_after_an_outage() {
    let Some(redis) = redis_addr().await else {
        return;
    };
    run(Backend::Postgres, |db| {
        Box::pin(async move {
            let proxy = CuttableProxy::start(redis).await;
            let channel = unique_channel();
            let mut nodes = Vec::new();
            for _ in 0..2 {
                let (url, channel) = (proxy.url.clone(), channel.clone());
                nodes.push(
                    TestServer::start_with(db, move |b| {
                        b.redis_url(url)
                            .redis_channel(channel)
                            .poll_interval(Duration::from_secs(60))
                    })
                    .await,
                );
            }
            nodes[0].add_member("alice", "w1").await;
            let writer = nodes[0].client("user:alice");
            let mut ws = Ws::connect(&nodes[1].url, "user:alice").await;
            ws.subscribe("user:alice", "0", None).await;
            ws.until_subscribed().await;
            tokio::time::sleep(Duration::from_millis(300)).await; // subscribers up

            let (_, id) = writer.insert_task("w1", "through redis").await;
            assert_eq!(delta_id(&ws.next_delta().await).to_string(), id);

            proxy.cut();
            let (_, during) = writer.insert_task("w1", "during the outage").await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            proxy.restore();
            // Re-subscribing pokes the tailer, which finds what Redis lost.
            assert_eq!(delta_id(&ws.next_delta().await).to_string(), during);
            let (_, after) = writer.insert_task("w1", "after the outage").await;
            assert_eq!(delta_id(&ws.next_delta().await).to_string(), after);
        })
    })
    .await;
}

/// The control run: the same writers and readers against a deliberately
/// naive delivery, the original's: each action is published when its
/// mutation returns (completion order, with a little scheduling jitter),
/// and a socket drops what is not above its cursor. The checker must see
/// actions lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn control_naive_delivery_is_caught_by_the_checker() {
    run(Backend::Postgres, |db| {
        Box::pin(async move {
            let node = TestServer::start(db).await;
            for k in 0..WRITERS {
                for g in 0..GROUPS {
                    node.add_member(&format!("writer{k}"), &group(g)).await;
                }
            }
            let (bus, _) = tokio::sync::broadcast::channel::<(u64, String)>(100_000);
            let readers: Vec<_> = (0..SOCKETS)
                .map(|s| {
                    let mut rx = bus.subscribe();
                    tokio::spawn(async move {
                        let groups = socket_groups(s);
                        let (mut cursor, mut received) = (0, Vec::new());
                        while let Ok((id, group)) = rx.recv().await {
                            if groups.contains(&group) && id > cursor {
                                cursor = id;
                                received.push(id);
                            }
                        }
                        received
                    })
                })
                .collect();
            let urls = Arc::new(vec![node.url.clone(); NODES]);
            let alive: Alive = Arc::new((0..NODES).map(|_| AtomicBool::new(true)).collect());
            let writers: Vec<_> = (0..WRITERS)
                .map(|k| {
                    let (bus, node) = (bus.clone(), node.client(&format!("user:writer{k}")));
                    let _ = (&urls, &alive);
                    tokio::spawn(async move {
                        let mut rng = Lcg(k as u64 + 7);
                        for i in 0..WRITES_EACH {
                            let workspace = group(rng.next(GROUPS as u64) as usize);
                            let (_, id) = node.insert_task(&workspace, &format!("t{k}-{i}")).await;
                            // Post-commit publication: scheduling decides the order.
                            tokio::time::sleep(Duration::from_micros(rng.next(2_000))).await;
                            let _ = bus.send((id.parse().expect("id"), workspace));
                        }
                    })
                })
                .collect();
            for w in writers {
                w.await.expect("writer");
            }
            drop(bus);
            let mut total = Verdict::default();
            for (s, reader) in readers.into_iter().enumerate() {
                let received = reader.await.expect("reader");
                total.add(check(
                    &received,
                    &log_ids(&node.server, &socket_groups(s), 0).await,
                ));
            }
            eprintln!("control (naive delivery): {total:?}");
            assert!(
                total.lost > 0,
                "the checker must catch the naive delivery: {total:?}"
            );
        })
    })
    .await;
}
