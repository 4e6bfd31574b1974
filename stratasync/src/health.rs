//! Probes for load balancers and orchestrators, unauthenticated, under the
//! base path:
//!
//! - `GET {base}/health`: 200 while the process serves.
//! - `GET {base}/ready`: 200 only when the database answers within a
//!   second, Redis is subscribed (when configured) and the node is not
//!   draining for shutdown; 503 otherwise. The body says which check failed:
//!   `{"status":"unavailable","database":"ok","redis":"disconnected","draining":false}`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::state::Shared;

/// How long the database may take to answer a readiness probe.
const DATABASE_DEADLINE: Duration = Duration::from_secs(1);

/// The probe routes under `base`.
pub(crate) fn routes(base: &str) -> axum::Router<crate::SyncServer> {
    axum::Router::new()
        .route(&format!("{base}/health"), get(health))
        .route(&format!("{base}/ready"), get(ready))
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(shared): State<Arc<Shared>>) -> Response {
    let database = match tokio::time::timeout(DATABASE_DEADLINE, shared.store.last_id()).await {
        Ok(Ok(_)) => "ok",
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: the database does not answer");
            "unavailable"
        }
        Err(_) => {
            tracing::warn!("readiness: the database took over a second to answer");
            "timeout"
        }
    };
    let redis = match shared.fanout.redis_connected() {
        None => "none",
        Some(true) => "connected",
        Some(false) => "disconnected",
    };
    let draining = shared.draining.load(Ordering::SeqCst);
    let ready = database == "ok" && redis != "disconnected" && !draining;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "database": database,
        "redis": redis,
        "draining": draining,
    });
    (status, Json(body)).into_response()
}
