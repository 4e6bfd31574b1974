//! How live sockets run: intervals and the replay bound.

use std::time::Duration;

/// The replay buffer bound of PROTOCOL §8.
pub const DEFAULT_REPLAY_BUFFER_LIMIT: usize = 10_000;

/// How live sockets are run.
#[derive(Debug, Clone)]
pub(crate) struct LiveConfig {
    /// Between pings.
    pub(crate) heartbeat_interval: Duration,
    /// Between re-checks of a subscribed socket's token.
    pub(crate) token_recheck_interval: Duration,
    /// Live actions a replay may see arrive before `BUFFER_OVERFLOW`.
    pub(crate) replay_buffer_limit: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            heartbeat_interval: Duration::from_secs(30),
            token_recheck_interval: Duration::from_secs(60),
            replay_buffer_limit: DEFAULT_REPLAY_BUFFER_LIMIT,
        }
    }
}
