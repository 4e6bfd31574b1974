//! A socket's outgoing queue, written by the socket's own session.
//!
//! The session owns the socket and writes it: the frames it queues while
//! handling one wake-up are handed to the socket together and flushed once,
//! so a burst of deltas costs one write. The queue is bounded in frames and
//! in bytes ([`Limits::outgoing_queue_frames`](crate::Limits::outgoing_queue_frames),
//! [`Limits::outgoing_queue_bytes`](crate::Limits::outgoing_queue_bytes))
//! and in time: a socket whose queue stays full longer than the
//! slow-consumer timeout, or that does not take a frame within that timeout
//! of its queueing, is a slow consumer. It is told (an error frame with code
//! `SLOW_CONSUMER`) and closed with 4008. Nothing else is held for it, so
//! memory per socket is bounded; the client resumes from its cursor.
//!
//! Queued frames share their bytes with every other socket's (a delta is
//! rendered once per node); only the frames handed to the socket and not yet
//! written are copied, at most [`BATCH_BYTES`] and one frame.
//!
//! Application hooks queue frames from any task through an
//! [`OutboxHandle`], within the same bounds, without waiting; the session
//! takes them in on its next wake-up.
//!
//! A close drops what is still queued and sends the final frames at once,
//! after what the socket already holds. That is safe: a socket's frames are
//! a prefix of its ordered stream, so a client that resumes from the last
//! delta it received misses nothing.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::{Sink, SinkExt as _, Stream};
use tokio::time::Instant;

use super::frames::{self, CloseCode};
use super::wakes::{Source, Wakes};
use crate::error::ErrorCode;

/// How long the final frames of a close may take to write: a slow consumer
/// that reads again within it still learns why it was closed.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes handed to the socket per flush (a larger frame goes alone).
pub(crate) const BATCH_BYTES: usize = 64 * 1024;

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

/// What a socket's queue holds, shared by the session and the hooks.
#[derive(Debug)]
struct Budget {
    /// Frames queued and not yet written, wherever they wait.
    frames: usize,
    /// Their bytes.
    bytes: usize,
    /// Frames the hooks queued, not yet taken in by the session.
    inbox: VecDeque<Queued>,
}

/// The part of a socket's queue that other tasks reach.
#[derive(Debug)]
struct Shared {
    budget: Mutex<Budget>,
    bounds: QueueBounds,
    /// The session ended, or is closing the socket.
    closed: AtomicBool,
}

impl Shared {
    fn budget(&self) -> std::sync::MutexGuard<'_, Budget> {
        self.budget.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes room for a frame of `bytes` if it fits, or if nothing is queued
    /// (a frame larger than the whole budget then waits alone).
    fn try_take(budget: &mut Budget, bounds: &QueueBounds, bytes: usize) -> bool {
        let fits = budget.frames == 0
            || (budget.frames < bounds.frames
                && budget.bytes.saturating_add(bytes) <= bounds.bytes);
        if fits {
            budget.frames += 1;
            budget.bytes += bytes;
        }
        fits
    }

    fn give_back(&self, frames: usize, bytes: usize) {
        let mut budget = self.budget();
        budget.frames -= frames;
        budget.bytes -= bytes;
    }
}

/// A handle that queues frames without waiting (for application hooks).
#[derive(Debug, Clone)]
pub(crate) struct OutboxHandle {
    shared: Arc<Shared>,
    wakes: Arc<Wakes>,
}

impl OutboxHandle {
    /// Queues `message` if the queue has room now; `false` otherwise or when
    /// the socket is gone.
    pub(crate) fn try_send(&self, message: Message) -> bool {
        if self.is_closed() {
            return false;
        }
        let bytes = size_of(&message);
        {
            let mut budget = self.shared.budget();
            if !Shared::try_take(&mut budget, &self.shared.bounds, bytes) {
                return false;
            }
            budget.inbox.push_back(Queued {
                message,
                bytes,
                at: Instant::now(),
            });
        }
        self.wakes.fire(Source::INBOX);
        true
    }

    /// Whether the socket is gone (or closing).
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}

/// Frames handed to the socket and not yet flushed.
#[derive(Debug, Clone, Copy)]
struct Writing {
    frames: usize,
    bytes: usize,
    /// When the oldest of them becomes a slow consumer's.
    deadline: Instant,
}

/// A socket and its outgoing queue.
#[derive(Debug)]
pub(crate) struct Outbox {
    socket: WebSocket,
    /// Fires [`Source::SOCKET`]: the socket is polled with it, for reading
    /// and for writing.
    waker: Waker,
    wakes: Arc<Wakes>,
    shared: Arc<Shared>,
    /// Frames queued, not yet handed to the socket.
    queued: VecDeque<Queued>,
    writing: Option<Writing>,
    /// The final frames of a requested close.
    closing: Option<Vec<Message>>,
}

impl Outbox {
    /// The outbox of `socket`, bounded by `bounds`, waking through `wakes`.
    pub(crate) fn new(socket: WebSocket, bounds: QueueBounds, wakes: &Arc<Wakes>) -> Outbox {
        Outbox {
            socket,
            waker: wakes.waker(Source::SOCKET),
            wakes: Arc::clone(wakes),
            shared: Arc::new(Shared {
                budget: Mutex::new(Budget {
                    frames: 0,
                    bytes: 0,
                    inbox: VecDeque::new(),
                }),
                bounds,
                closed: AtomicBool::new(false),
            }),
            queued: VecDeque::new(),
            writing: None,
            closing: None,
        }
    }

    /// A handle that queues frames without waiting (for application hooks).
    pub(crate) fn handle(&self) -> OutboxHandle {
        OutboxHandle {
            shared: Arc::clone(&self.shared),
            wakes: Arc::clone(&self.wakes),
        }
    }

    /// Polls the socket for the client's next frame.
    pub(crate) fn poll_read(&mut self) -> Poll<Option<Result<Message, axum::Error>>> {
        let mut cx = Context::from_waker(&self.waker);
        Pin::new(&mut self.socket).poll_next(&mut cx)
    }

    /// Queues a text frame, waiting up to the slow-consumer timeout for room.
    pub(crate) async fn send(&mut self, text: Utf8Bytes) -> Result<(), SendError> {
        self.send_message(Message::Text(text)).await
    }

    /// Queues a frame, waiting up to the slow-consumer timeout for room. The
    /// frame is written on [`Outbox::write`]; room comes from the writes,
    /// which waiting drives.
    pub(crate) async fn send_message(&mut self, message: Message) -> Result<(), SendError> {
        let bytes = size_of(&message);
        if !self.try_take(bytes) {
            let deadline = Instant::now() + self.shared.bounds.slow_consumer_timeout;
            let room = std::future::poll_fn(|cx| {
                self.wakes.register(cx.waker());
                self.write(true)?;
                if self.try_take(bytes) {
                    Poll::Ready(Ok(()))
                } else {
                    Poll::Pending
                }
            });
            match tokio::time::timeout_at(deadline, room).await {
                Ok(taken) => taken?,
                Err(_) => return Err(SendError::SlowConsumer),
            }
        }
        self.queued.push_back(Queued {
            message,
            bytes,
            at: Instant::now(),
        });
        Ok(())
    }

    fn try_take(&self, bytes: usize) -> bool {
        Shared::try_take(&mut self.shared.budget(), &self.shared.bounds, bytes)
    }

    /// Hands queued frames to the socket and flushes them, without waiting:
    /// what the socket does not take now stays in flight, and the socket's
    /// waker fires when it takes more. With `inbox`, first takes in the
    /// frames the hooks queued. An error: the socket failed.
    pub(crate) fn write(&mut self, inbox: bool) -> Result<(), SendError> {
        if inbox {
            let mut budget = self.shared.budget();
            self.queued.extend(budget.inbox.drain(..));
        }
        let mut cx = Context::from_waker(&self.waker);
        let slow = self.shared.bounds.slow_consumer_timeout;
        loop {
            if let Some(writing) = self.writing {
                match Pin::new(&mut self.socket).poll_flush(&mut cx) {
                    Poll::Ready(Ok(())) => {
                        self.writing = None;
                        self.shared.give_back(writing.frames, writing.bytes);
                    }
                    Poll::Ready(Err(_)) => return Err(SendError::Closed),
                    Poll::Pending => return Ok(()),
                }
            }
            let Some(oldest) = self.queued.front() else {
                return Ok(());
            };
            let mut writing = Writing {
                frames: 0,
                bytes: 0,
                deadline: oldest.at + slow,
            };
            while writing.bytes < BATCH_BYTES {
                match Pin::new(&mut self.socket).poll_ready(&mut cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(_)) => return Err(SendError::Closed),
                    Poll::Pending => break,
                }
                let Some(Queued { message, bytes, .. }) = self.queued.pop_front() else {
                    break;
                };
                writing.frames += 1;
                writing.bytes += bytes;
                if Pin::new(&mut self.socket).start_send(message).is_err() {
                    return Err(SendError::Closed);
                }
            }
            if writing.frames == 0 {
                // The socket still holds earlier bytes; its waker fires once
                // it takes them.
                return Ok(());
            }
            self.writing = Some(writing);
        }
    }

    /// When the frames handed to the socket make it a slow consumer, if it
    /// has not taken them by then.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.writing.map(|writing| writing.deadline)
    }

    /// Closes the socket as a slow consumer: `SLOW_CONSUMER`, then 4008.
    pub(crate) fn close_slow_consumer(&mut self) {
        if self.closing.is_none() {
            self.shared.closed.store(true, Ordering::Release);
            self.closing = Some(slow_consumer_frames());
        }
    }

    /// Asks for a close: what is queued is dropped, then `error` (if any)
    /// and a close frame are sent (by [`Outbox::finish`]).
    pub(crate) fn close(
        &mut self,
        error: Option<Utf8Bytes>,
        code: CloseCode,
        reason: &'static str,
    ) {
        if self.closing.is_none() {
            crate::metrics::socket_closed(code.code());
            self.shared.closed.store(true, Ordering::Release);
            self.closing = Some(final_frames(error, code, reason));
        }
    }

    /// Ends the socket: after a requested close, drops what is queued and
    /// sends the final frames; without one, writes what is queued; then
    /// closes, all within [`CLOSE_TIMEOUT`]. The frames the socket already
    /// holds go first, so the stream of frames stays well formed.
    pub(crate) async fn finish(mut self) {
        self.shared.closed.store(true, Ordering::Release);
        let last: Vec<Message> = match self.closing.take() {
            Some(last) => last,
            None => {
                let inbox: Vec<Queued> = self.shared.budget().inbox.drain(..).collect();
                self.queued.extend(inbox);
                self.queued.drain(..).map(|queued| queued.message).collect()
            }
        };
        let socket = &mut self.socket;
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            for frame in last {
                if socket.feed(frame).await.is_err() {
                    return;
                }
            }
            let _ = socket.flush().await;
            let _ = socket.close().await;
        })
        .await;
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
