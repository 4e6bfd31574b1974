//! A minimal `/sync/ws` client: connect, subscribe, read frames.

use futures::{SinkExt as _, StreamExt as _};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Read buffer of each client socket. tungstenite's default (128 KiB) is
/// zero-filled on every read, which made the bench's own CPU the bottleneck
/// with thousands of sockets.
const READ_BUFFER: usize = 4 * 1024;

/// A connected socket.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A frame as far as the bench cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A delta; holds the text to look into.
    Delta(String),
    /// The acknowledgement of a subscribe.
    Subscribed,
    /// An error frame (its text).
    Error(String),
    /// Anything else (pings are answered by the library).
    Other,
}

/// Connects to `ws_base/sync/ws` as `token` and subscribes after `after`;
/// returns the socket before the acknowledgement arrives.
pub async fn subscribe(ws_base: &str, token: &str, after: i64) -> Result<Socket, String> {
    let url = format!("{ws_base}/sync/ws?token={token}");
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(&url, Some(config), false)
        .await
        .map_err(|e| format!("connect {url}: {e}"))?;
    let frame = json!({"type": "subscribe", "token": token, "afterSyncId": after.to_string()});
    socket
        .send(Message::text(frame.to_string()))
        .await
        .map_err(|e| format!("subscribe: {e}"))?;
    Ok(socket)
}

/// The next frame; `None` when the socket closed.
pub async fn next(socket: &mut Socket) -> Option<Result<Frame, String>> {
    loop {
        let message = match socket.next().await? {
            Ok(message) => message,
            Err(error) => return Some(Err(error.to_string())),
        };
        let text = match message {
            Message::Text(text) => text.to_string(),
            Message::Close(_) => return None,
            _ => continue,
        };
        let frame = if text.ends_with("\"type\":\"delta\"}") {
            Frame::Delta(text)
        } else if text.ends_with("\"type\":\"subscribed\"}") {
            Frame::Subscribed
        } else if text.ends_with("\"type\":\"error\"}") {
            Frame::Error(text)
        } else {
            Frame::Other
        };
        return Some(Ok(frame));
    }
}

/// Reads until the subscribe acknowledgement; returns the deltas replayed before it.
pub async fn until_subscribed(socket: &mut Socket) -> Result<u64, String> {
    let mut deltas = 0;
    loop {
        match next(socket).await {
            Some(Ok(Frame::Subscribed)) => return Ok(deltas),
            Some(Ok(Frame::Delta(_))) => deltas += 1,
            Some(Ok(Frame::Error(text))) => return Err(format!("subscribe refused: {text}")),
            Some(Ok(Frame::Other)) => {}
            Some(Err(error)) => return Err(error),
            None => {
                return Err("the socket closed before the subscribe was acknowledged".to_owned());
            }
        }
    }
}
