//! Application hooks on live sockets.

use axum::extract::ws::Message;
use futures::future::BoxFuture;
use serde_json::{Map, Value};

use super::outbox::OutboxHandle;

/// Who a socket is, as the hooks see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveContext {
    /// A unique id of the connection.
    pub connection_id: String,
    /// The subscribed user (`None` before a successful subscribe).
    pub user_id: Option<String>,
    /// The socket's effective groups (empty before a subscribe).
    pub groups: Vec<String>,
}

/// A live socket, as the hooks see it: its id and a way to send it frames.
///
/// Cheap to clone; an application may keep it (collaborative-editing
/// sessions, presence) and send frames later. Frames sent through it are
/// queued after the deltas already queued, without waiting.
#[derive(Debug, Clone)]
pub struct LiveSocket {
    id: String,
    queue: OutboxHandle,
}

impl LiveSocket {
    pub(crate) fn new(id: String, queue: OutboxHandle) -> Self {
        LiveSocket { id, queue }
    }

    /// The connection id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Queues a text frame; `false` when the socket is gone or its queue is
    /// full.
    pub fn send_text(&self, text: impl Into<String>) -> bool {
        self.queue.try_send(Message::Text(text.into().into()))
    }

    /// Queues `value` as a JSON text frame (see [`LiveSocket::send_text`]).
    pub fn send_json(&self, value: &Value) -> bool {
        self.send_text(value.to_string())
    }

    /// Whether the socket is still open.
    pub fn is_open(&self) -> bool {
        !self.queue.is_closed()
    }
}

/// Application hooks on `/sync/ws` (PROTOCOL §8). Every method has a no-op
/// default; a socket's hooks run one at a time, in the order of its frames.
///
/// Implement the ones you need with `async fn`s; their futures must be `Send`:
///
/// ```
/// use serde_json::{Map, Value};
/// use stratasync::{LiveContext, LiveHooks, LiveSocket};
///
/// /// Echoes collaborative-editing frames back to their sender.
/// struct Echo;
///
/// impl LiveHooks for Echo {
///     async fn on_message(
///         &self,
///         socket: &LiveSocket,
///         _context: &LiveContext,
///         message: &Map<String, Value>,
///     ) {
///         socket.send_json(&Value::Object(message.clone()));
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not implement `stratasync::LiveHooks`",
    note = "add `impl stratasync::LiveHooks for {Self} {{}}` and override the hooks you need with `async fn`s"
)]
pub trait LiveHooks: Send + Sync + 'static {
    /// A subscribe frame arrived; runs before its token is checked.
    /// `previous` is what the socket was before this subscribe reset it.
    fn on_subscribe(
        &self,
        socket: &LiveSocket,
        previous: &LiveContext,
    ) -> impl Future<Output = ()> + Send {
        let _ = (socket, previous);
        async {}
    }

    /// A JSON object frame other than `subscribe` arrived on a subscribed
    /// socket (`yjs_*`, `doc_*`, `session_*`, `live_editing_*` and any other
    /// type).
    fn on_message(
        &self,
        socket: &LiveSocket,
        context: &LiveContext,
        message: &Map<String, Value>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (socket, context, message);
        async {}
    }

    /// The socket closed.
    fn on_close(
        &self,
        socket: &LiveSocket,
        context: &LiveContext,
    ) -> impl Future<Output = ()> + Send {
        let _ = (socket, context);
        async {}
    }
}

/// [`LiveHooks`] in the object-safe form the server stores.
pub(crate) trait DynLiveHooks: Send + Sync + 'static {
    /// [`LiveHooks::on_subscribe`], boxed.
    fn on_subscribe<'a>(
        &'a self,
        socket: &'a LiveSocket,
        previous: &'a LiveContext,
    ) -> BoxFuture<'a, ()>;

    /// [`LiveHooks::on_message`], boxed.
    fn on_message<'a>(
        &'a self,
        socket: &'a LiveSocket,
        context: &'a LiveContext,
        message: &'a Map<String, Value>,
    ) -> BoxFuture<'a, ()>;

    /// [`LiveHooks::on_close`], boxed.
    fn on_close<'a>(
        &'a self,
        socket: &'a LiveSocket,
        context: &'a LiveContext,
    ) -> BoxFuture<'a, ()>;
}

impl<T: LiveHooks> DynLiveHooks for T {
    fn on_subscribe<'a>(
        &'a self,
        socket: &'a LiveSocket,
        previous: &'a LiveContext,
    ) -> BoxFuture<'a, ()> {
        Box::pin(LiveHooks::on_subscribe(self, socket, previous))
    }

    fn on_message<'a>(
        &'a self,
        socket: &'a LiveSocket,
        context: &'a LiveContext,
        message: &'a Map<String, Value>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(LiveHooks::on_message(self, socket, context, message))
    }

    fn on_close<'a>(
        &'a self,
        socket: &'a LiveSocket,
        context: &'a LiveContext,
    ) -> BoxFuture<'a, ()> {
        Box::pin(LiveHooks::on_close(self, socket, context))
    }
}

/// The hooks of a server without any.
pub(crate) struct NoHooks;

impl LiveHooks for NoHooks {}
