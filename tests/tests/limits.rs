//! What a client sees when it hits each limit of [`stratasync::Limits`]
//! (README "Limits"), one limit per case, set small so the case is quick.
//! PostgreSQL (the connection budget is the pool's).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stratasync::{Limits, LiveContext, LiveHooks, LiveSocket, SyncServer};
use stratasync_tests::harness::{
    Backend, Fixture, TestAuth, TestDb, TestServer, new_id, registry, run, tx,
};
use stratasync_tests::live::{Frame, Ws, fill_log};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const KIB: usize = 1024;

/// Runs `case` on a fresh PostgreSQL database.
async fn on_postgres<F>(case: F)
where
    F: for<'a> FnOnce(&'a TestDb) -> futures::future::BoxFuture<'a, ()>,
{
    run(Backend::Postgres, case).await;
}

/// A server on `db` with `limits`, holding `members`.
async fn server(db: &TestDb, limits: Limits, members: &[(&str, &str)]) -> TestServer {
    Fixture::on(db)
        .configure(|builder| builder.limits(limits))
        .members(members)
        .start()
        .await
}

/// Seeds `rows` tasks of 1000-byte titles into `workspace`: a bootstrap far
/// larger than the socket buffers, so one nobody reads stays open.
async fn big_workspace(db: &TestDb, workspace: &str, rows: usize) {
    db.execute(&format!(
        "INSERT INTO tasks (id, title, priority, workspace_id, created_at) \
         SELECT gen_random_uuid(), repeat('t', 1000), 1, '{workspace}', now() \
         FROM generate_series(1, {rows})"
    ))
    .await;
}

/// Sends a bootstrap request for `token` on a raw connection and reads
/// nothing of the answer.
async fn unread_bootstrap(url: &str, token: &str) -> TcpStream {
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request =
        format!("GET /sync/bootstrap HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    // Long enough for the server to take its snapshot slot and connection.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stream
}

/// Status, `Retry-After` and JSON body of a request by `token`.
async fn send(request: reqwest::RequestBuilder, token: &str) -> (u16, Option<String>, Value) {
    let response = request
        .bearer_auth(token)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().expect("ASCII").to_owned());
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, retry_after, body)
}

fn bootstrap(url: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new().get(format!("{url}/sync/bootstrap"))
}

fn mutate(url: &str, workspace: &str) -> reqwest::RequestBuilder {
    let payload = json!({ "title": "t", "priority": 1, "workspaceId": workspace });
    let body = json!({
        "batchId": new_id(),
        "transactions": [tx(&new_id(), "Task", &new_id(), "INSERT", payload)],
    });
    reqwest::Client::new()
        .post(format!("{url}/sync/mutate"))
        .json(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_websocket_message_over_the_limit_closes_with_1009() {
    on_postgres(|db| {
        Box::pin(async move {
            let mut limits = Limits::default();
            limits.ws_message_bytes = 64 * KIB;
            let server = server(db, limits, &[]).await;
            let mut ws = Ws::connect(&server.url, "user:alice").await;
            ws.subscribe("user:alice", "0", None).await;
            ws.until_subscribed().await;
            ws.send_text(&"x".repeat(100 * KIB)).await;
            match ws.next().await {
                Frame::Close(code, _) => assert_eq!(code, 1009, "message too big"),
                other => panic!("expected a 1009 close, got {other:?}"),
            }
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_socket_that_never_subscribes_closes_with_4001() {
    on_postgres(|db| {
        Box::pin(async move {
            let mut limits = Limits::default();
            limits.subscribe_timeout = Duration::from_secs(1);
            let server = server(db, limits, &[]).await;
            let mut idle = Ws::connect(&server.url, "user:idle").await;
            let mut subscribed = Ws::connect(&server.url, "user:busy").await;
            subscribed.subscribe("user:busy", "0", None).await;
            subscribed.until_subscribed().await;
            match idle.next_within(Duration::from_secs(5)).await {
                Frame::Close(code, _) => assert_eq!(code, 4001, "subscribe timeout"),
                other => panic!("expected a 4001 close, got {other:?}"),
            }
            assert_eq!(
                subscribed.next_within(Duration::from_secs(1)).await,
                Frame::Timeout,
                "a subscribed socket stays open past the subscribe deadline"
            );
        })
    })
    .await;
}

/// Counts the sockets that closed (the close hook).
#[derive(Debug, Clone, Default)]
struct Closes(Arc<AtomicUsize>);

impl LiveHooks for Closes {
    async fn on_close(&self, _socket: &LiveSocket, _context: &LiveContext) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_byte_full_outgoing_queue_closes_with_4008() {
    on_postgres(|db| {
        Box::pin(async move {
            let mut limits = Limits::default();
            limits.outgoing_queue_bytes = 64 * KIB;
            limits.slow_consumer_timeout = Duration::from_secs(1);
            let closes = Closes::default();
            let hooks = closes.clone();
            let server = Fixture::on(db)
                .configure(move |builder| builder.limits(limits).live_hooks(hooks))
                .members(&[("reader", "ws-q"), ("writer", "ws-q")])
                .start()
                .await;
            let mut ws = Ws::connect_small_buffer(&server.url, "user:reader", 4096).await;
            ws.subscribe("user:reader", "0", None).await;
            ws.until_subscribed().await;
            // 60 actions of 150 KB: well under the frame bound (1024), far
            // over the byte bound and what the socket buffers take. They are
            // written while the socket is not read, and it is read again as
            // soon as the server closed it, well within the 10 s the server
            // gives a slow consumer's close frames, however long the writes
            // take on a loaded machine.
            let url = server.url.clone();
            let writes = tokio::spawn(async move {
                let title = "x".repeat(150_000);
                let http = reqwest::Client::new();
                for _ in 0..12 {
                    let transactions: Vec<_> = (0..5)
                        .map(|_| {
                            let payload =
                                json!({ "title": title, "priority": 1, "workspaceId": "ws-q" });
                            tx(&new_id(), "Task", &new_id(), "INSERT", payload)
                        })
                        .collect();
                    let body = json!({ "batchId": new_id(), "transactions": transactions });
                    let (status, _, reply) = send(
                        http.post(format!("{url}/sync/mutate")).json(&body),
                        "user:writer",
                    )
                    .await;
                    assert_eq!(status, 200, "{reply}");
                }
            });
            let deadline = Instant::now() + Duration::from_secs(60);
            while closes.0.load(Ordering::SeqCst) == 0 {
                assert!(Instant::now() < deadline, "the socket was never closed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Reading again now shows why the socket was cut off.
            let mut deltas = 0;
            let mut error = None;
            let code = loop {
                match ws.next_within(Duration::from_secs(20)).await {
                    Frame::Json(frame) if frame["type"] == "delta" => deltas += 1,
                    Frame::Json(frame) if frame["type"] == "error" => error = Some(frame),
                    Frame::Close(code, _) => break code,
                    other => panic!("unexpected {other:?} after {deltas} deltas"),
                }
            };
            assert_eq!(code, 4008, "slow consumer");
            assert_eq!(
                error.expect("an error frame before the close")["code"],
                "SLOW_CONSUMER"
            );
            assert!(deltas < 60, "the socket was cut off, not served to the end");
            writes.await.expect("the writes");
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sockets_past_the_per_user_limit_are_refused_with_429() {
    on_postgres(|db| {
        Box::pin(async move {
            let mut limits = Limits::default();
            limits.sockets_per_user = 2;
            let server = server(db, limits, &[]).await;
            let first = Ws::connect(&server.url, "user:greedy").await;
            let _second = Ws::connect(&server.url, "user:greedy").await;
            let (status, body) = Ws::try_connect(&server.url, Some("user:greedy"))
                .await
                .expect_err("a third socket is refused");
            assert_eq!(status, 429);
            assert!(
                body["error"].as_str().unwrap_or("").contains("sockets"),
                "{body}"
            );
            let _other = Ws::connect(&server.url, "user:other").await;
            first.close().await;
            // The closed socket's place frees up once the server sees it go.
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match Ws::try_connect(&server.url, Some("user:greedy")).await {
                    Ok(_) => break,
                    Err((429, _)) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(refused) => panic!("a freed place is given again: {refused:?}"),
                }
            }
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bootstraps_past_the_per_user_limit_are_refused_with_429() {
    on_postgres(|db| {
        Box::pin(async move {
            big_workspace(db, "ws-big", 10_000).await;
            let mut limits = Limits::default();
            limits.bootstraps_per_user = 1;
            let server = server(db, limits, &[("hog", "ws-big")]).await;
            let _held = unread_bootstrap(&server.url, "user:hog").await;
            let (status, _, body) = send(bootstrap(&server.url), "user:hog").await;
            assert_eq!(status, 429, "{body}");
            assert!(
                body["error"].as_str().unwrap_or("").contains("bootstraps"),
                "{body}"
            );
            let (status, _, _) = send(bootstrap(&server.url), "user:other").await;
            assert_eq!(status, 200, "another user bootstraps");
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshots_past_their_share_of_the_pool_get_503_and_mutations_still_run() {
    on_postgres(|db| {
        Box::pin(async move {
            big_workspace(db, "ws-big", 10_000).await;
            let mut limits = Limits::default();
            // One snapshot slot, one connection left for everything else.
            limits.pool_size = 2;
            limits.snapshot_wait = Duration::from_millis(300);
            let server = server(db, limits, &[("hog", "ws-big"), ("bob", "ws-bob")]).await;
            let _held = unread_bootstrap(&server.url, "user:hog").await;
            let (status, retry_after, body) = send(bootstrap(&server.url), "user:bob").await;
            assert_eq!(status, 503, "{body}");
            assert_eq!(retry_after.as_deref(), Some("1"));
            let (status, _, body) = send(mutate(&server.url, "ws-bob"), "user:bob").await;
            assert_eq!(
                status, 200,
                "a mutation does not wait behind snapshots: {body}"
            );
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_exhausted_pool_answers_503_after_the_wait_timeout() {
    on_postgres(|db| {
        Box::pin(async move {
            big_workspace(db, "ws-big", 10_000).await;
            let mut limits = Limits::default();
            // The only connection goes to a snapshot nobody reads.
            limits.pool_size = 1;
            limits.pool_wait_timeout = Duration::from_millis(300);
            let server = server(db, limits, &[("hog", "ws-big")]).await;
            let _held = unread_bootstrap(&server.url, "user:hog").await;
            let started = Instant::now();
            let (status, retry_after, body) = send(mutate(&server.url, "ws-bob"), "user:bob").await;
            assert_eq!(status, 503, "{body}");
            assert_eq!(retry_after.as_deref(), Some("1"));
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "answered after the wait timeout, not hung: {:?}",
                started.elapsed()
            );
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_snapshot_is_cut_off_and_returns_its_connection() {
    on_postgres(|db| {
        Box::pin(async move {
            big_workspace(db, "ws-big", 10_000).await;
            let mut limits = Limits::default();
            limits.pool_size = 2;
            limits.snapshot_stall_timeout = Duration::from_secs(1);
            limits.snapshot_wait = Duration::from_secs(10);
            let server = server(db, limits, &[("hog", "ws-big"), ("bob", "ws-bob")]).await;
            let mut held = unread_bootstrap(&server.url, "user:hog").await;
            // The only snapshot slot frees up once the stall deadline ends
            // the hog's snapshot.
            let started = Instant::now();
            let (status, _, body) = send(bootstrap(&server.url), "user:bob").await;
            assert_eq!(status, 200, "{body}");
            assert!(
                started.elapsed() < Duration::from_secs(8),
                "{:?}",
                started.elapsed()
            );
            // What the hog gets is not a complete response: the chunked body
            // never ends with its last chunk.
            let mut received = Vec::new();
            let read =
                tokio::time::timeout(Duration::from_secs(30), held.read_to_end(&mut received))
                    .await
                    .expect("the cut-off connection ends");
            let _ = read;
            assert!(
                !received.ends_with(b"\r\n0\r\n\r\n"),
                "a cut-off snapshot ends without its last chunk ({} bytes read)",
                received.len()
            );
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deltas_pages_are_bounded_by_bytes_and_continue_with_has_more() {
    on_postgres(|db| {
        Box::pin(async move {
            let mut limits = Limits::default();
            limits.delta_page_bytes = 64 * KIB;
            let server = server(db, limits, &[]).await;
            fill_log(db, "ws-d", 20, 20_000).await;
            server.add_member("reader", "ws-d").await;
            let reader = server.client("user:reader");
            let mut after = "0".to_owned();
            let (mut seen, mut pages) = (0, 0);
            loop {
                let reply = reader
                    .get(&format!("/sync/deltas?after={after}&limit=1000"))
                    .await;
                assert_eq!(reply.status, 200, "{}", reply.text);
                assert!(
                    reply.text.len() <= 64 * KIB + 25_000,
                    "a page holds at most the budget and one more action: {} bytes",
                    reply.text.len()
                );
                seen += reply.json["actions"].as_array().expect("actions").len();
                pages += 1;
                after = reply.json["lastSyncId"]
                    .as_str()
                    .expect("lastSyncId")
                    .to_owned();
                if reply.json["hasMore"] != true {
                    break;
                }
            }
            assert_eq!(seen, 20, "every action, page after page");
            assert!(
                pages >= 5,
                "20 actions of 20 KB take several pages: {pages}"
            );
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_body_over_the_limit_is_413() {
    on_postgres(|db| {
        Box::pin(async move {
            let mut limits = Limits::default();
            limits.request_body_bytes = 64 * KIB;
            let server = server(db, limits, &[]).await;
            let payload =
                json!({ "title": "x".repeat(100 * KIB), "priority": 1, "workspaceId": "ws" });
            let body = json!({
                "batchId": new_id(),
                "transactions": [tx(&new_id(), "Task", &new_id(), "INSERT", payload)],
            });
            let request = reqwest::Client::new()
                .post(format!("{}/sync/mutate", server.url))
                .json(&body);
            let (status, _, _) = send(request, "user:alice").await;
            assert_eq!(status, 413);
        })
    })
    .await;
}

/// A server run by [`SyncServer::serve`] (its own accept loop) on `db` with
/// `limits`; returns its address.
async fn served(db: &TestDb, limits: Limits) -> (String, tokio::task::JoinHandle<()>) {
    let server = SyncServer::builder(registry())
        .database_url(&db.url)
        .auth(TestAuth)
        .limits(limits)
        .build()
        .await
        .expect("build");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    let task = tokio::spawn(async move {
        let _ = server.serve(listener).await;
    });
    (addr, task)
}

/// Reads until the peer closes, for at most `within`; `true` if it closed.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut sink = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_headers_and_idle_keep_alive_are_closed_after_the_header_timeout() {
    on_postgres(|db| {
        Box::pin(async move {
            let mut limits = Limits::default();
            limits.header_read_timeout = Duration::from_secs(1);
            let (addr, task) = served(db, limits).await;
            let mut slow = TcpStream::connect(&addr).await.expect("connect");
            slow.write_all(b"GET /sync/deltas HTTP/1.1\r\nhost: x\r\n")
                .await
                .expect("start headers");
            let mut idle = TcpStream::connect(&addr).await.expect("connect");
            idle.write_all(b"GET /nope HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .expect("a request");
            let mut head = [0u8; 12];
            idle.read_exact(&mut head).await.expect("an answer");
            assert_eq!(&head, b"HTTP/1.1 404");
            let started = Instant::now();
            assert!(
                closed_within(&mut slow, Duration::from_secs(5)).await,
                "slow headers are cut off"
            );
            assert!(
                closed_within(&mut idle, Duration::from_secs(5)).await,
                "an idle keep-alive connection is closed"
            );
            assert!(started.elapsed() >= Duration::from_millis(500));
            task.abort();
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_past_the_cap_are_answered_503() {
    on_postgres(|db| {
        Box::pin(async move {
            let mut limits = Limits::default();
            limits.max_connections = 2;
            let (addr, task) = served(db, limits).await;
            let _first = TcpStream::connect(&addr).await.expect("connect");
            let _second = TcpStream::connect(&addr).await.expect("connect");
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut third = TcpStream::connect(&addr).await.expect("connect");
            third
                .write_all(b"GET /sync/deltas HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .expect("send");
            let mut answer = String::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), third.read_to_string(&mut answer))
                .await
                .expect("answered");
            assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
            assert!(
                answer.to_ascii_lowercase().contains("retry-after: 1"),
                "{answer}"
            );
            task.abort();
        })
    })
    .await;
}
