//! TLS to PostgreSQL (issue 12, item 1), against the local server, which has
//! `ssl = on` with its self-signed certificate for `localhost`.

use diesel::QueryableByName;
use diesel::sql_types::{Bool, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use stratasync::{Store, StoreError};
use stratasync_tests::harness::{Backend, TestDb, registry};

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    value: String,
}

#[derive(QueryableByName)]
struct Encrypted {
    #[diesel(sql_type = Bool)]
    ssl: bool,
}

/// The server's certificate file (`SHOW ssl_cert_file`).
async fn server_certificate(db: &TestDb) -> String {
    let mut conn = AsyncPgConnection::establish(&db.url)
        .await
        .expect("connect");
    let setting: Setting =
        diesel::sql_query("SELECT setting AS value FROM pg_settings WHERE name = 'ssl_cert_file'")
            .get_result(&mut conn)
            .await
            .expect("ssl_cert_file");
    setting.value
}

/// Whether the connections named `application` are encrypted (`pg_stat_ssl`).
async fn encrypted(db: &TestDb, application: &str) -> Vec<bool> {
    let mut conn = AsyncPgConnection::establish(&db.url)
        .await
        .expect("connect");
    let rows: Vec<Encrypted> = diesel::sql_query(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = $1",
    )
    .bind::<Text, _>(application)
    .load(&mut conn)
    .await
    .expect("pg_stat_ssl");
    rows.into_iter().map(|row| row.ssl).collect()
}

/// Connects a store with `params` added to the test database's URL, on
/// `host` instead of 127.0.0.1; returns it with its application name.
async fn connect(db: &TestDb, host: &str, params: &str) -> (Result<Store, StoreError>, String) {
    let application = format!("tls_{}", uuid::Uuid::new_v4().simple());
    let url = format!(
        "{}?application_name={application}&{params}",
        db.url.replacen("127.0.0.1", host, 1)
    );
    (Store::connect(&url, registry()).await, application)
}

async fn postgres() -> Option<TestDb> {
    TestDb::create(Backend::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_connects_encrypted() {
    let Some(db) = postgres().await else { return };
    let (store, application) = connect(&db, "127.0.0.1", "sslmode=require").await;
    let store = store.expect("sslmode=require connects to a self-signed server");
    store.member_groups("alice").await.expect("a query");
    assert_eq!(encrypted(&db, &application).await, vec![true]);
    drop(store);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_connects_in_plain_text() {
    let Some(db) = postgres().await else { return };
    let (store, application) = connect(&db, "127.0.0.1", "sslmode=disable").await;
    let store = store.expect("sslmode=disable connects");
    store.member_groups("alice").await.expect("a query");
    assert_eq!(encrypted(&db, &application).await, vec![false]);
    drop(store);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_accepts_the_right_root_and_host_name() {
    let Some(db) = postgres().await else { return };
    let root = server_certificate(&db).await;
    let params = format!("sslmode=verify-full&sslrootcert={root}");
    let (store, application) = connect(&db, "localhost", &params).await;
    let store = store.expect("the server's certificate is for localhost");
    store.member_groups("alice").await.expect("a query");
    assert_eq!(encrypted(&db, &application).await, vec![true]);
    drop(store);

    // The certificate names localhost, not 127.0.0.1: verify-full refuses,
    // verify-ca (chain only) accepts.
    let (refused, _) = connect(&db, "127.0.0.1", &params).await;
    let error = refused.expect_err("wrong host name").to_string();
    assert!(error.contains("sslmode=verify-full"), "{error}");
    let (store, _) = connect(
        &db,
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={root}"),
    )
    .await;
    drop(store.expect("verify-ca ignores the host name"));
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_the_wrong_root_certificate_fails_clearly() {
    let Some(db) = postgres().await else { return };
    // Public roots, none of which signed the server's self-signed certificate.
    let wrong = "/etc/ssl/certs/ca-certificates.crt";
    let (refused, _) = connect(
        &db,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={wrong}"),
    )
    .await;
    let error = refused.expect_err("an untrusted certificate").to_string();
    assert!(!error.contains('\n'), "one line: {error}");
    assert!(error.contains("certificate"), "{error}");
    assert!(
        error.contains(&format!("(sslmode=verify-full, sslrootcert={wrong})")),
        "{error}"
    );
    db.drop_database().await;
}

#[tokio::test]
async fn an_unreadable_root_certificate_names_the_setting() {
    let error = Store::connect(
        "postgres://postgres@localhost/none?sslmode=verify-full&sslrootcert=/no/such/root.pem",
        registry(),
    )
    .await
    .expect_err("no such file")
    .to_string();
    assert!(
        error.starts_with("cannot connect to the database: sslrootcert=/no/such/root.pem: "),
        "{error}"
    );
}
