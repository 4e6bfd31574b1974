//! The bootstrap's `schemaHash` against the server's models: a client
//! generated from them matches; another is served and counted once per user
//! and hash, or refused with `409 SCHEMA_MISMATCH` when the server says so.

use serde_json::json;
use stratasync_tests::harness::{TestDb, TestServer, registry};
use stratasync_tests::on_each_backend;

/// A hash no schema of the test models gives.
const OTHER: &str = "0123456789abcdef";

async fn mismatches_are_served_and_counted_once_per_client(db: &TestDb) {
    let server = TestServer::start(db).await;
    let expected = registry().schema_hash();
    assert_eq!(server.server.schema_hash(), expected);
    assert_eq!(expected.len(), 16);

    let path = |hash: &str| format!("/sync/bootstrap?schemaHash={hash}");
    let alice = server.client("user:alice");
    let reply = alice.get(&path(&expected)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.lines()[0]["schemaHash"], json!(expected));
    assert_eq!(server.server.schema_mismatches(), 0);

    for _ in 0..2 {
        let reply = alice.get(&path(OTHER)).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.lines()[0]["schemaHash"], json!(OTHER));
    }
    assert_eq!(server.server.schema_mismatches(), 1);
    let reply = server.client("user:bob").get(&path(OTHER)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(server.server.schema_mismatches(), 2);

    // A request without a hash (not the TypeScript client) is not checked.
    assert_eq!(alice.get("/sync/bootstrap").await.status, 200);
    assert_eq!(server.server.schema_mismatches(), 2);
}

async fn refusing_names_both_hashes(db: &TestDb) {
    let server = TestServer::start_with(db, |b| b.refuse_schema_mismatch(true)).await;
    let expected = server.server.schema_hash().to_owned();
    let alice = server.client("user:alice");

    let reply = alice
        .get(&format!("/sync/bootstrap?schemaHash={OTHER}"))
        .await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.json["error"], "SCHEMA_MISMATCH");
    assert_eq!(reply.json["clientSchemaHash"], OTHER);
    assert_eq!(reply.json["serverSchemaHash"], json!(expected));
    let message = reply.json["message"].as_str().unwrap();
    assert!(
        message.contains(OTHER) && message.contains(&expected),
        "{message}"
    );
    assert_eq!(server.server.schema_mismatches(), 1);

    let reply = alice
        .get(&format!("/sync/bootstrap?schemaHash={expected}"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

on_each_backend!(
    mismatches_are_served_and_counted_once_per_client,
    refusing_names_both_hashes,
);
