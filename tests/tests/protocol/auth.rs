//! PROTOCOL §2: authentication, group resolution and effective groups, on
//! every route.

use serde_json::{Value, json};
use stratasync_tests::harness::{Fixture, Reply, TestDb, TestServer, new_id, tx};
use stratasync_tests::on_each_backend;
use stratasync_tests::protocol::error_body;

/// Every route with a request that is valid once authenticated.
fn routes() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        ("GET", "/sync/bootstrap", None),
        ("GET", "/sync/deltas?after=0", None),
        (
            "POST",
            "/sync/batch",
            Some(json!({ "requests": [{ "modelName": "Task", "groupId": "w1" }] })),
        ),
        (
            "POST",
            "/sync/mutate",
            Some(
                json!({ "batchId": "b", "transactions": [tx("t1", "Task", &new_id(), "INSERT",
                json!({ "title": "x", "priority": 1, "workspaceId": "alice" }))] }),
            ),
        ),
    ]
}

/// Sends `method path` with a raw `Authorization` header (or none).
async fn raw(
    server: &TestServer,
    method: &str,
    path: &str,
    body: Option<&Value>,
    authorization: Option<&str>,
) -> Reply {
    server
        .with_authorization(authorization)
        .request(method, path, body)
        .await
}

/// Sends every route with `authorization` and asserts each answers `status`
/// with the body `{"error": error}`.
async fn assert_every_route(
    server: &TestServer,
    authorization: Option<&str>,
    status: u16,
    error: &str,
) {
    for (method, path, body) in routes() {
        let reply = raw(server, method, path, body.as_ref(), authorization).await;
        assert_eq!(
            reply.status, status,
            "{method} {path} with {authorization:?}: {}",
            reply.text
        );
        assert_eq!(
            error_body(&reply.json),
            json!({ "error": error }),
            "{method} {path} with {authorization:?}"
        );
    }
}

async fn missing_header_is_401_on_every_route(db: &TestDb) {
    let server = TestServer::start(db).await;
    assert_every_route(&server, None, 401, "Authorization header required").await;
}

async fn malformed_headers_are_401_on_every_route(db: &TestDb) {
    let server = TestServer::start(db).await;
    let malformed = [
        "Bearer",
        "Bearer ",
        "Basic x",
        "Basic dXNlcjpwdw==",
        "Bearer user:alice extra",
        "Token user:alice",
        "",
        "user:alice",
    ];
    for header in malformed {
        assert_every_route(&server, Some(header), 401, "Invalid authorization format").await;
    }
}

async fn bearer_scheme_is_case_insensitive(db: &TestDb) {
    let server = TestServer::start(db).await;
    for header in [
        "bearer user:alice",
        "BEARER user:alice",
        "Bearer   user:alice",
    ] {
        for (method, path, body) in routes() {
            let reply = raw(&server, method, path, body.as_ref(), Some(header)).await;
            assert_eq!(
                reply.status, 200,
                "{method} {path} with {header:?}: {}",
                reply.text
            );
        }
    }
}

async fn rejected_and_expired_tokens_are_401_on_every_route(db: &TestDb) {
    let server = TestServer::start(db).await;
    for (header, error) in [
        ("Bearer garbage", "Invalid token"),
        ("Bearer expired:alice", "Token expired"),
    ] {
        assert_every_route(&server, Some(header), 401, error).await;
    }
}

async fn group_resolution_failure_is_500_on_every_route(db: &TestDb) {
    let server = TestServer::start(db).await;
    assert_every_route(
        &server,
        Some("Bearer user:broken1"),
        500,
        "Failed to resolve sync groups",
    )
    .await;
}

async fn authentication_is_checked_before_validation(db: &TestDb) {
    let server = TestServer::start(db).await;
    let invalid: [(&str, &str, Option<Value>); 6] = [
        ("GET", "/sync/bootstrap?type=partial", None),
        ("GET", "/sync/bootstrap?firstSyncId=abc", None),
        ("GET", "/sync/deltas?after=-1", None),
        ("POST", "/sync/batch", Some(json!({ "requests": [] }))),
        (
            "POST",
            "/sync/mutate",
            Some(json!({ "transactions": "nope" })),
        ),
        ("POST", "/sync/mutate", Some(json!([1, 2]))),
    ];
    for (method, path, body) in invalid {
        let reply = raw(&server, method, path, body.as_ref(), None).await;
        assert_eq!(reply.status, 401, "{method} {path}: {}", reply.text);
        assert_eq!(
            error_body(&reply.json),
            json!({ "error": "Authorization header required" })
        );
        let reply = raw(&server, method, path, body.as_ref(), Some("Bearer garbage")).await;
        assert_eq!(reply.status, 401, "{method} {path}: {}", reply.text);
        assert_eq!(error_body(&reply.json), json!({ "error": "Invalid token" }));
        assert!(!reply.text.contains("Validation"), "{}", reply.text);
        // And authenticated, the same request is a validation failure.
        let reply = raw(
            &server,
            method,
            path,
            body.as_ref(),
            Some("Bearer user:alice"),
        )
        .await;
        assert_eq!(reply.status, 400, "{method} {path}: {}", reply.text);
        assert_eq!(reply.json["error"], "Validation failed");
    }
    // A body that is not JSON at all is also checked after authentication.
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{}/sync/mutate", server.url))
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 401);
}

/// Bootstrap as `client` with `query`; returns the metadata line and the rows.
async fn bootstrap(client: &stratasync_tests::harness::Client, query: &str) -> (Value, Vec<Value>) {
    let reply = client.get(&format!("/sync/bootstrap{query}")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let mut lines = reply.lines();
    let meta = lines.remove(0);
    (meta, lines)
}

fn workspaces(rows: &[Value]) -> Vec<String> {
    let mut groups: Vec<String> = rows
        .iter()
        .map(|r| r["workspaceId"].as_str().unwrap_or_default().to_owned())
        .collect();
    groups.sort();
    groups.dedup();
    groups
}

async fn groups_are_resolved_memberships_and_personal(db: &TestDb) {
    let server = Fixture::on(db)
        .members(&[("alice", "w1"), ("alice", "w2"), ("bob", "w3")])
        .start()
        .await;
    let alice = server.client("user:alice");
    let bob = server.client("user:bob");
    alice.insert_task("w1", "a").await;
    alice.insert_task("w2", "b").await;
    alice.insert_task("alice", "personal").await;
    bob.insert_task("w3", "c").await;

    let (meta, rows) = bootstrap(&alice, "").await;
    assert_eq!(
        meta["subscribedSyncGroups"],
        json!(["w1", "w2", "alice"]),
        "{meta}"
    );
    assert_eq!(workspaces(&rows), ["alice", "w1", "w2"]);
    let (meta, rows) = bootstrap(&bob, "").await;
    assert_eq!(meta["subscribedSyncGroups"], json!(["w3", "bob"]));
    assert_eq!(workspaces(&rows), ["w3"]);

    // A membership added later counts on the next request.
    server.add_member("bob", "w1").await;
    let (_, rows) = bootstrap(&bob, "").await;
    assert_eq!(workspaces(&rows), ["w1", "w3"]);
    // And a removed one no longer does.
    server
        .server
        .store()
        .remove_member("bob", "w1")
        .await
        .expect("remove");
    let (_, rows) = bootstrap(&bob, "").await;
    assert_eq!(workspaces(&rows), ["w3"]);
}

async fn sync_groups_narrow_and_never_widen(db: &TestDb) {
    let server = Fixture::on(db)
        .members(&[("alice", "w1"), ("alice", "w2"), ("bob", "w3")])
        .start()
        .await;
    let alice = server.client("user:alice");
    let bob = server.client("user:bob");
    let (_, w1_sync) = alice.insert_task("w1", "a").await;
    let (_, w2_sync) = alice.insert_task("w2", "b").await;
    let (_, w3_sync) = bob.insert_task("w3", "c").await;

    // Bootstrap: requested ∩ held, in requested order.
    let (meta, rows) = bootstrap(&alice, "?syncGroups=w2,w3,w1").await;
    assert_eq!(meta["subscribedSyncGroups"], json!(["w2", "w1"]));
    assert_eq!(workspaces(&rows), ["w1", "w2"]);
    let (meta, rows) = bootstrap(&alice, "?syncGroups=w2").await;
    assert_eq!(meta["subscribedSyncGroups"], json!(["w2"]));
    assert_eq!(meta["lastSyncId"], w2_sync.as_str());
    assert_eq!(workspaces(&rows), ["w2"]);
    // Naming only groups not held yields nothing, never everything.
    let (meta, rows) = bootstrap(&alice, "?syncGroups=w3").await;
    assert_eq!(meta["subscribedSyncGroups"], json!([]));
    assert_eq!(meta["lastSyncId"], "0");
    assert_eq!(
        meta["returnedModelsCount"],
        json!({ "Task": 0, "TaskLabel": 0 })
    );
    assert!(rows.is_empty(), "{rows:?}");
    // Empty list: all groups.
    let (meta, _) = bootstrap(&alice, "?syncGroups=").await;
    assert_eq!(meta["subscribedSyncGroups"], json!(["w1", "w2", "alice"]));

    // Deltas.
    let ids = |reply: &Reply| -> Vec<String> {
        reply.json["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .map(|a| a["syncId"].as_str().unwrap().to_owned())
            .collect()
    };
    let reply = alice.get("/sync/deltas?after=0").await;
    assert_eq!(ids(&reply), [w1_sync.as_str(), w2_sync.as_str()]);
    let reply = alice.get("/sync/deltas?after=0&syncGroups=w1").await;
    assert_eq!(ids(&reply), [w1_sync.as_str()]);
    let reply = alice.get("/sync/deltas?after=0&syncGroups=w3").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(ids(&reply).is_empty(), "{}", reply.text);
    assert_eq!(reply.json["lastSyncId"], "0");
    let reply = bob.get("/sync/deltas?after=0").await;
    assert_eq!(ids(&reply), [w3_sync]);
}

async fn global_actions_are_visible_to_everyone(db: &TestDb) {
    let server = TestServer::start(db).await;
    db.execute("INSERT INTO sync_actions (model, model_id, action, data, created_at) VALUES ('Task', 'g1', 'U', '{}', CURRENT_TIMESTAMP)").await;
    for user in ["user:alice", "user:bob"] {
        let reply = server
            .client(user)
            .get("/sync/deltas?after=0&syncGroups=nothing-held")
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(
            reply.json["actions"].as_array().map(Vec::len),
            Some(1),
            "{}",
            reply.text
        );
        let action = &reply.json["actions"][0];
        // Null client and group keys are omitted from a delta.
        assert!(
            action.get("groupId").is_none() && action.get("clientId").is_none(),
            "{action}"
        );
        assert!(action.get("clientTxId").is_none(), "{action}");
    }
}

on_each_backend!(
    missing_header_is_401_on_every_route,
    malformed_headers_are_401_on_every_route,
    bearer_scheme_is_case_insensitive,
    rejected_and_expired_tokens_are_401_on_every_route,
    group_resolution_failure_is_500_on_every_route,
    authentication_is_checked_before_validation,
    groups_are_resolved_memberships_and_personal,
    sync_groups_narrow_and_never_widen,
    global_actions_are_visible_to_everyone,
);
