//! Rules beyond the group column (issue 15): a model's read scope
//! (`#[sync(scope = ...)]`) and same-group references
//! (`#[sync(references(...))]`), on both backends.
//!
//! Reads are checked against an oracle: the same rule written as plain SQL
//! and run directly on the database.
#![allow(clippy::unwrap_used)] // a test's unwrap is an assertion
#![allow(missing_docs)] // the models are the test's own

use chrono::{DateTime, Utc};
use diesel::{BoolExpressionMethods, ExpressionMethods, Queryable, QueryableByName, Selectable};
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde_json::{Value, json};
use stratasync::{FilterContext, REFERENCE_NOT_FOUND, ReadScope, Registry, SyncModel};
use stratasync_tests::harness::{Backend, Client, Fixture, Reply, TestDb, TestServer, new_id, tx};
use stratasync_tests::on_each_backend;
use uuid::Uuid;

mod schema {
    diesel::table! {
        use diesel::sql_types::*;
        use stratasync::sql_types::*;

        docs (id) {
            id -> PortableUuid,
            title -> Text,
            private -> Bool,
            owner -> Text,
            parent_id -> Nullable<PortableUuid>,
            workspace_id -> Text,
            archived_at -> Nullable<Instant>,
        }
    }

    diesel::table! {
        use diesel::sql_types::*;
        use stratasync::sql_types::*;

        tags (id) {
            id -> PortableUuid,
            name -> Text,
            workspace_id -> Text,
        }
    }

    diesel::table! {
        use diesel::sql_types::*;
        use stratasync::sql_types::*;

        doc_tags (doc_id, tag_id) {
            doc_id -> PortableUuid,
            tag_id -> PortableUuid,
            workspace_id -> Text,
        }
    }
}

use schema::{doc_tags, docs, tags};

/// A document: private ones are read by their owner only; a document may
/// have a parent document of its own workspace.
#[derive(Debug, Clone, Queryable, Selectable, SyncModel)]
#[diesel(table_name = docs)]
#[sync(
    group = "workspace_id",
    scope = visible_docs,
    references(parent_id = Doc),
    actions(insert, update, delete, archive, unarchive),
    insert(title, private, owner, parent_id, workspace_id),
    update(title, private, parent_id),
    indexed(workspace_id)
)]
pub struct Doc {
    pub id: Uuid,
    pub title: String,
    pub private: bool,
    pub owner: String,
    pub parent_id: Option<Uuid>,
    pub workspace_id: String,
    pub archived_at: Option<DateTime<Utc>>,
}

/// Public documents, and the private documents of the reader.
fn visible_docs(ctx: &FilterContext) -> ReadScope<docs::table> {
    ReadScope::new(
        docs::private
            .eq(false)
            .or(docs::owner.eq(ctx.user_id.clone())),
    )
}

/// A tag, which may move to another workspace.
#[derive(Debug, Clone, Queryable, Selectable, SyncModel)]
#[diesel(table_name = tags)]
#[sync(
    group = "workspace_id",
    move_between_groups,
    actions(insert, update),
    insert(name, workspace_id),
    update(name, workspace_id)
)]
pub struct Tag {
    pub id: Uuid,
    pub name: String,
    pub workspace_id: String,
}

/// A tag on a document: both of its workspace.
#[derive(Debug, Clone, Queryable, Selectable, SyncModel)]
#[diesel(table_name = doc_tags)]
#[sync(
    composite(doc_id, tag_id),
    group = "workspace_id",
    references(doc_id = Doc, tag_id = Tag),
    actions(insert, delete),
    insert(doc_id, tag_id, workspace_id)
)]
pub struct DocTag {
    pub doc_id: Uuid,
    pub tag_id: Uuid,
    pub workspace_id: String,
}

const POSTGRES_TABLES: &str = "
CREATE TABLE docs (
    id UUID PRIMARY KEY,
    title TEXT NOT NULL,
    private BOOLEAN NOT NULL,
    owner TEXT NOT NULL,
    parent_id UUID,
    workspace_id TEXT NOT NULL,
    archived_at TIMESTAMPTZ
);
CREATE TABLE tags (id UUID PRIMARY KEY, name TEXT NOT NULL, workspace_id TEXT NOT NULL);
CREATE TABLE doc_tags (
    doc_id UUID NOT NULL,
    tag_id UUID NOT NULL,
    workspace_id TEXT NOT NULL,
    PRIMARY KEY (doc_id, tag_id)
);";

const SQLITE_TABLES: &str = "
CREATE TABLE docs (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    private INTEGER NOT NULL,
    owner TEXT NOT NULL,
    parent_id TEXT,
    workspace_id TEXT NOT NULL,
    archived_at TEXT
);
CREATE TABLE tags (id TEXT PRIMARY KEY, name TEXT NOT NULL, workspace_id TEXT NOT NULL);
CREATE TABLE doc_tags (
    doc_id TEXT NOT NULL,
    tag_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    PRIMARY KEY (doc_id, tag_id)
);";

/// A server for the models of this suite on `db`. alice holds w1 and w2,
/// bob holds w1.
async fn start(db: &TestDb) -> TestServer {
    db.execute(match db.backend {
        Backend::Postgres => POSTGRES_TABLES,
        Backend::Sqlite => SQLITE_TABLES,
    })
    .await;
    let registry = Registry::new()
        .model::<Doc>()
        .model::<Tag>()
        .model::<DocTag>();
    Fixture::on(db)
        .registry(registry)
        .members(&[("alice", "w1"), ("alice", "w2"), ("bob", "w1")])
        .start()
        .await
}

/// Inserts a document; returns its id.
async fn insert_doc(client: &Client, workspace: &str, owner: &str, private: bool) -> String {
    let id = new_id();
    let payload = json!({
        "title": format!("{owner}'s doc"),
        "private": private,
        "owner": owner,
        "workspaceId": workspace,
    });
    client
        .mutate_ok(tx(&new_id(), "Doc", &id, "INSERT", payload))
        .await;
    id
}

/// Documents of every kind: public and private, of alice and of bob, in w1
/// and w2.
async fn seed(alice: &Client, bob: &Client) {
    for round in 0..3 {
        for private in [false, true] {
            insert_doc(alice, "w1", "alice", private).await;
            insert_doc(bob, "w1", "bob", private).await;
            insert_doc(alice, "w2", "alice", private).await;
            if round == 0 {
                // Documents of bob's in w2, a group bob does not hold
                // (alice writes them: inserts are not scoped).
                insert_doc(alice, "w2", "bob", private).await;
            }
        }
    }
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
}

/// The oracle: the ids of the documents of `groups` that `user` may read,
/// by plain SQL on the database.
async fn oracle(db: &TestDb, user: &str, groups: &[&str]) -> Vec<String> {
    let groups = groups
        .iter()
        .map(|g| format!("'{g}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let rule = format!("workspace_id IN ({groups}) AND (NOT private OR owner = '{user}')");
    let mut ids: Vec<String> = match db.backend {
        Backend::Postgres => {
            let mut conn = diesel_async::AsyncPgConnection::establish(&db.url)
                .await
                .unwrap();
            diesel::sql_query(format!("SELECT id::text AS id FROM docs WHERE {rule}"))
                .load::<IdRow>(&mut conn)
                .await
                .unwrap()
        }
        Backend::Sqlite => {
            let mut conn = diesel_async::sync_connection_wrapper::SyncConnectionWrapper::<
                diesel::SqliteConnection,
            >::establish(&db.url)
            .await
            .unwrap();
            diesel::sql_query(format!("SELECT id FROM docs WHERE {rule}"))
                .load::<IdRow>(&mut conn)
                .await
                .unwrap()
        }
    }
    .into_iter()
    .map(|row| row.id)
    .collect();
    ids.sort();
    assert!(!ids.is_empty(), "the oracle of {user} finds documents");
    ids
}

/// The sorted ids of the `Doc` rows of an NDJSON answer.
fn doc_ids(reply: &Reply) -> Vec<String> {
    assert_eq!(reply.status, 200, "{}", reply.text);
    let mut ids: Vec<String> = reply
        .lines()
        .iter()
        .filter(|line| line["__class"] == "Doc")
        .map(|line| line["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

async fn scoped_bootstrap(db: &TestDb) {
    let server = start(db).await;
    let alice = server.client("user:alice");
    let bob = server.client("user:bob");
    seed(&alice, &bob).await;

    let full = bob.get("/sync/bootstrap?onlyModels=Doc").await;
    let expected = oracle(db, "bob", &["w1"]).await;
    assert_eq!(doc_ids(&full), expected);
    assert_eq!(
        full.lines()[0]["returnedModelsCount"]["Doc"],
        json!(expected.len()),
        "the counts are scoped too"
    );
    assert_eq!(
        doc_ids(&alice.get("/sync/bootstrap?onlyModels=Doc").await),
        oracle(db, "alice", &["w1", "w2"]).await
    );
    // Requested groups narrow the groups; the scope still applies.
    assert_eq!(
        doc_ids(
            &alice
                .get("/sync/bootstrap?onlyModels=Doc&syncGroups=w2")
                .await
        ),
        oracle(db, "alice", &["w2"]).await
    );
    // A partial bootstrap reads the same scoped rows.
    assert_eq!(
        doc_ids(
            &bob.get("/sync/bootstrap?type=partial&firstSyncId=0&onlyModels=Doc")
                .await
        ),
        oracle(db, "bob", &["w1"]).await
    );
}

async fn scoped_batch(db: &TestDb) {
    let server = start(db).await;
    let alice = server.client("user:alice");
    let bob = server.client("user:bob");
    seed(&alice, &bob).await;

    for (client, user) in [(&alice, "alice"), (&bob, "bob")] {
        let by_group = client
            .post(
                "/sync/batch",
                &json!({ "requests": [{ "modelName": "Doc", "groupId": "w1" }] }),
            )
            .await;
        assert_eq!(doc_ids(&by_group), oracle(db, user, &["w1"]).await);
        let by_index = client
            .post(
                "/sync/batch",
                &json!({ "requests": [
                    { "modelName": "Doc", "indexedKey": "workspaceId", "keyValue": "w1" }
                ] }),
            )
            .await;
        assert_eq!(doc_ids(&by_index), oracle(db, user, &["w1"]).await);
    }
}

/// The outcome of a one-transaction mutate request, without the parts that
/// name the transaction.
fn outcome(reply: &Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text);
    let mut result = reply.json["results"][0].clone();
    if let Some(result) = result.as_object_mut() {
        result.remove("clientTxId");
        result.remove("modelId");
    }
    result
}

async fn out_of_scope_writes_are_answered_as_missing(db: &TestDb) {
    let server = start(db).await;
    let alice = server.client("user:alice");
    let bob = server.client("user:bob");
    let private = insert_doc(&alice, "w1", "alice", true).await;
    // In an order the owner can then apply them all in.
    let writes = [
        ("UPDATE", json!({ "title": "bob was here" })),
        ("ARCHIVE", json!({ "archivedAt": 1_795_632_180_000_i64 })),
        ("UNARCHIVE", json!({})),
        ("DELETE", json!({})),
    ];
    for (action, payload) in &writes {
        let hidden = bob
            .mutate_one(tx(&new_id(), "Doc", &private, action, payload.clone()))
            .await;
        let missing = bob
            .mutate_one(tx(&new_id(), "Doc", &new_id(), action, payload.clone()))
            .await;
        assert_eq!(outcome(&hidden)["success"], false, "{}", hidden.text);
        assert_eq!(
            outcome(&hidden),
            outcome(&missing),
            "{action} of a row out of scope is answered like a missing row"
        );
    }
    // The owner still reaches it, and nothing of bob's writes was applied.
    let row = alice
        .post(
            "/sync/batch",
            &json!({ "requests": [{ "modelName": "Doc", "groupId": "w1" }] }),
        )
        .await
        .lines()
        .into_iter()
        .find(|line| line["id"] == private.as_str())
        .expect("alice reads her private doc");
    assert_eq!(row["title"], "alice's doc");
    assert_eq!(row["archivedAt"], Value::Null);
    for (action, payload) in writes {
        alice
            .mutate_ok(tx(&new_id(), "Doc", &private, action, payload))
            .await;
    }
}

/// Inserts a tag; returns its id.
async fn insert_tag(client: &Client, workspace: &str) -> String {
    let id = new_id();
    client
        .mutate_ok(tx(
            &new_id(),
            "Tag",
            &id,
            "INSERT",
            json!({ "name": "tag", "workspaceId": workspace }),
        ))
        .await;
    id
}

fn link(doc: &str, tag: &str, workspace: &str) -> Value {
    tx(
        &new_id(),
        "DocTag",
        "ignored",
        "INSERT",
        json!({ "docId": doc, "tagId": tag, "workspaceId": workspace }),
    )
}

/// The error of a rejected one-transaction mutate request.
async fn rejection(client: &Client, transaction: Value) -> Value {
    let reply = client.mutate_one(transaction).await;
    let result = outcome(&reply);
    assert_eq!(result["success"], false, "{}", reply.text);
    result
}

async fn cross_group_references_are_rejected_as_missing(db: &TestDb) {
    let server = start(db).await;
    let alice = server.client("user:alice");
    let doc = insert_doc(&alice, "w1", "alice", false).await;
    let tag = insert_tag(&alice, "w1").await;
    let other_doc = insert_doc(&alice, "w2", "alice", false).await;
    let other_tag = insert_tag(&alice, "w2").await;

    // A join row of w1 whose keys are rows of w2, or rows that do not exist.
    let cross = rejection(&alice, link(&other_doc, &other_tag, "w1")).await;
    let half = rejection(&alice, link(&doc, &other_tag, "w1")).await;
    let missing = rejection(&alice, link(&new_id(), &new_id(), "w1")).await;
    assert_eq!(cross["error"], REFERENCE_NOT_FOUND, "{cross}");
    assert_eq!(
        cross, missing,
        "another group's rows are answered as missing ones"
    );
    assert_eq!(half, missing);
    // w2 can still link its own rows, and w1 its own.
    alice.mutate_ok(link(&other_doc, &other_tag, "w2")).await;
    alice.mutate_ok(link(&doc, &tag, "w1")).await;

    // An optional reference: none is fine, another group's is not, on
    // insert and on update.
    let child = insert_doc(&alice, "w1", "alice", false).await;
    let set_parent = |parent: &str| {
        tx(
            &new_id(),
            "Doc",
            &child,
            "UPDATE",
            json!({ "parentId": parent }),
        )
    };
    let cross = rejection(&alice, set_parent(&other_doc)).await;
    let missing = rejection(&alice, set_parent(&new_id())).await;
    assert_eq!(cross["error"], REFERENCE_NOT_FOUND, "{cross}");
    assert_eq!(cross, missing);
    alice.mutate_ok(set_parent(&doc)).await;
    let orphan = rejection(
        &alice,
        tx(
            &new_id(),
            "Doc",
            &new_id(),
            "INSERT",
            json!({ "title": "t", "private": false, "owner": "alice",
                    "parentId": other_doc, "workspaceId": "w1" }),
        ),
    )
    .await;
    assert_eq!(orphan, missing);
}

fn unlink(doc: &str, tag: &str, workspace: &str) -> Value {
    tx(
        &new_id(),
        "DocTag",
        "ignored",
        "DELETE",
        json!({ "docId": doc, "tagId": tag, "workspaceId": workspace }),
    )
}

/// Asserts that `result` is the moot answer to a write whose referenced row
/// was deleted by `sync_id`: a success with a syncId of its own (the delete
/// logged for it) and a warning naming `sync_id`.
fn assert_reference_deleted(result: &Value, sync_id: &str) {
    let own: u64 = result["syncId"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("a syncId of its own: {result}"));
    assert!(own > sync_id.parse().unwrap(), "{result}");
    let mut rest = result.clone();
    if let Some(rest) = rest.as_object_mut() {
        rest.remove("syncId");
        rest.remove("clientTxId");
    }
    assert_eq!(
        rest,
        json!({
            "success": true,
            "warnings": [format!(
                "A record it references was already deleted (by syncId {sync_id}); nothing was applied"
            )],
        })
    );
}

/// A client links a row another client deletes, then unlinks it before it
/// hears of the refusal: the unlink is moot, not refused, so that the
/// client's rollback of the refusal does not bring the link back.
async fn unlinking_a_link_refused_for_a_deleted_row_is_moot(db: &TestDb) {
    let server = start(db).await;
    let alice = server.client("user:alice");
    let bob = server.client("user:bob");
    let doc = insert_doc(&alice, "w1", "alice", false).await;
    let tag = insert_tag(&alice, "w1").await;
    let deleted = alice
        .mutate_ok(tx(&new_id(), "Doc", &doc, "DELETE", json!({})))
        .await;

    let refused = rejection(&bob, link(&doc, &tag, "w1")).await;
    assert_eq!(refused["error"], REFERENCE_NOT_FOUND, "{refused}");
    let moot = outcome(&bob.mutate_one(unlink(&doc, &tag, "w1")).await);
    assert_reference_deleted(&moot, &deleted);

    // A pair whose rows all exist was never linked: not found, as ever.
    let other_tag = insert_tag(&alice, "w1").await;
    let live_doc = insert_doc(&alice, "w1", "alice", false).await;
    let never = rejection(&bob, unlink(&live_doc, &other_tag, "w1")).await;
    assert_eq!(never["error"], "Invalid mutation: record not found");

    // A delete in a group bob does not hold settles nothing for him.
    let hidden_doc = insert_doc(&alice, "w2", "alice", false).await;
    alice
        .mutate_ok(tx(&new_id(), "Doc", &hidden_doc, "DELETE", json!({})))
        .await;
    let hidden = rejection(&bob, unlink(&hidden_doc, &tag, "w2")).await;
    assert_eq!(hidden, never, "another group's delete is not revealed");

    // The same, with the delete, the link and the unlink in one request.
    let doc = insert_doc(&alice, "w1", "alice", false).await;
    let reply = alice
        .post(
            "/sync/mutate",
            &json!({ "batchId": "b", "transactions": [
                tx(&new_id(), "Doc", &doc, "DELETE", json!({})),
                link(&doc, &tag, "w1"),
                unlink(&doc, &tag, "w1"),
            ] }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let results = reply.json["results"].as_array().unwrap();
    let deleted = results[0]["syncId"].as_str().expect("the delete applies");
    assert_eq!(results[1]["error"], REFERENCE_NOT_FOUND, "{}", reply.text);
    assert_reference_deleted(&results[2], deleted);
}

/// The sync id of an applied one-transaction mutate reply, or `None` when it
/// was rejected as a reference to a row that is not in the group.
fn applied(reply: &Reply) -> Option<u64> {
    let result = outcome(reply);
    if result["success"] == true {
        return Some(result["syncId"].as_str().unwrap().parse().unwrap());
    }
    assert_eq!(result["error"], REFERENCE_NOT_FOUND, "{}", reply.text);
    None
}

async fn a_reference_races_a_move(db: &TestDb) {
    let server = start(db).await;
    let alice = server.client("user:alice");
    let doc = insert_doc(&alice, "w1", "alice", false).await;
    for round in 0..20 {
        let tag = insert_tag(&alice, "w1").await;
        let move_away = tx(
            &new_id(),
            "Tag",
            &tag,
            "UPDATE",
            json!({ "workspaceId": "w2" }),
        );
        let (linked, moved) = tokio::join!(
            alice.mutate_one(link(&doc, &tag, "w1")),
            alice.mutate_one(move_away),
        );
        let moved = outcome(&moved);
        assert_eq!(moved["success"], true, "round {round}: {moved}");
        let moved_at: u64 = moved["syncId"].as_str().unwrap().parse().unwrap();
        // Either the link saw the tag in w1 and was ordered before the move,
        // or it saw the tag gone from w1 and was refused.
        if let Some(linked_at) = applied(&linked) {
            assert!(
                linked_at < moved_at,
                "round {round}: the link ({linked_at}) checked the tag in w1, yet the move \
                 ({moved_at}) committed first"
            );
        }
    }
}

on_each_backend!(
    scoped_bootstrap,
    scoped_batch,
    out_of_scope_writes_are_answered_as_missing,
    cross_group_references_are_rejected_as_missing,
    a_reference_races_a_move,
    unlinking_a_link_refused_for_a_deleted_row_is_moot,
);
