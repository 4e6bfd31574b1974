//! A socket's outgoing queue and the task that writes it.
//!
//! Frames go through a queue to a writer task that owns the sending half of
//! the socket. The queue is bounded in frames and in bytes
//! ([`Limits::outgoing_queue_frames`](crate::Limits::outgoing_queue_frames),
//! [`Limits::outgoing_queue_bytes`](crate::Limits::outgoing_queue_bytes)) and
//! in time: a socket whose queue stays full longer than the slow-consumer
//! timeout, or whose oldest frame has waited that long, is a slow consumer.
//! It is told (an error frame with code `SLOW_CONSUMER`) and closed with
//! 4008. Nothing else is held for it, so memory per socket is bounded; the
//! client resumes from its cursor.
//!
//! A close drops what is still queued and sends the final frames at once.
//! That is safe: a socket's frames are a prefix of its ordered stream, so a
//! client that resumes from the last delta it received misses nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::SinkExt as _;
use futures::stream::SplitSink;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use super::frames::{self, CloseCode};
use crate::error::ErrorCode;

/// How long the final frames of a close may take to write: a slow consumer
/// that reads again within it still learns why it was closed.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendError {
    /// The queue stayed full past the slow-consumer timeout.
    SlowConsumer,
    /// The socket is gone.
    Closed,
}

/// The bounds of one socket's queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueBounds {
    /// Frames queued at most.
    pub(crate) frames: usize,
    /// Bytes queued at most (one larger frame may wait alone).
    pub(crate) bytes: usize,
    /// How long the queue may stay full, or a frame wait, before the socket
    /// is a slow consumer.
    pub(crate) slow_consumer_timeout: Duration,
}

/// The bytes queued and not yet written.
#[derive(Debug)]
struct Budget {
    used: AtomicUsize,
    limit: usize,
    freed: Notify,
}

impl Budget {
    /// Takes `bytes` if they fit, or if nothing is queued (a frame larger
    /// than the whole budget then waits alone).
    fn try_take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used == 0 || used.saturating_add(bytes) <= self.limit).then(|| used + bytes)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        self.freed.notify_waiters();
    }
}

/// A queued frame.
#[derive(Debug)]
struct Queued {
    message: Message,
    bytes: usize,
    at: Instant,
}

fn size_of(message: &Message) -> usize {
    match message {
        Message::Text(text) => text.len(),
        Message::Binary(bytes) | Message::Ping(bytes) | Message::Pong(bytes) => bytes.len(),
        Message::Close(_) => 0,
    }
}

/// A handle that queues frames without waiting (for application hooks).
#[derive(Debug, Clone)]
pub(crate) struct OutboxHandle {
    queue: mpsc::Sender<Queued>,
    budget: Arc<Budget>,
}

impl OutboxHandle {
    /// Queues `message` if the queue has room now; `false` otherwise or when
    /// the socket is gone.
    pub(crate) fn try_send(&self, message: Message) -> bool {
        let bytes = size_of(&message);
        if !self.budget.try_take(bytes) {
            return false;
        }
        let queued = Queued {
            message,
            bytes,
            at: Instant::now(),
        };
        if self.queue.try_send(queued).is_err() {
            self.budget.give_back(bytes);
            return false;
        }
        true
    }

    /// Whether the writer is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }
}

/// The sending side of a socket.
#[derive(Debug)]
pub(crate) struct Outbox {
    handle: OutboxHandle,
    close: Option<oneshot::Sender<Vec<Message>>>,
    slow_consumer_timeout: Duration,
}

impl Outbox {
    /// Starts the writer of `sink` with a queue bounded by `bounds`.
    pub(crate) fn start(
        sink: SplitSink<WebSocket, Message>,
        bounds: QueueBounds,
    ) -> (Outbox, tokio::task::JoinHandle<()>) {
        let (queue, frames) = mpsc::channel(bounds.frames.max(1));
        let (close, closing) = oneshot::channel();
        let budget = Arc::new(Budget {
            used: AtomicUsize::new(0),
            limit: bounds.bytes,
            freed: Notify::new(),
        });
        let writer = tokio::spawn(write(
            sink,
            frames,
            closing,
            Arc::clone(&budget),
            bounds.slow_consumer_timeout,
        ));
        (
            Outbox {
                handle: OutboxHandle { queue, budget },
                close: Some(close),
                slow_consumer_timeout: bounds.slow_consumer_timeout,
            },
            writer,
        )
    }

    /// A handle that queues frames without waiting (for application hooks).
    pub(crate) fn handle(&self) -> OutboxHandle {
        self.handle.clone()
    }

    /// Resolves when the writer has ended (a slow consumer it closed, or a
    /// socket that failed).
    pub(crate) async fn writer_gone(&self) {
        self.handle.queue.closed().await;
    }

    /// Queues a text frame, waiting up to the slow-consumer timeout for room.
    pub(crate) async fn send(&self, text: Utf8Bytes) -> Result<(), SendError> {
        self.send_message(Message::Text(text)).await
    }

    /// Queues a frame, waiting up to the slow-consumer timeout for room.
    pub(crate) async fn send_message(&self, message: Message) -> Result<(), SendError> {
        let deadline = Instant::now() + self.slow_consumer_timeout;
        let bytes = size_of(&message);
        let budget = &self.handle.budget;
        loop {
            if self.handle.queue.is_closed() {
                return Err(SendError::Closed);
            }
            let freed = budget.freed.notified();
            if budget.try_take(bytes) {
                break;
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return Err(SendError::SlowConsumer);
            }
        }
        let queued = Queued {
            message,
            bytes,
            at: Instant::now(),
        };
        match tokio::time::timeout_at(deadline, self.handle.queue.send(queued)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => {
                budget.give_back(bytes);
                Err(SendError::Closed)
            }
            Err(_) => {
                budget.give_back(bytes);
                Err(SendError::SlowConsumer)
            }
        }
    }

    /// Closes the socket as a slow consumer: `SLOW_CONSUMER`, then 4008.
    pub(crate) fn close_slow_consumer(&mut self) {
        let last = slow_consumer_frames();
        if let Some(close) = self.close.take() {
            let _ = close.send(last);
        }
    }

    /// Drops what is queued, sends `error` (if any) and a close frame, and
    /// ends the writer.
    pub(crate) fn close(
        &mut self,
        error: Option<Utf8Bytes>,
        code: CloseCode,
        reason: &'static str,
    ) {
        crate::metrics::socket_closed(code.code());
        if let Some(close) = self.close.take() {
            let _ = close.send(final_frames(error, code, reason));
        }
    }
}

/// An error frame (if any) and a close frame.
fn final_frames(error: Option<Utf8Bytes>, code: CloseCode, reason: &'static str) -> Vec<Message> {
    let mut last = Vec::with_capacity(2);
    if let Some(error) = error {
        last.push(Message::Text(error));
    }
    last.push(Message::Close(Some(CloseFrame {
        code: code.code(),
        reason: Utf8Bytes::from_static(reason),
    })));
    last
}

/// The reason of a slow consumer's close.
const SLOW_CONSUMER_REASON: &str = "Outgoing queue limit exceeded";

/// The final frames of a slow consumer (4008 `SLOW_CONSUMER`).
fn slow_consumer_frames() -> Vec<Message> {
    crate::metrics::socket_closed(CloseCode::Overflow.code());
    final_frames(
        Some(frames::error(
            SLOW_CONSUMER_REASON,
            Some(ErrorCode::SlowConsumer),
        )),
        CloseCode::Overflow,
        SLOW_CONSUMER_REASON,
    )
}

/// Writes queued frames until the queue ends or a close is requested; a frame
/// that waited, or takes to write, longer than `slow` closes the socket as a
/// slow consumer.
async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut frames: mpsc::Receiver<Queued>,
    closing: oneshot::Receiver<Vec<Message>>,
    budget: Arc<Budget>,
    slow: Duration,
) {
    // `None` once the outbox was dropped without a close: then the queue is
    // written to its end.
    let mut closing = Some(closing);
    loop {
        let frame = tokio::select! {
            biased;
            last = until_close(&mut closing) => return finish(sink, last).await,
            frame = frames.recv() => frame,
        };
        let Some(Queued { message, bytes, at }) = frame else {
            return finish(sink, Vec::new()).await;
        };
        let sent = tokio::select! {
            biased;
            // A frame still being written stays in the socket's buffer and
            // goes out first, so the stream of frames stays well formed.
            last = until_close(&mut closing) => return finish(sink, last).await,
            sent = tokio::time::timeout_at(at + slow, sink.send(message)) => sent,
        };
        budget.give_back(bytes);
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                tracing::warn!("socket is not reading; closing it");
                return finish(sink, slow_consumer_frames()).await;
            }
        }
    }
}

/// The final frames of a requested close; pending forever when the outbox
/// was dropped without one.
async fn until_close(closing: &mut Option<oneshot::Receiver<Vec<Message>>>) -> Vec<Message> {
    if let Some(receiver) = closing {
        if let Ok(last) = receiver.await {
            return last;
        }
        *closing = None;
    }
    std::future::pending().await
}

/// Sends the final frames and closes, within [`CLOSE_TIMEOUT`].
async fn finish(mut sink: SplitSink<WebSocket, Message>, last: Vec<Message>) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        for frame in last {
            if sink.feed(frame).await.is_err() {
                return;
            }
        }
        let _ = sink.flush().await;
        let _ = sink.close().await;
    })
    .await;
}
