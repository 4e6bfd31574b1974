//! The fan-out baseline: a minimal tokio-tungstenite broadcast server, the
//! socket layer's own cost on this machine.
//!
//! It is this binary run again as a child process (`--serve-broadcast`),
//! so that its CPU time and memory are its own. Each socket is one task: it
//! waits for the client's first text frame (the subscribe), answers it,
//! then writes every frame of a `tokio::sync::broadcast` channel to the
//! socket as it comes and reads the socket for a close. Frames come in on
//! standard input, one per line, each sent to every socket as it is.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::node;

/// The argument that runs this binary as the baseline server.
pub const SERVE: &str = "--serve-broadcast";

/// What the baseline answers a subscribe with (what the bench waits for).
const SUBSCRIBED: &str = r#"{"afterSyncId":"0","groups":[],"type":"subscribed"}"#;

/// Frames the channel holds before a slow socket lags (the server's bus
/// holds as many).
const CAPACITY: usize = 4096;

/// Read buffer of each socket (the server's).
const READ_BUFFER: usize = 4 * 1024;

/// Runs the baseline server on the address in `BIND` until standard input
/// ends.
pub async fn serve() -> Result<(), String> {
    let bind = std::env::var("BIND").map_err(|_| "BIND is not set".to_owned())?;
    let listener = TcpListener::bind(&bind)
        .await
        .map_err(|e| format!("bind {bind}: {e}"))?;
    let (frames, _) = broadcast::channel::<Utf8Bytes>(CAPACITY);
    let publisher = frames.clone();
    let mut input = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let accept = async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(connection(stream, frames.clone()));
        }
    };
    let publish = async move {
        while let Ok(Some(line)) = input.next_line().await {
            let _ = publisher.send(Utf8Bytes::from(line));
        }
    };
    tokio::select! {
        () = accept => {}
        () = publish => {}
    }
    Ok(())
}

/// One socket: subscribe, then every frame of the channel.
async fn connection(stream: TcpStream, frames: broadcast::Sender<Utf8Bytes>) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let Ok(mut socket) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
    else {
        return;
    };
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(_))) => break,
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return,
        }
    }
    let mut rx = frames.subscribe();
    if socket.send(Message::text(SUBSCRIBED)).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            frame = rx.recv() => match frame {
                Ok(frame) => {
                    if socket.send(Message::Text(frame)).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
            message = socket.next() => match message {
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
        }
    }
}

/// The baseline server, running as a child process.
#[derive(Debug)]
pub struct Broadcaster {
    child: Child,
    stdin: ChildStdin,
    pid: u32,
    /// `ws://127.0.0.1:<port>`.
    pub ws_base: String,
}

impl Broadcaster {
    /// Starts `bin` (this binary) as the baseline server on a free loopback
    /// port and waits until it accepts connections.
    pub async fn start(bin: &Path) -> Result<Broadcaster, String> {
        let port = node::free_port()?;
        let mut child = Command::new(bin)
            .arg(SERVE)
            .env("BIND", format!("127.0.0.1:{port}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start the broadcast baseline: {e}"))?;
        let pid = child.id().ok_or("the broadcast baseline exited at once")?;
        let stdin = child.stdin.take().ok_or("no stdin for the baseline")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if Instant::now() > deadline {
                return Err("the broadcast baseline did not listen within 10 s".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Broadcaster {
            child,
            stdin,
            pid,
            ws_base: format!("ws://127.0.0.1:{port}"),
        })
    }

    /// Sends `frame` (one line, no newline in it) to every socket.
    pub async fn publish(&mut self, frame: &str) -> Result<(), String> {
        let mut line = Vec::with_capacity(frame.len() + 1);
        line.extend_from_slice(frame.as_bytes());
        line.push(b'\n');
        self.stdin
            .write_all(&line)
            .await
            .map_err(|e| format!("publish to the baseline: {e}"))?;
        self.stdin
            .flush()
            .await
            .map_err(|e| format!("publish to the baseline: {e}"))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Stops the process and waits for it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
