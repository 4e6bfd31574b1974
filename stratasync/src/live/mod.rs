//! `GET /sync/ws`: live deltas over a WebSocket (PROTOCOL §8).
//!
//! The token is checked on the upgrade (`401` before it when absent or
//! refused). Each socket then runs one `session`: its frames are handled
//! one at a time, in arrival order. A `subscribe` frame resets the session,
//! authorizes its token, `replay`s the log from `afterSyncId`, sends the
//! `subscribed` acknowledgement and streams live actions from the node's
//! memory bus (see [`crate::fanout`]), each above the socket's cursor and
//! visible to its groups, in ascending id order, once.
//!
//! # Bounds
//!
//! - The `outbox` of a socket is bounded in frames, bytes and time; a socket
//!   that stops reading is told (`SLOW_CONSUMER`) and closed with 4008.
//! - A client message over [`Limits::ws_message_bytes`](crate::Limits) closes
//!   the socket with 1009; a socket with no subscribe within
//!   [`Limits::subscribe_timeout`](crate::Limits) is closed with 4001; a user
//!   holds at most [`Limits::sockets_per_user`](crate::Limits) sockets
//!   (past it the upgrade is refused with `429`).
//! - A socket that lags behind the memory bus reads the log from its cursor
//!   instead, so nothing is buffered for it.
//! - A replay during which more live actions arrive than the replay buffer
//!   bound (10 000) is closed with `BUFFER_OVERFLOW` / 4008.
//! - A `heartbeat` ping every 30 s; an unanswered one closes with 1011.

pub(crate) mod frames;
mod heartbeat;
mod hooks;
mod outbox;
mod replay;
mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{RawQuery, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::Instrument;

pub(crate) use hooks::{DynLiveHooks, NoHooks};
pub use hooks::{LiveContext, LiveHooks, LiveSocket};

use crate::error::ApiError;
use crate::server::Shared;

/// The replay buffer bound of PROTOCOL §8.
pub const DEFAULT_REPLAY_BUFFER_LIMIT: usize = 10_000;

/// How live sockets are run.
#[derive(Debug, Clone)]
pub(crate) struct LiveConfig {
    /// Between pings.
    pub(crate) heartbeat_interval: Duration,
    /// Between re-checks of a subscribed socket's token.
    pub(crate) token_recheck_interval: Duration,
    /// Live actions a replay may see arrive before `BUFFER_OVERFLOW`.
    pub(crate) replay_buffer_limit: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            heartbeat_interval: Duration::from_secs(30),
            token_recheck_interval: Duration::from_secs(60),
            replay_buffer_limit: DEFAULT_REPLAY_BUFFER_LIMIT,
        }
    }
}

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
        .on_upgrade(move |socket| {
            session::run(shared, socket, connection_id, held).instrument(request)
        })
}
