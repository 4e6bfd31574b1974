//! Migrations under concurrency (issue 12, item 11): nodes rolled out
//! together on a fresh database all come up.

use stratasync_tests::harness::{TestDb, TestServer};
use stratasync_tests::on_each_backend;

/// Four nodes started at the same moment on a database without the sync
/// tables: every one migrates (or finds the migrations applied) and serves.
async fn four_nodes_started_at_once_all_come_up_and_serve(db: &TestDb) {
    let nodes = futures::future::join_all((0..4).map(|_| TestServer::start(db))).await;
    for node in &nodes {
        let reply = node.client("user:alice").get("/sync/bootstrap").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let (_, sync_id) = nodes[0]
        .client("user:alice")
        .insert_task("alice", "one")
        .await;
    let deltas = nodes[3]
        .client("user:alice")
        .get("/sync/deltas?after=0")
        .await;
    assert_eq!(deltas.status, 200, "{}", deltas.text);
    assert!(deltas.text.contains(&sync_id), "{}", deltas.text);
}

on_each_backend!(four_nodes_started_at_once_all_come_up_and_serve);
