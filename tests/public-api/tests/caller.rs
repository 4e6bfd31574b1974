//! `Caller` in an application's own route, on the application's own state:
//! the sync server's auth guards it, answering like the sync routes.

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRef, State};
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use serde_json::{Value, json};
use stratasync::{Auth, AuthUser, BoxError, Caller, Registry, SyncServer, TokenError};
use stratasync_public_api_tests::{Note, SqliteFile};
use tower::ServiceExt as _;

/// `user:<id>` is user `<id>`, who belongs to the `staff` group.
struct StaffAuth;

impl Auth for StaffAuth {
    async fn verify_token(&self, token: &str) -> Result<AuthUser, TokenError> {
        match token {
            "expired" => Err(TokenError::Expired),
            _ => token
                .strip_prefix("user:")
                .map(AuthUser::new)
                .ok_or(TokenError::Invalid),
        }
    }

    async fn resolve_groups(&self, _user: &AuthUser) -> Result<Vec<String>, BoxError> {
        Ok(vec!["staff".to_owned()])
    }
}

/// An application's state, holding the sync server among its own things.
#[derive(Clone)]
struct AppState {
    sync: SyncServer,
    greeting: &'static str,
}

impl FromRef<AppState> for SyncServer {
    fn from_ref(state: &AppState) -> Self {
        state.sync.clone()
    }
}

async fn me(caller: Caller, State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "greeting": state.greeting,
        "user": caller.user.user_id,
        "groups": caller.groups,
    }))
}

/// `GET /me` with `authorization` (when given); returns (status, JSON).
async fn get_me(app: &axum::Router, authorization: Option<&str>) -> (StatusCode, Value) {
    let mut request = Request::get("/me");
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, serde_json::from_slice(&bytes).expect("JSON body"))
}

#[tokio::test]
async fn caller_guards_application_routes_with_the_sync_auth() {
    let db = SqliteFile::create();
    let sync = SyncServer::builder(Registry::new().model::<Note>())
        .database_url(&db.path)
        .auth(StaffAuth)
        .build()
        .await
        .expect("build the server");
    sync.add_member("alice", "w1")
        .await
        .expect("add alice to w1");
    let app = axum::Router::new()
        .route("/me", get(me))
        .with_state(AppState {
            sync: sync.clone(),
            greeting: "hello",
        })
        .merge(sync.router());

    // Refusals have the bodies of the sync routes (PROTOCOL §2).
    for (authorization, error) in [
        (None, "Authorization header required"),
        (
            Some("Basic dXNlcjphbGljZQ=="),
            "Invalid authorization format",
        ),
        (Some("Bearer nobody"), "Invalid token"),
        (Some("Bearer expired"), "Token expired"),
    ] {
        let (status, body) = get_me(&app, authorization).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{authorization:?}: {body}"
        );
        assert_eq!(body, json!({ "error": error }), "{authorization:?}");
    }

    // The caller's groups: the auth's, then the memberships, then the
    // personal group.
    let (status, body) = get_me(&app, Some("Bearer user:alice")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({ "greeting": "hello", "user": "alice", "groups": ["staff", "w1", "alice"] })
    );
    let (_, body) = get_me(&app, Some("Bearer user:bob")).await;
    assert_eq!(body["groups"], json!(["staff", "bob"]));
}
