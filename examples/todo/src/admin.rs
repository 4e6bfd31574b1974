//! Development-only admin routes (enabled with `TODO_ADMIN=1`): membership
//! changes and log trimming, for demos and the client suite. They
//! authenticate with the sync server's own auth (the [`Caller`] extractor)
//! and require a caller of [`ADMIN_GROUP`] (token `user:admin`).

use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use stratasync::{Caller, SyncId, SyncServer};

use crate::auth::ADMIN_GROUP;

/// A caller of [`ADMIN_GROUP`]: 401 (the sync error body) without a valid
/// token, 403 for anyone else.
struct Admin;

impl FromRequestParts<SyncServer> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, server: &SyncServer) -> Result<Self, Response> {
        let caller = Caller::from_request_parts(parts, server)
            .await
            .map_err(IntoResponse::into_response)?;
        if caller.groups.iter().any(|group| group == ADMIN_GROUP) {
            Ok(Admin)
        } else {
            let error = format!("the admin routes need a member of the {ADMIN_GROUP} group");
            Err((StatusCode::FORBIDDEN, Json(json!({ "error": error }))).into_response())
        }
    }
}

type Answer = (StatusCode, Json<Value>);

fn bad_request(message: &str) -> Answer {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message })))
}

fn failed(error: impl std::fmt::Display) -> Answer {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({ "error": error.to_string() })),
    )
}

/// `userId` and `groupId` of a membership body.
fn membership(body: &Value) -> Option<(&str, &str)> {
    Some((
        body.get("userId")?.as_str()?,
        body.get("groupId")?.as_str()?,
    ))
}

async fn add_member(_: Admin, State(server): State<SyncServer>, Json(body): Json<Value>) -> Answer {
    let Some((user, group)) = membership(&body) else {
        return bad_request("expected {\"userId\": ..., \"groupId\": ...}");
    };
    match server.add_member(user, group).await {
        Ok(action) => (StatusCode::OK, Json(json!({ "changed": action.is_some() }))),
        Err(error) => failed(error),
    }
}

async fn remove_member(
    _: Admin,
    State(server): State<SyncServer>,
    Json(body): Json<Value>,
) -> Answer {
    let Some((user, group)) = membership(&body) else {
        return bad_request("expected {\"userId\": ..., \"groupId\": ...}");
    };
    match server.remove_member(user, group).await {
        Ok(action) => (StatusCode::OK, Json(json!({ "changed": action.is_some() }))),
        Err(error) => failed(error),
    }
}

async fn trim(_: Admin, State(server): State<SyncServer>, Json(body): Json<Value>) -> Answer {
    let Some(before) = body
        .get("beforeSyncId")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<SyncId>().ok())
    else {
        return bad_request("expected {\"beforeSyncId\": \"<digits>\"}");
    };
    match server.store().trim_before(before).await {
        Ok(deleted) => (StatusCode::OK, Json(json!({ "deleted": deleted }))),
        Err(error) => failed(error),
    }
}

/// The admin routes.
pub fn routes(server: SyncServer) -> Router {
    Router::new()
        .route("/admin/memberships", post(add_member).delete(remove_member))
        .route("/admin/trim", post(trim))
        .with_state(server)
}
