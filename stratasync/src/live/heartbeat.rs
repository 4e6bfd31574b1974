//! The heartbeat of a socket (PROTOCOL §8): a ping every interval; a ping
//! still unanswered at the next tick closes the socket with 1011
//! "Heartbeat timeout".

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

/// What the heartbeat asks for at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Beat {
    /// Send a ping.
    Ping,
    /// The last ping went unanswered: close the socket.
    TimedOut,
}

/// A socket's heartbeat state.
#[derive(Debug)]
pub(crate) struct Heartbeat {
    ticks: Interval,
    awaiting_pong: bool,
}

impl Heartbeat {
    /// A heartbeat whose first ping is one `interval` from now.
    pub(crate) fn new(interval: Duration) -> Self {
        let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Heartbeat {
            ticks,
            awaiting_pong: false,
        }
    }

    /// Waits for the next tick and says what to do.
    pub(crate) async fn tick(&mut self) -> Beat {
        self.ticks.tick().await;
        if self.awaiting_pong {
            Beat::TimedOut
        } else {
            self.awaiting_pong = true;
            Beat::Ping
        }
    }

    /// A pong arrived.
    pub(crate) fn pong(&mut self) {
        self.awaiting_pong = false;
    }
}
