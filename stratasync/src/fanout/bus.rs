//! The memory bus: what the tailer hands to the live sockets of one node.

use axum::extract::ws::Utf8Bytes;
use stratasync_core::{SyncAction, SyncId};

use crate::live::frames;

/// A committed action as the tailer read it from the log, with its delta
/// frame rendered once for every socket of the node.
#[derive(Debug)]
pub(crate) struct LiveAction {
    /// The action.
    pub(crate) action: SyncAction,
    /// Its `{"packet":...,"type":"delta"}` frame.
    pub(crate) frame: Utf8Bytes,
}

impl LiveAction {
    /// Wraps `action`, rendering its frame.
    pub(crate) fn new(action: SyncAction) -> Self {
        let frame = frames::delta(&action);
        LiveAction { action, frame }
    }

    /// Its sync id.
    pub(crate) fn id(&self) -> SyncId {
        self.action.id
    }
}

/// Whether `action` is visible to a socket holding `groups` (PROTOCOL §2):
/// global, or in one of the groups.
pub(crate) fn visible(action: &SyncAction, groups: &[String]) -> bool {
    match &action.group_id {
        None => true,
        Some(group) => groups.iter().any(|g| g == group),
    }
}
