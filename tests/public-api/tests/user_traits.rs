//! Every trait an application implements, written with `async fn` and no
//! `futures` dependency, then driven through the sync routes: the token is
//! verified by the `Auth`, the model hook changes and rejects rows, the
//! after-mutation closure sees each commit.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Map, Value, json};
use stratasync::{
    Auth, AuthUser, BoxError, FilterContext, HookResult, LiveContext, LiveHooks, LiveSocket,
    ModelHooks, MutationEvent, Registry, SyncServer, TokenError, Tx,
};
use stratasync_public_api_tests::{Note, SqliteFile};
use tower::ServiceExt as _;

// The snippet of the Auth documentation, as an application writes it.
struct MyAuth;
impl Auth for MyAuth {
    async fn verify_token(&self, token: &str) -> Result<AuthUser, TokenError> {
        token
            .strip_prefix("user:")
            .map(AuthUser::new)
            .ok_or(TokenError::Invalid)
    }
    async fn resolve_groups(&self, user: &AuthUser) -> Result<Vec<String>, BoxError> {
        Ok(vec![user.user_id.clone()])
    }
}

/// Trims note bodies on insert and refuses empty ones.
struct TrimNotes;

impl ModelHooks<Note> for TrimNotes {
    async fn before_insert(&self, _tx: Tx<'_>, _ctx: &FilterContext, row: &mut Note) -> HookResult {
        row.body = row.body.trim().to_owned();
        if row.body.is_empty() {
            return Err("a note needs a body".to_owned());
        }
        Ok(())
    }
}

/// Echoes application frames back to their sender.
struct Echo;

impl LiveHooks for Echo {
    async fn on_message(
        &self,
        socket: &LiveSocket,
        _context: &LiveContext,
        message: &Map<String, Value>,
    ) {
        socket.send_json(&Value::Object(message.clone()));
    }
}

async fn server(db: &SqliteFile, seen: Arc<Mutex<Vec<String>>>) -> SyncServer {
    SyncServer::builder(Registry::new().model_with_hooks::<Note>(TrimNotes))
        .database_url(&db.path)
        .auth(MyAuth)
        .live_hooks(Echo)
        // A closure returning an owned future: an `async` closure implements
        // `Fn` only when it borrows nothing it captured.
        .after_mutation(move |event: MutationEvent| {
            let seen = Arc::clone(&seen);
            async move {
                let line = format!("{} {}", event.user.user_id, event.action.data.get());
                seen.lock().expect("lock").push(line);
                Ok(())
            }
        })
        .build()
        .await
        .expect("build the server")
}

/// `POST /sync/mutate` inserting a note with `body`; returns (status, JSON).
async fn insert_note(server: &SyncServer, token: &str, body: &str) -> (StatusCode, Value) {
    let id = uuid::Uuid::new_v4().to_string();
    let batch = json!({
        "batchId": "b1",
        "transactions": [{
            "clientTxId": id, "clientId": "c1", "modelName": "Note", "modelId": id,
            "action": "INSERT", "payload": { "body": body, "workspaceId": "alice" },
        }],
    });
    let request = Request::post("/sync/mutate")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(batch.to_string()))
        .expect("request");
    let response = server.router().oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, serde_json::from_slice(&bytes).expect("JSON body"))
}

#[tokio::test]
async fn async_fn_traits_run_on_the_sync_routes() {
    let seen = Arc::default();
    let db = SqliteFile::create();
    let server = server(&db, Arc::clone(&seen)).await;

    let (status, reply) = insert_note(&server, "user:alice", "  padded  ").await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["results"][0]["success"], true, "{reply}");

    let (status, reply) = insert_note(&server, "user:alice", "   ").await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["results"][0]["success"], false, "{reply}");
    assert_eq!(
        reply["results"][0]["error"], "a note needs a body",
        "{reply}"
    );

    let (status, reply) = insert_note(&server, "guest", "hello").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{reply}");
    assert_eq!(reply["error"], "Invalid token", "{reply}");
    assert!(reply["requestId"].is_string(), "{reply}");

    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with("alice "), "{seen:?}");
    assert!(seen[0].contains(r#""body":"padded""#), "{seen:?}");
}
