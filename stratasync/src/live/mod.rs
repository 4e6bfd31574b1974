//! `GET /sync/ws`: live deltas over a WebSocket (PROTOCOL §8).
//!
//! The token is checked on the upgrade (`401` before it when absent or
//! refused). Each socket then runs one `session`, one task that reads the
//! socket, receives from the bus and writes its frames: its frames are
//! handled one at a time, in arrival order. A `subscribe` frame resets the session,
//! authorizes its token, `replay`s the log from `afterSyncId`, sends the
//! `subscribed` acknowledgement and streams live actions from the node's
//! memory bus (see [`crate::fanout`]), each above the socket's cursor and
//! visible to its groups, in ascending id order, once.
//!
//! # Bounds
//!
//! - The `outbox` of a socket is bounded in frames, bytes and time; a socket
//!   that stops reading is told (`SLOW_CONSUMER`) and closed with 4008.
//! - A client message over [`Limits::ws_message_bytes`](crate::Limits) closes
//!   the socket with 1009; a socket with no subscribe within
//!   [`Limits::subscribe_timeout`](crate::Limits) is closed with 4001; a user
//!   holds at most [`Limits::sockets_per_user`](crate::Limits) sockets
//!   (past it the upgrade is refused with `429`).
//! - A socket that lags behind the memory bus reads the log from its cursor
//!   instead, so nothing is buffered for it.
//! - A replay during which more live actions arrive than the replay buffer
//!   bound (10 000) is closed with `BUFFER_OVERFLOW` / 4008.
//! - A `heartbeat` ping every 30 s; an unanswered one closes with 1011.

mod config;
mod events;
pub(crate) mod frames;
mod heartbeat;
mod hooks;
mod outbox;
mod receiver;
mod replay;
mod session;
mod subscription;
mod timer;
mod upgrade;
mod wakes;

pub use config::DEFAULT_REPLAY_BUFFER_LIMIT;
pub(crate) use config::LiveConfig;
pub(crate) use hooks::{DynLiveHooks, NoHooks};
pub use hooks::{LiveContext, LiveHooks, LiveSocket};
pub(crate) use upgrade::ws_route;
