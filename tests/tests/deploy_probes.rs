//! `/sync/health` and `/sync/ready` (issue 12, item 2): readiness follows
//! the database and Redis, through TCP proxies the test cuts (the shared
//! services are never touched).

use std::time::Duration;

use stratasync::SyncServer;
use stratasync_tests::harness::{Backend, TestAuth, TestDb, registry};
use stratasync_tests::live::{CuttableProxy, redis_addr, unique_channel};

/// Polls `url` until it answers `status` (up to ten seconds); returns the body.
async fn until_status(url: &str, status: u16) -> serde_json::Value {
    let client = reqwest::Client::new();
    let mut last = None;
    for _ in 0..100 {
        if let Ok(reply) = client.get(url).timeout(Duration::from_secs(3)).send().await {
            let code = reply.status().as_u16();
            let body: serde_json::Value = reply.json().await.expect("JSON body");
            if code == status {
                return body;
            }
            last = Some((code, body));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never answered {status}; last: {last:?}");
}

/// The `host:port` of a `postgres://user@host:port/db` URL.
fn authority(url: &str) -> &str {
    let rest = url.split_once('@').map_or(url, |(_, rest)| rest);
    rest.split('/').next().expect("host:port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ready_follows_the_database_and_redis() {
    let Some(db) = TestDb::create(Backend::Postgres).await else {
        return;
    };
    let Some(redis) = redis_addr().await else {
        db.drop_database().await;
        return;
    };
    let pg_proxy = CuttableProxy::start(authority(&db.url).to_owned()).await;
    let redis_proxy = CuttableProxy::start(redis).await;
    let proxied_db = db.url.replacen(
        authority(&db.url),
        pg_proxy.url.trim_start_matches("redis://"),
        1,
    );
    let server = SyncServer::builder(registry())
        .database_url(proxied_db)
        .redis_url(&redis_proxy.url)
        .redis_channel(unique_channel())
        .auth(TestAuth)
        .build()
        .await
        .expect("build");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let router = server.router();
    let task = tokio::spawn(async move { axum::serve(listener, router).await });
    let (health, ready) = (format!("{base}/sync/health"), format!("{base}/sync/ready"));

    let body = until_status(&ready, 200).await;
    assert_eq!(
        body,
        serde_json::json!({"status": "ready", "database": "ok", "redis": "connected", "draining": false})
    );

    pg_proxy.cut();
    let body = until_status(&ready, 503).await;
    assert_ne!(body["database"], "ok", "{body}");
    assert_eq!(until_status(&health, 200).await["status"], "ok");
    pg_proxy.restore();
    until_status(&ready, 200).await;

    redis_proxy.cut();
    let body = until_status(&ready, 503).await;
    assert_eq!(body["redis"], "disconnected", "{body}");
    assert_eq!(body["database"], "ok", "{body}");
    redis_proxy.restore();
    until_status(&ready, 200).await;

    task.abort();
    drop(server);
    db.drop_database().await;
}
