//! `GET /sync/ws` (PROTOCOL §8): every frame and close code, on each backend.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use stratasync::{
    Auth, AuthUser, BoxError, LiveContext, LiveHooks, LiveSocket, SyncId, TokenError,
};
use stratasync_tests::harness::{Fixture, TestAuth, TestDb, TestServer};
use stratasync_tests::live::{Frame, Ws, delta_id, fill_log};
use stratasync_tests::on_each_backend;

/// How long a socket must stay silent where nothing may arrive (each such
/// wait is followed by a frame that must arrive).
const QUIET: Duration = Duration::from_millis(300);

async fn upgrade_needs_a_valid_token(db: &TestDb) {
    let server = TestServer::start(db).await;
    let missing = Ws::try_connect(&server.url, None)
        .await
        .expect_err("no token");
    assert_eq!(missing, (401, json!({ "error": "Token required" })));
    let empty = Ws::try_connect(&server.url, Some(""))
        .await
        .expect_err("empty token");
    assert_eq!(empty, (401, json!({ "error": "Token required" })));
    let bad = Ws::try_connect(&server.url, Some("nonsense"))
        .await
        .expect_err("bad token");
    assert_eq!(bad, (401, json!({ "error": "Invalid token" })));
    Ws::connect(&server.url, "user:alice").await.close().await;
}

async fn replay_then_ack_then_live(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice = server.client("user:alice");
    let (_, first) = alice.insert_task("w1", "one").await;
    let (_, second) = alice.insert_task("w1", "two").await;

    let mut ws = Ws::connect(&server.url, "user:alice").await;
    ws.subscribe("user:alice", "0", None).await;
    let replayed = ws.next_delta().await;
    assert_eq!(replayed["packet"]["lastSyncId"], first.as_str());
    let action = &replayed["packet"]["actions"][0];
    let keys: Vec<&str> = action
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "action",
            "clientId",
            "clientTxId",
            "createdAt",
            "data",
            "groupId",
            "modelId",
            "modelName",
            "syncId"
        ]
    );
    assert_eq!(action["action"], "I");
    assert_eq!(action["groupId"], "w1");
    assert_eq!(action["syncId"], first.as_str());
    assert_eq!(delta_id(&ws.next_delta().await).to_string(), second);
    let ack = ws.next().await.json();
    assert_eq!(
        ack,
        json!({ "afterSyncId": second, "groups": ["w1", "alice"], "type": "subscribed" })
    );

    let (_, third) = alice.insert_task("w1", "three").await;
    assert_eq!(delta_id(&ws.next_delta().await).to_string(), third);
    // Each action once: the next frame is the next action, no second copy
    // of the third before it.
    let (_, fourth) = alice.insert_task("w1", "four").await;
    assert_eq!(delta_id(&ws.next_delta().await).to_string(), fourth);
}

async fn null_keys_are_present_in_frames(db: &TestDb) {
    let server = TestServer::start(db).await;
    let mut ws = Ws::connect(&server.url, "user:alice").await;
    ws.subscribe("user:alice", "0", None).await;
    let (_, ack) = ws.until_subscribed().await;
    assert_eq!(ack["afterSyncId"], "0");
    server
        .server
        .add_member("alice", "w1")
        .await
        .expect("add member");
    let frame = ws.next_delta().await;
    let action = &frame["packet"]["actions"][0];
    assert_eq!(action["action"], "G");
    assert_eq!(action["clientId"], Value::Null);
    assert_eq!(action["clientTxId"], Value::Null);
    assert_eq!(action["groupId"], "alice");
}

async fn bad_subscribe_shapes_and_other_frames(db: &TestDb) {
    let server = TestServer::start(db).await;
    let mut ws = Ws::connect(&server.url, "user:alice").await;
    ws.send_text("not json").await;
    ws.send_text("[1,2]").await;
    ws.send_json(&json!({ "type": "yjs_update", "doc": "d" }))
        .await;
    for bad in [
        json!({ "type": "subscribe" }),
        json!({ "type": "subscribe", "token": 5 }),
        json!({ "type": "subscribe", "token": "user:alice", "afterSyncId": 5 }),
        json!({ "type": "subscribe", "token": "user:alice", "afterSyncId": "x" }),
        json!({ "type": "subscribe", "token": "user:alice", "groups": "w1" }),
    ] {
        ws.send_json(&bad).await;
        assert_eq!(
            ws.next().await.json(),
            json!({ "message": "Authentication required", "type": "error" }),
            "{bad}"
        );
    }
    // Still open and usable; afterSyncId may be absent.
    ws.send_json(&json!({ "type": "subscribe", "token": "user:alice" }))
        .await;
    let (ids, ack) = ws.until_subscribed().await;
    assert!(ids.is_empty());
    assert_eq!(ack["type"], "subscribed");
}

async fn refused_token_in_subscribe_keeps_socket_open(db: &TestDb) {
    let server = TestServer::start(db).await;
    let mut ws = Ws::connect(&server.url, "user:alice").await;
    ws.subscribe("nonsense", "0", None).await;
    assert_eq!(
        ws.next().await.json(),
        json!({ "message": "Invalid token", "type": "error" })
    );
    ws.subscribe("expired:alice", "0", None).await;
    assert_eq!(
        ws.next().await.json(),
        json!({ "message": "Token expired", "type": "error" })
    );
    ws.subscribe("user:alice", "0", None).await;
    let (_, ack) = ws.until_subscribed().await;
    assert_eq!(ack["groups"], json!(["alice"]));
}

async fn group_failure_closes_1011(db: &TestDb) {
    let server = TestServer::start(db).await;
    let mut ws = Ws::connect(&server.url, "user:broken1").await;
    ws.subscribe("user:broken1", "0", None).await;
    assert_eq!(
        ws.next().await.json(),
        json!({ "message": "Failed to resolve sync groups", "type": "error" })
    );
    assert_eq!(
        ws.next().await,
        Frame::Close(1011, "Failed to resolve sync groups".into())
    );
}

async fn resubscribe_with_a_new_cursor(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice = server.client("user:alice");
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            alice
                .insert_task("w1", &format!("t{i}"))
                .await
                .1
                .parse::<u64>()
                .expect("id"),
        );
    }
    let mut ws = Ws::connect(&server.url, "user:alice").await;
    ws.subscribe("user:alice", "0", None).await;
    assert_eq!(ws.until_subscribed().await.0, ids);
    // Back to an older cursor: the session resets and replays from there.
    ws.subscribe("user:alice", &ids[1].to_string(), None).await;
    let (replayed, ack) = ws.until_subscribed().await;
    assert_eq!(replayed, ids[2..]);
    assert_eq!(ack["afterSyncId"], ids[4].to_string());
    // Narrower groups on the same socket.
    ws.subscribe("user:alice", "0", Some(&["alice"])).await;
    let (replayed, ack) = ws.until_subscribed().await;
    assert!(replayed.is_empty(), "{replayed:?}");
    assert_eq!(
        ack,
        json!({ "afterSyncId": "0", "groups": ["alice"], "type": "subscribed" })
    );
    alice.insert_task("w1", "unseen").await;
    // The socket is still served, and the w1 action never came before the
    // next action of its groups.
    let (_, control) = alice.insert_task("alice", "seen").await;
    assert_eq!(delta_id(&ws.next_delta().await).to_string(), control);
}

async fn groups_not_held_are_dropped(db: &TestDb) {
    let server = Fixture::on(db)
        .members(&[("alice", "w1"), ("bob", "w2")])
        .start()
        .await;
    let (_, w1) = server.client("user:alice").insert_task("w1", "mine").await;
    server
        .client("user:bob")
        .insert_task("w2", "not mine")
        .await;

    let mut ws = Ws::connect(&server.url, "user:alice").await;
    ws.subscribe("user:alice", "0", Some(&["w2", "w1"])).await;
    let (ids, ack) = ws.until_subscribed().await;
    assert_eq!(ids, [w1.parse::<u64>().expect("id")]);
    assert_eq!(ack["groups"], json!(["w1"]));

    // Only groups not held: nothing, never widened.
    ws.subscribe("user:alice", "0", Some(&["w2"])).await;
    let (ids, ack) = ws.until_subscribed().await;
    assert!(ids.is_empty());
    assert_eq!(ack["groups"], json!([]));
    let mut bobs = Ws::connect(&server.url, "user:bob").await;
    bobs.subscribe("user:bob", "0", None).await;
    bobs.until_subscribed().await;
    let (_, foreign) = server
        .client("user:bob")
        .insert_task("w2", "still not mine")
        .await;
    // The w2 action went out live (bob's socket has it), and within a
    // while alice's socket got nothing.
    assert_eq!(delta_id(&bobs.next_delta().await).to_string(), foreign);
    assert_eq!(ws.next_within(QUIET).await, Frame::Timeout);
    // Then the control: no group of this socket can receive anything, so it
    // is the next subscribe's acknowledgement (from the foreign id: nothing
    // to replay), proving the socket is still served with nothing before it.
    ws.subscribe("user:alice", &foreign, Some(&["w1"])).await;
    let (ids, ack) = ws.until_subscribed().await;
    assert_eq!(ids, Vec::<u64>::new());
    assert_eq!(ack["groups"], json!(["w1"]));
}

async fn stale_cursor_requires_bootstrap(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice = server.client("user:alice");
    let (_, first) = alice.insert_task("w1", "trimmed").await;
    let (_, second) = alice.insert_task("w1", "trimmed too").await;
    let (_, third) = alice.insert_task("w1", "kept").await;
    let third: u64 = third.parse().expect("id");
    server
        .server
        .store()
        .trim_before(SyncId::new(third))
        .await
        .expect("trim");

    let mut ws = Ws::connect(&server.url, "user:alice").await;
    ws.subscribe("user:alice", "0", None).await;
    assert_eq!(
        ws.until_subscribed().await.0,
        [third],
        "a cursor at 0 is never stale"
    );
    ws.subscribe("user:alice", &first, None).await;
    assert_eq!(
        ws.next().await.json(),
        json!({
            "code": "BOOTSTRAP_REQUIRED",
            "message": "A fresh bootstrap is required before subscribing to deltas",
            "type": "error"
        })
    );
    // Nothing is delivered after the refusal, and the socket stays open:
    // the next subscribe (from the last trimmed id, which has lost nothing)
    // replays exactly the two actions after it, with no live copy before.
    let (_, after) = alice.insert_task("w1", "after").await;
    ws.subscribe("user:alice", &second, None).await;
    assert_eq!(
        ws.until_subscribed().await.0,
        [third, after.parse::<u64>().expect("id")]
    );
}

async fn replay_buffer_overflow_closes_4008(db: &TestDb) {
    let server = Fixture::on(db)
        .configure(|b| {
            // A stalled replay waits for the client as long as the test may
            // take on a loaded machine: it ends in BUFFER_OVERFLOW, not in
            // SLOW_CONSUMER.
            b.replay_buffer_limit(3)
                .poll_interval(Duration::from_millis(20))
                .outgoing_queue(1024, Duration::from_secs(120))
        })
        .members(&[("alice", "w1")])
        .start()
        .await;
    // More than the socket buffers hold, so the replay stalls on a client
    // that does not read.
    fill_log(db, "w1", 6_000, 2_000).await;
    let mut ws = Ws::connect_small_buffer(&server.url, "user:alice", 4096).await;
    ws.subscribe("user:alice", "0", None).await;
    // A second socket, already caught up, shows when the node has delivered
    // the next actions live.
    let mut watcher = Ws::connect(&server.url, "user:alice").await;
    watcher.subscribe("user:alice", "6000", None).await;
    watcher.until_subscribed().await;
    // While the replay is stalled, more live actions arrive than the bound.
    fill_log(db, "w1", 50, 10).await;
    for _ in 0..50 {
        watcher.next_delta().await;
    }
    let reading = async {
        let mut deltas = 0;
        loop {
            match ws.next().await {
                Frame::Json(frame) if frame["type"] == "delta" => deltas += 1,
                Frame::Json(frame) => return (deltas, frame, ws.next().await),
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    let (_deltas, error, close) = reading.await;
    assert_eq!(
        error,
        json!({ "code": "BUFFER_OVERFLOW", "message": "Replay buffer limit exceeded", "type": "error" })
    );
    assert_eq!(
        close,
        Frame::Close(4008, "Replay buffer limit exceeded".into())
    );
    // The first frame that is not a delta is the error, not `subscribed`:
    // the replay never caught up. (How many deltas went out before the bound
    // was hit depends on timing, so it is not asserted.)
}

async fn slow_consumer_is_told_and_closed(db: &TestDb) {
    let recorder = Recorder::default();
    let hooks = recorder.clone();
    let server = Fixture::on(db)
        .configure(move |b| {
            b.outgoing_queue(16, Duration::from_millis(300))
                .live_hooks(hooks)
        })
        .members(&[("alice", "w1")])
        .start()
        .await;
    fill_log(db, "w1", 6_000, 2_000).await;
    let mut ws = Ws::connect_small_buffer(&server.url, "user:alice", 4096).await;
    ws.subscribe("user:alice", "0", None).await;
    // Do not read until the server gave up on this socket.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !recorder
        .0
        .lock()
        .expect("lock")
        .iter()
        .any(|c| c.starts_with("close"))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the socket was never closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut last = 0;
    let ending = loop {
        match ws.next().await {
            Frame::Json(frame) if frame["type"] == "delta" => {
                let id = delta_id(&frame);
                assert!(id > last, "ascending");
                last = id;
            }
            other => break other,
        }
    };
    assert_eq!(
        ending,
        Frame::Json(
            json!({ "code": "SLOW_CONSUMER", "message": "Outgoing queue limit exceeded", "type": "error" })
        )
    );
    assert_eq!(
        ws.next().await,
        Frame::Close(4008, "Outgoing queue limit exceeded".into())
    );
    // It resumes from its cursor and gets the rest.
    assert!(last < 6_000, "closed before the end of the replay");
    let mut ws = Ws::connect(&server.url, "user:alice").await;
    ws.subscribe("user:alice", &last.to_string(), None).await;
    let (rest, _) = ws.until_subscribed().await;
    assert_eq!(
        rest,
        (last + 1..=6_000).collect::<Vec<u64>>(),
        "the rest, once, in order"
    );
}

/// A burst of live deltas to a socket whose client stopped reading: the
/// session drains the bus into the socket's bounded queue, and the socket is
/// closed as a slow consumer within the timeout, not served to the end.
async fn live_burst_to_a_socket_that_stopped_reading_closes_4008_in_time(db: &TestDb) {
    let slow = Duration::from_millis(500);
    let recorder = Recorder::default();
    let hooks = recorder.clone();
    let server = Fixture::on(db)
        .configure(move |b| {
            b.outgoing_queue(64, slow)
                .poll_interval(Duration::from_millis(20))
                .live_hooks(hooks)
        })
        .members(&[("alice", "w1")])
        .start()
        .await;
    let mut ws = Ws::connect_small_buffer(&server.url, "user:alice", 4096).await;
    ws.subscribe("user:alice", "0", None).await;
    ws.until_subscribed().await;
    // Far more than the socket buffers and the queue hold, all at once.
    let burst = tokio::time::Instant::now();
    fill_log(db, "w1", 4_000, 2_000).await;
    while !recorder
        .0
        .lock()
        .expect("lock")
        .iter()
        .any(|c| c.starts_with("close"))
    {
        // The timeout, the wait for the final frames (2 s) and the tailer,
        // with room for a loaded machine.
        assert!(
            burst.elapsed() < slow + Duration::from_secs(8),
            "the socket was not closed in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut deltas = 0;
    let mut last = 0;
    let ending = loop {
        match ws.next().await {
            Frame::Json(frame) if frame["type"] == "delta" => {
                let id = delta_id(&frame);
                assert!(id > last, "ascending");
                last = id;
                deltas += 1;
            }
            other => break other,
        }
    };
    assert_eq!(
        ending,
        Frame::Json(
            json!({ "code": "SLOW_CONSUMER", "message": "Outgoing queue limit exceeded", "type": "error" })
        )
    );
    assert_eq!(
        ws.next().await,
        Frame::Close(4008, "Outgoing queue limit exceeded".into())
    );
    assert!(deltas < 4_000, "cut off, not served to the end");
}

async fn unanswered_ping_closes_1011(db: &TestDb) {
    let server =
        TestServer::start_with(db, |b| b.heartbeat_interval(Duration::from_millis(150))).await;
    // A client that reads answers pings and stays.
    let mut alive = Ws::connect(&server.url, "user:alice").await;
    alive.subscribe("user:alice", "0", None).await;
    alive.until_subscribed().await;
    assert_eq!(
        alive.next_within(Duration::from_millis(700)).await,
        Frame::Timeout
    );
    // A client that does not read leaves pings unanswered.
    let mut silent = Ws::connect(&server.url, "user:bob").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        silent.next().await,
        Frame::Close(1011, "Heartbeat timeout".into())
    );
}

/// Records hook calls.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl LiveHooks for Recorder {
    async fn on_subscribe(&self, _socket: &LiveSocket, previous: &LiveContext) {
        self.0
            .lock()
            .expect("lock")
            .push(format!("subscribe after {:?}", previous.user_id));
    }

    async fn on_message(
        &self,
        socket: &LiveSocket,
        context: &LiveContext,
        message: &Map<String, Value>,
    ) {
        let kind = message
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        self.0
            .lock()
            .expect("lock")
            .push(format!("message {kind} from {:?}", context.user_id));
        socket.send_json(&json!({ "type": "yjs_ack", "of": kind }));
    }

    async fn on_close(&self, _socket: &LiveSocket, context: &LiveContext) {
        self.0
            .lock()
            .expect("lock")
            .push(format!("close {:?}", context.user_id));
    }
}

async fn hooks_see_subscribe_messages_and_close(db: &TestDb) {
    let recorder = Recorder::default();
    let hooks = recorder.clone();
    let server = TestServer::start_with(db, move |b| b.live_hooks(hooks)).await;
    let mut ws = Ws::connect(&server.url, "user:alice").await;
    ws.send_json(&json!({ "type": "yjs_update" })).await; // before subscribe: ignored
    ws.subscribe("user:alice", "0", None).await;
    ws.until_subscribed().await;
    for kind in [
        "yjs_update",
        "doc_open",
        "session_join",
        "live_editing_cursor",
        "custom",
    ] {
        ws.send_json(&json!({ "type": kind })).await;
        assert_eq!(
            ws.next().await.json(),
            json!({ "type": "yjs_ack", "of": kind })
        );
    }
    ws.subscribe("user:alice", "0", None).await;
    ws.until_subscribed().await;
    ws.close().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !recorder
        .0
        .lock()
        .expect("lock")
        .iter()
        .any(|c| c.starts_with("close"))
    {
        assert!(tokio::time::Instant::now() < deadline, "on_close never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let calls = recorder.0.lock().expect("lock").clone();
    assert_eq!(
        calls,
        [
            "subscribe after None",
            "message yjs_update from Some(\"alice\")",
            "message doc_open from Some(\"alice\")",
            "message session_join from Some(\"alice\")",
            "message live_editing_cursor from Some(\"alice\")",
            "message custom from Some(\"alice\")",
            "subscribe after Some(\"alice\")",
            "close Some(\"alice\")",
        ]
    );
}

/// Tokens that can be revoked while a socket is open.
#[derive(Clone, Default)]
struct RevocableAuth(Arc<Mutex<HashSet<String>>>);

impl Auth for RevocableAuth {
    async fn verify_token(&self, token: &str) -> Result<AuthUser, TokenError> {
        if self.0.lock().expect("lock").contains(token) {
            return Err(TokenError::Invalid);
        }
        TestAuth.verify_token(token).await
    }

    async fn resolve_groups(&self, user: &AuthUser) -> Result<Vec<String>, BoxError> {
        TestAuth.resolve_groups(user).await
    }
}

async fn revoked_token_stops_deltas(db: &TestDb) {
    let auth = RevocableAuth::default();
    let revoked = auth.0.clone();
    let server = Fixture::on(db)
        .configure(move |b| {
            b.auth(auth)
                .token_recheck_interval(Duration::from_millis(100))
        })
        .members(&[("alice", "w1"), ("bob-writer", "w1")])
        .start()
        .await;
    let writer = server.client("user:bob-writer");
    let mut ws = Ws::connect(&server.url, "user:alice").await;
    ws.subscribe("user:alice", "0", None).await;
    ws.until_subscribed().await;
    let (_, id) = writer.insert_task("w1", "seen").await;
    assert_eq!(delta_id(&ws.next_delta().await).to_string(), id);

    revoked
        .lock()
        .expect("lock")
        .insert("user:alice".to_owned());
    assert_eq!(
        ws.next().await.json(),
        json!({ "message": "Invalid token", "type": "error" })
    );
    writer.insert_task("w1", "unseen").await;
    // Re-subscribing with the revoked token is refused too; that answer is
    // the next frame, so the "unseen" delta never came.
    ws.subscribe("user:alice", "0", None).await;
    assert_eq!(
        ws.next().await.json(),
        json!({ "message": "Invalid token", "type": "error" })
    );
}

async fn shutdown_closes_1001(db: &TestDb) {
    let server = TestServer::start(db).await;
    let mut ws = Ws::connect(&server.url, "user:alice").await;
    ws.subscribe("user:alice", "0", None).await;
    ws.until_subscribed().await;
    server.server.shutdown();
    assert_eq!(
        ws.next().await,
        Frame::Close(1001, "Server shutting down".into())
    );
}

on_each_backend!(
    upgrade_needs_a_valid_token,
    replay_then_ack_then_live,
    null_keys_are_present_in_frames,
    bad_subscribe_shapes_and_other_frames,
    refused_token_in_subscribe_keeps_socket_open,
    group_failure_closes_1011,
    resubscribe_with_a_new_cursor,
    groups_not_held_are_dropped,
    stale_cursor_requires_bootstrap,
    replay_buffer_overflow_closes_4008,
    slow_consumer_is_told_and_closed,
    live_burst_to_a_socket_that_stopped_reading_closes_4008_in_time,
    unanswered_ping_closes_1011,
    hooks_see_subscribe_messages_and_close,
    revoked_token_stops_deltas,
    shutdown_closes_1001,
);
