//! What a socket's session waits for, and the one poll that finds the next
//! event: the sources that fired since the last look (see
//! [`Wakes`]) are polled, after what the session queued is written.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use axum::extract::ws::Message;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use super::outbox::Outbox;
use super::subscription::Subscription;
use super::timer::{Deadlines, Timer};
use super::wakes::{Fired, Source, Wakes};
use crate::fanout::{self, LiveAction};

/// Something the session waits for.
pub(super) enum Event {
    /// The node is shutting down.
    Shutdown,
    /// A client frame, a read error, or the end of the socket.
    Frame(Option<Result<Message, axum::Error>>),
    /// An action of the memory bus, or the news of a lag.
    Live(Result<Arc<LiveAction>, RecvError>),
    /// The timer fired: a deadline may have come.
    Timer,
    /// Writing to the socket failed.
    WriteFailed,
}

/// What a session waits on besides its socket and its subscription.
pub(super) struct Sources {
    wakes: Arc<Wakes>,
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// Fires the shutdown source.
    shutdown_waker: Waker,
    /// The session's deadlines, which the timer serves.
    pub(super) deadlines: Deadlines,
    timer: Timer,
}

impl Sources {
    /// The sources of a session woken through `wakes`, stopping on
    /// `shutdown`, with `deadlines`.
    pub(super) fn new(
        wakes: Arc<Wakes>,
        mut shutdown: watch::Receiver<bool>,
        deadlines: Deadlines,
    ) -> Self {
        Sources {
            shutdown: Box::pin(async move { fanout::stopped(&mut shutdown).await }),
            shutdown_waker: wakes.waker(Source::SHUTDOWN),
            timer: Timer::new(deadlines.next(false, None), wakes.waker(Source::TIMER)),
            deadlines,
            wakes,
        }
    }

    /// The next event: writes what was queued on `outbox` since the last
    /// event, then polls the sources that fired (the socket, `sub`'s bus,
    /// the timer and the shutdown signal).
    pub(super) fn poll_event(
        &mut self,
        cx: &mut Context<'_>,
        outbox: &mut Outbox,
        sub: Option<&mut Subscription>,
    ) -> Poll<Event> {
        let subscribed = sub.is_some();
        self.wakes.register(cx.waker());
        let mut fired = self.wakes.take();
        if fired.has(Source::SHUTDOWN) {
            let mut shutdown_cx = Context::from_waker(&self.shutdown_waker);
            if self.shutdown.as_mut().poll(&mut shutdown_cx).is_ready() {
                return Poll::Ready(Event::Shutdown);
            }
            fired.remove(Source::SHUTDOWN);
        }
        if outbox.write(fired.has(Source::INBOX)).is_err() {
            return Poll::Ready(Event::WriteFailed);
        }
        fired.remove(Source::INBOX);
        if fired.has(Source::SOCKET) {
            if let Poll::Ready(frame) = outbox.poll_read() {
                // More frames may be buffered: read again next time.
                self.wakes.keep(fired);
                return Poll::Ready(Event::Frame(frame));
            }
            fired.remove(Source::SOCKET);
        }
        if fired.has(Source::BUS) {
            fired.remove(Source::BUS);
            if let Some(sub) = sub
                && let Poll::Ready(live) = sub.rx.poll_recv()
            {
                // The session drains the bus before it waits again.
                self.wakes.keep(fired);
                return Poll::Ready(Event::Live(live));
            }
        }
        let next = self.deadlines.next(subscribed, outbox.deadline());
        if self.timer.poll(next, fired.has(Source::TIMER)).is_ready() {
            // Once the deadlines are handled, the timer is set for the next.
            self.wakes.keep(Fired::from(Source::TIMER));
            return Poll::Ready(Event::Timer);
        }
        Poll::Pending
    }
}
