//! Group commit on PostgreSQL: concurrent mutations sharing transactions keep
//! each its own outcome, rejected ones leave no trace, duplicates answer the
//! first id, and the log holds exactly the successes, in id order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::json;
use stratasync::{
    ActionKind, Applied, FilterContext, HookResult, ModelHooks, Mutation, MutationError, Registry,
    SyncId, Tx,
};
use stratasync_tests::harness::{Backend, Fixture, TestServer, run};
use stratasync_tests::models::{Task, TaskLabel};

const TASKS: usize = 16;
const EACH: usize = 30;

fn mutation(k: usize, i: usize, action: ActionKind, model_id: &str) -> Mutation {
    let payload = json!({ "title": format!("t{k}-{i}"), "priority": 1, "workspaceId": "w1" });
    Mutation {
        client_id: format!("client{k}"),
        client_tx_id: format!("tx{i}"),
        model: "Task".into(),
        model_id: model_id.to_owned(),
        action,
        payload: payload.as_object().cloned().unwrap_or_default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grouped_mutations_keep_their_own_outcomes() {
    run(Backend::Postgres, |db| {
        Box::pin(async move {
            let node = TestServer::start(db).await;
            let store = Arc::new(node.server.store().clone());
            let tasks: Vec<_> = (0..TASKS)
                .map(|k| {
                    let store = Arc::clone(&store);
                    tokio::spawn(async move {
                        let ctx = FilterContext::new(format!("writer{k}"), vec!["w1".to_owned()]);
                        let mut outcomes = Vec::new();
                        for i in 0..EACH {
                            let id = uuid::Uuid::new_v4().to_string();
                            let m = match i % 3 {
                                0 | 1 => mutation(k, i, ActionKind::Insert, &id),
                                // No such row: rejected, alone.
                                _ => mutation(k, i, ActionKind::Update, &id),
                            };
                            // The same client transaction twice at once.
                            let (first, second) =
                                tokio::join!(store.mutate(&ctx, &m), store.mutate(&ctx, &m));
                            outcomes.push((i, first, second));
                        }
                        outcomes
                    })
                })
                .collect();
            let mut succeeded: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
            for (k, task) in tasks.into_iter().enumerate() {
                for (i, first, second) in task.await.expect("task") {
                    match (first, second) {
                        (Ok(a), Ok(b)) => {
                            assert_eq!(
                                a.sync_id(),
                                b.sync_id(),
                                "a duplicate answers the first id"
                            );
                            assert!(
                                matches!(
                                    (&a, &b),
                                    (Applied::New(_), Applied::Duplicate(_))
                                        | (Applied::Duplicate(_), Applied::New(_))
                                ),
                                "one of the two applied: {a:?} {b:?}"
                            );
                            assert_ne!(i % 3, 2, "an update of a missing row cannot succeed");
                            assert!(
                                succeeded.insert(a.sync_id().get(), (k, i)).is_none(),
                                "ids are unique"
                            );
                        }
                        (Err(MutationError::Rejected(a)), Err(MutationError::Rejected(b))) => {
                            assert_eq!(i % 3, 2, "only the updates are rejected: {a}");
                            assert_eq!(a, "Invalid mutation: record not found");
                            assert_eq!(a, b);
                        }
                        other => panic!("unexpected outcomes for {k}/{i}: {other:?}"),
                    }
                }
            }
            assert_eq!(succeeded.len(), TASKS * EACH * 2 / 3);
            let mut log = BTreeSet::new();
            let mut cursor = SyncId::ZERO;
            loop {
                let page = node
                    .server
                    .store()
                    .read_actions(cursor, 1000, None)
                    .await
                    .expect("log");
                let done = page.len() < 1000;
                for action in page {
                    cursor = action.id;
                    let (k, i) = succeeded
                        .get(&action.id.get())
                        .copied()
                        .expect("every action is a success");
                    assert_eq!(
                        action.client_id.as_deref(),
                        Some(format!("client{k}").as_str())
                    );
                    assert_eq!(
                        action.client_tx_id.as_deref(),
                        Some(format!("tx{i}").as_str())
                    );
                    log.insert(action.id.get());
                }
                if done {
                    break;
                }
            }
            assert_eq!(
                log,
                succeeded.keys().copied().collect::<BTreeSet<_>>(),
                "the log holds exactly the successes"
            );
        })
    })
    .await;
}

/// The transactions of one request apply in order even when they share a
/// group: later ones see what earlier ones wrote, a retried duplicate inside
/// the batch answers the first id, and ids ascend in request order.
async fn one_request_applies_in_order(db: &stratasync_tests::harness::TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice = server.client("user:alice");
    let (x, y) = (
        stratasync_tests::harness::new_id(),
        stratasync_tests::harness::new_id(),
    );
    let tx = stratasync_tests::harness::tx;
    let payload = json!({ "title": "x", "priority": 1, "workspaceId": "w1" });
    let mut transactions = vec![
        tx("a", "Task", &x, "INSERT", payload.clone()),
        tx("b", "Task", &x, "UPDATE", json!({ "title": "x2" })),
        tx(
            "c",
            "Task",
            &x,
            "ARCHIVE",
            json!({ "archivedAt": 1_700_000_000_000_i64 }),
        ),
        tx("a", "Task", &x, "INSERT", payload.clone()),
        tx("d", "Task", &x, "DELETE", json!({})),
        tx("e", "Task", &x, "UPDATE", json!({ "title": "gone" })),
        tx("f", "Task", &y, "INSERT", payload),
    ];
    for i in 0..40 {
        transactions.push(tx(
            &format!("u{i}"),
            "Task",
            &y,
            "UPDATE",
            json!({ "priority": i }),
        ));
    }
    let reply = alice
        .post(
            "/sync/mutate",
            &json!({ "batchId": "b", "transactions": transactions }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let results = reply.json["results"].as_array().expect("results");
    let ok = |i: usize| results[i]["success"] == true;
    assert!(ok(0) && ok(1) && ok(2) && ok(4) && ok(6), "{}", reply.text);
    assert_eq!(
        results[3]["syncId"], results[0]["syncId"],
        "the duplicate answers the first id"
    );
    assert_eq!(
        (
            results[5]["success"].clone(),
            results[5]["warnings"][0].clone()
        ),
        (
            json!(true),
            json!(format!(
                "The record was already deleted (by syncId {}); nothing was applied",
                results[4]["syncId"].as_str().unwrap_or_default()
            ))
        ),
        "an update after the delete is moot and names the delete: {}",
        reply.text
    );
    let ids: Vec<u64> = results
        .iter()
        .enumerate()
        .filter(|(i, r)| *i != 3 && r["success"] == true)
        .map(|(_, r)| {
            r["syncId"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("syncId")
        })
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids ascend in request order, the moot update's delete included: {ids:?}"
    );
    let rows = alice.get("/sync/bootstrap").await.lines();
    assert_eq!(rows.len(), 2, "only y remains");
    assert_eq!(rows[1]["priority"], 39, "the last update of the batch wins");
}

stratasync_tests::on_each_backend!(one_request_applies_in_order);

/// A hook that writes a row of its own, then refuses titles starting with
/// "audit".
struct WritesThenRefuses;

impl ModelHooks<Task> for WritesThenRefuses {
    async fn before_insert(&self, tx: Tx<'_>, _ctx: &FilterContext, row: &mut Task) -> HookResult {
        if !row.title.starts_with("audit") {
            return Ok(());
        }
        if let Tx::Postgres(conn) = tx {
            diesel_async::RunQueryDsl::execute(
                diesel::sql_query(
                    "INSERT INTO tasks (id, title, priority, workspace_id, created_at) \
                     VALUES (gen_random_uuid(), 'written by a refused hook', 0, 'w1', now())",
                ),
                conn,
            )
            .await
            .map_err(|error| error.to_string())?;
        }
        Err("refused after writing".into())
    }
}

/// Mutations of a model with hooks share a group without savepoints: a
/// member whose hook wrote and then refused rolls its group back, each
/// member runs alone, and nothing the hook wrote remains; the other members
/// apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hook_that_writes_then_refuses_leaves_nothing() {
    run(Backend::Postgres, |db| {
        Box::pin(hook_writes_then_refuses(db))
    })
    .await;
}

async fn hook_writes_then_refuses(db: &stratasync_tests::harness::TestDb) {
    let server = Fixture::on(db)
        .registry(
            Registry::new()
                .model_with_hooks::<Task>(WritesThenRefuses)
                .model::<TaskLabel>(),
        )
        .members(&[("alice", "w1")])
        .start()
        .await;
    let insert = |tx_id: String, title: String| {
        stratasync_tests::harness::tx(
            &tx_id,
            "Task",
            &stratasync_tests::harness::new_id(),
            "INSERT",
            json!({ "title": title, "priority": 1, "workspaceId": "w1" }),
        )
    };
    let requests: Vec<_> = (0..TASKS)
        .map(|k| {
            let client = server.client("user:alice");
            let transactions: Vec<_> = (0..3)
                .map(|i| {
                    let title = if i == 1 { "audit" } else { "kept" };
                    insert(format!("w{k}-{i}"), format!("{title}-{k}-{i}"))
                })
                .collect();
            tokio::spawn(async move {
                client
                    .post(
                        "/sync/mutate",
                        &json!({ "batchId": "b", "transactions": transactions }),
                    )
                    .await
            })
        })
        .collect();
    for request in requests {
        let reply = request.await.expect("request");
        assert_eq!(reply.status, 200, "{}", reply.text);
        let results = reply.json["results"].as_array().expect("results");
        let outcomes: Vec<_> = results
            .iter()
            .map(|r| (r["success"].clone(), r["error"].clone()))
            .collect();
        assert_eq!(
            outcomes,
            [
                (json!(true), json!(null)),
                (json!(false), json!("refused after writing")),
                (json!(true), json!(null)),
            ],
            "{}",
            reply.text
        );
    }
    let rows = server
        .client("user:alice")
        .get("/sync/bootstrap")
        .await
        .lines();
    let titles: BTreeSet<String> = rows[1..]
        .iter()
        .map(|row| row["title"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(titles.len(), TASKS * 2, "{titles:?}");
    assert!(
        titles.iter().all(|title| title.starts_with("kept")),
        "nothing a refused hook wrote remains: {titles:?}"
    );
}

/// Makes every append of a client transaction whose id starts with `boom`
/// fail in the database.
const FAIL_BOOM_APPENDS: &str = "
CREATE FUNCTION fail_boom() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.client_tx_id LIKE 'boom%' THEN RAISE EXCEPTION 'injected append failure'; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER fail_boom BEFORE INSERT ON sync_actions
    FOR EACH ROW EXECUTE FUNCTION fail_boom();";

/// An append the database refuses, in a group (the batched `INSERT`) and
/// on the single path, for an applied write and for a moot one: nothing of
/// the failed transaction is answered as a success or left in the table or
/// the log, and the retry applies each transaction once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_append_answers_no_success_and_leaves_nothing() {
    run(Backend::Postgres, |db| Box::pin(failed_appends(db))).await;
}

async fn failed_appends(db: &stratasync_tests::harness::TestDb) {
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let alice = server.client("user:alice");
    let (kept, _) = alice.insert_task("w1", "kept").await;
    let (gone, _) = alice.insert_task("w1", "gone").await;
    let tx = stratasync_tests::harness::tx;
    alice
        .mutate_ok(tx("del", "Task", &gone, "DELETE", json!({})))
        .await;
    db.execute(FAIL_BOOM_APPENDS).await;
    let fresh = stratasync_tests::harness::new_id();
    let request = json!({ "batchId": "b", "transactions": [
        tx("ok-1", "Task", &kept, "UPDATE", json!({ "title": "updated" })),
        tx("boom-insert", "Task", &fresh, "INSERT",
            json!({ "title": "never", "priority": 1, "workspaceId": "w1" })),
        tx("boom-moot", "Task", &gone, "UPDATE", json!({ "title": "too late" })),
    ] });
    let reply = alice.post("/sync/mutate", &request).await;
    assert!(
        reply.status >= 500,
        "no success for a failed append: {}",
        reply.text
    );
    let logged =
        |log: &[serde_json::Value], id: &str| log.iter().filter(|a| a["clientTxId"] == id).count();
    let log = alice.get("/sync/deltas?after=0&limit=1000").await.json["actions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(logged(&log, "boom-insert") + logged(&log, "boom-moot"), 0);
    let rows = alice.get("/sync/bootstrap").await.lines();
    assert!(
        rows.iter().all(|row| row["id"] != fresh.as_str()),
        "the insert whose append failed is rolled back: {rows:?}"
    );

    db.execute("DROP TRIGGER fail_boom ON sync_actions").await;
    let retry = alice.post("/sync/mutate", &request).await;
    assert_eq!(retry.status, 200, "{}", retry.text);
    let results = retry.json["results"].as_array().expect("results");
    assert!(
        results
            .iter()
            .all(|r| r["success"] == true && r["syncId"].is_string()),
        "{}",
        retry.text
    );
    let log = alice.get("/sync/deltas?after=0&limit=1000").await.json["actions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for id in ["ok-1", "boom-insert", "boom-moot"] {
        assert_eq!(logged(&log, id), 1, "{id} applied once: {log:?}");
    }
    let rows = alice.get("/sync/bootstrap").await.lines();
    assert!(rows.iter().any(|row| row["id"] == fresh.as_str()));
    assert!(rows.iter().any(|row| row["title"] == "updated"));
}
