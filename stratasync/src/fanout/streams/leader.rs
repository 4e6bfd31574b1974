//! The leader: one node per cluster reads the log and publishes it to the
//! shard streams.
//!
//! Every node waits for the leader's PostgreSQL session advisory lock on a
//! dedicated connection (`pg_advisory_lock`, so waiting costs nothing);
//! the holder leads until its session ends, when PostgreSQL hands the lock
//! to the next waiter. The leader checks its session at every poll and
//! stops publishing as soon as it is gone.
//!
//! Leading starts where the streams end: the newest entry of every stream
//! tells how far the previous leader published, and the new one goes on
//! from there. Streams that are empty (a fresh or restarted Redis), ahead of
//! the log, or further behind it than they keep, start a new epoch at the
//! end of the log; consumers read what lies before it from the log.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl as _;
use redis::Value;
use redis::aio::MultiplexedConnection;
use stratasync_core::SyncId;
use stratasync_diesel::{PgConn, Store};
use tokio::sync::{Notify, watch};
use tracing::Instrument as _;

use super::entry;
use super::{Shard, StreamsConfig};
use crate::fanout::stopped;

/// Actions read from the log per page.
const PAGE: usize = 1000;
/// How long one Redis operation may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The election and the leader's state.
pub(super) struct Leader {
    pub(super) store: Store,
    pub(super) database_url: String,
    pub(super) client: redis::Client,
    pub(super) config: Arc<StreamsConfig>,
    pub(super) committed: watch::Receiver<SyncId>,
    pub(super) poke: Arc<Notify>,
    pub(super) poll_interval: Duration,
    pub(super) page_bytes: usize,
    pub(super) shutdown: watch::Receiver<bool>,
    pub(super) leading: watch::Sender<bool>,
}

/// How far the leader has published.
#[derive(Debug, Clone)]
struct Published {
    /// Every log action up to here is in the streams (or was, before a trim).
    cursor: SyncId,
    /// Per stream, the last action published to it (or `epoch`).
    prev: HashMap<Shard, SyncId>,
    /// Where this unbroken run of entries began.
    epoch: SyncId,
    /// Creation times of recent entries, for trimming by age.
    recent: VecDeque<(DateTime<Utc>, SyncId)>,
}

/// Why leading ended.
enum Ended {
    Shutdown,
    LockLost,
}

/// Runs the election until shutdown: waits for the lock, leads, and waits
/// again when the lock is lost.
pub(super) async fn run(mut leader: Leader) {
    let span = tracing::info_span!("stream_leader", prefix = %leader.config.prefix);
    async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            let acquired = tokio::select! {
                biased;
                () = stopped(&mut leader.shutdown) => return,
                acquired = acquire(&leader.database_url, leader.config.lock_key()) => acquired,
            };
            match acquired {
                Ok(conn) => {
                    backoff = Duration::from_millis(100);
                    tracing::info!("leading: this node publishes the log to the streams");
                    leader.leading.send_replace(true);
                    crate::metrics::stream_leader(true);
                    let ended = leader.lead(conn).await;
                    leader.leading.send_replace(false);
                    crate::metrics::stream_leader(false);
                    match ended {
                        Ended::Shutdown => return,
                        Ended::LockLost => {
                            tracing::warn!("lost the leader lock; waiting for it again");
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "waiting for the leader lock failed; retrying");
                    tokio::select! {
                        biased;
                        () = stopped(&mut leader.shutdown) => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
    .instrument(span)
    .await;
}

/// A dedicated session holding the leader lock (waits until it is free).
async fn acquire(url: &str, key: i64) -> Result<PgConn, String> {
    let mut conn = stratasync_diesel::connect_postgres(url)
        .await
        .map_err(|e| e.to_string())?;
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(key)
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

impl Leader {
    /// Publishes the log while the lock is held.
    async fn lead(&mut self, mut lock: PgConn) -> Ended {
        let mut poll = tokio::time::interval(self.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut redis: Option<MultiplexedConnection> = None;
        let mut published: Option<Published> = None;
        let mut resync = true;
        let mut failing = false;
        let mut retry_at = tokio::time::Instant::now();
        let mut backoff = Duration::from_millis(50);
        loop {
            tokio::select! {
                biased;
                () = stopped(&mut self.shutdown) => return Ended::Shutdown,
                changed = self.committed.changed() => {
                    if changed.is_err() {
                        return Ended::Shutdown;
                    }
                }
                () = self.poke.notified() => {}
                _ = poll.tick() => {
                    let alive = tokio::time::timeout(
                        REDIS_TIMEOUT,
                        diesel::sql_query("SELECT 1").execute(&mut lock),
                    )
                    .await;
                    if !matches!(alive, Ok(Ok(_))) {
                        return Ended::LockLost;
                    }
                    if let (Some(conn), Some(published)) = (redis.as_mut(), published.as_mut()) {
                        self.trim_by_age(conn, published).await;
                    }
                }
            }
            if redis.is_none() {
                if tokio::time::Instant::now() < retry_at {
                    continue;
                }
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(REDIS_TIMEOUT))
                    .set_response_timeout(Some(REDIS_TIMEOUT));
                match self
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                {
                    Ok(conn) => redis = Some(conn),
                    Err(error) => {
                        if !failing {
                            tracing::warn!(%error, "Redis unreachable; publishing paused");
                            failing = true;
                        }
                        retry_at = tokio::time::Instant::now() + backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            }
            let Some(conn) = redis.as_mut() else { continue };
            let outcome = async {
                if resync {
                    published = Some(self.sync(conn, published.take()).await?);
                    resync = false;
                }
                match published.as_mut() {
                    Some(published) => self.publish(conn, published).await,
                    None => Ok(()),
                }
            }
            .await;
            match outcome {
                Ok(()) => {
                    if failing {
                        tracing::info!("publishing to the streams again");
                        failing = false;
                        backoff = Duration::from_millis(50);
                    }
                }
                Err(error) => {
                    if !failing {
                        tracing::warn!(%error, "publishing to the streams failed; retrying");
                        failing = true;
                    }
                    redis = None;
                    resync = true;
                    retry_at = tokio::time::Instant::now() + backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Where to publish from: the leader's own state when it has one (after
    /// a Redis failure), moved past whatever the streams already hold;
    /// otherwise where the streams end, or a new epoch at the end of the log.
    async fn sync(
        &self,
        conn: &mut MultiplexedConnection,
        own: Option<Published>,
    ) -> Result<Published, String> {
        let shards: Vec<Shard> = self.config.all().collect();
        let mut pipe = redis::pipe();
        for shard in &shards {
            pipe.cmd("XREVRANGE")
                .arg(self.config.key(*shard))
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1);
        }
        let replies: Vec<Value> = pipe.query_async(conn).await.map_err(|e| e.to_string())?;
        let tops: HashMap<Shard, (SyncId, SyncId)> = shards
            .iter()
            .zip(&replies)
            .filter_map(|(shard, reply)| entry::parse_top(reply).map(|top| (*shard, top)))
            .collect();
        let top = tops.values().map(|(id, _)| *id).max();
        if let Some(mut own) = own {
            for (shard, (id, _)) in &tops {
                let prev = own.prev.entry(*shard).or_insert(own.epoch);
                *prev = (*prev).max(*id);
            }
            own.cursor = own.cursor.max(top.unwrap_or(SyncId::ZERO));
            return Ok(own);
        }
        let end = self.store.last_id().await.map_err(|e| e.to_string())?;
        let resumable =
            top.filter(|top| *top <= end && end.get() - top.get() <= self.config.max_len);
        let published = match resumable {
            Some(top) => {
                let epoch = tops.values().map(|(_, epoch)| *epoch).max().unwrap_or(top);
                Published {
                    cursor: top,
                    prev: shards
                        .iter()
                        .map(|s| (*s, tops.get(s).map_or(epoch, |(id, _)| *id)))
                        .collect(),
                    epoch,
                    recent: VecDeque::new(),
                }
            }
            None => {
                if top.is_some_and(|top| top > end) {
                    // The streams hold another log's actions.
                    let mut del = redis::cmd("DEL");
                    for shard in &shards {
                        del.arg(self.config.key(*shard));
                    }
                    del.query_async::<()>(conn)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Published {
                    cursor: end,
                    prev: shards.iter().map(|s| (*s, end)).collect(),
                    epoch: end,
                    recent: VecDeque::new(),
                }
            }
        };
        tracing::info!(cursor = %published.cursor, epoch = %published.epoch, "publishing from");
        Ok(published)
    }

    /// Publishes every action after the cursor, in order, a page per
    /// pipeline.
    async fn publish(
        &self,
        conn: &mut MultiplexedConnection,
        published: &mut Published,
    ) -> Result<(), String> {
        loop {
            let page =
                crate::log_page::read(&self.store, published.cursor, PAGE, self.page_bytes, None)
                    .await
                    .map_err(|e| e.to_string())?;
            if page.actions.is_empty() {
                return Ok(());
            }
            let mut pipe = redis::pipe();
            let mut prev = published.prev.clone();
            for action in &page.actions {
                let shard = self.config.shard_of(action.group_id.as_deref());
                let before = prev.get(&shard).copied().unwrap_or(published.epoch);
                let command = pipe
                    .cmd("XADD")
                    .arg(self.config.key(shard))
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(self.config.max_len)
                    .arg(entry::entry_id(action.id));
                for (name, value) in entry::fields(action, before, published.epoch) {
                    command.arg(name).arg(value);
                }
                prev.insert(shard, action.id);
            }
            let replies: Vec<Value> = pipe.query_async(conn).await.map_err(|e| e.to_string())?;
            if let Some(Value::ServerError(error)) =
                replies.iter().find(|r| matches!(r, Value::ServerError(_)))
            {
                return Err(format!("{error:?}"));
            }
            crate::metrics::stream_published(page.actions.len());
            published.prev = prev;
            for action in &page.actions {
                published.cursor = action.id;
                if self.config.max_age.is_some() {
                    published.recent.push_back((action.created_at, action.id));
                }
            }
            if !page.has_more {
                return Ok(());
            }
        }
    }

    /// Trims the entries older than the maximum age (keeping each stream's
    /// newest, so a consumer always learns where its shard stands).
    async fn trim_by_age(&self, conn: &mut MultiplexedConnection, published: &mut Published) {
        let Some(age) = self.config.max_age else {
            return;
        };
        let Some(cutoff) = chrono::Duration::from_std(age)
            .ok()
            .and_then(|age| Utc::now().checked_sub_signed(age))
        else {
            return;
        };
        let mut trimmed = false;
        while published.recent.front().is_some_and(|(at, _)| *at < cutoff) {
            published.recent.pop_front();
            trimmed = true;
        }
        if !trimmed {
            return;
        }
        let first_kept = published
            .recent
            .front()
            .map_or(SyncId::new(published.cursor.get() + 1), |(_, id)| *id);
        let mut pipe = redis::pipe();
        for (shard, newest) in &published.prev {
            pipe.cmd("XTRIM")
                .arg(self.config.key(*shard))
                .arg("MINID")
                .arg("~")
                .arg(entry::entry_id(first_kept.min(*newest)))
                .ignore();
        }
        if let Err(error) = pipe.query_async::<()>(conn).await {
            tracing::debug!(%error, "trimming the streams by age failed");
        }
    }
}
