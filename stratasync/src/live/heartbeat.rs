//! The heartbeat of a socket (PROTOCOL §8): a ping every interval; a ping
//! still unanswered at the next tick closes the socket with 1011
//! "Heartbeat timeout".

use std::time::Duration;

use tokio::time::Instant;

/// What the heartbeat asks for at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Beat {
    /// Send a ping.
    Ping,
    /// The last ping went unanswered: close the socket.
    TimedOut,
}

/// A socket's heartbeat state; the session's timer wakes it at
/// [`Heartbeat::next`].
#[derive(Debug)]
pub(crate) struct Heartbeat {
    interval: Duration,
    next: Instant,
    awaiting_pong: bool,
}

impl Heartbeat {
    /// A heartbeat whose first ping is one `interval` after `now`.
    pub(crate) fn new(interval: Duration, now: Instant) -> Self {
        Heartbeat {
            interval,
            next: now + interval,
            awaiting_pong: false,
        }
    }

    /// When the next tick is due.
    pub(crate) fn next(&self) -> Instant {
        self.next
    }

    /// What to do at `now`, if a tick is due; the next tick is one interval
    /// later (ticks missed by a late wake-up are not made up).
    pub(crate) fn tick(&mut self, now: Instant) -> Option<Beat> {
        if now < self.next {
            return None;
        }
        self.next = now + self.interval;
        if self.awaiting_pong {
            Some(Beat::TimedOut)
        } else {
            self.awaiting_pong = true;
            Some(Beat::Ping)
        }
    }

    /// A pong arrived.
    pub(crate) fn pong(&mut self) {
        self.awaiting_pong = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ping_unanswered_at_the_next_tick_times_out() {
        let interval = Duration::from_secs(30);
        let mut heartbeat = Heartbeat::new(interval, Instant::now());
        let start = heartbeat.next();
        assert_eq!(heartbeat.tick(start - Duration::from_secs(1)), None);
        assert_eq!(heartbeat.tick(start), Some(Beat::Ping));
        assert_eq!(heartbeat.next(), start + interval);
        heartbeat.pong();
        assert_eq!(heartbeat.tick(start + interval), Some(Beat::Ping));
        assert_eq!(heartbeat.tick(start + interval * 2), Some(Beat::TimedOut));
    }
}
