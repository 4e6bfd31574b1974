//! A session's deadlines, and the one timer that wakes it for the earliest.
//!
//! A socket has a few deadlines: its subscribe deadline (until the first
//! subscribe), its heartbeat, the re-check of its token (while subscribed)
//! and, while the socket holds frames it has not taken, the moment it
//! becomes a slow consumer. One timer entry per socket serves them all; it
//! is moved only when a deadline comes earlier than the one it is set for
//! (writes that complete at once never touch it), or after it fires.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::heartbeat::{Beat, Heartbeat};

/// A deadline that came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// No subscribe came within the subscribe timeout.
    SubscribeTimeout,
    /// The socket did not take its frames in time.
    SlowConsumer,
    /// A heartbeat tick.
    Beat(Beat),
    /// Time to re-check the subscription's token.
    Recheck,
}

/// A session's deadlines.
#[derive(Debug)]
pub(crate) struct Deadlines {
    /// The heartbeat (its pongs are recorded here).
    pub(crate) heartbeat: Heartbeat,
    /// Until the first subscribe.
    subscribe_by: Option<Instant>,
    recheck_every: Duration,
    recheck_at: Instant,
}

impl Deadlines {
    /// The deadlines of a new socket.
    pub(crate) fn new(
        heartbeat: Duration,
        subscribe_timeout: Duration,
        recheck_every: Duration,
    ) -> Self {
        let now = Instant::now();
        Deadlines {
            heartbeat: Heartbeat::new(heartbeat, now),
            subscribe_by: Some(now + subscribe_timeout),
            recheck_every,
            recheck_at: now + recheck_every,
        }
    }

    /// The socket subscribed: its subscribe deadline is gone for good.
    pub(crate) fn subscribed(&mut self) {
        self.subscribe_by = None;
    }

    /// The earliest deadline: `subscribed` says whether the token is
    /// re-checked, `writing` is when the socket's unwritten frames make it
    /// a slow consumer.
    pub(crate) fn next(&self, subscribed: bool, writing: Option<Instant>) -> Instant {
        let mut next = self.heartbeat.next();
        for deadline in [
            self.subscribe_by,
            subscribed.then_some(self.recheck_at),
            writing,
        ]
        .into_iter()
        .flatten()
        {
            next = next.min(deadline);
        }
        next
    }

    /// A deadline that came by `now`, most urgent first; the heartbeat and
    /// the re-check are moved to their next time.
    pub(crate) fn due(
        &mut self,
        now: Instant,
        subscribed: bool,
        writing: Option<Instant>,
    ) -> Option<Due> {
        if self.subscribe_by.is_some_and(|by| now >= by) {
            return Some(Due::SubscribeTimeout);
        }
        if writing.is_some_and(|by| now >= by) {
            return Some(Due::SlowConsumer);
        }
        if let Some(beat) = self.heartbeat.tick(now) {
            return Some(Due::Beat(beat));
        }
        if now >= self.recheck_at {
            self.recheck_at = now + self.recheck_every;
            if subscribed {
                return Some(Due::Recheck);
            }
        }
        None
    }
}

/// The one timer entry of a session.
#[derive(Debug)]
pub(crate) struct Timer {
    sleep: Pin<Box<Sleep>>,
    at: Instant,
    /// Fires the session's timer source.
    waker: Waker,
}

impl Timer {
    /// A timer set for `at`, waking `waker`.
    pub(crate) fn new(at: Instant, waker: Waker) -> Self {
        Timer {
            sleep: Box::pin(tokio::time::sleep_until(at)),
            at,
            waker,
        }
    }

    /// Polls the timer for `next`: moves it there first when `next` is
    /// earlier than it is set for, or when it `fired` (then the deadline it
    /// was set for was handled). Otherwise it is left alone.
    pub(crate) fn poll(&mut self, next: Instant, fired: bool) -> Poll<()> {
        if !fired && next >= self.at {
            return Poll::Pending;
        }
        if next != self.at {
            self.sleep.as_mut().reset(next);
            self.at = next;
        }
        self.sleep
            .as_mut()
            .poll(&mut Context::from_waker(&self.waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_urgent_deadline_comes_first() {
        let second = Duration::from_secs(1);
        let mut deadlines = Deadlines::new(30 * second, 10 * second, 60 * second);
        let start = deadlines.heartbeat.next() - 30 * second;
        assert_eq!(deadlines.next(false, None), start + 10 * second);
        assert_eq!(deadlines.due(start, false, None), None);
        assert_eq!(
            deadlines.due(start + 10 * second, false, None),
            Some(Due::SubscribeTimeout)
        );
        deadlines.subscribed();
        assert_eq!(deadlines.next(true, None), start + 30 * second);
        let writing = start + 5 * second;
        assert_eq!(deadlines.next(true, Some(writing)), writing);
        assert_eq!(
            deadlines.due(writing, true, Some(writing)),
            Some(Due::SlowConsumer)
        );
        assert_eq!(
            deadlines.due(start + 60 * second, true, None),
            Some(Due::Beat(Beat::Ping))
        );
        assert_eq!(
            deadlines.due(start + 60 * second, true, None),
            Some(Due::Recheck)
        );
        assert_eq!(deadlines.due(start + 60 * second, true, None), None);
    }
}
