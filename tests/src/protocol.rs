//! Checks of PROTOCOL's answers that several protocol suites share.

use serde_json::Value;

use crate::harness::Reply;

/// Asserts a `400 Validation failed` answer whose issue was found in the
/// request body and that names `field` among its details.
pub fn assert_invalid_body(reply: &Reply, field: &str) {
    assert_invalid(reply, "body", field);
}

/// Asserts a `400 Validation failed` answer whose issue was found in the
/// query string and that names `field` among its details.
pub fn assert_invalid_query(reply: &Reply, field: &str) {
    assert_invalid(reply, "query", field);
}

fn assert_invalid(reply: &Reply, source: &str, field: &str) {
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.json["error"], "Validation failed", "{}", reply.text);
    assert_eq!(reply.json["source"], source, "{}", reply.text);
    assert!(
        reply.json["requestId"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{}",
        reply.text
    );
    assert!(
        details(reply).iter().any(|d| d["field"] == field),
        "no detail for {field}: {}",
        reply.text
    );
}

/// An error body less its `requestId`, which every error body carries (a
/// non-empty string, asserted): what is left is the body PROTOCOL gives.
pub fn error_body(body: &Value) -> Value {
    let mut body = body.clone();
    let id = body
        .as_object_mut()
        .and_then(|object| object.remove("requestId"));
    assert!(
        id.as_ref()
            .and_then(Value::as_str)
            .is_some_and(|id| !id.is_empty()),
        "no requestId in {body}"
    );
    body
}

/// The `details` of a validation failure.
pub fn details(reply: &Reply) -> &[Value] {
    reply.json["details"].as_array().expect("details")
}

/// The canonical id of the `TaskLabel` row of `task` and `label`: the UUID v5
/// of `TaskLabel:["<task>","<label>"]` (PROTOCOL's composite ids).
pub fn composite_id(task: &str, label: &str) -> String {
    let namespace =
        uuid::Uuid::parse_str("92a73695-d772-4b43-9fb4-d79f5fbef300").expect("namespace");
    uuid::Uuid::new_v5(
        &namespace,
        format!(r#"TaskLabel:["{task}","{label}"]"#).as_bytes(),
    )
    .to_string()
}
