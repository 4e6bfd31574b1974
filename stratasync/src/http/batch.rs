//! `POST /sync/batch`: lazy loading of rows by group or indexed key (PROTOCOL §5).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use stratasync_diesel::{RowScope, SnapshotPart, SnapshotPlan};

use super::ndjson::ndjson;
use super::request::{BatchRequest, Load, Rows};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::Shared;

/// Rows one indexed load may return.
const MAX_INDEXED_ROWS: i64 = 50_000;

pub(crate) async fn batch(
    State(state): State<Arc<Shared>>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = BatchRequest::decode(&body, state.store.registry())?;
    let parts = request
        .loads
        .into_iter()
        .filter_map(|load| snapshot_part(&caller, load))
        .collect();
    let plan = SnapshotPlan {
        header: None,
        parts,
        page_bytes: state.limits.snapshot_page_bytes,
    };
    Ok(ndjson(state.store.snapshot(plan).await?))
}

/// What the caller may read of `load`: a group the caller does not hold
/// yields nothing.
fn snapshot_part(caller: &Caller, Load { model, rows }: Load) -> Option<SnapshotPart> {
    let (groups, index, max_rows) = match rows {
        Rows::Indexed { key, value } => (
            caller.groups.clone(),
            Some((key, value)),
            Some(MAX_INDEXED_ROWS),
        ),
        Rows::Group(group) if caller.groups.contains(&group) => (vec![group], None, None),
        Rows::Group(_) => return None,
    };
    Some(SnapshotPart {
        model,
        scope: RowScope {
            groups,
            user_id: caller.user.user_id.clone(),
            index,
        },
        max_rows,
    })
}
