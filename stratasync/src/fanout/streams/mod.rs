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
mod layout;
mod leader;

use std::sync::Arc;
use std::time::Duration;

use stratasync_core::SyncId;
use stratasync_diesel::Store;
use tokio::sync::{Notify, broadcast, watch};

pub(crate) use interest::Interest;
pub use layout::{DEFAULT_STREAM_MAX_LEN, DEFAULT_STREAM_SHARDS};
pub(crate) use layout::{Shard, StreamsConfig};

use super::LiveAction;
use super::large::LargeFrames;
use crate::error::Error;

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
