//! Fan-out: how every committed action reaches the live sockets of every
//! node (PROTOCOL §8–9).
//!
//! # The log is the bus
//!
//! Actions become visible in the `sync_actions` log in id order (the append
//! lock is held until commit), so the log itself is a total order that every
//! node can read. Each node runs one `tailer` task that reads the log after
//! its own cursor, in id order and in pages, and hands each action to an
//! in-process [`tokio::sync::broadcast`] channel (the memory bus,
//! `bus`). Live sockets read that channel; nothing is ever delivered from
//! anywhere else than the log, so a socket sees actions gap-free, ascending and
//! once each.
//!
//! The tailer reads when it is poked:
//!
//! - by a commit on this node (the `last_committed` watch channel),
//! - by a message on Redis from another node (`redis`, feature `redis`):
//!   the message is a poke, its content is not trusted for delivery,
//! - by a periodic safety poll (one second by default), which is also how a
//!   node catches up when Redis is down, lagging or absent.
//!
//! ## Lagging
//!
//! The bus is bounded. A socket that falls more than its capacity behind gets
//! [`RecvError::Lagged`](tokio::sync::broadcast::error::RecvError::Lagged) and
//! reads the log from its own cursor instead, so server memory does not grow
//! with how far behind a client is.
//!
//! The bus holds its last few thousand actions; so that they cannot be
//! thousands of large ones, an action with more than 16 KiB of data travels
//! without it; the sockets that deliver it share one read of it from the log
//! (`large`).
//!
//! # Several nodes: one read of the log
//!
//! With a Redis URL and PostgreSQL, no node tails the log for itself: one
//! leader per cluster reads it and publishes it to Redis Streams sharded by
//! group, and each node reads only the shards of the groups its sockets
//! hold onto its memory bus, repairing gaps from the log (`streams`). The
//! pub/sub pokes of `redis` then only wake the leader. With SQLite (one
//! machine) a Redis URL keeps the tailer on every node, poked through Redis.

pub(crate) mod bus;
pub(crate) mod large;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
pub mod streams;
mod tailer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use stratasync_core::{SyncAction, SyncId};
use stratasync_diesel::Store;
use tokio::sync::{Notify, broadcast, watch};

pub(crate) use bus::LiveAction;

use crate::error::Error;

/// The Redis channel of PROTOCOL §9.
pub const DEFAULT_REDIS_CHANNEL: &str = "sync:deltas";

/// How fan-out is configured.
#[derive(Debug, Clone)]
pub(crate) struct FanoutConfig {
    /// How often the tailer reads the log without being poked.
    pub(crate) poll_interval: Duration,
    /// Actions the memory bus holds before slow readers lag.
    pub(crate) bus_capacity: usize,
    /// Redis for cross-node pokes, if any.
    pub(crate) redis_url: Option<String>,
    /// The Redis channel.
    pub(crate) redis_channel: String,
    /// Bytes of actions the tailer reads per page (about).
    pub(crate) page_bytes: usize,
    /// The streams of several nodes (with Redis and PostgreSQL).
    #[cfg(feature = "redis")]
    pub(crate) streams: streams::StreamsConfig,
}

impl Default for FanoutConfig {
    fn default() -> Self {
        FanoutConfig {
            poll_interval: Duration::from_secs(1),
            bus_capacity: 4096,
            redis_url: None,
            redis_channel: DEFAULT_REDIS_CHANNEL.to_owned(),
            page_bytes: crate::Limits::default().delta_page_bytes,
            #[cfg(feature = "redis")]
            streams: streams::StreamsConfig {
                prefix: String::new(),
                ..streams::StreamsConfig::default()
            },
        }
    }
}

/// A socket's registered groups (see [`Fanout::interest`]); dropping it
/// unregisters them.
pub(crate) struct Interest {
    #[cfg(feature = "redis")]
    _held: Option<streams::Interest>,
}

/// One node's fan-out: the log tailer (or the stream consumer), the memory
/// bus and the Redis link.
pub(crate) struct Fanout {
    bus: broadcast::Sender<Arc<LiveAction>>,
    /// The frames of large actions, read once for all sockets of the node.
    large: Arc<large::LargeFrames>,
    /// The last id the tailer handed to the bus.
    position: Arc<AtomicU64>,
    shutdown: watch::Sender<bool>,
    #[cfg(feature = "redis")]
    redis: Option<redis::Publisher>,
    /// The streams topology, when this node is one of several.
    #[cfg(feature = "redis")]
    streams: Option<streams::Streams>,
}

impl Fanout {
    /// Starts the tailer (and the Redis tasks when configured) at the end of
    /// the log as it is now; with Redis on PostgreSQL (`database_url`), the
    /// streams topology instead of the tailer.
    pub(crate) async fn start(
        store: Store,
        database_url: &str,
        config: FanoutConfig,
        committed: watch::Receiver<SyncId>,
    ) -> Result<Fanout, Error> {
        let (bus, _) = broadcast::channel(config.bus_capacity.max(1));
        let (shutdown, _) = watch::channel(false);
        let poke = Arc::new(Notify::new());
        let start = store.last_id().await?;
        let position = Arc::new(AtomicU64::new(start.get()));
        let large = Arc::new(large::LargeFrames::default());
        #[cfg(feature = "redis")]
        let redis = match &config.redis_url {
            Some(url) => Some(redis::start(
                url,
                &config.redis_channel,
                Arc::clone(&poke),
                shutdown.subscribe(),
            )?),
            None => None,
        };
        #[cfg(not(feature = "redis"))]
        let _ = database_url;
        #[cfg(not(feature = "redis"))]
        if config.redis_url.is_some() {
            return Err(Error::Config(
                "a Redis URL needs the `redis` feature of stratasync".into(),
            ));
        }
        #[cfg(feature = "redis")]
        if let Some(url) = config
            .redis_url
            .clone()
            .filter(|_| store.backend_name() == "postgres")
        {
            let mut streams_config = config.streams;
            if streams_config.prefix.is_empty() {
                streams_config.prefix = format!("{}:log", config.redis_channel);
            }
            let streams = streams::Streams::start(streams::Start {
                store,
                database_url: database_url.to_owned(),
                redis_url: url,
                config: streams_config,
                bus: bus.clone(),
                large: Arc::clone(&large),
                position: Arc::clone(&position),
                start,
                committed,
                poke,
                poll_interval: config.poll_interval,
                page_bytes: config.page_bytes,
                shutdown: shutdown.subscribe(),
            })?;
            return Ok(Fanout {
                bus,
                large,
                position,
                shutdown,
                redis,
                streams: Some(streams),
            });
        }
        tokio::spawn(tailer::run(tailer::Tailer {
            store,
            cursor: start,
            bus: bus.clone(),
            large: Arc::clone(&large),
            committed,
            poke,
            poll_interval: config.poll_interval,
            page_bytes: config.page_bytes,
            shutdown: shutdown.subscribe(),
            position: Arc::clone(&position),
        }));
        Ok(Fanout {
            bus,
            large,
            position,
            shutdown,
            #[cfg(feature = "redis")]
            redis,
            #[cfg(feature = "redis")]
            streams: None,
        })
    }

    /// Registers the groups of a socket that is about to read the bus:
    /// with the streams, resolves once this node reads their shards.
    pub(crate) async fn interest(&self, groups: &[String]) -> Interest {
        #[cfg(feature = "redis")]
        return Interest {
            _held: match &self.streams {
                Some(streams) => Some(streams.interest(groups).await),
                None => None,
            },
        };
        #[cfg(not(feature = "redis"))]
        {
            let _ = groups;
            Interest {}
        }
    }

    /// Whether this node is the streams leader: `None` without the streams.
    pub(crate) fn stream_leader(&self) -> Option<bool> {
        #[cfg(feature = "redis")]
        return self.streams.as_ref().map(streams::Streams::leading);
        #[cfg(not(feature = "redis"))]
        None
    }

    /// A receiver of every action the tailer reads from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<LiveAction>> {
        self.bus.subscribe()
    }

    /// The frames of large actions, shared by the sockets of the node.
    pub(crate) fn large_frames(&self) -> &large::LargeFrames {
        &self.large
    }

    /// Tells the other nodes that `action` committed here (the local tailer
    /// is poked through the `last_committed` channel). Never blocks and never
    /// fails: Redis is only a poke, the poll covers what it loses.
    pub(crate) fn announce(&self, action: &SyncAction) {
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            redis.publish(action);
        }
        #[cfg(not(feature = "redis"))]
        let _ = action;
    }

    /// The last id the log tailer (or the stream consumer) handed to live
    /// sockets.
    pub(crate) fn position(&self) -> SyncId {
        SyncId::new(self.position.load(Ordering::Relaxed))
    }

    /// Whether this node is subscribed to Redis: `None` without Redis.
    pub(crate) fn redis_connected(&self) -> Option<bool> {
        #[cfg(feature = "redis")]
        return self.redis.as_ref().map(redis::Publisher::connected);
        #[cfg(not(feature = "redis"))]
        None
    }

    /// Signals shutdown to the tailer, the Redis tasks and every live socket.
    pub(crate) fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    /// Resolves once shutdown was signalled.
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}

impl Drop for Fanout {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Waits until `signal` says shutdown (or its sender is gone).
pub(crate) async fn stopped(signal: &mut watch::Receiver<bool>) {
    let _ = signal.wait_for(|stop| *stop).await;
}
