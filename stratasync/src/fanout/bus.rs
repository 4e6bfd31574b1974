//! The memory bus: what the tailer hands to the live sockets of one node.

use axum::extract::ws::Utf8Bytes;
use stratasync_core::{SyncAction, SyncId};

use crate::live::frames;

/// Actions whose data is larger than this travel the bus without it: the
/// bus keeps its last few thousand actions, and it must not keep thousands
/// of large ones. Sockets share one read of it from the log (`large`).
pub(crate) const INLINE_DATA_BYTES: usize = 16 * 1024;

/// A committed action as the tailer read it from the log, with its delta
/// frame rendered once for every socket of the node.
#[derive(Debug)]
pub(crate) struct LiveAction {
    /// The action (without its data when it is large: see `frame`).
    pub(crate) action: SyncAction,
    /// Its `{"packet":...,"type":"delta"}` frame; `None` for an action whose
    /// data is over [`INLINE_DATA_BYTES`], whose frame sockets read from the
    /// log through [`LargeFrames`](super::large::LargeFrames).
    pub(crate) frame: Option<Utf8Bytes>,
}

impl LiveAction {
    /// Wraps `action`, rendering its frame when it is small.
    pub(crate) fn new(mut action: SyncAction) -> Self {
        if action.data.get().len() > INLINE_DATA_BYTES {
            action.data = serde_json::value::RawValue::NULL.to_owned();
            return LiveAction {
                action,
                frame: None,
            };
        }
        let frame = frames::delta(&action);
        LiveAction {
            action,
            frame: Some(frame),
        }
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
