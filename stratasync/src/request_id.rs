//! A request id on every request of the sync router.
//!
//! An incoming `x-request-id` is kept when it is sane (1 to
//! [`MAX_REQUEST_ID_LEN`] visible ASCII characters, one header); otherwise
//! it is dropped and a UUID is generated in its place (tower-http's
//! `SetRequestId`). The id is answered in the `x-request-id` response
//! header, recorded as `request_id` on the request's tracing span, and
//! written as `requestId` into every error body: [`stamp_errors`] turns an
//! error answer into a JSON object carrying it (an axum rejection's text
//! becomes its `error`).

use axum::body::{Body, HttpBody as _};
use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use tower_http::request_id::RequestId;

/// The header the id travels in, both ways.
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest incoming id kept.
pub(crate) const MAX_REQUEST_ID_LEN: usize = 128;

/// The largest error body rewritten; ours are far smaller, a larger one is
/// left as it is.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Whether `value` may be kept as the request's id: visible ASCII only
/// (no space, no control character), 1 to [`MAX_REQUEST_ID_LEN`] bytes.
fn is_sane(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID_LEN
        && bytes.iter().all(|byte| byte.is_ascii_graphic())
}

/// Drops the incoming `x-request-id` unless it is a single sane value, so
/// that a fresh one is generated.
pub(crate) async fn drop_insane(mut request: Request) -> Request {
    let mut values = request.headers().get_all(&REQUEST_ID).iter();
    let sane = match (values.next(), values.next()) {
        (Some(value), None) => is_sane(value),
        (None, _) => true,
        (Some(_), Some(_)) => false,
    };
    if !sane {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

/// The id of a request, once `SetRequestId` ran.
pub(crate) fn of(request: &Request) -> Option<&str> {
    request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
}

/// Writes the request's id as `requestId` into an error answer's body (any
/// status from 400 on). A JSON object gets the field; a text or empty body
/// becomes `{"error": <text or the status's reason>, "requestId": ...}`.
pub(crate) async fn stamp_errors(request: Request, next: Next) -> Response {
    let id = of(&request).map(str::to_owned);
    let response = next.run(request).await;
    match id {
        Some(id) if response.status().is_client_error() || response.status().is_server_error() => {
            stamp(response, id).await
        }
        _ => response,
    }
}

async fn stamp(response: Response, id: String) -> Response {
    let small = response
        .body()
        .size_hint()
        .upper()
        .is_some_and(|upper| upper <= MAX_ERROR_BODY as u64);
    if !small || !rewritable(response.headers()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ERROR_BODY).await else {
        // The body failed as it was read: nothing of it is left to answer.
        return parts.status.into_response();
    };
    let mut object = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(object)) => object,
        _ => {
            let text = String::from_utf8_lossy(&bytes);
            let text = text.trim();
            let error = if text.is_empty() {
                parts.status.canonical_reason().unwrap_or("Error")
            } else {
                text
            };
            Map::from_iter([("error".to_owned(), Value::from(error))])
        }
    };
    object.insert("requestId".to_owned(), Value::String(id));
    let body = Value::Object(object).to_string();
    parts.headers.remove(CONTENT_LENGTH);
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::from(body))
}

/// Whether a body is ours to rewrite: JSON, plain text or none at all (not
/// an encoded or streamed one).
fn rewritable(headers: &HeaderMap) -> bool {
    if headers.contains_key(axum::http::header::CONTENT_ENCODING) {
        return false;
    }
    match headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    {
        None => true,
        Some(content_type) => {
            let essence = content_type.split(';').next().unwrap_or("").trim();
            essence.eq_ignore_ascii_case("application/json")
                || essence.eq_ignore_ascii_case("text/plain")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_short_visible_ascii() {
        assert!(is_sane(&HeaderValue::from_static("abc-123_DEF.456")));
        assert!(!is_sane(&HeaderValue::from_static("")));
        assert!(!is_sane(&HeaderValue::from_static("has space")));
        assert!(!is_sane(&HeaderValue::from_static("tab\there")));
        let long = "a".repeat(MAX_REQUEST_ID_LEN + 1);
        assert!(!is_sane(&HeaderValue::from_str(&long).expect("ascii")));
        let longest = "a".repeat(MAX_REQUEST_ID_LEN);
        assert!(is_sane(&HeaderValue::from_str(&longest).expect("ascii")));
        let high = HeaderValue::from_bytes(b"caf\xc3\xa9").expect("obs-text");
        assert!(!is_sane(&high));
    }
}
