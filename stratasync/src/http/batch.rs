//! `POST /sync/batch`: lazy loading of rows by group or indexed key (PROTOCOL §5).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;
use stratasync_core::text_contains_nul;
use stratasync_diesel::{RowScope, SnapshotPart, SnapshotPlan};

use super::ndjson::ndjson;
use super::params::{Issues, bounded_array, json_object, required_string};
use crate::auth::Caller;
use crate::error::{ApiError, RequestPart};
use crate::state::Shared;

/// Requests one batch may carry.
const MAX_REQUESTS: usize = 100;

/// Rows one indexed load may return.
const MAX_INDEXED_ROWS: i64 = 50_000;

pub(crate) async fn batch(
    State(state): State<Arc<Shared>>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_object(&body)?;
    let mut issues = Issues::new(RequestPart::Body);
    match body.get("firstSyncId") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => drop(issues.sync_id("firstSyncId", text)),
        Some(_) => issues.push("firstSyncId", "firstSyncId must be a string of digits"),
    }
    let registry = state.store.registry();
    let mut parts = Vec::new();
    for (i, request) in bounded_array(&body, "requests", MAX_REQUESTS, &mut issues)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = format!("requests[{i}]");
        let Some(request) = request.as_object() else {
            issues.push(&path, format!("{path} must be an object"));
            continue;
        };
        let Some(model) = required_string(
            request,
            "modelName",
            &format!("{path}.modelName"),
            &mut issues,
        ) else {
            continue;
        };
        let Some(registered) = registry.get(&model) else {
            issues.push(
                format!("{path}.modelName"),
                format!("unknown model \"{model}\""),
            );
            continue;
        };
        if request.contains_key("indexedKey") {
            let key = required_string(
                request,
                "indexedKey",
                &format!("{path}.indexedKey"),
                &mut issues,
            );
            let value = match request.get("keyValue") {
                Some(Value::String(s)) if !text_contains_nul(s) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => {
                    issues.push(
                        format!("{path}.keyValue"),
                        format!("{path}.keyValue must be a string without NUL characters"),
                    );
                    None
                }
            };
            let (Some(key), Some(value)) = (key, value) else {
                continue;
            };
            if !registered.meta().is_indexed(&key) {
                issues.push(
                    format!("{path}.indexedKey"),
                    format!("\"{key}\" is not an indexed key of {model}"),
                );
                continue;
            }
            parts.push(SnapshotPart {
                model,
                scope: RowScope {
                    groups: caller.groups.clone(),
                    user_id: caller.user.user_id.clone(),
                    index: Some((key, value)),
                },
                max_rows: Some(MAX_INDEXED_ROWS),
            });
        } else {
            let Some(group) =
                required_string(request, "groupId", &format!("{path}.groupId"), &mut issues)
            else {
                continue;
            };
            // A group the caller does not hold yields nothing.
            if caller.groups.contains(&group) {
                parts.push(SnapshotPart {
                    model,
                    scope: RowScope {
                        groups: vec![group],
                        user_id: caller.user.user_id.clone(),
                        index: None,
                    },
                    max_rows: None,
                });
            }
        }
    }
    issues.finish(())?;
    let plan = SnapshotPlan {
        header: None,
        parts,
        page_bytes: state.limits.snapshot_page_bytes,
    };
    Ok(ndjson(state.store.snapshot(plan).await?))
}
