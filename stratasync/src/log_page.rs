//! Pages of the action log bounded by bytes as well as by count, for the
//! delta route, socket replays and the log tailer.
//!
//! A page is read in chunks: a small first one, then chunks sized from the
//! actions seen so far to fill the byte budget, so that a log of large
//! actions (1 MB titles) is never read a thousand at a time. A page always
//! holds at least one action, and says whether more follow.

use stratasync_core::{SyncAction, SyncId};
use stratasync_diesel::{Store, StoreError};

/// Actions read by a page's first chunk, before their size is known: few,
/// since each is read whole (with one more to tell whether the log goes
/// on), and a page of 1 MB actions would otherwise read twice what it sends.
const FIRST_CHUNK: usize = 2;

/// Bytes counted per action besides its data (ids, names, timestamps).
const ACTION_OVERHEAD: usize = 160;

/// Up to `rows` actions after `after` in id order, visible to `groups` (all
/// when `None`), stopping at the first action that reaches `max_bytes`.
#[derive(Debug)]
pub(crate) struct LogPage {
    /// The actions, ascending.
    pub(crate) actions: Vec<SyncAction>,
    /// Whether the log holds more actions after these.
    pub(crate) has_more: bool,
}

/// About how many bytes `action` takes on the wire.
pub(crate) fn action_bytes(action: &SyncAction) -> usize {
    action.data.get().len() + action.model_id.len() + ACTION_OVERHEAD
}

/// Reads one page (see [`LogPage`]).
pub(crate) async fn read(
    store: &Store,
    after: SyncId,
    rows: usize,
    max_bytes: usize,
    groups: Option<&[String]>,
) -> Result<LogPage, StoreError> {
    let rows = rows.max(1);
    let mut actions: Vec<SyncAction> = Vec::new();
    let mut bytes = 0usize;
    let mut cursor = after;
    let mut chunk = FIRST_CHUNK.min(rows);
    loop {
        // One more than wanted tells whether the log goes on.
        let want = chunk.min(rows - actions.len());
        let read = store
            .read_actions(cursor, i64::try_from(want + 1).unwrap_or(i64::MAX), groups)
            .await?;
        let ended = read.len() <= want;
        for action in read {
            if actions.len() == rows || (bytes >= max_bytes && !actions.is_empty()) {
                return Ok(LogPage {
                    actions,
                    has_more: true,
                });
            }
            bytes += action_bytes(&action);
            cursor = action.id;
            actions.push(action);
        }
        if ended {
            return Ok(LogPage {
                actions,
                has_more: false,
            });
        }
        let average = (bytes / actions.len().max(1)).max(1);
        chunk = (max_bytes.saturating_sub(bytes) / average).clamp(1, rows);
    }
}
