//! Prometheus metrics, through the `metrics` facade and its Prometheus
//! exporter.
//!
//! [`SyncServer::metrics_router`](crate::SyncServer::metrics_router) serves
//! them at `GET /metrics`; [`crate::serve`] mounts it beside the sync routes,
//! or on its own address (`STRATASYNC_METRICS_BIND`). The first server built
//! installs the process's recorder; when the application installed its own
//! recorder before, the metrics go to that one and `/metrics` answers 404.
//!
//! | metric | type | labels | what it counts |
//! |---|---|---|---|
//! | `stratasync_http_requests_total` | counter | `route`, `status` | HTTP requests answered |
//! | `stratasync_http_request_duration_seconds` | histogram | `route` | time to the response head |
//! | `stratasync_mutations_total` | counter | `result` (`applied`, `duplicate`, `moot`, `rejected`, `failed`) | mutations |
//! | `stratasync_group_commit_size` | histogram | | mutations per group commit (PostgreSQL) |
//! | `stratasync_sockets_open` | gauge | | live sockets |
//! | `stratasync_subscriptions` | gauge | | subscribed live sockets |
//! | `stratasync_deltas_delivered_total` | counter | | delta frames sent |
//! | `stratasync_socket_closes_total` | counter | `code` | sockets closed by the server (4008: slow consumer, 1001: shutdown, ...) |
//! | `stratasync_tailer_lag` | gauge | | log head minus the last id the tailer delivered |
//! | `stratasync_pool_connections_in_use` / `_idle` / `stratasync_pool_waiting` | gauge | | the database pool |
//! | `stratasync_redis_connected` | gauge | | 1 while subscribed to Redis, 0 when not (absent without Redis) |
//! | `stratasync_log_head_id` / `stratasync_log_oldest_id` | gauge | | the log's newest and oldest ids (their difference approximates its size) |
//! | `stratasync_log_trim_watermark` | gauge | | the highest trimmed id |
//! | `stratasync_schema_mismatches_total` | counter | | clients whose `schemaHash` differs from the server's, once per user and hash |
//! | `stratasync_stream_leader` | gauge | | 1 while this node publishes the log to the Redis streams (several nodes) |
//! | `stratasync_stream_published_total` | counter | | actions the leader added to the streams |
//! | `stratasync_stream_repairs_total` | counter | `kind` (`gap`, `full`) | reads of the log by a stream consumer: a shard's missing range, or everything after its position |
//!
//! Gauges of the pool, Redis, the log and the tailer are read at each scrape
//! (`crate::scrape`).

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets (seconds) of the HTTP histogram.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Size buckets of the group-commit histogram.
const GROUP_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus recorder, installed on the first call; `None`
/// when the application installed another recorder first.
pub(crate) fn recorder() -> Option<&'static PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("stratasync_http_request_duration_seconds".into()),
                    LATENCY_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("stratasync_group_commit_size".into()),
                        GROUP_BUCKETS,
                    )
                })
                .and_then(|b| b.install_recorder())
                .map_err(|error| {
                    tracing::info!(%error, "another metrics recorder is installed; /metrics is off");
                })
                .ok()
        })
        .as_ref()
}

/// Counts each request by route and status, and times it to its head.
pub(crate) async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    histogram!("stratasync_http_request_duration_seconds", "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    counter!("stratasync_http_requests_total", "route" => route, "status" => status).increment(1);
    response
}

/// Counts one mutation by its result.
pub(crate) fn mutation(result: &'static str) {
    counter!("stratasync_mutations_total", "result" => result).increment(1);
}

/// Counts a client whose schema hash differs from the server's (once per
/// user and hash).
pub(crate) fn schema_mismatch() {
    counter!("stratasync_schema_mismatches_total").increment(1);
}

/// The counter of delta frames sent, for a socket to keep: looking it up
/// per frame costs more than the rest of a frame's bookkeeping.
pub(crate) fn deltas_delivered() -> metrics::Counter {
    counter!("stratasync_deltas_delivered_total")
}

/// Whether this node leads the Redis streams.
pub(crate) fn stream_leader(leading: bool) {
    gauge!("stratasync_stream_leader").set(if leading { 1.0 } else { 0.0 });
}

/// Counts actions the leader added to the streams.
pub(crate) fn stream_published(count: usize) {
    counter!("stratasync_stream_published_total").increment(count as u64);
}

/// Counts a stream consumer's read of the log (`gap` or `full`).
pub(crate) fn stream_repair(kind: &'static str) {
    counter!("stratasync_stream_repairs_total", "kind" => kind).increment(1);
}

/// Counts a socket the server closed with `code`.
pub(crate) fn socket_closed(code: u16) {
    counter!("stratasync_socket_closes_total", "code" => code.to_string()).increment(1);
}

/// One unit of a gauge while this value lives: an open socket, a
/// subscription.
#[derive(Debug)]
pub(crate) struct Held(metrics::Gauge);

impl Held {
    /// An open socket.
    pub(crate) fn socket() -> Held {
        Held::new(gauge!("stratasync_sockets_open"))
    }

    /// A subscribed socket.
    pub(crate) fn subscription() -> Held {
        Held::new(gauge!("stratasync_subscriptions"))
    }

    fn new(gauge: metrics::Gauge) -> Held {
        gauge.increment(1.0);
        Held(gauge)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
