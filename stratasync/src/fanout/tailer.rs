//! The log tailer: one task per node that reads `sync_actions` in id order
//! after its cursor and hands every action to the memory bus.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use stratasync_core::SyncId;
use stratasync_diesel::Store;
use tokio::sync::{Notify, broadcast, watch};
use tracing::Instrument as _;

use super::LiveAction;
use super::bus::INLINE_DATA_BYTES;
use super::large::LargeFrames;
use crate::live::frames;

/// Actions read from the log per query.
const PAGE: usize = 1000;

/// The tailer's state.
pub(super) struct Tailer {
    pub(super) store: Store,
    /// The last id handed to the bus.
    pub(super) cursor: SyncId,
    pub(super) bus: broadcast::Sender<Arc<LiveAction>>,
    /// Where the frames of large actions wait for the sockets.
    pub(super) large: Arc<LargeFrames>,
    /// Bumped by every local commit.
    pub(super) committed: watch::Receiver<SyncId>,
    /// Poked by Redis messages from other nodes.
    pub(super) poke: Arc<Notify>,
    pub(super) poll_interval: Duration,
    /// Bytes of actions read per page at most (about).
    pub(super) page_bytes: usize,
    pub(super) shutdown: watch::Receiver<bool>,
    /// The cursor, for the tailer-lag metric.
    pub(super) position: Arc<AtomicU64>,
}

/// Runs until shutdown: waits for a poke, a local commit or the poll, then
/// reads the log up to its end.
pub(super) async fn run(mut tailer: Tailer) {
    let span = tracing::info_span!("log_tailer", start = %tailer.cursor);
    async move {
        let mut poll = tokio::time::interval(tailer.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                biased;
                _ = super::stopped(&mut tailer.shutdown) => break,
                changed = tailer.committed.changed() => {
                    if changed.is_err() {
                        break; // the server is gone
                    }
                }
                () = tailer.poke.notified() => {}
                _ = poll.tick() => {}
            }
            match tailer.drain().await {
                Ok(()) if failing => {
                    tracing::info!(cursor = %tailer.cursor, "reading the log again");
                    failing = false;
                }
                Ok(()) => {}
                Err(error) => {
                    if !failing {
                        tracing::warn!(%error, cursor = %tailer.cursor, "reading the log failed; retrying at the next poll");
                    }
                    failing = true;
                }
            }
        }
        tracing::debug!(cursor = %tailer.cursor, "log tailer stopped");
    }
    .instrument(span)
    .await;
}

impl Tailer {
    /// Reads every action after the cursor, in order, onto the bus.
    async fn drain(&mut self) -> Result<(), stratasync_diesel::StoreError> {
        loop {
            let page = crate::log_page::read(&self.store, self.cursor, PAGE, self.page_bytes, None)
                .await?;
            for action in page.actions {
                self.cursor = action.id;
                // The bus carries a large action without its data: its frame
                // waits for the sockets here, so they need not read it again.
                if action.data.get().len() > INLINE_DATA_BYTES && self.bus.receiver_count() > 0 {
                    self.large.keep(action.id, frames::delta(&action));
                }
                // No receiver is fine: no socket is listening.
                let _ = self.bus.send(Arc::new(LiveAction::new(action)));
            }
            self.position.store(self.cursor.get(), Ordering::Relaxed);
            if !page.has_more {
                return Ok(());
            }
        }
    }
}
