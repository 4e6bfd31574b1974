//! Cross-node pokes over Redis pub/sub (PROTOCOL §9).
//!
//! After each local commit the node publishes
//! `{"action":<action>,"groups":[...],"sourceId":"sync-xxxxxxxx"}` on the
//! channel; every other node takes a message as a poke for its log tailer
//! (its own `sourceId` is ignored). Redis is at-most-once: what it loses, the
//! tailer's poll finds in the log. A Redis failure is logged and never fails
//! a mutation; both tasks reconnect (and re-subscribe) by themselves.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::AsyncCommands as _;
use redis::aio::MultiplexedConnection;
use stratasync_core::{SyncAction, write_json_string};
use tokio::sync::{Notify, mpsc, watch};
use tracing::Instrument as _;

use crate::error::Error;

/// Messages waiting to be published before new ones are dropped.
const PUBLISH_QUEUE: usize = 10_000;
/// How long one Redis operation may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Publishes the actions committed on this node.
pub(super) struct Publisher {
    queue: mpsc::Sender<Vec<u8>>,
    source_id: Arc<str>,
    /// Whether the subscriber holds a live subscription.
    subscribed: Arc<AtomicBool>,
}

impl Publisher {
    /// Queues the §9 message of `action`; drops it when the queue is full
    /// (the other nodes' polls cover it).
    pub(super) fn publish(&self, action: &SyncAction) {
        let message = message(action, &self.source_id);
        if self.queue.try_send(message).is_err() {
            tracing::debug!(sync_id = %action.id, "Redis publish queue full; dropping a poke");
        }
    }

    /// Whether this node is subscribed to the channel right now.
    pub(super) fn connected(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
    }
}

/// The §9 message: `{"action":...,"groups":[...],"sourceId":"..."}`.
fn message(action: &SyncAction, source_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(320);
    out.extend_from_slice(b"{\"action\":");
    action.write_json(&mut out, true);
    out.extend_from_slice(b",\"groups\":[");
    if let Some(group) = &action.group_id {
        write_json_string(&mut out, group);
    }
    out.extend_from_slice(b"],\"sourceId\":");
    write_json_string(&mut out, source_id);
    out.push(b'}');
    out
}

/// Starts the publisher and the subscriber of `url`'s `channel`.
pub(super) fn start(
    url: &str,
    channel: &str,
    poke: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
) -> Result<Publisher, Error> {
    let client =
        redis::Client::open(url).map_err(|e| Error::Config(format!("invalid Redis URL: {e}")))?;
    let source_id: Arc<str> =
        format!("sync-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]).into();
    let (queue, pending) = mpsc::channel(PUBLISH_QUEUE);
    let subscribed = Arc::new(AtomicBool::new(false));
    let span = tracing::info_span!("redis", %channel, source_id = %source_id);
    tokio::spawn(
        publish_loop(
            client.clone(),
            channel.to_owned(),
            pending,
            shutdown.clone(),
        )
        .instrument(span.clone()),
    );
    tokio::spawn(
        subscribe_loop(
            client,
            channel.to_owned(),
            Arc::clone(&source_id),
            poke,
            Arc::clone(&subscribed),
            shutdown,
        )
        .instrument(span),
    );
    Ok(Publisher {
        queue,
        source_id,
        subscribed,
    })
}

/// Publishes queued messages, reconnecting after failures.
async fn publish_loop(
    client: redis::Client,
    channel: String,
    mut pending: mpsc::Receiver<Vec<u8>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT));
    let mut conn: Option<MultiplexedConnection> = None;
    let mut down = false;
    // While Redis is down, messages are dropped until this instant.
    let mut retry_at = tokio::time::Instant::now();
    let mut backoff = Duration::from_millis(50);
    loop {
        let message = tokio::select! {
            biased;
            _ = super::stopped(&mut shutdown) => return,
            message = pending.recv() => match message {
                Some(message) => message,
                None => return,
            },
        };
        if conn.is_none() {
            if tokio::time::Instant::now() < retry_at {
                continue; // a poke lost; the other nodes' polls cover it
            }
            match client
                .get_multiplexed_async_connection_with_config(&config)
                .await
            {
                Ok(c) => conn = Some(c),
                Err(error) => {
                    if !down {
                        tracing::warn!(%error, "Redis unreachable; publishing paused, other nodes rely on their poll");
                        down = true;
                    }
                    retry_at = tokio::time::Instant::now() + backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        match c.publish::<_, _, i64>(&channel, message).await {
            Ok(_) if down => {
                tracing::info!("Redis reachable again; publishing");
                down = false;
                backoff = Duration::from_millis(50);
            }
            Ok(_) => {}
            Err(error) => {
                if !down {
                    tracing::warn!(%error, "publishing to Redis failed; reconnecting");
                    down = true;
                }
                conn = None;
            }
        }
    }
}

/// Subscribes to the channel and pokes the tailer for every message from
/// another node; re-subscribes after any failure.
async fn subscribe_loop(
    client: redis::Client,
    channel: String,
    source_id: Arc<str>,
    poke: Arc<Notify>,
    subscribed: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
) {
    use futures::StreamExt as _;
    let mut backoff = Duration::from_millis(50);
    let mut down = false;
    loop {
        let subscribing = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let outcome = tokio::select! {
            biased;
            _ = super::stopped(&mut shutdown) => return,
            outcome = tokio::time::timeout(REDIS_TIMEOUT, subscribing) => outcome,
        };
        match outcome {
            Ok(Ok(mut pubsub)) => {
                if down {
                    tracing::info!("Redis subscription restored");
                } else {
                    tracing::debug!("subscribed to Redis");
                }
                backoff = Duration::from_millis(50);
                subscribed.store(true, Ordering::Relaxed);
                // Whatever was published while we were away is in the log.
                poke.notify_one();
                let mut messages = pubsub.on_message();
                loop {
                    let message = tokio::select! {
                        biased;
                        _ = super::stopped(&mut shutdown) => return,
                        message = messages.next() => message,
                    };
                    let Some(message) = message else { break };
                    if !from_self(message.get_payload_bytes(), &source_id) {
                        poke.notify_one();
                    }
                }
                subscribed.store(false, Ordering::Relaxed);
                tracing::warn!("Redis subscription lost; reconnecting");
                down = true;
            }
            Ok(Err(error)) => {
                if !down {
                    tracing::warn!(%error, "subscribing to Redis failed; retrying");
                    down = true;
                }
            }
            Err(_) => {
                if !down {
                    tracing::warn!("subscribing to Redis timed out; retrying");
                    down = true;
                }
            }
        }
        tokio::select! {
            biased;
            _ = super::stopped(&mut shutdown) => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Whether a message was published by this node (loopback suppression).
fn from_self(payload: &[u8], source_id: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        #[serde(rename = "sourceId", borrow)]
        source_id: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Envelope<'_>>(payload)
        .ok()
        .and_then(|e| e.source_id)
        .is_some_and(|id| id == source_id)
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use serde_json::value::RawValue;
    use stratasync_core::{ActionKind, SyncId};

    use super::*;

    #[test]
    fn message_has_the_protocol_shape() {
        let action = SyncAction {
            id: SyncId::new(7),
            model: "Task".into(),
            model_id: "m1".into(),
            action: ActionKind::Insert.letter().into(),
            data: RawValue::from_string("{}".into()).expect("raw"),
            group_id: Some("w1".into()),
            client_id: None,
            client_tx_id: None,
            created_at: DateTime::from_timestamp_millis(0).expect("epoch"),
        };
        let text = String::from_utf8(message(&action, "sync-0000abcd")).expect("utf-8");
        assert_eq!(
            text,
            r#"{"action":{"action":"I","createdAt":"1970-01-01T00:00:00.000Z","data":{},"groupId":"w1","modelId":"m1","modelName":"Task","syncId":"7"},"groups":["w1"],"sourceId":"sync-0000abcd"}"#
        );
        assert!(from_self(text.as_bytes(), "sync-0000abcd"));
        assert!(!from_self(text.as_bytes(), "sync-ffffffff"));
        assert!(!from_self(b"not json", "sync-0000abcd"));
    }
}
