//! Scheduled retention (issue 12, item 8): the log is trimmed in the
//! background, one node at a time on PostgreSQL, and clients behind the
//! trim are told to bootstrap again.

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use stratasync::{RETENTION_LOCK_KEY, SyncId};
use stratasync_tests::harness::{Backend, Fixture, TestDb, TestServer};
use stratasync_tests::on_each_backend;

/// Waits until the oldest action kept is `oldest` (up to five seconds).
async fn until_oldest(node: &TestServer, oldest: u64) {
    let mut last = None;
    for _ in 0..100 {
        last = node
            .server
            .store()
            .log_bounds()
            .await
            .expect("bounds")
            .oldest;
        if last == Some(SyncId::new(oldest)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the oldest action is {last:?}, not {oldest}");
}

async fn start(db: &TestDb) -> TestServer {
    Fixture::on(db)
        .configure(|b| {
            b.retain_actions(3)
                .retention_interval(Duration::from_millis(50))
        })
        .members(&[("alice", "w1")])
        .start()
        .await
}

async fn write(node: &TestServer, count: usize) -> Vec<u64> {
    let mut ids = Vec::new();
    for i in 0..count {
        let (_, id) = node
            .client("user:alice")
            .insert_task("w1", &format!("t{i}"))
            .await;
        ids.push(id.parse().expect("digits"));
    }
    ids
}

/// With `retain_actions(3)` the log keeps the newest three actions; a
/// client whose cursor is behind them must bootstrap again.
async fn the_log_keeps_the_newest_actions(db: &TestDb) {
    let node = start(db).await;
    let ids = write(&node, 6).await;
    until_oldest(&node, ids[3]).await;
    let stale = node
        .client("user:alice")
        .get(&format!("/sync/deltas?after={}", ids[0]))
        .await;
    assert_eq!(stale.status, 409, "{}", stale.text);
    assert_eq!(stale.json["error"], "BOOTSTRAP_REQUIRED", "{}", stale.text);
    let current = node
        .client("user:alice")
        .get(&format!("/sync/deltas?after={}", ids[3]))
        .await;
    assert_eq!(current.status, 200, "{}", current.text);
}

on_each_backend!(the_log_keeps_the_newest_actions);

/// While another session holds the retention lock, no node trims; once it
/// is released, one does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_node_at_a_time_trims_under_the_advisory_lock() {
    let Some(db) = TestDb::create(Backend::Postgres).await else {
        return;
    };
    let mut holder = AsyncPgConnection::establish(&db.url)
        .await
        .expect("connect");
    holder
        .batch_execute(&format!("SELECT pg_advisory_lock({RETENTION_LOCK_KEY})"))
        .await
        .expect("lock");
    let node = start(&db).await;
    let ids = write(&node, 6).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // ten rounds
    let bounds = node.server.store().log_bounds().await.expect("bounds");
    assert_eq!(bounds.oldest, Some(SyncId::new(ids[0])), "nothing trimmed");
    holder
        .batch_execute(&format!("SELECT pg_advisory_unlock({RETENTION_LOCK_KEY})"))
        .await
        .expect("unlock");
    until_oldest(&node, ids[3]).await;
    drop(node);
    drop(holder);
    db.drop_database().await;
}
