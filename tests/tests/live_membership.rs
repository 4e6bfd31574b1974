//! Membership changes over live sockets (PROTOCOL §11): a user added to a
//! group sees the `G` action, then that group's deltas; removed, no more.

use serde_json::json;
use stratasync_tests::harness::{Fixture, TestDb};
use stratasync_tests::live::{Ws, delta_id};
use stratasync_tests::on_each_backend;

async fn added_then_removed(db: &TestDb) {
    let server = Fixture::on(db).members(&[("bob", "w1")]).start().await;
    let bob = server.client("user:bob");
    bob.insert_task("w1", "before alice").await;

    let mut ws = Ws::connect(&server.url, "user:alice").await;
    ws.subscribe("user:alice", "0", None).await;
    let (replayed, ack) = ws.until_subscribed().await;
    assert!(replayed.is_empty());
    assert_eq!(ack["groups"], json!(["alice"]));
    bob.insert_task("w1", "not for alice yet").await;
    // The next frame, the G action below, is the control: the w1 delta
    // never came before it.

    let added = server
        .server
        .add_member("alice", "w1")
        .await
        .expect("add")
        .expect("new membership");
    let frame = ws.next_delta().await;
    let action = &frame["packet"]["actions"][0];
    assert_eq!(action["action"], "G");
    assert_eq!(action["groupId"], "alice");
    assert_eq!(action["modelId"], "alice");
    assert_eq!(
        action["data"],
        json!({ "subscribedSyncGroups": ["w1", "alice"] })
    );
    assert_eq!(delta_id(&frame), added.id.get());
    assert!(
        server
            .server
            .add_member("alice", "w1")
            .await
            .expect("add again")
            .is_none(),
        "already a member"
    );

    let (_, seen) = bob.insert_task("w1", "for alice").await;
    assert_eq!(delta_id(&ws.next_delta().await).to_string(), seen);

    let removed = server
        .server
        .remove_member("alice", "w1")
        .await
        .expect("remove")
        .expect("was a member");
    let frame = ws.next_delta().await;
    assert_eq!(delta_id(&frame), removed.id.get());
    assert_eq!(
        frame["packet"]["actions"][0]["data"],
        json!({ "subscribedSyncGroups": ["alice"] })
    );
    bob.insert_task("w1", "not for alice any more").await;
    // Still served: the next frame is alice's own next action, not bob's.
    let alice = server.client("user:alice");
    let (_, control) = alice.insert_task("alice", "mine").await;
    assert_eq!(delta_id(&ws.next_delta().await).to_string(), control);
    assert!(
        server
            .server
            .remove_member("alice", "w1")
            .await
            .expect("remove again")
            .is_none()
    );

    // A socket that named its groups is never widened by a membership.
    let mut narrow = Ws::connect(&server.url, "user:carol").await;
    narrow.subscribe("user:carol", "0", Some(&["carol"])).await;
    narrow.until_subscribed().await;
    server
        .server
        .add_member("carol", "w1")
        .await
        .expect("add carol");
    assert_eq!(
        narrow.next_delta().await["packet"]["actions"][0]["action"],
        "G"
    );
    bob.insert_task("w1", "carol did not ask for w1").await;
    let carol = server.client("user:carol");
    let (_, control) = carol.insert_task("carol", "hers").await;
    assert_eq!(delta_id(&narrow.next_delta().await).to_string(), control);
}

async fn replay_across_a_removal_does_not_widen(db: &TestDb) {
    let server = Fixture::on(db).members(&[("bob", "w1")]).start().await;
    let bob = server.client("user:bob");
    server.server.add_member("alice", "w1").await.expect("add");
    let (_, inside) = bob.insert_task("w1", "while a member").await;
    server
        .server
        .remove_member("alice", "w1")
        .await
        .expect("remove");
    bob.insert_task("w1", "after removal").await;

    // Replaying from 0 passes the old G (added); alice holds no w1 now.
    let mut ws = Ws::connect(&server.url, "user:alice").await;
    ws.subscribe("user:alice", "0", None).await;
    let (ids, ack) = ws.until_subscribed().await;
    assert_eq!(ack["groups"], json!(["alice"]));
    assert!(
        !ids.contains(&inside.parse::<u64>().expect("id")),
        "{ids:?}"
    );
    assert_eq!(ids.len(), 2, "the two G actions only: {ids:?}");
}

on_each_backend!(added_then_removed, replay_across_a_removal_does_not_widen);
