//! PROTOCOL §2 and §11: a node keeps each user's groups between requests,
//! and a membership change reaches the user's next request on every node:
//! at once on the node that made it, and on another node as soon as that
//! node has read the `G` action from the log.

use std::time::Duration;

use serde_json::json;
use stratasync::{Limits, SyncServerBuilder};
use stratasync_tests::harness::{Backend, Client, Fixture, TestDb, TestServer, new_id, run, tx};
use stratasync_tests::live::{Ws, delta_id, redis_addr, unique_channel};
use stratasync_tests::on_each_backend;

/// A node that keeps groups for ten minutes, so that only a `G` action can
/// explain a change it answers, and reads the log often.
fn keeping(builder: SyncServerBuilder) -> SyncServerBuilder {
    let mut limits = Limits::default();
    limits.group_cache_ttl = Duration::from_secs(600);
    builder
        .limits(limits)
        .poll_interval(Duration::from_millis(50))
}

/// Two nodes on `db`, bob a member of `w1`.
async fn two_nodes(db: &TestDb) -> (TestServer, TestServer) {
    let first = Fixture::on(db)
        .members(&[("bob", "w1")])
        .configure(keeping)
        .start()
        .await;
    let second = Fixture::on(db).configure(keeping).start().await;
    (first, second)
}

/// Whether `client` may write to `group`: an insert succeeds, or is denied.
async fn may_write(client: &Client, group: &str) -> bool {
    let payload = json!({ "title": "probe", "priority": 1, "workspaceId": group });
    let reply = client
        .mutate_one(tx(&new_id(), "Task", &new_id(), "INSERT", payload))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let result = &reply.json["results"][0];
    if result["success"] == true {
        return true;
    }
    assert_eq!(result["error"], "Access denied", "{}", reply.text);
    false
}

/// Whether `client`'s bootstrap of `group` holds the task `id`.
async fn reads(client: &Client, group: &str, id: &str) -> bool {
    let reply = client
        .get(&format!("/sync/bootstrap?syncGroups={group}"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.text.contains(id)
}

/// A socket of `user` on `node`, subscribed from the log's start.
async fn socket(node: &TestServer, user: &str) -> Ws {
    let token = format!("user:{user}");
    let mut ws = Ws::connect(&node.url, &token).await;
    ws.subscribe(&token, "0", None).await;
    ws.until_subscribed().await;
    ws
}

/// Reads `ws` until the delta of `id`: its node has read `id` from the log.
async fn until_read(ws: &mut Ws, id: u64) {
    while delta_id(&ws.next_delta().await) < id {}
}

async fn a_removed_member_is_refused_at_the_next_request_on_every_node(db: &TestDb) {
    let (first, second) = two_nodes(db).await;
    first.server.add_member("alice", "w1").await.expect("add");
    let (task, _) = first.client("user:bob").insert_task("w1", "shared").await;
    // Both nodes answer alice, and so keep her groups.
    for node in [&first, &second] {
        let alice = node.client("user:alice");
        assert!(may_write(&alice, "w1").await);
        assert!(reads(&alice, "w1", &task).await);
    }
    let mut watching = socket(&second, "carol").await;

    let removed = first
        .server
        .remove_member("alice", "w1")
        .await
        .expect("remove")
        .expect("was a member");
    let alice = first.client("user:alice");
    assert!(!may_write(&alice, "w1").await, "the node that removed her");
    assert!(!reads(&alice, "w1", &task).await);

    // carol's socket sees the log as the second node reads it: once it has
    // passed the G action, so has the node.
    let (_, after) = first.client("user:carol").insert_task("carol", "c").await;
    until_read(&mut watching, after.parse().expect("id")).await;
    assert!(removed.id.get() < after.parse::<u64>().expect("id"));
    let alice = second.client("user:alice");
    assert!(!may_write(&alice, "w1").await, "the other node");
    assert!(!reads(&alice, "w1", &task).await);
}

async fn a_join_is_seen_at_the_next_request_on_every_node(db: &TestDb) {
    let (first, second) = two_nodes(db).await;
    let (task, _) = first.client("user:bob").insert_task("w1", "shared").await;
    for node in [&first, &second] {
        let alice = node.client("user:alice");
        assert!(!may_write(&alice, "w1").await);
        assert!(!reads(&alice, "w1", &task).await);
    }
    let mut watching = socket(&second, "carol").await;

    first
        .server
        .add_member("alice", "w1")
        .await
        .expect("add")
        .expect("a new membership");
    let alice = first.client("user:alice");
    assert!(reads(&alice, "w1", &task).await, "the node that added her");
    assert!(may_write(&alice, "w1").await);

    let (_, after) = first.client("user:carol").insert_task("carol", "c").await;
    until_read(&mut watching, after.parse().expect("id")).await;
    let alice = second.client("user:alice");
    assert!(reads(&alice, "w1", &task).await, "the other node");
    assert!(may_write(&alice, "w1").await);
}

/// With the streams of several nodes a node reads only the shards of the
/// groups it serves: while it keeps a user's groups it reads the user's
/// personal group, so the `G` action of a removal reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_removal_reaches_a_node_of_the_streams() {
    let Some(redis) = redis_addr().await else {
        return;
    };
    run(Backend::Postgres, |db| {
        Box::pin(async move {
            let channel = unique_channel();
            let streams = |builder: SyncServerBuilder| {
                keeping(builder)
                    .redis_url(format!("redis://{redis}"))
                    .redis_channel(channel.clone())
            };
            let first = Fixture::on(db)
                .members(&[("bob", "w1")])
                .configure(streams)
                .start()
                .await;
            let second = Fixture::on(db).configure(streams).start().await;
            first.server.add_member("alice", "w1").await.expect("add");
            let alice = second.client("user:alice");
            assert!(may_write(&alice, "w1").await);
            first
                .server
                .remove_member("alice", "w1")
                .await
                .expect("remove");
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while may_write(&alice, "w1").await {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the second node still lets alice write to w1"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    })
    .await;
}

/// A membership written without a `G` action, with SQL, is answered from
/// what the node kept until the time limit.
async fn a_change_without_a_g_action_waits_for_the_time_limit(db: &TestDb) {
    let server = Fixture::on(db)
        .members(&[("alice", "w1")])
        .configure(|builder| {
            let mut limits = Limits::default();
            limits.group_cache_ttl = Duration::from_secs(2);
            builder.limits(limits)
        })
        .start()
        .await;
    let alice = server.client("user:alice");
    let start = std::time::Instant::now();
    assert!(may_write(&alice, "w1").await);
    // Kept between `start` and now.
    let kept_by = std::time::Instant::now();
    db.execute("DELETE FROM sync_group_memberships WHERE user_id = 'alice'")
        .await;
    let still = may_write(&alice, "w1").await;
    if start.elapsed() < Duration::from_millis(1900) {
        assert!(still, "kept within the time limit");
    }
    tokio::time::sleep_until((kept_by + Duration::from_secs(2)).into()).await;
    assert!(!may_write(&alice, "w1").await, "past the time limit");
}

on_each_backend!(
    a_removed_member_is_refused_at_the_next_request_on_every_node,
    a_join_is_seen_at_the_next_request_on_every_node,
    a_change_without_a_g_action_waits_for_the_time_limit,
);
