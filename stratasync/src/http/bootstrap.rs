//! `GET /sync/bootstrap`: the initial snapshot (PROTOCOL §4).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use futures::StreamExt as _;
use stratasync_diesel::{BootstrapHeader, RowScope, SnapshotPart, SnapshotPlan};

use super::ndjson::ndjson;
use super::request::BootstrapRequest;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::Shared;

pub(crate) async fn bootstrap(
    State(state): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let registry = state.store.registry();
    let request = BootstrapRequest::decode(raw.as_deref(), registry)?;
    state
        .schema_check
        .check(&caller.user.user_id, &request.schema_hash)?;
    let models = request.only_models.unwrap_or_else(|| {
        registry
            .iter()
            .map(|model| model.meta().name.to_owned())
            .collect()
    });

    // A partial bootstrap reads the same consistent snapshot as a full one:
    // rows touched after `firstSyncId` are included at their current state,
    // so a client never holds a row known only through partial deltas.
    let groups = caller.effective_groups(request.sync_groups.as_deref());
    let parts = models
        .into_iter()
        .map(|model| SnapshotPart {
            model,
            scope: RowScope {
                groups: groups.clone(),
                user_id: caller.user.user_id.clone(),
                index: None,
            },
            max_rows: None,
        })
        .collect();
    let header = BootstrapHeader {
        groups,
        schema_hash: request.schema_hash,
    };
    let plan = SnapshotPlan {
        header: Some(header),
        parts,
        page_bytes: state.limits.snapshot_page_bytes,
    };
    // The user's place among their concurrent bootstraps is held until the
    // response is done (or dropped).
    let held = state
        .bootstraps
        .take(&caller.user.user_id)
        .ok_or(ApiError::TooMany {
            what: "bootstraps",
            limit: state.bootstraps.limit(),
        })?;
    let chunks = state.store.snapshot(plan).await?;
    Ok(ndjson(chunks.map(move |chunk| {
        let _held = &held;
        chunk
    })))
}
