//! Scheduled retention: a background task that trims the log by age
//! ([`SyncServerBuilder::retain_for`]) and/or length
//! ([`SyncServerBuilder::retain_actions`]).
//!
//! Every node runs the task; on PostgreSQL one node at a time trims, under
//! the session advisory lock [`RETENTION_LOCK_KEY`](stratasync_diesel::RETENTION_LOCK_KEY)
//! (the others skip that round). A client whose cursor predates what was
//! trimmed from its groups is told `BOOTSTRAP_REQUIRED`, as after a manual
//! trim; the `stratasync_log_trim_watermark` metric shows how far the log
//! was trimmed.
//!
//! [`SyncServerBuilder::retain_for`]: crate::SyncServerBuilder::retain_for
//! [`SyncServerBuilder::retain_actions`]: crate::SyncServerBuilder::retain_actions

use std::time::Duration;

use stratasync_core::SyncId;
use stratasync_diesel::{Store, StoreError};
use tokio::sync::watch;
use tracing::Instrument as _;

use crate::fanout;

/// The default time between retention rounds.
pub const DEFAULT_RETENTION_INTERVAL: Duration = Duration::from_secs(60);

/// What the log keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Policy {
    /// Actions younger than this.
    pub(crate) max_age: Option<Duration>,
    /// At most this many of the newest actions.
    pub(crate) max_actions: Option<u64>,
    /// Between rounds.
    pub(crate) interval: Option<Duration>,
}

impl Policy {
    fn is_set(&self) -> bool {
        self.max_age.is_some() || self.max_actions.is_some()
    }
}

/// Starts the retention task when `policy` keeps less than everything.
pub(crate) fn start(store: Store, policy: Policy, shutdown: watch::Receiver<bool>) {
    if policy.is_set() {
        let span = tracing::info_span!("retention");
        tokio::spawn(run(store, policy, shutdown).instrument(span));
    }
}

async fn run(store: Store, policy: Policy, mut shutdown: watch::Receiver<bool>) {
    let mut rounds = tokio::time::interval(policy.interval.unwrap_or(DEFAULT_RETENTION_INTERVAL));
    rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = fanout::stopped(&mut shutdown) => return,
            _ = rounds.tick() => {}
        }
        match round(&store, &policy).await {
            Ok(Some(0) | None) => {}
            Ok(Some(trimmed)) => {
                metrics::counter!("stratasync_retention_trimmed_total").increment(trimmed as u64);
                tracing::info!(trimmed, "trimmed the log");
            }
            Err(error) => tracing::warn!(%error, "trimming the log failed; retrying next round"),
        }
    }
}

/// One round: the first id to keep under each rule, and a trim below the
/// later of them. `None` when another node trims.
async fn round(store: &Store, policy: &Policy) -> Result<Option<usize>, StoreError> {
    let mut keep_from = SyncId::ZERO;
    if let Some(count) = policy.max_actions {
        let head = store.log_bounds().await?.head.get();
        keep_from = keep_from.max(SyncId::new(head.saturating_sub(count) + 1));
    }
    if let Some(age) = policy.max_age {
        let cutoff =
            chrono::Utc::now() - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
        let first_young = match store.first_id_since(cutoff).await? {
            Some(id) => id,
            // Nothing is that young: everything goes.
            None => SyncId::new(store.log_bounds().await?.head.get() + 1),
        };
        keep_from = keep_from.max(first_young);
    }
    if keep_from <= SyncId::new(1) {
        return Ok(Some(0));
    }
    store.trim_before_exclusive(keep_from).await
}
