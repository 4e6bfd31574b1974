//! How the store uses its database connections: the pool's size and wait
//! bound, and the share of it that snapshot readers may hold.
//!
//! A snapshot (bootstrap, batch load) holds one connection and an open
//! read-only transaction for as long as its client takes to read it. Left
//! unbounded, a few clients that stop reading would hold every connection and
//! stall every other request, authentication included. So snapshots take a
//! slot of a separate gate sized to a share of the pool (half by default)
//! before they take a connection: past that share a snapshot waits up to
//! [`PoolOptions::snapshot_wait`] and is then refused with
//! [`StoreError::Unavailable`], while short queries always find the rest of
//! the pool. A snapshot whose reader takes nothing for
//! [`PoolOptions::snapshot_stall_timeout`] is cut off: its transaction ends
//! and its connection returns to the pool.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::StoreError;

/// How the store's connection pool is sized and shared.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PoolOptions {
    /// Connections kept open at most (default 16).
    pub size: usize,
    /// How long a request waits for a free connection before it is refused
    /// with [`StoreError::Unavailable`] (default 5 s).
    pub wait_timeout: Duration,
    /// The share of [`PoolOptions::size`] that snapshot readers may hold at
    /// once, in `(0, 1]` (default 0.5). At least one connection is always
    /// left to short queries when the pool has more than one.
    pub snapshot_share: f64,
    /// How long a snapshot waits for a slot of its share before it is
    /// refused with [`StoreError::Unavailable`] (default 5 s).
    pub snapshot_wait: Duration,
    /// A snapshot whose reader takes nothing for this long is cut off, its
    /// transaction ended and its connection returned (default 30 s).
    pub snapshot_stall_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            size: 16,
            wait_timeout: Duration::from_secs(5),
            snapshot_share: 0.5,
            snapshot_wait: Duration::from_secs(5),
            snapshot_stall_timeout: Duration::from_secs(30),
        }
    }
}

impl PoolOptions {
    /// Checks the options; the error names the offending field.
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.size == 0 {
            return Err(StoreError::Connect("pool size must be at least 1".into()));
        }
        if !(self.snapshot_share > 0.0 && self.snapshot_share <= 1.0) {
            return Err(StoreError::Connect(format!(
                "snapshot_share must be in (0, 1], not {}",
                self.snapshot_share
            )));
        }
        Ok(())
    }

    /// How many snapshots may hold a connection at once.
    pub fn snapshot_slots(&self) -> usize {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let share = (self.size as f64 * self.snapshot_share).floor() as usize;
        let keep_one = if self.size > 1 {
            self.size - 1
        } else {
            self.size
        };
        share.clamp(1, keep_one)
    }
}

/// The slots of the snapshot share.
#[derive(Debug, Clone)]
pub(crate) struct SnapshotGate {
    slots: Arc<Semaphore>,
    wait: Duration,
}

impl SnapshotGate {
    pub(crate) fn new(options: &PoolOptions) -> Self {
        SnapshotGate {
            slots: Arc::new(Semaphore::new(options.snapshot_slots())),
            wait: options.snapshot_wait,
        }
    }

    /// A slot, waiting up to the bound.
    pub(crate) async fn enter(&self) -> Result<OwnedSemaphorePermit, StoreError> {
        match tokio::time::timeout(self.wait, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) | Err(_) => Err(StoreError::Unavailable(
                "every snapshot slot is taken; retry later".into(),
            )),
        }
    }
}

/// A pool failure as a [`StoreError`]: a wait that timed out is
/// [`StoreError::Unavailable`] (the client retries), anything else a
/// [`StoreError::Pool`].
pub(crate) fn pool_error(
    error: diesel_async::pooled_connection::deadpool::PoolError,
) -> StoreError {
    use diesel_async::pooled_connection::deadpool::PoolError;
    match error {
        PoolError::Timeout(_) => {
            StoreError::Unavailable("no database connection freed up in time; retry later".into())
        }
        other => StoreError::Pool(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_take_half_and_leave_one() {
        let slots = |size, share| {
            PoolOptions {
                size,
                snapshot_share: share,
                ..PoolOptions::default()
            }
            .snapshot_slots()
        };
        assert_eq!(slots(16, 0.5), 8);
        assert_eq!(slots(16, 1.0), 15);
        assert_eq!(slots(1, 0.5), 1);
        assert_eq!(slots(3, 0.1), 1);
    }

    #[test]
    fn bad_share_is_refused_by_name() {
        let options = PoolOptions {
            snapshot_share: 0.0,
            ..PoolOptions::default()
        };
        let error = options.validate().expect_err("refused");
        assert!(error.to_string().contains("snapshot_share"), "{error}");
    }
}
