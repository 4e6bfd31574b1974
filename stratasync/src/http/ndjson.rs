//! Streamed NDJSON responses (bootstrap and batch).

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::Stream;

/// A streamed NDJSON response; a chunk that is an error aborts the response
/// (the connection is closed without the stream's end).
pub(super) fn ndjson(
    chunks: impl Stream<Item = Result<Bytes, stratasync_diesel::SnapshotCutOff>> + Send + 'static,
) -> Response {
    let body = axum::body::Body::from_stream(chunks);
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}
