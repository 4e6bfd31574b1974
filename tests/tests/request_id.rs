//! Every request has an id: the client's sane `x-request-id` or a fresh
//! UUID, answered in the `x-request-id` header, written as `requestId` into
//! every error body and carried by each log line of the request.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};
use stratasync::Limits;
use stratasync_tests::harness::{TestDb, TestServer};
use stratasync_tests::on_each_backend;

/// Sends `request` with `id` as its `x-request-id` (none for `None`);
/// returns the status, the answered `x-request-id` and the body as JSON.
async fn send(request: reqwest::RequestBuilder, id: Option<&str>) -> (u16, String, Value) {
    let request = match id {
        Some(id) => request.header("x-request-id", id),
        None => request,
    };
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let header = response
        .headers()
        .get("x-request-id")
        .expect("an x-request-id header")
        .to_str()
        .expect("an ASCII id")
        .to_owned();
    let content_type = response.headers().get("content-type").cloned();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status >= 400 {
        assert_eq!(
            content_type.as_ref().and_then(|value| value.to_str().ok()),
            Some("application/json"),
            "{status}: {text}"
        );
    }
    (status, header, body)
}

fn is_uuid(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok()
}

async fn error_bodies_carry_the_id_of_the_header(db: &TestDb) {
    let mut limits = Limits::default();
    limits.request_body_bytes = 1024;
    let server = TestServer::start_with(db, |builder| builder.limits(limits)).await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", server.url);
    let bearer = "Bearer user:alice";

    let refusals = [
        // 401: no Authorization header.
        (401, http.get(url("/sync/deltas?firstSyncId=0"))),
        // 400: a validation failure, whose body always had a requestId.
        (
            400,
            http.get(url("/sync/deltas?after=x"))
                .header("authorization", bearer),
        ),
        // 413: an axum rejection, whose text becomes the error.
        (
            413,
            http.post(url("/sync/mutate"))
                .header("authorization", bearer)
                .json(&json!({ "transactions": [], "pad": "x".repeat(4096) })),
        ),
        // A WebSocket upgrade refused before it began.
        (401, http.get(url("/sync/ws"))),
    ];
    for (expected, request) in refusals {
        let (status, header, body) = send(request, None).await;
        assert_eq!(status, expected, "{body}");
        assert!(is_uuid(&header), "a generated id: {header}");
        assert_eq!(body["requestId"], header.as_str(), "{body}");
        assert!(body["error"].is_string(), "{body}");
    }

    // Each request has its own id.
    let (_, first, _) = send(http.get(url("/sync/ws")), None).await;
    let (_, second, _) = send(http.get(url("/sync/ws")), None).await;
    assert_ne!(first, second);

    // A success has the header and its body is left alone.
    let (status, header, body) = send(http.get(url("/sync/health")), None).await;
    assert_eq!(status, 200);
    assert!(is_uuid(&header), "{header}");
    assert_eq!(body, json!({ "status": "ok" }));
}

async fn a_sane_incoming_id_is_echoed(db: &TestDb) {
    let server = TestServer::start(db).await;
    let http = reqwest::Client::new();
    let id = "client-trace_42.A:B/c";
    let (status, header, body) =
        send(http.get(format!("{}/sync/bootstrap", server.url)), Some(id)).await;
    assert_eq!(status, 401);
    assert_eq!(header, id);
    assert_eq!(body["requestId"], id);
    assert_eq!(body["error"], "Authorization header required");

    let longest = "a".repeat(128);
    let (_, header, _) = send(
        http.get(format!("{}/sync/health", server.url)),
        Some(&longest),
    )
    .await;
    assert_eq!(header, longest);
}

async fn an_insane_incoming_id_is_replaced(db: &TestDb) {
    let server = TestServer::start(db).await;
    let http = reqwest::Client::new();
    let too_long = "a".repeat(129);
    for insane in [too_long.as_str(), "tab\there", "with space", ""] {
        let (status, header, body) = send(
            http.get(format!("{}/sync/deltas?firstSyncId=0", server.url)),
            Some(insane),
        )
        .await;
        assert_eq!(status, 401);
        assert!(is_uuid(&header), "{insane:?} replaced by a UUID: {header}");
        assert_eq!(body["requestId"], header.as_str());
    }
    // Bytes past ASCII are not visible ASCII either.
    let request = http.get(format!("{}/sync/health", server.url)).header(
        "x-request-id",
        reqwest::header::HeaderValue::from_bytes(b"caf\xc3\xa9").expect("obs-text"),
    );
    let (_, header, _) = send(request, None).await;
    assert!(is_uuid(&header), "{header}");
}

/// The log lines of this test binary.
fn captured() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&log);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || Capture(Arc::clone(&writer)))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        log
    })
}

/// A writer appending to the captured log.
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn the_log_lines_of_a_request_carry_its_id(db: &TestDb) {
    let log = captured();
    let server = TestServer::start(db).await;
    let id = format!("log-probe-{}", uuid::Uuid::new_v4());
    let (status, header, _) = send(
        reqwest::Client::new().get(format!("{}/sync/deltas?firstSyncId=0", server.url)),
        Some(&id),
    )
    .await;
    assert_eq!((status, header.as_str()), (401, id.as_str()));
    // The trace layer's last line is written as the response is sent.
    let mut lines = Vec::new();
    for _ in 0..50 {
        let text = String::from_utf8_lossy(&log.lock().expect("log")).into_owned();
        lines = text
            .lines()
            .filter(|line| line.contains(&format!("request_id={id}")))
            .map(str::to_owned)
            .collect();
        if lines
            .iter()
            .any(|line| line.contains("finished processing request"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        lines
            .iter()
            .any(|line| line.contains("started processing request")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.contains("finished processing request")),
        "{lines:#?}"
    );
}

on_each_backend!(
    error_bodies_carry_the_id_of_the_header,
    a_sane_incoming_id_is_echoed,
    an_insane_incoming_id_is_replaced,
    the_log_lines_of_a_request_carry_its_id,
);
