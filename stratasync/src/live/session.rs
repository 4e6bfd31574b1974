//! One socket's session: its frames handled in order, its subscription, and
//! live delivery from the memory bus (PROTOCOL §8).
//!
//! A session is one task. It owns the socket: it reads the client, receives
//! from the memory bus, keeps the socket's deadlines and writes the frames it
//! queued (see [`Outbox`]), so a delta wakes one task, which writes it. Each
//! wake-up polls only the sources that fired (see [`Sources`]).

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use tokio::sync::broadcast::error::RecvError;
use tracing::Instrument as _;

use super::events::{Event, Sources};
use super::frames::{self, ClientFrame, CloseCode, Subscribe};
use super::heartbeat::Beat;
use super::hooks::{LiveContext, LiveSocket};
use super::outbox::{Outbox, QueueBounds, SendError};
use super::receiver::BusReceiver;
use super::replay::{self, ReplayError};
use super::subscription::{Delivered, Subscription};
use super::timer::{Deadlines, Due};
use super::wakes::{Source, Wakes};
use crate::auth::{Caller, caller_groups};
use crate::error::ErrorCode;
use crate::fanout::{LiveAction, bus::visible};
use crate::limits::Clipped;
use crate::quota::Held;
use crate::state::Shared;

/// How long a closing session waits for its final frames before it runs the
/// close hook; the rest of the close goes on in a task of its own.
const FINISH_WAIT: Duration = Duration::from_secs(2);

/// Whether the session goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// A socket's session.
struct Session {
    shared: Arc<Shared>,
    outbox: Outbox,
    socket: LiveSocket,
    context: LiveContext,
    sub: Option<Subscription>,
    /// Fires the bus source (for each subscription's receiver).
    bus_waker: Waker,
}

/// Runs a socket until it closes, in a span that is a child of `request`'s
/// (the upgrade request's; the socket's one span is entered on each poll).
///
/// `held` is the user's place among their sockets, given back at the end.
pub(crate) fn run(
    shared: Arc<Shared>,
    socket: WebSocket,
    connection_id: String,
    held: Held,
    request: tracing::Span,
) -> impl Future<Output = ()> + Send + 'static {
    let span = tracing::info_span!(
        parent: &request,
        "live_socket",
        conn = %connection_id,
        user = tracing::field::Empty
    );
    async move {
        tracing::debug!("socket open");
        let _open = crate::metrics::Held::socket();
        let config = &shared.live;
        let limits = &shared.limits;
        let wakes = Wakes::new();
        let outbox = Outbox::new(
            socket,
            QueueBounds {
                frames: limits.outgoing_queue_frames,
                bytes: limits.outgoing_queue_bytes,
                slow_consumer_timeout: limits.slow_consumer_timeout,
            },
            &wakes,
        );
        let live_socket = LiveSocket::new(connection_id.clone(), outbox.handle());
        let mut session = Session {
            shared: Arc::clone(&shared),
            outbox,
            socket: live_socket,
            context: LiveContext {
                connection_id,
                user_id: None,
                groups: Vec::new(),
            },
            sub: None,
            bus_waker: wakes.waker(Source::BUS),
        };
        let deadlines = Deadlines::new(
            config.heartbeat_interval,
            limits.subscribe_timeout,
            config.token_recheck_interval,
        );
        let mut sources = Sources::new(wakes, shared.fanout.shutdown_signal(), deadlines);
        loop {
            let event =
                poll_fn(|cx| sources.poll_event(cx, &mut session.outbox, session.sub.as_mut()))
                    .await;
            let flow = match event {
                Event::Shutdown => {
                    session
                        .outbox
                        .close(None, CloseCode::GoingAway, "Server shutting down");
                    Flow::Stop
                }
                Event::Frame(Some(Ok(Message::Pong(_)))) => {
                    sources.deadlines.heartbeat.pong();
                    Flow::Continue
                }
                Event::Frame(Some(Ok(message))) => {
                    let flow = Box::pin(session.on_frame(message)).await;
                    if session.sub.is_some() {
                        sources.deadlines.subscribed();
                    }
                    flow
                }
                Event::Frame(Some(Err(error))) => {
                    if too_big(error) {
                        tracing::info!(
                            limit = shared.limits.ws_message_bytes,
                            "message over the size limit; closing"
                        );
                        session
                            .outbox
                            .close(None, CloseCode::TooBig, "Message too big");
                    }
                    Flow::Stop
                }
                Event::Frame(None) | Event::WriteFailed => Flow::Stop,
                Event::Live(live) => session.on_bus(live).await,
                Event::Timer => session.on_deadlines(&mut sources.deadlines).await,
            };
            if flow == Flow::Stop {
                break;
            }
        }
        let Session {
            shared,
            outbox,
            socket,
            context,
            ..
        } = session;
        let mut finishing = Box::pin(outbox.finish());
        let finished = tokio::time::timeout(FINISH_WAIT, &mut finishing)
            .await
            .is_ok();
        shared.hooks.on_close(&socket, &context).await;
        if finished {
            drop(held);
        } else {
            // The user's place is given back once the last frames are out
            // (or their bounded wait ended), so that closing sockets cannot
            // hold queued bytes beyond the user's socket limit.
            tokio::spawn(
                async move {
                    finishing.await;
                    drop(held);
                }
                .in_current_span(),
            );
        }
        tracing::debug!("socket closed");
    }
    .instrument(span)
}

impl Session {
    /// The bus had an action (or news of a lag): handles it and whatever
    /// else the bus has now, so the frames of one wake-up are written
    /// together.
    async fn on_bus(&mut self, first: Result<Arc<LiveAction>, RecvError>) -> Flow {
        let mut live = first;
        loop {
            if self.on_live(live).await == Flow::Stop {
                return Flow::Stop;
            }
            match self.sub.as_mut().map(|sub| sub.rx.poll_recv()) {
                Some(Poll::Ready(next)) => live = next,
                _ => return Flow::Continue,
            }
        }
    }

    /// Handles the deadlines that came.
    async fn on_deadlines(&mut self, deadlines: &mut Deadlines) -> Flow {
        let now = tokio::time::Instant::now();
        while let Some(due) = deadlines.due(now, self.sub.is_some(), self.outbox.deadline()) {
            let flow = match due {
                Due::SubscribeTimeout => {
                    tracing::info!("no subscribe in time; closing");
                    self.outbox
                        .close(None, CloseCode::SubscribeTimeout, "Subscribe timeout");
                    Flow::Stop
                }
                Due::SlowConsumer => self.send_failed(SendError::SlowConsumer),
                Due::Beat(Beat::Ping) => {
                    match self
                        .outbox
                        .send_message(Message::Ping(Default::default()))
                        .await
                    {
                        Ok(()) => Flow::Continue,
                        Err(error) => self.send_failed(error),
                    }
                }
                Due::Beat(Beat::TimedOut) => {
                    tracing::info!("heartbeat timed out");
                    self.outbox
                        .close(None, CloseCode::ServerError, "Heartbeat timeout");
                    Flow::Stop
                }
                Due::Recheck => Box::pin(self.recheck()).await,
            };
            if flow == Flow::Stop {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// Handles one client frame.
    async fn on_frame(&mut self, message: Message) -> Flow {
        let text = match &message {
            Message::Text(text) => text.as_str(),
            Message::Binary(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => text,
                Err(_) => return Flow::Continue,
            },
            Message::Close(_) => return Flow::Stop,
            Message::Ping(_) | Message::Pong(_) => return Flow::Continue,
        };
        match frames::decode(text) {
            None => Flow::Continue,
            Some(ClientFrame::Subscribe(subscribe)) => self.subscribe(subscribe).await,
            Some(ClientFrame::BadSubscribe) => {
                self.send(frames::error("Authentication required", None))
                    .await
            }
            Some(ClientFrame::Other(message)) => {
                if self.sub.is_some() {
                    self.shared
                        .hooks
                        .on_message(&self.socket, &self.context, &message)
                        .await;
                } else {
                    tracing::debug!("frame before subscribe ignored");
                }
                Flow::Continue
            }
        }
    }

    /// A subscribe (PROTOCOL §8): reset, hook, authorize, check the cursor,
    /// replay, acknowledge, then live.
    async fn subscribe(&mut self, subscribe: Subscribe) -> Flow {
        let fresh = LiveContext {
            connection_id: self.context.connection_id.clone(),
            user_id: None,
            groups: Vec::new(),
        };
        let previous = std::mem::replace(&mut self.context, fresh);
        self.sub = None;
        let shared = Arc::clone(&self.shared);
        shared.hooks.on_subscribe(&self.socket, &previous).await;

        let user = match shared.auth.verify_token(&subscribe.token).await {
            Ok(user) => user,
            Err(error) => return self.send(frames::error(&error.to_string(), None)).await,
        };
        let held = match caller_groups(&shared.auth, &shared.store, &user).await {
            Ok(held) => held,
            Err(error) => {
                tracing::error!(%error, "resolving sync groups failed");
                let reason = "Failed to resolve sync groups";
                self.outbox.close(
                    Some(frames::error(reason, None)),
                    CloseCode::ServerError,
                    reason,
                );
                return Flow::Stop;
            }
        };
        tracing::Span::current().record("user", user.user_id.as_str());
        let caller = Caller { user, groups: held };
        let groups = caller.effective_groups(subscribe.groups.as_deref());
        if let Some(requested) = &subscribe.groups {
            let refused: Vec<&String> = requested
                .iter()
                .filter(|g| !caller.groups.contains(g))
                .collect();
            if !refused.is_empty() {
                let names: Vec<&str> = refused.iter().map(|g| g.as_str()).collect();
                tracing::warn!(
                    count = refused.len(),
                    refused = %Clipped(&names.join(",")),
                    "subscribe named groups the user does not hold"
                );
            }
        }
        match shared.store.is_stale(subscribe.after, &groups).await {
            Ok(false) => {}
            Ok(true) => {
                return self
                    .send(frames::error(
                        "A fresh bootstrap is required before subscribing to deltas",
                        Some(ErrorCode::BootstrapRequired),
                    ))
                    .await;
            }
            Err(error) => return self.replay_failed(&ReplayError::Store(error)),
        }

        // The node reads the groups' streams before the socket reads the bus.
        let interest = shared.fanout.interest(&groups).await;
        let mut sub = Subscription::new(
            subscribe.token,
            caller.user,
            subscribe.groups,
            groups,
            subscribe.after,
            BusReceiver::new(shared.fanout.subscribe(), self.bus_waker.clone()),
            interest,
        );
        match replay::catch_up(
            &mut sub,
            &shared,
            &mut self.outbox,
            Some(shared.live.replay_buffer_limit),
        )
        .await
        {
            Ok(()) => {}
            Err(ReplayError::Overflow) => {
                tracing::warn!(cursor = %sub.cursor, "replay buffer limit exceeded");
                let reason = "Replay buffer limit exceeded";
                self.outbox.close(
                    Some(frames::error(reason, Some(ErrorCode::BufferOverflow))),
                    CloseCode::Overflow,
                    reason,
                );
                return Flow::Stop;
            }
            Err(error) => return self.replay_failed(&error),
        }
        if let Err(error) = self
            .outbox
            .send(frames::subscribed(sub.cursor, &sub.groups))
            .await
        {
            return self.send_failed(error);
        }
        tracing::debug!(cursor = %sub.cursor, groups = ?sub.groups, "subscribed");
        self.context.user_id = Some(sub.user.user_id.clone());
        self.context.groups = sub.groups.clone();
        self.sub = Some(sub);
        Flow::Continue
    }

    /// An action from the memory bus, or the news that this socket lagged.
    async fn on_live(&mut self, live: Result<Arc<LiveAction>, RecvError>) -> Flow {
        let Some(sub) = self.sub.as_mut() else {
            return Flow::Continue;
        };
        let outcome = match live {
            Ok(live) => match &live.frame {
                Some(frame) => {
                    match sub
                        .deliver(&self.shared, &mut self.outbox, &live.action, || {
                            frame.clone()
                        })
                        .await
                    {
                        // The socket's groups are as they were.
                        Ok(Delivered::Sent | Delivered::Skipped) => return Flow::Continue,
                        other => other.map_err(ReplayError::Send),
                    }
                }
                // A large action travels without its data: its frame is read
                // from the log once for all the sockets of the node.
                None if live.id() > sub.cursor && visible(&live.action, &sub.groups) => {
                    let read = self
                        .shared
                        .fanout
                        .large_frames()
                        .frame(&self.shared.store, live.id());
                    match Box::pin(read).await {
                        Ok(Some(frame)) => sub
                            .deliver(&self.shared, &mut self.outbox, &live.action, || frame)
                            .await
                            .map_err(ReplayError::Send),
                        Ok(None) => {
                            Box::pin(replay::catch_up(sub, &self.shared, &mut self.outbox, None))
                                .await
                                .map(|()| Delivered::Sent)
                        }
                        Err(error) => Err(ReplayError::Store(error)),
                    }
                }
                None => Ok(Delivered::Skipped),
            },
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(missed, cursor = %sub.cursor, "lagged behind the bus; reading the log");
                Box::pin(replay::catch_up(sub, &self.shared, &mut self.outbox, None))
                    .await
                    .map(|()| Delivered::Sent)
            }
            Err(RecvError::Closed) => {
                self.outbox
                    .close(None, CloseCode::GoingAway, "Server shutting down");
                return Flow::Stop;
            }
        };
        // New groups: what the bus carried of them before this socket held
        // them (a node reading only its sockets' streams did not read them)
        // is read from the log.
        let outcome = match outcome {
            Ok(Delivered::Regrouped) => {
                Box::pin(replay::catch_up(sub, &self.shared, &mut self.outbox, None))
                    .await
                    .map(|()| Delivered::Sent)
            }
            other => other,
        };
        match outcome {
            Ok(_) => {
                self.context.groups.clone_from(&sub.groups);
                Flow::Continue
            }
            Err(error) => self.replay_failed(&error),
        }
    }

    /// Re-checks the token of the subscription: a refused token stops the
    /// deltas; groups the user no longer holds are dropped.
    async fn recheck(&mut self) -> Flow {
        let Some(sub) = self.sub.as_mut() else {
            return Flow::Continue;
        };
        match self.shared.auth.verify_token(&sub.token).await {
            Ok(_) => {
                if let Ok(held) =
                    caller_groups(&self.shared.auth, &self.shared.store, &sub.user).await
                {
                    sub.groups.retain(|g| held.contains(g));
                    self.context.groups.clone_from(&sub.groups);
                }
                Flow::Continue
            }
            Err(error) => {
                tracing::info!(%error, "token refused on re-check; deltas stop");
                self.sub = None;
                self.context.user_id = None;
                self.context.groups.clear();
                self.send(frames::error(&error.to_string(), None)).await
            }
        }
    }

    /// Queues a frame.
    async fn send(&mut self, frame: Utf8Bytes) -> Flow {
        match self.outbox.send(frame).await {
            Ok(()) => Flow::Continue,
            Err(error) => self.send_failed(error),
        }
    }

    /// A frame could not be queued, or the socket did not take its frames
    /// in time.
    fn send_failed(&mut self, error: SendError) -> Flow {
        if error == SendError::SlowConsumer {
            tracing::warn!("socket is not reading; closing it");
            self.outbox.close_slow_consumer();
        }
        Flow::Stop
    }

    /// The log could not be read for this socket.
    fn replay_failed(&mut self, error: &ReplayError) -> Flow {
        if let ReplayError::Send(error) = error {
            return self.send_failed(*error);
        }
        tracing::warn!(%error, "replay failed");
        self.outbox.close(
            Some(frames::error("Replay failed", None)),
            CloseCode::ServerError,
            "Replay failed",
        );
        Flow::Stop
    }
}

/// Whether a read failed on a message over the size limit (axum's WebSocket
/// errors are tungstenite's).
fn too_big(error: axum::Error) -> bool {
    matches!(
        error.into_inner().downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(_))
    )
}
