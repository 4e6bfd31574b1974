//! PROTOCOL §6: `GET /sync/deltas`, paging and staleness.

use serde_json::json;
use stratasync::SyncId;
use stratasync_tests::harness::{Client, Fixture, Reply, TestDb, TestServer, tx};
use stratasync_tests::on_each_backend;
use stratasync_tests::protocol::{assert_invalid_query, error_body};

fn sync_ids(reply: &Reply) -> Vec<u64> {
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| {
            a["syncId"]
                .as_str()
                .expect("syncId is a string")
                .parse()
                .expect("digits")
        })
        .collect()
}

fn is_iso_millis(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

async fn action_shape(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice = server.client("user:alice");
    let (id, sync) = alice.insert_task("w1", "a").await;
    let update = alice
        .mutate_ok(tx(
            "t-up",
            "Task",
            &id,
            "UPDATE",
            json!({ "title": "b", "ignored": 1 }),
        ))
        .await;
    let reply = alice.get("/sync/deltas").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.content_type, "application/json");
    let created = reply.json["actions"][1]["createdAt"]
        .as_str()
        .expect("createdAt")
        .to_owned();
    assert!(is_iso_millis(&created), "{created}");
    assert!(reply.text.ends_with(&format!(
        r#"{{"action":"U","clientId":"test-client","clientTxId":"t-up","createdAt":"{created}","data":{{"title":"b"}},"groupId":"w1","modelId":"{id}","modelName":"Task","syncId":"{update}"}}],"hasMore":false,"lastSyncId":"{update}"}}"#
    )), "{}", reply.text);
    assert!(
        reply
            .text
            .starts_with(r#"{"actions":[{"action":"I","clientId":"test-client","clientTxId":""#),
        "{}",
        reply.text
    );
    let insert = &reply.json["actions"][0];
    assert_eq!(insert["syncId"], sync.as_str());
    let created_at = insert["data"]["createdAt"]
        .as_i64()
        .expect("createdAt in data is epoch ms");
    assert_eq!(
        insert["data"],
        json!({ "id": id, "title": "a", "completedAt": null, "dueOn": null, "priority": 1,
                "workspaceId": "w1", "createdAt": created_at })
    );
}

async fn paging(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice = server.client("user:alice");
    let mut expected = Vec::new();
    for i in 0..25 {
        let (_, sync) = alice.insert_task("w1", &format!("t{i}")).await;
        expected.push(sync.parse::<u64>().unwrap());
    }
    let mut cursor = 0_u64;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let reply = alice
            .get(&format!("/sync/deltas?after={cursor}&limit=10"))
            .await;
        let ids = sync_ids(&reply);
        pages += 1;
        assert!(ids.len() <= 10);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ascending: {ids:?}");
        let last: u64 = reply.json["lastSyncId"].as_str().unwrap().parse().unwrap();
        assert_eq!(last, ids.last().copied().unwrap_or(cursor));
        assert_eq!(
            reply.json["hasMore"],
            json!(seen.len() + ids.len() < expected.len()),
            "{}",
            reply.text
        );
        seen.extend(ids);
        if last == cursor {
            break;
        }
        cursor = last;
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, 4, "3 pages of 10, 10, 5, then an empty one");
    // Past the end: nothing, and lastSyncId = after.
    let reply = alice.get("/sync/deltas?after=999999").await;
    assert_eq!(
        reply.json,
        json!({ "actions": [], "hasMore": false, "lastSyncId": "999999" })
    );
}

/// Appends `count` actions of group `group` directly to the log.
async fn seed_actions(db: &TestDb, group: &str, count: u32) {
    let sql = match db.backend {
        stratasync_tests::harness::Backend::Postgres => format!(
            "INSERT INTO sync_actions (model, model_id, action, data, group_id, created_at)
             SELECT 'Task', 'm' || g, 'U', '{{}}', '{group}', now() FROM generate_series(1, {count}) AS g"
        ),
        stratasync_tests::harness::Backend::Sqlite => format!(
            "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {count})
             INSERT INTO sync_actions (model, model_id, action, data, group_id, created_at)
             SELECT 'Task', 'm' || g, 'U', '{{}}', '{group}', '2026-01-01T00:00:00.000Z' FROM s"
        ),
    };
    db.execute(&sql).await;
}

async fn limit_is_clamped(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    seed_actions(db, "w1", 5_003).await;
    let alice = server.client("user:alice");
    for (query, expected, more) in [
        ("", 1000, true),
        ("&limit=0", 1000, true),
        ("&limit=1", 1, true),
        ("&limit=4999", 4999, true),
        ("&limit=5000", 5000, true),
        ("&limit=5001", 5000, true),
        ("&limit=1000000", 5000, true),
        ("&limit=6000&after=3", 5000, false),
    ] {
        let reply = alice.get(&format!("/sync/deltas?after=0{query}")).await;
        assert_eq!(sync_ids(&reply).len(), expected, "{query}");
        assert_eq!(reply.json["hasMore"], more, "{query}");
    }
}

async fn query_validation(db: &TestDb) {
    let server = TestServer::start(db).await;
    let alice = server.client("user:alice");
    for bad in ["-1", "abc", "1.0", "", "18446744073709551616", "0x10"] {
        assert_invalid_query(
            &alice.get(&format!("/sync/deltas?after={bad}")).await,
            "after",
        );
    }
    for bad in ["-1", "many", "2.5"] {
        assert_invalid_query(
            &alice.get(&format!("/sync/deltas?limit={bad}")).await,
            "limit",
        );
    }
    let reply = alice.get("/sync/deltas?after=x&limit=y").await;
    assert_invalid_query(&reply, "after");
    assert_invalid_query(&reply, "limit");
}

/// The 409 answer of a stale cursor.
fn assert_stale(reply: &Reply) {
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(
        error_body(&reply.json),
        json!({ "error": "BOOTSTRAP_REQUIRED", "message": "A fresh bootstrap is required before fetching deltas" })
    );
}

async fn id(client: &Client, workspace: &str) -> u64 {
    client.insert_task(workspace, "x").await.1.parse().unwrap()
}

async fn stale_cursors_need_a_bootstrap_quiet_groups_do_not(db: &TestDb) {
    let server = Fixture::on(db)
        .members(&[("alice", "w1"), ("bob", "w3"), ("carol", "w5")])
        .start()
        .await;
    let alice = server.client("user:alice");
    let bob = server.client("user:bob");
    let carol = server.client("user:carol");
    let a1 = id(&alice, "w1").await;
    let a2 = id(&alice, "w1").await;
    let b1 = id(&bob, "w3").await;
    let a3 = id(&alice, "w1").await;
    let a4 = id(&alice, "w1").await;
    let deleted = server
        .server
        .store()
        .trim_before(SyncId::new(a4))
        .await
        .expect("trim");
    assert_eq!(deleted, 4);
    let c1 = id(&carol, "w5").await;

    for after in [a1, a2, b1, a3 - 1] {
        assert_stale(&alice.get(&format!("/sync/deltas?after={after}")).await);
    }
    // A cursor at the last trimmed id of its groups lost nothing.
    assert_eq!(
        sync_ids(&alice.get(&format!("/sync/deltas?after={a3}")).await),
        [a4]
    );
    // after=0 is a client starting from scratch, never stale.
    assert_eq!(sync_ids(&alice.get("/sync/deltas?after=0").await), [a4]);
    assert_stale(&bob.get(&format!("/sync/deltas?after={a1}")).await);
    assert_eq!(
        sync_ids(&bob.get(&format!("/sync/deltas?after={b1}")).await),
        Vec::<u64>::new()
    );
    // A quiet group whose actions were never trimmed is not stale, whatever
    // other groups lost.
    assert_eq!(
        sync_ids(&carol.get(&format!("/sync/deltas?after={a1}")).await),
        [c1]
    );
    assert_eq!(sync_ids(&carol.get("/sync/deltas?after=1").await), [c1]);
    // Narrowing to a quiet group is judged on that group alone.
    server.add_member("alice", "w5").await;
    assert_eq!(
        sync_ids(
            &alice
                .get(&format!("/sync/deltas?after={a1}&syncGroups=w5"))
                .await
        ),
        [c1]
    );
    assert_stale(&alice.get(&format!("/sync/deltas?after={a1}")).await);
}

async fn trimmed_global_actions_make_every_cursor_below_them_stale(db: &TestDb) {
    let server = Fixture::on(db).members(&[("carol", "w5")]).start().await;
    let carol = server.client("user:carol");
    let c1 = id(&carol, "w5").await;
    db.execute("INSERT INTO sync_actions (model, model_id, action, data, created_at) VALUES ('Task', 'g', 'U', '{}', CURRENT_TIMESTAMP)")
        .await;
    let global: u64 = carol.get("/sync/deltas?after=0").await.json["lastSyncId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let c2 = id(&carol, "w5").await;
    server
        .server
        .store()
        .trim_before(SyncId::new(c2))
        .await
        .expect("trim");
    assert_stale(&carol.get(&format!("/sync/deltas?after={c1}")).await);
    let quiet = server.client("user:dave");
    assert_stale(&quiet.get(&format!("/sync/deltas?after={c1}")).await);
    assert_eq!(
        sync_ids(&carol.get(&format!("/sync/deltas?after={global}")).await),
        [c2]
    );
}

async fn trim_by_age(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice = server.client("user:alice");
    let a0 = id(&alice, "w1").await;
    let a1 = id(&alice, "w1").await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let cut = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let a2 = id(&alice, "w1").await;
    assert_eq!(
        server
            .server
            .store()
            .trim_older_than(cut)
            .await
            .expect("trim"),
        2
    );
    assert_stale(&alice.get(&format!("/sync/deltas?after={a0}")).await);
    assert_eq!(
        sync_ids(&alice.get(&format!("/sync/deltas?after={a1}")).await),
        [a2]
    );
}

/// Actions deleted with plain SQL (no record of their groups) make every
/// cursor that had not reached them stale; a trim through the store over a
/// rolled-back id does not make a quiet group's cursor stale.
async fn actions_deleted_with_sql_make_older_cursors_stale(db: &TestDb) {
    let server = Fixture::on(db)
        .members(&[("alice", "w1"), ("bob", "w2")])
        .start()
        .await;
    let alice = server.client("user:alice");
    let bob = server.client("user:bob");
    let b1 = id(&bob, "w2").await;
    let a1 = id(&alice, "w1").await;
    let a2 = id(&alice, "w1").await;
    let a3 = id(&alice, "w1").await;

    db.execute(&format!("DELETE FROM sync_actions WHERE id < {a3}"))
        .await;
    assert_stale(&alice.get(&format!("/sync/deltas?after={a1}")).await);
    assert_stale(&bob.get(&format!("/sync/deltas?after={b1}")).await);
    let kept = alice.get(&format!("/sync/deltas?after={a2}")).await;
    assert_eq!(
        sync_ids(&kept),
        [a3],
        "a cursor at the last deleted id lost nothing"
    );

    // A trim through the store accounts for every id below its bound, so the
    // SQL deletion is now recorded and a quiet group is judged on its own.
    let b2 = id(&bob, "w2").await;
    let a4 = id(&alice, "w1").await;
    server
        .server
        .store()
        .trim_before(stratasync::SyncId::new(a4))
        .await
        .expect("trim");
    let quiet = bob.get(&format!("/sync/deltas?after={b2}")).await;
    assert_eq!(quiet.status, 200, "{}", quiet.text);
    assert_stale(&alice.get(&format!("/sync/deltas?after={a2}")).await);
}

on_each_backend!(
    actions_deleted_with_sql_make_older_cursors_stale,
    action_shape,
    paging,
    limit_is_clamped,
    query_validation,
    stale_cursors_need_a_bootstrap_quiet_groups_do_not,
    trimmed_global_actions_make_every_cursor_below_them_stale,
    trim_by_age,
);

/// A page never holds actions of two different clients on one row: it ends
/// before the second, with `hasMore`, so that the client (which applies a page
/// as one packet) re-applies its pending write between them (docs/protocol.md,
/// "Catch-up pages").
async fn a_page_ends_before_another_clients_action_on_the_same_row(db: &TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice = server.client("user:alice");
    let write = |client: &str, action: &str, id: &str, payload: serde_json::Value| {
        let mut t = tx(
            &uuid::Uuid::new_v4().to_string(),
            "Task",
            id,
            action,
            payload,
        );
        t["clientId"] = json!(client);
        t
    };
    let (row, other) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    let fields = |title: &str| json!({ "title": title, "priority": 1, "workspaceId": "w1" });
    alice
        .mutate_ok(write("laptop", "INSERT", &row, fields("shared")))
        .await;
    alice
        .mutate_ok(write("phone", "INSERT", &other, fields("other")))
        .await;
    // Each row written by one client so far: one page.
    alice
        .mutate_ok(write("laptop", "UPDATE", &row, json!({ "title": "a" })))
        .await;
    alice
        .mutate_ok(write("phone", "UPDATE", &other, json!({ "title": "b" })))
        .await;
    // Another client on the first row: a new page starts there.
    alice
        .mutate_ok(write("phone", "UPDATE", &row, json!({ "title": "c" })))
        .await;
    alice
        .mutate_ok(write("phone", "UPDATE", &other, json!({ "title": "d" })))
        .await;

    let titles = |reply: &Reply| -> Vec<String> {
        reply.json["actions"]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .map(|a| a["data"]["title"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let first = alice.get("/sync/deltas?after=0").await;
    assert_eq!(
        titles(&first),
        ["shared", "other", "a", "b"],
        "{}",
        first.text
    );
    assert_eq!(first.json["hasMore"], true, "{}", first.text);
    let next = first.json["lastSyncId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let second = alice.get(&format!("/sync/deltas?after={next}")).await;
    assert_eq!(titles(&second), ["c", "d"], "{}", second.text);
    assert_eq!(second.json["hasMore"], false, "{}", second.text);
}

on_each_backend!(a_page_ends_before_another_clients_action_on_the_same_row);
