//! The idempotency key is (user, clientId, clientTxId): one user's key never
//! answers for another user's write, and installs from before the per-user
//! key move to it with their log intact.

use diesel_async::{AsyncConnection, SimpleAsyncConnection};
use serde_json::json;
use stratasync_tests::harness::{Backend, Fixture, TestDb, new_id, tx};
use stratasync_tests::on_each_backend;

/// Two users send the same (clientId, clientTxId): each write is applied as
/// its own, and each user's retry answers that user's own syncId.
async fn one_users_key_never_answers_for_another(db: &TestDb) {
    let server = Fixture::on(db)
        .members(&[("alice", "w1"), ("mallory", "w2")])
        .start()
        .await;
    let (alice, mallory) = (server.client("user:alice"), server.client("user:mallory"));
    let (a_row, m_row) = (new_id(), new_id());
    let a_tx = tx(
        "shared-tx",
        "Task",
        &a_row,
        "INSERT",
        json!({ "title": "alice's", "priority": 1, "workspaceId": "w1" }),
    );
    let m_tx = tx(
        "shared-tx",
        "Task",
        &m_row,
        "INSERT",
        json!({ "title": "mallory's", "priority": 1, "workspaceId": "w2" }),
    );
    // Mallory uses the pair first: Alice's write must still be applied.
    let m_id = mallory.mutate_ok(m_tx.clone()).await;
    let a_id = alice.mutate_ok(a_tx.clone()).await;
    assert_ne!(a_id, m_id, "alice's write is not taken for mallory's");
    // Retries answer each user's own id and apply nothing again.
    assert_eq!(alice.mutate_ok(a_tx).await, a_id);
    assert_eq!(mallory.mutate_ok(m_tx).await, m_id);
    let log = server
        .server
        .store()
        .read_actions(stratasync::SyncId::ZERO, 100, None)
        .await
        .expect("log");
    let ids: Vec<String> = log.iter().map(|a| a.id.get().to_string()).collect();
    assert_eq!(ids, [m_id, a_id], "one action each");
    let bootstrap = alice.get("/sync/bootstrap?type=full").await;
    assert!(bootstrap.text.contains("alice's"), "{}", bootstrap.text);
}

on_each_backend!(one_users_key_never_answers_for_another);

const PG_V1: &str = include_str!(
    "../../stratasync-diesel/migrations/postgres/00000000000001_stratasync_sync_tables/up.sql"
);
const SQLITE_V1: &str = include_str!(
    "../../stratasync-diesel/migrations/sqlite/00000000000001_stratasync_sync_tables/up.sql"
);

/// A database left by the first release: the sync tables of migration 1,
/// one action with id 7 after a trimmed id 9 (the id sequence is at 9).
async fn install_first_release(db: &TestDb) {
    let (tables, record, action, sequence) = match db.backend {
        Backend::Postgres => (
            PG_V1,
            "CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, \
             run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP); \
             INSERT INTO __diesel_schema_migrations (version) VALUES ('00000000000001');",
            "INSERT INTO sync_actions (id, model, model_id, action, data, group_id, client_id, \
             client_tx_id, created_at) VALUES (7, 'Task', 'old', 'I', '{}', 'w1', 'c1', 't1', now());",
            "SELECT setval('sync_actions_id_seq', 9);",
        ),
        Backend::Sqlite => (
            SQLITE_V1,
            "CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, \
             run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP); \
             INSERT INTO __diesel_schema_migrations (version) VALUES ('00000000000001');",
            "INSERT INTO sync_actions (id, model, model_id, action, data, group_id, client_id, \
             client_tx_id, created_at) VALUES (7, 'Task', 'old', 'I', '{}', 'w1', 'c1', 't1', \
             '2026-01-01T00:00:00.000Z');",
            "UPDATE sqlite_sequence SET seq = 9 WHERE name = 'sync_actions';",
        ),
    };
    let sql = format!("{tables}\n{record}\n{action}\n{sequence}");
    match db.backend {
        Backend::Postgres => {
            let mut conn = diesel_async::AsyncPgConnection::establish(&db.url)
                .await
                .expect("connect");
            conn.batch_execute(&sql).await.expect("first release");
        }
        Backend::Sqlite => db.execute(&sql).await,
    }
}

/// An install of the first release upgrades: its log is kept, new ids
/// continue after every id ever handed out, and the per-user key applies.
async fn existing_installs_move_to_the_per_user_key(db: &TestDb) {
    install_first_release(db).await;
    let server = Fixture::on(db).members(&[("alice", "w1")]).start().await;
    let store = server.server.store();
    let old = store
        .read_actions(stratasync::SyncId::ZERO, 10, None)
        .await
        .expect("log");
    assert_eq!(old.len(), 1, "the old action is kept");
    assert_eq!(old[0].id.get(), 7);
    let alice = server.client("user:alice");
    let fresh = tx(
        "t1",
        "Task",
        &new_id(),
        "INSERT",
        json!({ "title": "after the upgrade", "priority": 1, "workspaceId": "w1" }),
    );
    let id: u64 = alice.mutate_ok(fresh).await.parse().expect("digits");
    assert!(id > 9, "ids continue after the sequence ({id})");
}

on_each_backend!(existing_installs_move_to_the_per_user_key);
