//! `GET /sync/bootstrap`: the initial snapshot (PROTOCOL §4).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use futures::StreamExt as _;
use stratasync_diesel::{BootstrapHeader, RowScope, SnapshotPart, SnapshotPlan};

use super::ndjson::ndjson;
use super::params::{Issues, Query};
use crate::auth::Caller;
use crate::error::{ApiError, RequestPart};
use crate::state::Shared;

pub(crate) async fn bootstrap(
    State(state): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(raw.as_deref());
    let mut issues = Issues::new(RequestPart::Query);
    let partial = match query.get("type") {
        None | Some("full") => false,
        Some("partial") => true,
        Some(_) => {
            issues.push("type", "type must be \"full\" or \"partial\"");
            false
        }
    };
    match query.get("firstSyncId") {
        Some(text) => drop(issues.sync_id("firstSyncId", text)),
        None if partial => issues.push(
            "firstSyncId",
            "firstSyncId is required for a partial bootstrap",
        ),
        None => {}
    }
    if !matches!(query.get("noSyncPackets"), None | Some("true" | "false")) {
        issues.push(
            "noSyncPackets",
            "noSyncPackets must be \"true\" or \"false\"",
        );
    }
    let registry = state.store.registry();
    let models: Vec<String> = match query.list("onlyModels") {
        Some(names) if !names.is_empty() => {
            for name in names.iter().filter(|name| registry.get(name).is_none()) {
                issues.push("onlyModels", format!("unknown model \"{name}\""));
            }
            names
        }
        _ => registry.iter().map(|m| m.meta().name.to_owned()).collect(),
    };
    issues.finish(())?;
    state.schema_check.check(
        &caller.user.user_id,
        query.get("schemaHash").unwrap_or_default(),
    )?;

    // A partial bootstrap reads the same consistent snapshot as a full one:
    // rows touched after `firstSyncId` are included at their current state,
    // so a client never holds a row known only through partial deltas.
    let groups = caller.effective_groups(query.list("syncGroups").as_deref());
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
        schema_hash: query.get("schemaHash").unwrap_or_default().to_owned(),
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
