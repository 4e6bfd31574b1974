//! Helpers of the live suites: a WebSocket client of `/sync/ws`, the
//! delivery checker, Redis discovery and a TCP proxy to cut Redis with.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use stratasync::SyncId;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::harness::{Backend, TestDb};
use crate::tally::{self, Service};

/// What a socket received next.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A JSON text frame.
    Json(Value),
    /// A close frame: code and reason.
    Close(u16, String),
    /// The connection ended without a close frame.
    Ended,
    /// Nothing arrived in time.
    Timeout,
}

impl Frame {
    /// The JSON of a text frame; panics on anything else.
    pub fn json(self) -> Value {
        match self {
            Frame::Json(value) => value,
            other => panic!("expected a JSON frame, got {other:?}"),
        }
    }
}

/// A WebSocket client of `/sync/ws`.
#[derive(Debug)]
pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// `http://host:port` → `ws://host:port/sync/ws?token=...`.
pub fn ws_url(http_base: &str, token: Option<&str>) -> String {
    let base = http_base.replacen("http://", "ws://", 1);
    match token {
        Some(token) => format!("{base}/sync/ws?token={token}"),
        None => format!("{base}/sync/ws"),
    }
}

impl Ws {
    /// Connects with `token` on the upgrade; panics when refused.
    pub async fn connect(http_base: &str, token: &str) -> Ws {
        match Ws::try_connect(http_base, Some(token)).await {
            Ok(ws) => ws,
            Err((status, body)) => panic!("upgrade refused: {status} {body}"),
        }
    }

    /// Connects; on refusal returns the HTTP status and the body less its
    /// `requestId` ([`error_body`](crate::protocol::error_body)).
    pub async fn try_connect(http_base: &str, token: Option<&str>) -> Result<Ws, (u16, Value)> {
        match tokio_tungstenite::connect_async(ws_url(http_base, token)).await {
            Ok((stream, _)) => Ok(Ws { stream }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body = response
                    .body()
                    .as_ref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or(Value::Null);
                Err((status, crate::protocol::error_body(&body)))
            }
            Err(error) => panic!("connect failed: {error}"),
        }
    }

    /// Connects, or `None` when the node does not answer or refuses.
    pub async fn connect_opt(http_base: &str, token: &str) -> Option<Ws> {
        let connecting = tokio_tungstenite::connect_async(ws_url(http_base, Some(token)));
        match tokio::time::timeout(Duration::from_secs(5), connecting).await {
            Ok(Ok((stream, _))) => Some(Ws { stream }),
            _ => None,
        }
    }

    /// Connects over a TCP socket with a small receive buffer (slow-consumer tests).
    pub async fn connect_small_buffer(http_base: &str, token: &str, recv_buffer: u32) -> Ws {
        let addr = http_base.trim_start_matches("http://");
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(recv_buffer).expect("SO_RCVBUF");
        let tcp = socket
            .connect(addr.parse().expect("address"))
            .await
            .expect("connect");
        let (stream, _) = tokio_tungstenite::client_async(
            ws_url(http_base, Some(token)),
            MaybeTlsStream::Plain(tcp),
        )
        .await
        .expect("upgrade");
        Ws { stream }
    }

    /// Sends a JSON text frame.
    pub async fn send_json(&mut self, value: &Value) {
        self.stream
            .send(Message::Text(value.to_string().into()))
            .await
            .expect("send");
    }

    /// Sends a raw text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.stream
            .send(Message::Text(text.to_owned().into()))
            .await
            .expect("send");
    }

    /// Sends a subscribe frame.
    pub async fn subscribe(&mut self, token: &str, after: &str, groups: Option<&[&str]>) {
        let mut frame = json!({ "type": "subscribe", "token": token, "afterSyncId": after });
        if let Some(groups) = groups {
            frame["groups"] = json!(groups);
        }
        self.send_json(&frame).await;
    }

    /// The next text or close frame (pings and pongs are skipped), within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Frame {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next()).await;
            return match next {
                Err(_) => Frame::Timeout,
                Ok(None) => Frame::Ended,
                Ok(Some(Err(_))) => Frame::Ended,
                Ok(Some(Ok(Message::Text(text)))) => Frame::Json(
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad frame {text}: {e}")),
                ),
                Ok(Some(Ok(Message::Close(close)))) => match close {
                    Some(close) => Frame::Close(u16::from(close.code), close.reason.to_string()),
                    None => Frame::Close(u16::from(CloseCode::Status), String::new()),
                },
                Ok(Some(Ok(_))) => continue,
            };
        }
    }

    /// The next frame within 10 s.
    pub async fn next(&mut self) -> Frame {
        self.next_within(Duration::from_secs(10)).await
    }

    /// Reads deltas until the `subscribed` acknowledgement; returns the
    /// deltas' sync ids and the acknowledgement. Panics on anything else.
    pub async fn until_subscribed(&mut self) -> (Vec<u64>, Value) {
        let mut ids = Vec::new();
        loop {
            let frame = self.next().await.json();
            match frame["type"].as_str() {
                Some("delta") => ids.push(delta_id(&frame)),
                Some("subscribed") => return (ids, frame),
                _ => panic!("unexpected frame before the acknowledgement: {frame}"),
            }
        }
    }

    /// Reads delta frames for `wait`; returns their ids (panics on other frames).
    pub async fn deltas_for(&mut self, wait: Duration) -> Vec<u64> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut ids = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Frame::Timeout => return ids,
                Frame::Json(frame) if frame["type"] == "delta" => ids.push(delta_id(&frame)),
                other => panic!("unexpected frame: {other:?}"),
            }
        }
    }

    /// The next delta frame (panics on anything else).
    pub async fn next_delta(&mut self) -> Value {
        let frame = self.next().await.json();
        assert_eq!(frame["type"], "delta", "{frame}");
        frame
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// The sync id of a delta frame.
pub fn delta_id(frame: &Value) -> u64 {
    let id = frame["packet"]["lastSyncId"]
        .as_str()
        .unwrap_or_else(|| panic!("delta without lastSyncId: {frame}"));
    id.parse().expect("digits")
}

/// How a socket's received sequence differs from what it should have received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Expected ids never received.
    pub lost: usize,
    /// Ids received more than once (each extra copy counts).
    pub duplicated: usize,
    /// Frames whose id is not above the previous frame's.
    pub out_of_order: usize,
    /// Ids received that the socket may not see.
    pub foreign: usize,
}

impl Verdict {
    /// No difference at all.
    pub fn is_clean(&self) -> bool {
        *self == Verdict::default()
    }

    /// Adds `other` to this one.
    pub fn add(&mut self, other: Verdict) {
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.foreign += other.foreign;
    }
}

/// Compares a socket's `received` ids with the `expected` ones (the log
/// filtered by its groups, ascending).
pub fn check(received: &[u64], expected: &[u64]) -> Verdict {
    let expected_set: HashSet<u64> = expected.iter().copied().collect();
    let mut seen: HashMap<u64, usize> = HashMap::new();
    let mut verdict = Verdict::default();
    for (i, id) in received.iter().enumerate() {
        *seen.entry(*id).or_default() += 1;
        if i > 0 && *id <= received[i - 1] {
            verdict.out_of_order += 1;
        }
        if !expected_set.contains(id) {
            verdict.foreign += 1;
        }
    }
    verdict.duplicated = seen.values().map(|n| n - 1).sum();
    verdict.lost = expected.iter().filter(|id| !seen.contains_key(id)).count();
    verdict
}

/// Every action id of the log visible to `groups` after `after`, ascending.
pub async fn log_ids(server: &stratasync::SyncServer, groups: &[String], after: u64) -> Vec<u64> {
    let mut ids = Vec::new();
    let mut cursor = SyncId::new(after);
    loop {
        let page = server
            .store()
            .read_actions(cursor, 1000, Some(groups))
            .await
            .expect("read the log");
        let done = page.len() < 1000;
        for action in page {
            cursor = action.id;
            ids.push(action.id.get());
        }
        if done {
            return ids;
        }
    }
}

/// Every action id of the log, whatever its group, ascending.
pub async fn all_log_ids(server: &stratasync::SyncServer) -> Vec<u64> {
    let mut ids = Vec::new();
    let mut cursor = SyncId::new(0);
    loop {
        let page = server
            .store()
            .read_actions(cursor, 1000, None)
            .await
            .expect("read the log");
        let done = page.len() < 1000;
        for action in page {
            cursor = action.id;
            ids.push(action.id.get());
        }
        if done {
            return ids;
        }
    }
}

/// The Redis of the suites: `STRATASYNC_TEST_REDIS` (default
/// `redis://127.0.0.1:6379`) as `host:port`, or `None` when it cannot be
/// reached outside CI (the case then says so, passes and counts as skipped
/// in the [tally]). Under CI a missing Redis fails the run.
pub async fn redis_addr() -> Option<String> {
    let url = std::env::var("STRATASYNC_TEST_REDIS")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let addr = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => {
            tally::ran(Service::Redis);
            Some(addr)
        }
        outcome if !in_ci() => {
            eprintln!("skipped: Redis at {url} unreachable ({outcome:?}); set CI=1 to require it");
            tally::skipped(Service::Redis);
            None
        }
        outcome => panic!("CI requires Redis at {url}: {outcome:?}"),
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A Redis channel no other test run uses.
pub fn unique_channel() -> String {
    format!("sync:deltas:test:{}", uuid::Uuid::new_v4().simple())
}

/// A TCP proxy in front of Redis that a test can cut and restore, to make
/// Redis unavailable without touching the shared server. It counts the
/// `SUBSCRIBE` commands passing through, so a test can await subscribers
/// and see them re-subscribe.
#[derive(Debug)]
pub struct CuttableProxy {
    /// `redis://127.0.0.1:<port>` of the proxy.
    pub url: String,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default)]
struct ProxyState {
    down: AtomicBool,
    /// While set, nothing is forwarded (connections stay open).
    paused: AtomicBool,
    resumed: tokio::sync::Notify,
    links: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// `SUBSCRIBE` commands clients sent through the proxy.
    subscribes: AtomicU64,
}

/// Copies what a Redis client sends to the server, counting its
/// `SUBSCRIBE` commands (RESP bulk strings, as every client sends them).
async fn forward_commands(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: Arc<ProxyState>,
) {
    const NEEDLE: &[u8] = b"\r\nSUBSCRIBE\r\n";
    let mut buf = vec![0_u8; 16 * 1024];
    // The tail of the previous read, so a command split across reads counts.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        state.wait_unpaused().await;
        let mut seen = std::mem::take(&mut tail);
        seen.extend_from_slice(&buf[..n]);
        let found = seen
            .windows(NEEDLE.len())
            .filter(|w| w.eq_ignore_ascii_case(NEEDLE))
            .count();
        state.subscribes.fetch_add(found as u64, Ordering::SeqCst);
        tail = seen[seen.len().saturating_sub(NEEDLE.len() - 1)..].to_vec();
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl ProxyState {
    /// Returns once the proxy is not paused.
    async fn wait_unpaused(&self) {
        loop {
            let resumed = self.resumed.notified();
            if !self.paused.load(Ordering::SeqCst) {
                return;
            }
            resumed.await;
        }
    }
}

/// Copies what the server replies to the client, holding it while paused.
async fn forward_replies(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: Arc<ProxyState>,
) {
    let mut buf = vec![0_u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        state.wait_unpaused().await;
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl CuttableProxy {
    /// Starts a proxy to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> CuttableProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let url = format!("redis://{}", listener.local_addr().expect("address"));
        let state = Arc::new(ProxyState::default());
        let accept_state = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if accept_state.down.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                let state = Arc::clone(&accept_state);
                let link = tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        let (client_read, client_write) = client.into_split();
                        let (server_read, server_write) = server.into_split();
                        let commands =
                            forward_commands(client_read, server_write, Arc::clone(&state));
                        let replies = forward_replies(server_read, client_write, state);
                        tokio::select! {
                            () = commands => {}
                            () = replies => {}
                        }
                    }
                });
                accept_state.links.lock().expect("links").push(link);
            }
        });
        CuttableProxy { url, state, task }
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.state.down.store(true, Ordering::SeqCst);
        for link in self.state.links.lock().expect("links").drain(..) {
            link.abort();
        }
    }

    /// Holds everything in both directions, keeping the connections open
    /// (the clients behind the proxy lag).
    pub fn pause(&self) {
        self.state.paused.store(true, Ordering::SeqCst);
    }

    /// Forwards again what [`CuttableProxy::pause`] held.
    pub fn resume(&self) {
        self.state.paused.store(false, Ordering::SeqCst);
        self.state.resumed.notify_waiters();
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.state.down.store(false, Ordering::SeqCst);
    }

    /// How many `SUBSCRIBE` commands clients have sent through the proxy.
    pub fn subscribes(&self) -> u64 {
        self.state.subscribes.load(Ordering::SeqCst)
    }

    /// Waits until clients have sent at least `count` `SUBSCRIBE` commands
    /// through the proxy (the subscribers behind it are up); panics after
    /// `within`.
    pub async fn await_subscribes(&self, count: u64, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.subscribes() < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} SUBSCRIBE through the proxy after {within:?}, expected {count}",
                self.subscribes()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

/// A Redis server of a test's own, on a free loopback port, that the test
/// may kill and start again (the shared Redis is never restarted). Killed
/// when dropped.
#[derive(Debug)]
pub struct OwnRedis {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    port: u16,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    /// Starts `redis-server` without persistence on a free port; panics
    /// when it cannot (CI installs it).
    pub async fn start() -> OwnRedis {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().expect("address").port()
        };
        let mut redis = OwnRedis {
            addr: format!("127.0.0.1:{port}"),
            port,
            child: None,
        };
        redis.restart().await;
        redis
    }

    /// Kills the server at once (SIGKILL: whatever it held is lost).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again (empty) and waits until it answers.
    pub async fn restart(&mut self) {
        self.kill();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server must be installed: {e}"));
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut stream) = TcpStream::connect(&self.addr).await {
                let _ = stream.write_all(b"PING\r\n").await;
                let mut reply = [0_u8; 7];
                if stream.read_exact(&mut reply).await.is_ok() && &reply == b"+PONG\r\n" {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server on port {} did not start",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends one command to the Redis at `addr` (`host:port`) and returns its
/// raw reply (a test's direct access, without a client library).
pub async fn redis_command(addr: &str, args: &[&str]) -> String {
    let mut command = format!("*{}\r\n", args.len());
    for arg in args {
        command.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    let mut stream = TcpStream::connect(addr).await.expect("connect to Redis");
    stream
        .write_all(command.as_bytes())
        .await
        .expect("send to Redis");
    let mut reply = vec![0_u8; 64 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut reply))
        .await
        .expect("Redis replies")
        .expect("read from Redis");
    String::from_utf8_lossy(&reply[..n]).into_owned()
}

/// Inserts `count` actions of group `group` straight into the log, each
/// with `padding` bytes of data (fast setup of a long log).
pub async fn fill_log(db: &TestDb, group: &str, count: u32, padding: usize) {
    let pad = "x".repeat(padding);
    let sql = match db.backend {
        Backend::Postgres => format!(
            "INSERT INTO sync_actions (model, model_id, action, data, group_id, created_at) \
             SELECT 'Task', md5(i::text), 'U', jsonb_build_object('title', '{pad}'), '{group}', now() \
             FROM generate_series(1, {count}) AS i"
        ),
        Backend::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) \
             INSERT INTO sync_actions (model, model_id, action, data, group_id, created_at) \
             SELECT 'Task', 'm' || i, 'U', '{{\"title\":\"{pad}\"}}', '{group}', strftime('%Y-%m-%dT%H:%M:%fZ', 'now') FROM n"
        ),
    };
    db.execute(&sql).await;
}
