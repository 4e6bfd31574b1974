//! Reading the log for one socket: the replay of a subscribe, and the
//! catch-up of a socket that lagged behind the memory bus.
//!
//! Before each page is read, the socket's bus receiver is drained: every
//! action in it was read from the log by the tailer before, so it is already
//! visible and the page read that follows covers it. The read stops at a page
//! that says no more follow (pages hold [`PAGE`] actions, or fewer when they
//! reach [`Limits::delta_page_bytes`](crate::Limits)); what commits after that read stays in the receiver
//! and is delivered live (only ids above the cursor). No action is held in
//! memory per socket, however far behind the socket is.
//!
//! The replay buffer bound of PROTOCOL §8 counts the live actions visible to
//! the socket that arrive while its replay runs: a replay that cannot catch up
//! with the writers is closed with `BUFFER_OVERFLOW`.

use stratasync_diesel::StoreError;
use tokio::sync::broadcast::error::TryRecvError;

use super::outbox::{Outbox, SendError};
use super::subscription::{Delivered, Subscription};
use crate::fanout::bus::visible;
use crate::live::frames;
use crate::state::Shared;

/// Actions read from the log per query.
pub(crate) const PAGE: usize = 1000;

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReplayError {
    /// More live actions arrived during the replay than the bound allows.
    #[error("replay buffer limit exceeded")]
    Overflow,
    /// The log could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The socket could not take the frames.
    #[error("socket send failed: {0:?}")]
    Send(SendError),
}

/// Delivers every action after `sub`'s cursor visible to its groups, from the
/// log, until caught up. `buffer_limit` bounds the live actions that may
/// arrive meanwhile (`None`: unbounded, for a catch-up after lagging).
pub(crate) async fn catch_up(
    sub: &mut Subscription,
    shared: &Shared,
    outbox: &mut Outbox,
    buffer_limit: Option<usize>,
) -> Result<(), ReplayError> {
    let mut buffered = 0usize;
    loop {
        loop {
            match sub.rx.try_recv() {
                Ok(live) => {
                    let counted = live.id() > sub.cursor && visible(&live.action, &sub.groups);
                    if let Some(limit) = buffer_limit.filter(|_| counted) {
                        buffered += 1;
                        if buffered > limit {
                            return Err(ReplayError::Overflow);
                        }
                    }
                }
                Err(TryRecvError::Lagged(_)) => {}
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        // What is queued goes out while the page is read.
        outbox.write(false).map_err(ReplayError::Send)?;
        let page = crate::log_page::read(
            &shared.store,
            sub.cursor,
            PAGE,
            shared.limits.delta_page_bytes,
            Some(&sub.groups),
        )
        .await?;
        let (full, page) = (page.has_more, page.actions);
        let mut regrouped = false;
        for action in &page {
            let delivered = sub
                .deliver(shared, outbox, action, || frames::delta(action))
                .await;
            match delivered.map_err(ReplayError::Send)? {
                // The rest of the page was read with the old groups.
                Delivered::Regrouped => {
                    regrouped = true;
                    break;
                }
                Delivered::Sent | Delivered::Skipped => {}
            }
        }
        if !full && !regrouped {
            return Ok(());
        }
    }
}
