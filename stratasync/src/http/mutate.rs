//! `POST /sync/mutate`: the write path (PROTOCOL §7).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use bytes::Bytes;
use serde_json::{Value, json};
use stratasync_core::{ActionKind, SyncId};
use stratasync_diesel::{Applied, Mutation, MutationError};

use super::params::{Issues, bounded_array, json_object, required_string};
use crate::auth::Caller;
use crate::error::{ApiError, RequestPart};
use crate::state::Shared;

/// Transactions one request may carry.
const MAX_TRANSACTIONS: usize = 100;

/// Decodes a mutate body, reporting every invalid field.
fn decode(body: &[u8]) -> Result<Vec<Mutation>, ApiError> {
    let body = json_object(body)?;
    let mut issues = Issues::new(RequestPart::Body);
    if !matches!(
        body.get("batchId"),
        None | Some(Value::Null | Value::String(_))
    ) {
        issues.push("batchId", "batchId must be a string");
    }
    let mut mutations = Vec::new();
    let transactions = bounded_array(&body, "transactions", MAX_TRANSACTIONS, &mut issues);
    for (i, tx) in transactions.into_iter().flatten().enumerate() {
        let path = format!("transactions[{i}]");
        let Some(tx) = tx.as_object() else {
            issues.push(&path, format!("{path} must be an object"));
            continue;
        };
        let mut field = |key: &str| required_string(tx, key, &format!("{path}.{key}"), &mut issues);
        let (client_tx_id, client_id, model, model_id, action) = (
            field("clientTxId"),
            field("clientId"),
            field("modelName"),
            field("modelId"),
            field("action"),
        );
        let action = action.and_then(|name| {
            let kind = ActionKind::from_mutation_name(&name);
            if kind.is_none() {
                issues.push(
                    format!("{path}.action"),
                    format!(
                        "{path}.action must be one of INSERT, UPDATE, DELETE, ARCHIVE, UNARCHIVE"
                    ),
                );
            }
            kind
        });
        let payload = match tx.get("payload") {
            None | Some(Value::Null) => Some(serde_json::Map::new()),
            Some(Value::Object(payload)) => Some(payload.clone()),
            Some(_) => {
                issues.push(
                    format!("{path}.payload"),
                    format!("{path}.payload must be an object"),
                );
                None
            }
        };
        if let (
            Some(client_tx_id),
            Some(client_id),
            Some(model),
            Some(model_id),
            Some(action),
            Some(payload),
        ) = (client_tx_id, client_id, model, model_id, action, payload)
        {
            mutations.push(Mutation {
                client_id,
                client_tx_id,
                model,
                model_id,
                action,
                payload,
            });
        }
    }
    issues.finish(mutations)
}

/// Whether a later transaction of `rest` deletes the row its first one names.
fn unlinked_later(rest: &[Mutation]) -> bool {
    let [first, later @ ..] = rest else {
        return false;
    };
    later.iter().any(|m| {
        m.action == ActionKind::Delete && m.model == first.model && m.model_id == first.model_id
    })
}

pub(crate) async fn mutate_route(
    State(state): State<Arc<Shared>>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let mutations = decode(&body)?;
    let ctx = caller.filter_context(caller.groups.clone());
    let outcomes = state.store.mutate_all(&ctx, &mutations).await;
    let mut results = Vec::with_capacity(mutations.len());
    let mut last = SyncId::ZERO;
    let mut all_succeeded = true;
    let mut store_failure = None;
    for (i, (mutation, outcome)) in mutations.iter().zip(outcomes).enumerate() {
        match outcome {
            // A moot link the same request unlinks afterwards is refused as
            // before: the client re-applies a pending insert until it is
            // answered, and nothing but the answer settles a moot one, so
            // after its own unlink's delta it would put the pair back; the
            // refusal's rollback removes it (docs/protocol.md, "Moot writes").
            Err(MutationError::AlreadyLinked(_)) if unlinked_later(&mutations[i..]) => {
                all_succeeded = false;
                results.push(json!({
                    "clientTxId": mutation.client_tx_id,
                    "success": false,
                    "error": "Invalid mutation: record already exists",
                }));
            }
            Ok(applied) => {
                last = last.max(applied.sync_id());
                let mut result = json!({
                    "clientTxId": mutation.client_tx_id,
                    "success": true,
                    "syncId": applied.sync_id(),
                });
                crate::metrics::mutation(match applied {
                    Applied::New(_) => "applied",
                    Applied::Duplicate(_) => "duplicate",
                });
                if let Applied::New(action) = applied {
                    let warnings = state.committed(&caller.user, action).await;
                    if !warnings.is_empty() {
                        result["warnings"] = json!(warnings);
                    }
                }
                results.push(result);
            }
            Err(MutationError::Rejected(message)) => {
                crate::metrics::mutation("rejected");
                all_succeeded = false;
                results.push(json!({
                    "clientTxId": mutation.client_tx_id,
                    "success": false,
                    "error": message,
                }));
            }
            // Moot: a committed delete removed the row (or a row its payload
            // references), or the pair is linked already. A success keeps the client from rolling its change
            // back over that action; without a syncId the client completes
            // the transaction at once instead of waiting for an id its cursor
            // may have passed already (docs/protocol.md, "Moot writes").
            Err(
                moot @ (MutationError::AlreadyDeleted(_)
                | MutationError::AlreadyLinked(_)
                | MutationError::ReferenceDeleted(_)),
            ) => {
                crate::metrics::mutation("moot");
                results.push(json!({
                    "clientTxId": mutation.client_tx_id,
                    "success": true,
                    "warnings": [moot.to_string()],
                }));
            }
            Err(MutationError::Store(error)) => {
                crate::metrics::mutation("failed");
                store_failure = Some(error);
            }
        }
    }
    // The store failed: answer 5xx so the client retries the batch; what was
    // applied (and announced above) is deduplicated on the retry.
    if let Some(error) = store_failure {
        return Err(error.into());
    }
    Ok(Json(
        json!({ "lastSyncId": last, "results": results, "success": all_succeeded }),
    ))
}
