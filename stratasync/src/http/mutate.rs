//! `POST /sync/mutate`: the write path (PROTOCOL §7).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use bytes::Bytes;
use serde_json::{Value, json};
use stratasync_core::SyncId;
use stratasync_diesel::{Applied, MutationError};

use super::request::MutateRequest;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::Shared;

pub(crate) async fn mutate_route(
    State(state): State<Arc<Shared>>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let MutateRequest {
        transactions: mutations,
    } = MutateRequest::decode(&body)?;
    let ctx = caller.filter_context(caller.groups.clone());
    let outcomes = state.store.mutate_all(&ctx, &mutations).await;
    let mut results = Vec::with_capacity(mutations.len());
    let mut last = SyncId::ZERO;
    let mut all_succeeded = true;
    let mut store_failure = None;
    for (mutation, outcome) in mutations.iter().zip(outcomes) {
        match outcome {
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
                    Applied::Moot { .. } => "moot",
                });
                let warnings = match applied {
                    Applied::New(action) => state.committed(&caller.user, action).await,
                    // Nothing was applied: no hook runs; the delete is
                    // announced like any appended action.
                    Applied::Moot { action, warning } => {
                        state.appended(&action);
                        vec![warning]
                    }
                    Applied::Duplicate(_) => Vec::new(),
                };
                if !warnings.is_empty() {
                    result["warnings"] = json!(warnings);
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
            // The write path answers a moot mutation with its logged delete
            // (`Applied::Moot`); should the bare error come through, it is
            // still a success, which the client does not roll back, and
            // without a syncId it completes at once (docs/protocol.md,
            // "Moot writes").
            Err(moot @ (MutationError::AlreadyDeleted(_) | MutationError::ReferenceDeleted(_))) => {
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
