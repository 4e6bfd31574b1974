//! PROTOCOL §7's move rule: an UPDATE may change the group column only of a
//! model declared with `move_between_groups`, and only when the caller holds
//! both the row's group and the new one. `Note` is such a model.

use std::time::Duration;

use serde_json::{Value, json};
use stratasync_tests::harness::{
    Client, Fixture, TestDb, TestServer, new_id, registry_with_notes, tx,
};
use stratasync_tests::live::Ws;
use stratasync_tests::on_each_backend;

const NOT_FOUND: &str = "Invalid mutation: record not found";

/// A `Note` transaction.
fn note(id: &str, action: &str, payload: Value) -> Value {
    tx(&new_id(), "Note", id, action, payload)
}

/// The error of a one-transaction request that must fail.
async fn error_of(client: &Client, tx: Value) -> String {
    let reply = client.mutate_one(tx.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json["results"][0]["success"], false,
        "{tx} must fail: {}",
        reply.text
    );
    reply.json["results"][0]["error"]
        .as_str()
        .expect("error text")
        .to_owned()
}

/// The `Note` rows `client`'s bootstrap holds.
async fn notes(client: &Client) -> Vec<Value> {
    client
        .get("/sync/bootstrap?onlyModels=Note")
        .await
        .lines()
        .into_iter()
        .skip(1)
        .collect()
}

/// Every action of the log visible to `client`.
async fn actions(client: &Client) -> Vec<Value> {
    let reply = client.get("/sync/deltas?after=0&limit=5000").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["actions"].as_array().expect("actions").clone()
}

/// A socket of `user`, subscribed from the start of the log; returns it with
/// the actions its replay delivered.
async fn subscriber(server: &TestServer, user: &str) -> (Ws, Vec<Value>) {
    let token = format!("user:{user}");
    let mut ws = Ws::connect(&server.url, &token).await;
    ws.subscribe(&token, "0", None).await;
    let mut replayed = Vec::new();
    loop {
        let frame = ws.next().await.json();
        match frame["type"].as_str() {
            Some("delta") => replayed.push(frame["packet"]["actions"][0].clone()),
            Some("subscribed") => return (ws, replayed),
            _ => panic!("unexpected frame before the acknowledgement: {frame}"),
        }
    }
}

/// The actions `ws` receives until the one with `sync_id` (included); panics
/// when it does not arrive within 10 s.
async fn actions_until(ws: &mut Ws, sync_id: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let frame = ws.next_delta().await;
        let action = frame["packet"]["actions"][0].clone();
        let done = action["syncId"] == sync_id;
        seen.push(action);
        if done {
            return seen;
        }
    }
}

/// Two groups, alice holding both, bob only w1 and carol only w2, with one
/// note alice wrote in w1; subscribers of bob and carol are up.
struct Moving {
    server: TestServer,
    alice: Client,
    bob: Client,
    carol: Client,
    id: String,
    in_w1: Ws,
    in_w2: Ws,
}

impl Moving {
    async fn start(db: &TestDb) -> Moving {
        let server = Fixture::on(db)
            .registry(registry_with_notes())
            .members(&[
                ("alice", "w1"),
                ("alice", "w2"),
                ("bob", "w1"),
                ("carol", "w2"),
            ])
            .start()
            .await;
        let (alice, bob, carol) = (
            server.client("user:alice"),
            server.client("user:bob"),
            server.client("user:carol"),
        );
        let id = new_id();
        alice
            .mutate_ok(note(
                &id,
                "INSERT",
                json!({ "title": "plan", "workspaceId": "w1" }),
            ))
            .await;
        let (in_w1, replayed) = subscriber(&server, "bob").await;
        assert_eq!(replayed.len(), 1, "{replayed:?}");
        let (in_w2, replayed) = subscriber(&server, "carol").await;
        assert_eq!(replayed, Vec::<Value>::new());
        Moving {
            server,
            alice,
            bob,
            carol,
            id,
            in_w1,
            in_w2,
        }
    }

    /// The transaction of alice moving the note to w2.
    fn move_tx(&self) -> Value {
        note(&self.id, "UPDATE", json!({ "workspaceId": "w2" }))
    }

    /// Alice moves the note to w2; returns the move's syncId.
    async fn move_to_w2(&self) -> String {
        self.alice.mutate_ok(self.move_tx()).await
    }
}

/// A move between two groups the caller holds succeeds: the row is in the
/// new group with its other fields intact, and the new group's subscribers
/// are sent the move.
async fn a_move_between_held_groups_succeeds(db: &TestDb) {
    let mut moving = Moving::start(db).await;
    let moved = moving.move_to_w2().await;
    let id = moving.id.as_str();
    assert_eq!(
        notes(&moving.carol).await,
        [json!({ "__class": "Note", "id": id, "title": "plan", "workspaceId": "w2" })]
    );
    assert_eq!(notes(&moving.bob).await, Vec::<Value>::new());
    let seen = actions_until(&mut moving.in_w2, &moved).await;
    let arrived = seen.last().expect("the move");
    assert_eq!(arrived["modelName"], "Note", "{arrived}");
    assert_eq!(arrived["modelId"], id, "{arrived}");
    assert_eq!(arrived["groupId"], "w2", "{arrived}");
    let logged = actions(&moving.carol).await;
    assert_eq!(logged.last(), Some(arrived), "the log says the same");
    drop(moving.server);
}

/// What each group's subscribers must be sent for a client to follow a move
/// (the real client drops an update of a row it does not hold, and keeps a
/// row until it is told it is gone): the new group the whole row as an
/// insert, the old group a delete. Both carry the writer's `clientTxId` (the
/// writing client takes a delete without it for a conflicting one and drops
/// its pending update); the answer, and a retry's, is the insert's id.
async fn a_move_reaches_the_subscribers_of_both_groups(db: &TestDb) {
    let mut moving = Moving::start(db).await;
    let tx = moving.move_tx();
    let moved = moving.alice.mutate_ok(tx.clone()).await;
    let id = moving.id.as_str();
    let seen = actions_until(&mut moving.in_w2, &moved).await;
    let arrived = seen.last().expect("the move");
    assert_eq!(arrived["action"], "I", "{arrived}");
    assert_eq!(
        arrived["data"],
        json!({ "id": id, "title": "plan", "workspaceId": "w2" })
    );
    assert_eq!(arrived["clientTxId"], tx["clientTxId"], "{arrived}");
    let left = moving
        .in_w1
        .next_within(Duration::from_secs(5))
        .await
        .json();
    let left = &left["packet"]["actions"][0];
    assert_eq!(left["modelId"], id, "{left}");
    assert_eq!(left["groupId"], "w1", "{left}");
    assert_eq!(left["action"], "D", "{left}");
    assert_eq!(
        left["data"],
        json!({ "id": id, "title": "plan", "workspaceId": "w1" })
    );
    assert_eq!(left["clientTxId"], tx["clientTxId"], "{left}");
    assert_eq!(left["clientId"], tx["clientId"], "{left}");
    let polled = actions(&moving.bob).await;
    assert_eq!(polled.last().expect("an action")["action"], "D");

    // Alice holds both groups: the delete, then the insert, answered last.
    let both = actions(&moving.alice).await;
    let tail: Vec<_> = both[both.len() - 2..]
        .iter()
        .map(|action| (action["action"].clone(), action["syncId"].clone()))
        .collect();
    assert_eq!(
        tail,
        [
            (json!("D"), left["syncId"].clone()),
            (json!("I"), json!(moved))
        ]
    );

    // A retry is answered with the same id and logs nothing.
    assert_eq!(moving.alice.mutate_ok(tx).await, moved);
    assert_eq!(actions(&moving.alice).await, both);
}

/// The refusals: into a group not held, and of a row whose group is not held.
async fn moves_outside_the_callers_groups_are_refused(db: &TestDb) {
    let server = Fixture::on(db)
        .registry(registry_with_notes())
        .members(&[
            ("alice", "w1"),
            ("alice", "w2"),
            ("bob", "w1"),
            ("bob", "w3"),
        ])
        .start()
        .await;
    let (alice, bob) = (server.client("user:alice"), server.client("user:bob"));
    let (in_w1, in_w2) = (new_id(), new_id());
    alice
        .mutate_ok(note(
            &in_w1,
            "INSERT",
            json!({ "title": "one", "workspaceId": "w1" }),
        ))
        .await;
    alice
        .mutate_ok(note(
            &in_w2,
            "INSERT",
            json!({ "title": "two", "workspaceId": "w2" }),
        ))
        .await;
    let before = actions(&alice).await;

    // Into a group the caller does not hold (bob holds w1, not w2): refused,
    // the row unchanged, nothing logged.
    let error = error_of(
        &bob,
        note(
            &in_w1,
            "UPDATE",
            json!({ "workspaceId": "w2", "title": "stolen" }),
        ),
    )
    .await;
    assert_eq!(error, "Access denied");

    // A row of a group the caller does not hold (w2, to bob's w3): answered
    // exactly like a row that does not exist.
    let foreign = error_of(&bob, note(&in_w2, "UPDATE", json!({ "workspaceId": "w3" }))).await;
    let missing = error_of(
        &bob,
        note(&new_id(), "UPDATE", json!({ "workspaceId": "w3" })),
    )
    .await;
    assert_eq!(foreign, NOT_FOUND);
    assert_eq!(missing, NOT_FOUND);

    let mut rows = notes(&alice).await;
    rows.sort_by_key(|row| row["title"].as_str().map(str::to_owned));
    assert_eq!(
        rows,
        [
            json!({ "__class": "Note", "id": in_w1, "title": "one", "workspaceId": "w1" }),
            json!({ "__class": "Note", "id": in_w2, "title": "two", "workspaceId": "w2" }),
        ]
    );
    assert_eq!(notes(&bob).await.len(), 1, "bob sees only the w1 row");
    assert_eq!(actions(&alice).await, before, "nothing was logged");
}

/// A move among other writes of one request (one group commit on
/// PostgreSQL, whose actions are appended in one statement): each write's
/// actions in request order, the move's delete before its insert, each
/// answered with its own id.
async fn a_move_in_a_batch_keeps_its_order(db: &TestDb) {
    let moving = Moving::start(db).await;
    let other = new_id();
    let reply = moving
        .alice
        .post(
            "/sync/mutate",
            &json!({ "batchId": "b", "transactions": [
                note(&other, "INSERT", json!({ "title": "before", "workspaceId": "w1" })),
                moving.move_tx(),
                note(&other, "UPDATE", json!({ "title": "after" })),
            ] }),
        )
        .await;
    assert_eq!(reply.json["success"], true, "{}", reply.text);
    let answered: Vec<Value> = reply.json["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|result| result["syncId"].clone())
        .collect();
    let logged: Vec<(Value, Value, Value)> = actions(&moving.alice)
        .await
        .iter()
        .skip(1)
        .map(|a| {
            (
                a["action"].clone(),
                a["groupId"].clone(),
                a["syncId"].clone(),
            )
        })
        .collect();
    let ids: Vec<u64> = logged
        .iter()
        .map(|(_, _, id)| id.as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{logged:?}");
    assert_eq!(
        logged
            .iter()
            .map(|(action, group, _)| (action.clone(), group.clone()))
            .collect::<Vec<_>>(),
        [
            (json!("I"), json!("w1")),
            (json!("D"), json!("w1")),
            (json!("I"), json!("w2")),
            (json!("U"), json!("w1")),
        ]
    );
    assert_eq!(
        answered,
        [
            logged[0].2.clone(),
            logged[2].2.clone(),
            logged[3].2.clone()
        ],
        "the move is answered with its insert"
    );
}

on_each_backend!(
    a_move_between_held_groups_succeeds,
    a_move_reaches_the_subscribers_of_both_groups,
    moves_outside_the_callers_groups_are_refused,
    a_move_in_a_batch_keeps_its_order,
);
