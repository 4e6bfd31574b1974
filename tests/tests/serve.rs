//! `serve_with`: the one-call server, configured like `serve` reads it from
//! the environment.

use std::time::Duration;

use stratasync::{ServeConfig, serve_with};
use stratasync_tests::harness::{TestAuth, registry};

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_protocol_on_an_embedded_database() {
    let dir = std::env::temp_dir().join(format!("serve-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let database = dir.join("sync.sqlite3");
    // The test models' tables must exist; the sync tables are created by serve.
    let db = format!("sqlite://{}", database.display());
    stratasync_tests::harness::create_sqlite_tables(&database.display().to_string()).await;
    let bind = format!("127.0.0.1:{}", free_port());
    let config = ServeConfig::from_lookup(|name| match name {
        "BIND" => Some(bind.clone()),
        "DATABASE_URL" => Some(db.clone()),
        _ => None,
    })
    .expect("valid configuration");
    let server = tokio::spawn(serve_with(config, registry(), TestAuth));

    let client = reqwest::Client::new();
    let mut reply = None;
    for _ in 0..100 {
        match client
            .get(format!("http://{bind}/sync/bootstrap"))
            .bearer_auth("user:alice")
            .send()
            .await
        {
            Ok(response) => {
                reply = Some(response);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let reply = reply.expect("the server answers");
    assert_eq!(reply.status(), 200);
    let first_line: serde_json::Value = serde_json::from_str(
        reply
            .text()
            .await
            .expect("body")
            .lines()
            .next()
            .expect("metadata"),
    )
    .expect("JSON");
    assert_eq!(
        first_line["subscribedSyncGroups"],
        serde_json::json!(["alice"])
    );
    assert!(database.exists());
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_port_in_use_fails_before_the_database_is_touched() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let bind = taken.local_addr().expect("address").to_string();
    let config = ServeConfig {
        bind: bind.clone(),
        database_url: "postgres://nobody@127.0.0.1:1/never".into(),
        ..ServeConfig::default()
    };
    let error = serve_with(config, registry(), TestAuth)
        .await
        .expect_err("the port is taken");
    assert!(matches!(error, stratasync::Error::Bind { .. }), "{error}");
    assert!(error.to_string().contains(&bind), "{error}");
}

#[test]
fn the_configuration_prints_without_passwords() {
    let config = ServeConfig::from_lookup(|name| match name {
        "DATABASE_URL" => Some("postgres://app:s3cret@db/app".into()),
        "REDIS_URL" => Some("rediss://:s3cret@cache:6380".into()),
        _ => None,
    })
    .expect("valid configuration");
    let shown = format!("{config:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("postgres://app:***@db/app"), "{shown}");
    assert!(shown.contains("rediss://:***@cache:6380"), "{shown}");
}

#[tokio::test]
async fn connection_errors_do_not_show_the_password() {
    for url in [
        "postgres://app:s3cret@127.0.0.1:1/app",
        "mysql://app:s3cret@localhost/app",
    ] {
        let error = stratasync::Store::connect(url, registry())
            .await
            .expect_err("cannot connect")
            .to_string();
        assert!(!error.contains("s3cret"), "{error}");
    }
}
