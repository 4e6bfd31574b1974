//! The CORS allowlist and the WebSocket `Origin` allowlist.

use reqwest::Method;
use reqwest::header::{HeaderMap, ORIGIN};
use serde_json::json;
use stratasync_tests::harness::{TestDb, TestServer};
use stratasync_tests::live::ws_url;
use stratasync_tests::on_each_backend;
use stratasync_tests::protocol::error_body;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const APP: &str = "https://app.example.com";
const EVIL: &str = "https://evil.example.com";

/// Sends `method /sync/mutate` from `origin` (a preflight when `OPTIONS`);
/// returns the status and headers.
async fn from_origin(server: &TestServer, method: Method, origin: &str) -> (u16, HeaderMap) {
    let reply = reqwest::Client::new()
        .request(method, format!("{}/sync/mutate", server.url))
        .header(ORIGIN, origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type",
        )
        .send()
        .await
        .expect("request");
    (reply.status().as_u16(), reply.headers().clone())
}

fn allowed_origin(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("access-control-allow-origin")
        .map(|value| value.to_str().expect("ascii"))
}

async fn cors_answers_only_listed_origins(db: &TestDb) {
    let server = TestServer::start_with(db, |builder| builder.cors_origins([APP])).await;
    let (status, headers) = from_origin(&server, Method::OPTIONS, APP).await;
    assert!((200..300).contains(&status), "preflight: {status}");
    assert_eq!(allowed_origin(&headers), Some(APP));
    let methods = headers["access-control-allow-methods"]
        .to_str()
        .expect("ascii");
    assert!(methods.contains("POST"), "{methods}");
    let allowed = headers["access-control-allow-headers"]
        .to_str()
        .expect("ascii");
    assert!(allowed.contains("authorization"), "{allowed}");
    // The actual request (refused for want of a token) carries the header too.
    let (status, headers) = from_origin(&server, Method::POST, APP).await;
    assert_eq!(status, 401);
    assert_eq!(allowed_origin(&headers), Some(APP));

    let (_, headers) = from_origin(&server, Method::OPTIONS, EVIL).await;
    assert_eq!(allowed_origin(&headers), None, "an unlisted origin");

    // Without a list, no CORS headers at all.
    let plain = TestServer::start(db).await;
    let (_, headers) = from_origin(&plain, Method::POST, APP).await;
    assert_eq!(allowed_origin(&headers), None);

    let error = stratasync::SyncServer::builder(stratasync_tests::harness::registry())
        .database_url(&db.url)
        .auth(stratasync_tests::harness::TestAuth)
        .cors_origins(["app.example.com"])
        .build()
        .await
        .expect_err("an origin without a scheme");
    assert!(error.to_string().contains("app.example.com"), "{error}");
}

/// Upgrades with `token` and the `origin` header (if any); the refusal's
/// status and body, or `None` when the socket opened.
async fn upgrade(server: &TestServer, origin: Option<&str>) -> Option<(u16, serde_json::Value)> {
    let mut request = ws_url(&server.url, Some("user:alice"))
        .into_client_request()
        .expect("request");
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert(ORIGIN, origin.parse().expect("header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => None,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Some((
            response.status().as_u16(),
            error_body(
                &serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                    .unwrap_or_default(),
            ),
        )),
        Err(error) => panic!("connect failed: {error}"),
    }
}

async fn websocket_upgrades_only_from_listed_origins(db: &TestDb) {
    let server = TestServer::start_with(db, |builder| builder.ws_origins([APP])).await;
    assert_eq!(upgrade(&server, Some(APP)).await, None);
    assert_eq!(upgrade(&server, None).await, None, "not a browser");
    assert_eq!(
        upgrade(&server, Some(EVIL)).await,
        Some((403, json!({ "error": "Origin not allowed" })))
    );
    let open = TestServer::start(db).await;
    assert_eq!(
        upgrade(&open, Some(EVIL)).await,
        None,
        "no list: any origin"
    );
}

on_each_backend!(
    cors_answers_only_listed_origins,
    websocket_upgrades_only_from_listed_origins,
);
