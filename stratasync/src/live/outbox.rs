//! A socket's outgoing queue and the task that writes it.
//!
//! Frames go through a bounded queue to a writer task that owns the sending
//! half of the socket. A socket whose queue stays full longer than the
//! configured timeout is a slow consumer: it is told (an error frame with
//! code `SLOW_CONSUMER`) and closed with 4008. Nothing else is held for it, so
//! memory per socket is bounded; the client resumes from its cursor.
//!
//! A close drops what is still queued and sends the final frames at once.
//! That is safe: a socket's frames are a prefix of its ordered stream, so a
//! client that resumes from the last delta it received misses nothing.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::SinkExt as _;
use futures::stream::SplitSink;
use tokio::sync::{mpsc, oneshot};

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

/// The sending side of a socket.
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: mpsc::Sender<Message>,
    close: Option<oneshot::Sender<Vec<Message>>>,
    slow_consumer_timeout: Duration,
}

impl Outbox {
    /// Starts the writer of `sink` with room for `capacity` frames.
    pub(crate) fn start(
        sink: SplitSink<WebSocket, Message>,
        capacity: usize,
        slow_consumer_timeout: Duration,
    ) -> (Outbox, tokio::task::JoinHandle<()>) {
        let (queue, frames) = mpsc::channel(capacity.max(1));
        let (close, closing) = oneshot::channel();
        let writer = tokio::spawn(write(sink, frames, closing));
        (
            Outbox {
                queue,
                close: Some(close),
                slow_consumer_timeout,
            },
            writer,
        )
    }

    /// A handle that queues frames without waiting (for application hooks).
    pub(crate) fn handle(&self) -> mpsc::Sender<Message> {
        self.queue.clone()
    }

    /// Queues a text frame, waiting up to the slow-consumer timeout for room.
    pub(crate) async fn send(&self, text: Utf8Bytes) -> Result<(), SendError> {
        self.send_message(Message::Text(text)).await
    }

    /// Queues a frame, waiting up to the slow-consumer timeout for room.
    pub(crate) async fn send_message(&self, message: Message) -> Result<(), SendError> {
        match self.queue.try_send(message) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::Closed),
            Err(mpsc::error::TrySendError::Full(message)) => {
                match tokio::time::timeout(self.slow_consumer_timeout, self.queue.send(message))
                    .await
                {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(_)) => Err(SendError::Closed),
                    Err(_) => Err(SendError::SlowConsumer),
                }
            }
        }
    }

    /// Drops what is queued, sends `error` (if any) and a close frame, and
    /// ends the writer.
    pub(crate) fn close(&mut self, error: Option<Utf8Bytes>, code: u16, reason: &'static str) {
        crate::metrics::socket_closed(code);
        let mut last = Vec::with_capacity(2);
        if let Some(error) = error {
            last.push(Message::Text(error));
        }
        last.push(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })));
        if let Some(close) = self.close.take() {
            let _ = close.send(last);
        }
    }
}

/// Writes queued frames until the queue ends or a close is requested.
async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut frames: mpsc::Receiver<Message>,
    closing: oneshot::Receiver<Vec<Message>>,
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
        let Some(frame) = frame else {
            return finish(sink, Vec::new()).await;
        };
        tokio::select! {
            biased;
            // A frame still being written stays in the socket's buffer and
            // goes out first, so the stream of frames stays well formed.
            last = until_close(&mut closing) => return finish(sink, last).await,
            sent = sink.send(frame) => {
                if sent.is_err() {
                    return;
                }
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
