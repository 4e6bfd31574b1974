//! Large actions read once per node: an action whose data is over
//! [`INLINE_DATA_BYTES`](super::bus::INLINE_DATA_BYTES) travels the memory
//! bus without it, and every socket that delivers it needs its frame. The
//! tailer, which read the action whole, renders its frame here when sockets
//! are listening; a frame no longer here is read from the log by the first
//! socket that asks, and the others that ask meanwhile wait for that read.
//! The sockets share the frame (the bytes are reference-counted, so the
//! queues of all sockets hold one copy).
//!
//! The frames of the most recent large actions are kept up to
//! [`KEPT_BYTES`] in all, so that sockets a little behind still find them;
//! older ones are dropped (from here: a socket queue may still hold them,
//! counted against that socket's own byte bound) and a socket that asks
//! later reads the log itself.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::ws::Utf8Bytes;
use stratasync_core::SyncId;
use stratasync_diesel::{Store, StoreError};
use tokio::sync::OnceCell;

use crate::live::frames;

/// Bytes of large frames kept for the sockets that have not asked yet.
pub(crate) const KEPT_BYTES: usize = 8 * 1024 * 1024;

/// One large action's frame, read at most once while it is kept.
type Slot = Arc<OnceCell<Option<Utf8Bytes>>>;

/// The frames of recent large actions, by id.
#[derive(Debug, Default)]
pub(crate) struct LargeFrames {
    slots: Mutex<BTreeMap<SyncId, Slot>>,
}

impl LargeFrames {
    /// Keeps `frame` as action `id`'s, for the sockets that will ask.
    pub(crate) fn keep(&self, id: SyncId, frame: Utf8Bytes) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.insert(id, Arc::new(OnceCell::new_with(Some(Some(frame)))));
        Self::trim(&mut slots, id);
    }

    /// The delta frame of action `id`, read from the log by the first
    /// caller; `None` when the log does not hold it.
    pub(crate) async fn frame(
        &self,
        store: &Store,
        id: SyncId,
    ) -> Result<Option<Utf8Bytes>, StoreError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            let slot = Arc::clone(slots.entry(id).or_default());
            Self::trim(&mut slots, id);
            slot
        };
        let frame = slot
            .get_or_try_init(|| async {
                let after = SyncId::new(id.get().saturating_sub(1));
                let read = store.read_actions(after, 1, None).await?;
                Ok::<_, StoreError>(
                    read.first()
                        .filter(|action| action.id == id)
                        .map(frames::delta),
                )
            })
            .await;
        if frame.is_err() {
            // A failed read is not kept: the next caller tries again.
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            if slots.get(&id).is_some_and(|kept| Arc::ptr_eq(kept, &slot)) {
                slots.remove(&id);
            }
        }
        frame.cloned()
    }

    /// Drops the oldest frames (never `keep`'s) while those kept are over
    /// [`KEPT_BYTES`].
    fn trim(slots: &mut BTreeMap<SyncId, Slot>, keep: SyncId) {
        let size = |slot: &Slot| slot.get().and_then(Option::as_ref).map_or(0, |f| f.len());
        let mut total: usize = slots.values().map(size).sum();
        while total > KEPT_BYTES {
            let Some((&oldest, slot)) = slots.iter().find(|(id, _)| **id != keep) else {
                break;
            };
            total -= size(slot);
            slots.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The frames kept, in bytes.
    fn kept(frames: &LargeFrames) -> usize {
        let slots = frames.slots.lock().unwrap();
        slots
            .values()
            .filter_map(|slot| slot.get().and_then(Option::as_ref))
            .map(|frame| frame.as_str().len())
            .sum()
    }

    #[test]
    fn kept_frames_stay_within_their_byte_bound_newest_first() {
        let frames = LargeFrames::default();
        let frame = Utf8Bytes::from("x".repeat(1024 * 1024));
        for id in 1..=40 {
            frames.keep(SyncId::new(id), frame.clone());
        }
        assert!(kept(&frames) <= KEPT_BYTES, "kept {} bytes", kept(&frames));
        let slots = frames.slots.lock().unwrap();
        assert!(slots.contains_key(&SyncId::new(40)), "the newest is kept");
        assert!(
            !slots.contains_key(&SyncId::new(1)),
            "the oldest is dropped"
        );
    }
}
