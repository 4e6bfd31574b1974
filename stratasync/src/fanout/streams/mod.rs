//! Several nodes, one read of the log: the Redis Streams topology.
//!
//! Chosen when the server has a Redis URL and a PostgreSQL database. It
//! replaces the log tailer of every node with:
//!
//! - one **leader** per cluster (`leader`), elected through a PostgreSQL
//!   session advisory lock held on a dedicated connection. It reads
//!   `sync_actions` once, in id order, and `XADD`s each whole action to the
//!   Redis stream of its group's shard, with the log id as the entry id.
//!   When the leader dies its session ends, the lock passes to a waiting
//!   node, and that node resumes where the streams end;
//! - on every node, a **consumer** (`consumer`) that `XREAD`s only the
//!   shards of the groups its sockets hold (`interest`), merges them in
//!   log-id order onto the node's memory bus, and repairs any gap from the
//!   log by id range.
//!
//! The log stays the truth and the streams are a cache of its tail: each
//! entry names the previous action of its shard (`entry`), so a consumer
//! that finds an entry whose predecessor it never saw (a trimmed stream, a
//! new leader) reads the missing range from PostgreSQL; after a lost Redis
//! connection (a Redis restart) it reads the log from its position once.

mod consumer;
mod entry;
mod interest;
mod leader;

use std::sync::Arc;
use std::time::Duration;

use stratasync_core::SyncId;
use stratasync_diesel::Store;
use tokio::sync::{Notify, broadcast, watch};

pub(crate) use interest::Interest;

use super::LiveAction;
use super::large::LargeFrames;
use crate::error::Error;

/// The default number of shard streams.
pub const DEFAULT_STREAM_SHARDS: u32 = 16;
/// The default length each stream is trimmed to (about).
pub const DEFAULT_STREAM_MAX_LEN: u64 = 10_000;

/// How the streams are laid out and trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamsConfig {
    /// Shard streams the groups are spread over.
    pub(crate) shards: u32,
    /// The prefix of the stream keys (`<prefix>:<shard>`, `<prefix>:global`);
    /// empty: the Redis channel followed by `:log`.
    pub(crate) prefix: String,
    /// Entries each stream keeps (about: `MAXLEN ~`).
    pub(crate) max_len: u64,
    /// Entries older than this are trimmed too (`MINID ~`), if set.
    pub(crate) max_age: Option<Duration>,
}

impl Default for StreamsConfig {
    fn default() -> Self {
        StreamsConfig {
            shards: DEFAULT_STREAM_SHARDS,
            prefix: "stratasync:log".to_owned(),
            max_len: DEFAULT_STREAM_MAX_LEN,
            max_age: None,
        }
    }
}

/// A stream: one of the group shards, or the stream of global actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Shard {
    /// Actions of the groups that hash to this shard.
    Group(u32),
    /// Actions of no group (visible to every socket).
    Global,
}

impl StreamsConfig {
    /// The shard of `group` (`None`: global).
    pub(crate) fn shard_of(&self, group: Option<&str>) -> Shard {
        match group {
            None => Shard::Global,
            Some(group) => {
                // FNV-1a: stable across processes and versions.
                let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
                for byte in group.as_bytes() {
                    hash ^= u64::from(*byte);
                    hash = hash.wrapping_mul(0x0100_0000_01b3);
                }
                let shards = u64::from(self.shards.max(1));
                Shard::Group(u32::try_from(hash % shards).unwrap_or(0))
            }
        }
    }

    /// Every stream.
    pub(crate) fn all(&self) -> impl Iterator<Item = Shard> {
        (0..self.shards.max(1))
            .map(Shard::Group)
            .chain(std::iter::once(Shard::Global))
    }

    /// The Redis key of `shard`.
    pub(crate) fn key(&self, shard: Shard) -> String {
        match shard {
            Shard::Group(n) => format!("{}:{n}", self.prefix),
            Shard::Global => format!("{}:global", self.prefix),
        }
    }

    /// The advisory-lock key of the leader of this prefix's cluster.
    pub(crate) fn lock_key(&self) -> i64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in b"stratasync-streams-leader:"
            .iter()
            .chain(self.prefix.as_bytes())
        {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        i64::from_ne_bytes(hash.to_ne_bytes())
    }
}

/// What the topology's tasks share with the node.
pub(crate) struct Streams {
    interest: Arc<interest::Table>,
    /// Whether this node leads (reads the log for the cluster).
    leading: watch::Receiver<bool>,
}

/// What starting the topology takes.
pub(crate) struct Start {
    pub(crate) store: Store,
    pub(crate) database_url: String,
    pub(crate) redis_url: String,
    pub(crate) config: StreamsConfig,
    pub(crate) bus: broadcast::Sender<Arc<LiveAction>>,
    pub(crate) large: Arc<LargeFrames>,
    /// The node's bus position, kept by the consumer.
    pub(crate) position: Arc<std::sync::atomic::AtomicU64>,
    /// Where the bus starts.
    pub(crate) start: SyncId,
    /// Bumped by every local commit (wakes the leader).
    pub(crate) committed: watch::Receiver<SyncId>,
    /// Poked by other nodes' commits through Redis (wakes the leader).
    pub(crate) poke: Arc<Notify>,
    pub(crate) poll_interval: Duration,
    pub(crate) page_bytes: usize,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl Streams {
    /// Starts the election (and, once elected, the leader) and the consumer.
    pub(crate) fn start(start: Start) -> Result<Streams, Error> {
        let client = redis::Client::open(start.redis_url.as_str())
            .map_err(|e| Error::Config(format!("invalid Redis URL: {e}")))?;
        let config = Arc::new(start.config);
        let interest = Arc::new(interest::Table::new(Arc::clone(&config)));
        let (leading_tx, leading) = watch::channel(false);
        tokio::spawn(leader::run(leader::Leader {
            store: start.store.clone(),
            database_url: start.database_url,
            client: client.clone(),
            config: Arc::clone(&config),
            committed: start.committed,
            poke: start.poke,
            poll_interval: start.poll_interval,
            page_bytes: start.page_bytes,
            shutdown: start.shutdown.clone(),
            leading: leading_tx,
        }));
        tokio::spawn(consumer::run(consumer::Consumer::new(consumer::Parts {
            store: start.store,
            client,
            config,
            interest: Arc::clone(&interest),
            bus: start.bus,
            large: start.large,
            position: start.position,
            start: start.start,
            page_bytes: start.page_bytes,
            shutdown: start.shutdown,
        })));
        Ok(Streams { interest, leading })
    }

    /// Registers `groups` as held by a socket of this node; resolves once
    /// the consumer reads their shards, so every action of theirs the bus
    /// carries from then on is complete and in order.
    pub(crate) async fn interest(&self, groups: &[String]) -> Interest {
        self.interest.register(groups).await
    }

    /// Whether this node is the cluster's leader now.
    pub(crate) fn leading(&self) -> bool {
        *self.leading.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_spread_over_the_shards_stably() {
        let config = StreamsConfig {
            shards: 4,
            ..StreamsConfig::default()
        };
        assert_eq!(config.shard_of(None), Shard::Global);
        assert_eq!(config.shard_of(Some("w1")), config.shard_of(Some("w1")));
        let used: std::collections::HashSet<Shard> = (0..64)
            .map(|i| config.shard_of(Some(&format!("w{i}"))))
            .collect();
        assert_eq!(used.len(), 4, "64 groups use every shard");
        assert_eq!(config.key(Shard::Group(3)), "stratasync:log:3");
        assert_eq!(config.key(Shard::Global), "stratasync:log:global");
        assert_eq!(config.all().count(), 5);
        let other = StreamsConfig {
            prefix: "other".into(),
            ..StreamsConfig::default()
        };
        assert_ne!(config.lock_key(), other.lock_key(), "one leader per prefix");
    }
}
