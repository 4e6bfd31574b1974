//! `GET /sync/ws`: checks the origin and the token, then upgrades the
//! connection into a socket [`session`](super::session).

use std::sync::Arc;

use axum::Json;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{RawQuery, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::session;
use crate::error::ApiError;
use crate::state::Shared;

/// `GET /sync/ws?token=...`: checks the origin and the token, then upgrades.
pub(crate) async fn ws_route(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: axum::http::HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if !shared.ws_origins.allows(&headers) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({ "error": "Origin not allowed" })),
        )
            .into_response();
    }
    let token = query.as_deref().and_then(|query| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "token")
            .map(|(_, value)| value.into_owned())
            .filter(|token| !token.is_empty())
    });
    let Some(token) = token else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "Token required" })),
        )
            .into_response();
    };
    let user = match shared.auth.verify_token(&token).await {
        Ok(user) => user,
        Err(refused) => {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({ "error": refused.to_string() })),
            )
                .into_response();
        }
    };
    let Some(held) = shared.sockets.take(&user.user_id) else {
        return ApiError::TooMany {
            what: "sockets",
            limit: shared.sockets.limit(),
        }
        .into_response();
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let connection_id = uuid::Uuid::new_v4().to_string();
    // A small read buffer: tungstenite zero-fills the whole buffer per read,
    // and clients send few, small frames (subscribe, pings).
    // Messages over the limit fail the read as soon as their header is in
    // (nothing of them is buffered) and close the socket with 1009.
    let max = shared.limits.ws_message_bytes;
    // The socket's span is a child of the upgrade request's, so that its
    // log lines carry the request's id.
    let request = tracing::Span::current();
    upgrade
        .read_buffer_size(4 * 1024)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| session::run(shared, socket, connection_id, held, request))
}
