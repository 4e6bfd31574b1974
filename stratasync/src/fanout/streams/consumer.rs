//! A node's consumer: reads the shard streams its sockets need and hands
//! their actions to the memory bus in log-id order, once each.
//!
//! # Order across shards
//!
//! One `XREAD` without `BLOCK` over all the node's streams is a snapshot:
//! Redis runs it at one instant, and the leader publishes in id order, so
//! every stream that returned fewer entries than asked is complete up to
//! everything read so far. Entries are held per shard and merged: the
//! lowest goes first, and none above the last entry of a stream that filled
//! its count. A blocking `XREAD` only waits for news; the snapshot read
//! that follows it orders them.
//!
//! # Gaps
//!
//! An entry names the previous action of its shard. When that is above
//! what the node holds of the shard (a trimmed stream), the missing range is
//! read from the log, for the shard's registered groups, before the entry.
//! An entry of a newer epoch than the bus position, or a lost Redis
//! connection (a restart may have lost entries), makes the node read the
//! log from its bus position for all its groups, once, instead.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::Value;
use redis::aio::MultiplexedConnection;
use stratasync_core::{SyncAction, SyncId};
use stratasync_diesel::{Store, StoreError};
use tokio::sync::{broadcast, watch};
use tracing::Instrument as _;

use super::entry::{self, Entry};
use super::interest::Table;
use super::{Shard, StreamsConfig};
use crate::fanout::bus::INLINE_DATA_BYTES;
use crate::fanout::large::LargeFrames;
use crate::fanout::{LiveAction, stopped};
use crate::live::frames;

/// Entries read per stream and read.
const COUNT: usize = 500;
/// Actions read from the log per page.
const PAGE: usize = 1000;
/// How long a blocking read waits for news.
const BLOCK: Duration = Duration::from_secs(2);
/// How long connecting, or a read, may take (beyond the block).
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What the consumer is made of.
pub(super) struct Parts {
    pub(super) store: Store,
    pub(super) client: redis::Client,
    pub(super) config: Arc<StreamsConfig>,
    pub(super) interest: Arc<Table>,
    pub(super) bus: broadcast::Sender<Arc<LiveAction>>,
    pub(super) large: Arc<LargeFrames>,
    pub(super) position: Arc<AtomicU64>,
    pub(super) start: SyncId,
    pub(super) page_bytes: usize,
    pub(super) shutdown: watch::Receiver<bool>,
}

/// One stream as the node reads it.
#[derive(Debug)]
struct ShardState {
    /// The last action of the shard read (from the stream or the log).
    last: SyncId,
    /// Read and not yet on the bus, ascending.
    pending: VecDeque<SyncAction>,
    /// Whether the last snapshot read filled its count (so the stream may
    /// hold more than was read).
    full: bool,
}

/// The consumer's state.
pub(super) struct Consumer {
    parts: Parts,
    /// The last id handed to the bus, or up to which the log was read.
    bus_at: SyncId,
    /// The newest epoch seen.
    epoch: SyncId,
    shards: BTreeMap<Shard, ShardState>,
    /// The log must be read from `bus_at` before anything else is delivered.
    repair: bool,
}

impl Consumer {
    pub(super) fn new(parts: Parts) -> Consumer {
        let bus_at = parts.start;
        Consumer {
            parts,
            bus_at,
            epoch: SyncId::ZERO,
            shards: BTreeMap::new(),
            repair: false,
        }
    }
}

/// Runs until shutdown.
pub(super) async fn run(mut consumer: Consumer) {
    let span = tracing::info_span!("stream_consumer");
    async move {
        let mut conn: Option<MultiplexedConnection> = None;
        let mut backoff = Duration::from_millis(50);
        let mut failing = false;
        let interest = Arc::clone(&consumer.parts.interest);
        let mut shutdown = consumer.parts.shutdown.clone();
        loop {
            if *shutdown.borrow() {
                return;
            }
            if let Err(error) = consumer.take_interest().await {
                tracing::warn!(%error, "reading the log head failed; retrying");
                sleep_or_stop(&mut shutdown, backoff).await;
                continue;
            }
            if consumer.shards.is_empty() {
                tokio::select! {
                    biased;
                    () = stopped(&mut shutdown) => return,
                    () = interest.changed.notified() => {}
                }
                continue;
            }
            if conn.is_none() {
                match connect(&consumer.parts.client).await {
                    Ok(c) => {
                        conn = Some(c);
                        if failing {
                            tracing::info!("reading the streams again");
                            failing = false;
                            backoff = Duration::from_millis(50);
                        }
                    }
                    Err(error) => {
                        if !failing {
                            tracing::warn!(%error, "Redis unreachable; live deltas wait for it");
                            failing = true;
                        }
                        // Whatever the streams lose meanwhile is in the log.
                        consumer.repair = true;
                        sleep_or_stop(&mut shutdown, backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
                continue;
            }
            let Some(c) = conn.as_mut() else { continue };
            let round = async {
                if consumer.repair {
                    consumer.read_log().await.map_err(|e| e.to_string())?;
                }
                // The snapshot: orders what was read.
                let reply = xread(c, &consumer.streams(), None).await?;
                consumer
                    .absorb(&reply, true)
                    .await
                    .map_err(|e| e.to_string())?;
                if consumer.repair {
                    consumer.read_log().await.map_err(|e| e.to_string())?;
                }
                consumer.deliver();
                Ok::<_, String>(())
            }
            .await;
            if let Err(error) = round {
                lost(&mut conn, &mut consumer, &mut failing, &error);
                continue;
            }
            if interest.has_waiting() {
                continue;
            }
            // Wait for news, or for a socket that needs another shard.
            let Some(c) = conn.as_mut() else { continue };
            let streams = consumer.streams();
            let reply = {
                let blocking = xread(c, &streams, Some(BLOCK));
                tokio::pin!(blocking);
                loop {
                    tokio::select! {
                        biased;
                        () = stopped(&mut shutdown) => return,
                        () = interest.changed.notified() => {
                            if interest.has_waiting() {
                                break None;
                            }
                        }
                        reply = &mut blocking => break Some(reply),
                    }
                }
            };
            match reply {
                // Abandons the blocked read with its connection.
                None => conn = None,
                Some(Ok(reply)) => {
                    if let Err(error) = consumer.absorb(&reply, false).await {
                        lost(&mut conn, &mut consumer, &mut failing, &error.to_string());
                    }
                }
                Some(Err(error)) => lost(&mut conn, &mut consumer, &mut failing, &error),
            }
        }
    }
    .instrument(span)
    .await;
}

/// A failed round: the connection is dropped and the log read on the next.
fn lost(
    conn: &mut Option<MultiplexedConnection>,
    consumer: &mut Consumer,
    failing: &mut bool,
    error: &str,
) {
    if !*failing {
        tracing::warn!(%error, "reading the streams failed; reconnecting");
        *failing = true;
    }
    *conn = None;
    consumer.repair = true;
}

async fn sleep_or_stop(shutdown: &mut watch::Receiver<bool>, pause: Duration) {
    tokio::select! {
        biased;
        () = stopped(shutdown) => {}
        () = tokio::time::sleep(pause) => {}
    }
}

async fn connect(client: &redis::Client) -> Result<MultiplexedConnection, String> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT + BLOCK));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| e.to_string())
}

/// `XREAD COUNT .. [BLOCK ..] STREAMS <keys> <ids>`.
async fn xread(
    conn: &mut MultiplexedConnection,
    streams: &[(String, String)],
    block: Option<Duration>,
) -> Result<Value, String> {
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("COUNT").arg(COUNT);
    if let Some(block) = block {
        cmd.arg("BLOCK")
            .arg(u64::try_from(block.as_millis()).unwrap_or(u64::MAX));
    }
    cmd.arg("STREAMS");
    for (key, _) in streams {
        cmd.arg(key);
    }
    for (_, id) in streams {
        cmd.arg(id);
    }
    cmd.query_async(conn).await.map_err(|e| e.to_string())
}

impl Consumer {
    /// Takes in the shards the sockets hold now and releases the
    /// registrations that waited for them.
    async fn take_interest(&mut self) -> Result<(), StoreError> {
        let interest = &self.parts.interest;
        if self.shards.is_empty() && interest.has_waiting() {
            // Nothing was read while no socket listened: start at the head.
            self.bus_at = self.bus_at.max(self.parts.store.last_id().await?);
            self.parts
                .position
                .store(self.bus_at.get(), Ordering::Relaxed);
        }
        let (active, waiting) = interest.take();
        self.shards.retain(|shard, _| active.contains(shard));
        for shard in active {
            self.shards.entry(shard).or_insert_with(|| ShardState {
                last: self.bus_at,
                pending: VecDeque::new(),
                full: false,
            });
        }
        for waiter in waiting {
            let _ = waiter.send(());
        }
        Ok(())
    }

    /// The keys and read positions of the streams read.
    fn streams(&self) -> Vec<(String, String)> {
        self.shards
            .iter()
            .map(|(shard, state)| (self.parts.config.key(*shard), entry::entry_id(state.last)))
            .collect()
    }

    /// Takes in a read's entries: skips what the node holds, repairs gaps,
    /// and (for a snapshot) notes which streams filled their count.
    async fn absorb(&mut self, reply: &Value, snapshot: bool) -> Result<(), StoreError> {
        let by_key: HashMap<Vec<u8>, Shard> = self
            .shards
            .keys()
            .map(|shard| (self.parts.config.key(*shard).into_bytes(), *shard))
            .collect();
        let streams = entry::parse_read(reply);
        let newest_epoch = streams
            .iter()
            .flat_map(|(_, entries)| entries.iter().map(|e| e.epoch))
            .max()
            .unwrap_or(SyncId::ZERO);
        if newest_epoch > self.epoch {
            self.epoch = newest_epoch;
        }
        if self.epoch > self.bus_at {
            // A new leader's run begins after what this node read: what
            // lies between is only in the log.
            self.repair = true;
        }
        let mut filled: BTreeSet<Shard> = BTreeSet::new();
        for (key, entries) in streams {
            let Some(shard) = by_key.get(&key).copied() else {
                continue;
            };
            if entries.len() >= COUNT {
                filled.insert(shard);
            }
            for Entry { action, prev, .. } in entries {
                let last = self.shards.get(&shard).map_or(SyncId::ZERO, |s| s.last);
                if action.id <= last {
                    continue;
                }
                if prev > last && !self.repair {
                    self.read_gap(shard, last, action.id).await?;
                }
                if let Some(state) = self.shards.get_mut(&shard) {
                    state.last = action.id;
                    state.pending.push_back(action);
                }
            }
        }
        if snapshot {
            for (shard, state) in &mut self.shards {
                state.full = filled.contains(shard);
            }
        }
        Ok(())
    }

    /// Reads the actions of `shard`'s registered groups between `after` and
    /// `before` from the log into its pending entries.
    async fn read_gap(
        &mut self,
        shard: Shard,
        after: SyncId,
        before: SyncId,
    ) -> Result<(), StoreError> {
        crate::metrics::stream_repair("gap");
        let groups = self.parts.interest.groups(Some(shard));
        let mut cursor = after;
        loop {
            let page = crate::log_page::read(
                &self.parts.store,
                cursor,
                PAGE,
                self.parts.page_bytes,
                Some(&groups),
            )
            .await?;
            let mut reached = !page.has_more;
            for action in page.actions {
                cursor = action.id;
                if action.id >= before {
                    reached = true;
                    break;
                }
                if self.parts.config.shard_of(action.group_id.as_deref()) != shard {
                    continue;
                }
                if let Some(state) = self.shards.get_mut(&shard) {
                    state.last = action.id;
                    state.pending.push_back(action);
                }
            }
            if reached {
                return Ok(());
            }
        }
    }

    /// Reads the log after the bus position for every registered group onto
    /// the bus; every stream then goes on from the log's head.
    async fn read_log(&mut self) -> Result<(), StoreError> {
        crate::metrics::stream_repair("full");
        let head = self.parts.store.last_id().await?;
        let groups = self.parts.interest.groups(None);
        let mut cursor = self.bus_at;
        loop {
            let page = crate::log_page::read(
                &self.parts.store,
                cursor,
                PAGE,
                self.parts.page_bytes,
                Some(&groups),
            )
            .await?;
            for action in page.actions {
                cursor = action.id;
                self.send(action);
            }
            if !page.has_more {
                break;
            }
        }
        let covered = head.max(cursor);
        self.bus_at = self.bus_at.max(covered);
        self.parts
            .position
            .store(self.bus_at.get(), Ordering::Relaxed);
        for state in self.shards.values_mut() {
            state.last = state.last.max(covered);
            state.pending.retain(|action| action.id > covered);
        }
        self.repair = false;
        Ok(())
    }

    /// Hands pending entries to the bus in id order, up to the last entry
    /// of any stream that may hold more.
    fn deliver(&mut self) {
        let limit = self
            .shards
            .values()
            .filter(|state| state.full)
            .map(|state| state.last)
            .min()
            .unwrap_or(SyncId::new(u64::MAX));
        loop {
            let next = self
                .shards
                .iter()
                .filter_map(|(shard, state)| state.pending.front().map(|a| (a.id, *shard)))
                .min();
            let Some((id, shard)) = next else { break };
            if id > limit {
                break;
            }
            let Some(action) = self
                .shards
                .get_mut(&shard)
                .and_then(|state| state.pending.pop_front())
            else {
                break;
            };
            self.send(action);
        }
    }

    /// Puts one action on the bus.
    fn send(&mut self, action: SyncAction) {
        if action.id <= self.bus_at {
            tracing::warn!(id = %action.id, bus_at = %self.bus_at, "an action below the bus position was not delivered");
            return;
        }
        self.bus_at = action.id;
        self.parts
            .position
            .store(self.bus_at.get(), Ordering::Relaxed);
        let bus = &self.parts.bus;
        // The bus carries a large action without its data: its frame waits
        // for the sockets here, so they need not read it again.
        if action.data.get().len() > INLINE_DATA_BYTES && bus.receiver_count() > 0 {
            self.parts.large.keep(action.id, frames::delta(&action));
        }
        // No receiver is fine: no socket is listening.
        let _ = bus.send(Arc::new(LiveAction::new(action)));
    }
}
