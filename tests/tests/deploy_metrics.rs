//! Prometheus metrics (issue 12, item 4): a scrape after one mutate and one
//! subscribe sees the counters move.

use std::time::Duration;

use stratasync::SyncServer;
use stratasync_tests::harness::{Backend, TestAuth, TestDb, new_id, registry, tx};
use stratasync_tests::live::{Ws, delta_id};

/// The value of the sample of `name` whose labels include every one of
/// `labels` (`key="value"`), or 0 when there is none.
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            let series = line.split_whitespace().next().unwrap_or_default();
            let metric = series.split('{').next().unwrap_or_default();
            metric == name && labels.iter().all(|label| series.contains(label))
        })
        .filter_map(|line| line.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

async fn scrape(client: &reqwest::Client, base: &str) -> String {
    let reply = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(reply.status(), 200);
    let content_type = reply.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    reply.text().await.expect("body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_after_one_mutate_and_one_subscribe_sees_the_counters_move() {
    let db = TestDb::create(Backend::Sqlite).await.expect("SQLite");
    let server = SyncServer::builder(registry())
        .database_url(&db.url)
        .auth(TestAuth)
        .build()
        .await
        .expect("build");
    server
        .store()
        .add_member("alice", "w1", "workspace")
        .await
        .expect("member");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let app = server.router().merge(server.metrics_router());
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    let before = scrape(&client, &base).await;

    let mut ws = Ws::connect(&base, "user:alice").await;
    ws.subscribe("user:alice", "0", None).await;
    ws.until_subscribed().await;
    let payload = serde_json::json!({ "title": "counted", "priority": 1, "workspaceId": "w1" });
    let reply = client
        .post(format!("{base}/sync/mutate"))
        .bearer_auth("user:alice")
        .json(&serde_json::json!({
            "batchId": "b",
            "transactions": [tx(&new_id(), "Task", &new_id(), "INSERT", payload)],
        }))
        .send()
        .await
        .expect("mutate");
    assert_eq!(reply.status(), 200);
    let delta = ws.next_delta().await;
    let after = scrape(&client, &base).await;

    let moved =
        |name: &str, labels: &[&str]| sample(&after, name, labels) - sample(&before, name, labels);
    assert_eq!(
        moved("stratasync_mutations_total", &["result=\"applied\""]),
        1.0,
        "{after}"
    );
    assert_eq!(
        moved(
            "stratasync_http_requests_total",
            &["route=\"/sync/mutate\"", "status=\"200\""]
        ),
        1.0,
        "{after}"
    );
    assert!(
        moved(
            "stratasync_http_request_duration_seconds_count",
            &["route=\"/sync/mutate\""]
        ) >= 1.0,
        "{after}"
    );
    assert!(
        moved("stratasync_deltas_delivered_total", &[]) >= 1.0,
        "{after}"
    );
    assert!(
        sample(&after, "stratasync_sockets_open", &[]) >= 1.0,
        "{after}"
    );
    assert!(
        sample(&after, "stratasync_subscriptions", &[]) >= 1.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, "stratasync_log_head_id", &[]),
        delta_id(&delta) as f64,
        "{after}"
    );
    assert!(
        after.contains("stratasync_pool_connections_in_use"),
        "{after}"
    );
    assert!(after.contains("stratasync_tailer_lag"), "{after}");

    ws.close().await;
    let subscribed = sample(&after, "stratasync_subscriptions", &[]);
    let mut closed = String::new();
    for _ in 0..50 {
        closed = scrape(&client, &base).await;
        if sample(&closed, "stratasync_subscriptions", &[]) < subscribed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        sample(&closed, "stratasync_subscriptions", &[]),
        subscribed - 1.0,
        "{closed}"
    );
    task.abort();
}
