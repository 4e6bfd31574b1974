//! `GET /sync/deltas`: catching up by polling (PROTOCOL §6).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use stratasync_core::SyncAction;

use super::request::DeltasRequest;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::Shared;

/// Where a page must end so that no row gets actions from two different
/// clients in one page: the index of the first action on a row that an
/// earlier action of the page, written by another client, touched.
///
/// The client (`@stratasync/client` 0.5.1) applies a page as one packet: each
/// action merges the whole stored row into its identity map, and the echo of
/// its own write is skipped as already shown. When another client's action
/// on a row precedes the reader's own write to that row in one packet, the
/// first merge overwrites the reader's optimistic value with the stored row
/// and the skipped echo never puts it back. Ended there (with `hasMore`), the
/// client re-applies its pending write after the first page and keeps it.
fn page_end(actions: &[SyncAction]) -> usize {
    let mut writers: HashMap<(&str, &str), Option<&str>> = HashMap::new();
    for (i, action) in actions.iter().enumerate() {
        let writer = action.client_id.as_deref();
        match writers.entry((&action.model, &action.model_id)) {
            Entry::Occupied(earlier) if *earlier.get() != writer => return i,
            Entry::Occupied(_) => {}
            Entry::Vacant(slot) => {
                slot.insert(writer);
            }
        }
    }
    actions.len()
}

pub(crate) async fn deltas(
    State(state): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let DeltasRequest {
        after,
        limit,
        sync_groups,
    } = DeltasRequest::decode(raw.as_deref())?;
    let groups = caller.effective_groups(sync_groups.as_deref());
    if state.store.is_stale(after, &groups).await? {
        return Err(ApiError::BootstrapRequired);
    }
    // A page stops at the byte budget too: `hasMore` sends the client on.
    let page = crate::log_page::read(
        &state.store,
        after,
        limit,
        state.limits.delta_page_bytes,
        Some(&groups),
    )
    .await?;
    let (mut actions, mut has_more) = (page.actions, page.has_more);
    let end = page_end(&actions);
    if end < actions.len() {
        has_more = true;
        actions.truncate(end);
    }
    let last = actions.last().map_or(after, |a| a.id);

    let mut body = Vec::with_capacity(64 + actions.len() * 256);
    body.extend_from_slice(b"{\"actions\":[");
    for (i, action) in actions.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        action.write_json(&mut body, true);
    }
    body.extend_from_slice(
        format!("],\"hasMore\":{has_more},\"lastSyncId\":\"{last}\"}}").as_bytes(),
    );
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}
