//! `GET /metrics`: the process's Prometheus metrics ([`crate::metrics`]),
//! with the gauges read at scrape time.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics::gauge;

use crate::metrics::recorder;
use crate::state::Shared;

/// `GET /metrics`.
pub(crate) fn routes() -> axum::Router<Arc<Shared>> {
    axum::Router::new().route("/metrics", axum::routing::get(scrape))
}

async fn scrape(State(shared): State<Arc<Shared>>) -> Response {
    let Some(recorder) = recorder() else {
        return (
            StatusCode::NOT_FOUND,
            "metrics go to the application's own recorder",
        )
            .into_response();
    };
    record_state(&shared).await;
    recorder.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        recorder.render(),
    )
        .into_response()
}

/// Sets the gauges read at scrape time.
async fn record_state(shared: &Shared) {
    let pool = shared.store.pool_status();
    gauge!("stratasync_pool_connections_in_use").set(pool.in_use as f64);
    gauge!("stratasync_pool_connections_idle").set(pool.idle as f64);
    gauge!("stratasync_pool_waiting").set(pool.waiting as f64);
    if let Some(connected) = shared.fanout.redis_connected() {
        gauge!("stratasync_redis_connected").set(if connected { 1.0 } else { 0.0 });
    }
    match tokio::time::timeout(Duration::from_secs(1), shared.store.log_bounds()).await {
        Ok(Ok(bounds)) => {
            let head = bounds.head.get();
            gauge!("stratasync_log_head_id").set(head as f64);
            gauge!("stratasync_log_oldest_id").set(bounds.oldest.map_or(0, |id| id.get()) as f64);
            gauge!("stratasync_log_trim_watermark").set(bounds.trimmed_through.get() as f64);
            let lag = head.saturating_sub(shared.fanout.position().get());
            gauge!("stratasync_tailer_lag").set(lag as f64);
        }
        Ok(Err(error)) => tracing::warn!(%error, "metrics: reading the log bounds failed"),
        Err(_) => tracing::warn!("metrics: reading the log bounds timed out"),
    }
}
