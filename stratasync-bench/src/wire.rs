//! Round trips between the server and PostgreSQL, counted on the wire: a
//! loopback TCP proxy in front of the database that forwards every byte and
//! counts the messages after which a client waits for the database.
//!
//! In the extended query protocol a client sends `Parse` / `Bind` /
//! `Describe` / `Execute` and then `Sync`, and waits for `ReadyForQuery`;
//! in the simple protocol it sends one `Query`. So one `Sync` or one
//! `Query` is one round trip (a statement prepared on the fly costs two: its
//! `Parse` and its execution each end in a `Sync`). A `Sync` after nothing
//! but `Close` messages is not one: tokio-postgres closes a statement it
//! prepared on the fly that way when it drops it, without waiting for the
//! answer. Everything the server sends through the proxy counts: requests,
//! the log tailer's reads, the pool's connection checks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The proxy and its count.
#[derive(Debug)]
pub struct RoundTrips {
    /// The database URL through the proxy.
    pub url: String,
    count: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl RoundTrips {
    /// Starts a proxy in front of the server of `database_url` (a
    /// `postgres://user@host:port/db?...` URL without TLS).
    pub async fn start(database_url: &str) -> Result<RoundTrips, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("round-trip proxy: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let (url, upstream) = through_proxy(database_url, port)?;
        let count = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&count);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, count) = (upstream.clone(), Arc::clone(&counted));
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        forward(client, server, &count).await;
                    }
                });
            }
        });
        Ok(RoundTrips { url, count, accept })
    }

    /// Round trips counted so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl Drop for RoundTrips {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// `url` with its host and port replaced by `127.0.0.1:port`, and the
/// `host:port` it named (port 5432 when it named none).
fn through_proxy(url: &str, port: u16) -> Result<(String, String), String> {
    let bad = || format!("cannot read the host of {url}");
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (format!("{user}@"), host),
        None => (String::new(), authority),
    };
    let upstream = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    Ok((format!("{scheme}://{user}127.0.0.1:{port}{path}"), upstream))
}

/// Forwards both ways until either side closes, counting the client's
/// `Sync` and `Query` messages.
async fn forward(client: TcpStream, server: TcpStream, count: &AtomicU64) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let answers = tokio::io::copy(&mut server_read, &mut client_write);
    let requests = async {
        let mut messages = Messages::default();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let read = match client_read.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            if server_write.write_all(&chunk[..read]).await.is_err() {
                break;
            }
            count.fetch_add(messages.feed(&chunk[..read]), Ordering::Relaxed);
        }
        let _ = server_write.shutdown().await;
    };
    tokio::select! {
        _ = answers => {}
        () = requests => {}
    }
}

/// The client's side of the protocol, split into messages.
#[derive(Debug, Default)]
struct Messages {
    /// Bytes of a message not complete yet.
    pending: Vec<u8>,
    /// Past the startup message: every message starts with its type byte.
    started: bool,
    /// What was sent since the last `Sync`: nothing, only `Close`
    /// messages, or something else.
    since_sync: SinceSync,
}

/// The messages sent since the last `Sync`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum SinceSync {
    #[default]
    Nothing,
    OnlyCloses,
    Work,
}

impl Messages {
    /// Takes `bytes`; returns the round trips among the messages they complete.
    fn feed(&mut self, bytes: &[u8]) -> u64 {
        self.pending.extend_from_slice(bytes);
        let mut round_trips = 0;
        let mut at = 0;
        loop {
            let rest = &self.pending[at..];
            // The startup message (and an SSL or GSS request before it)
            // has no type byte: a length, then a code.
            let (header, kind) = if self.started {
                (1, rest.first().copied())
            } else {
                (0, None)
            };
            let Some(length) = rest
                .get(header..header + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(|b| u32::from_be_bytes(b) as usize)
            else {
                break;
            };
            if rest.len() < header + length {
                break;
            }
            match kind {
                Some(b'Q') => round_trips += 1,
                Some(b'S') => {
                    if self.since_sync != SinceSync::OnlyCloses {
                        round_trips += 1;
                    }
                    self.since_sync = SinceSync::Nothing;
                }
                Some(b'C') if self.since_sync != SinceSync::Work => {
                    self.since_sync = SinceSync::OnlyCloses;
                }
                Some(_) => self.since_sync = SinceSync::Work,
                None => {
                    const SSL_REQUEST: u32 = 80_877_103;
                    const GSS_REQUEST: u32 = 80_877_104;
                    let code = rest
                        .get(4..8)
                        .and_then(|b| <[u8; 4]>::try_from(b).ok())
                        .map(u32::from_be_bytes);
                    self.started = !matches!(code, Some(SSL_REQUEST | GSS_REQUEST));
                }
            }
            at += header + length;
        }
        self.pending.drain(..at);
        round_trips
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_syncs_and_queries_across_chunks() {
        let mut messages = Messages::default();
        let mut wire = Vec::new();
        // Startup: length 8 + parameters, protocol 3.0.
        wire.extend_from_slice(&9u32.to_be_bytes());
        wire.extend_from_slice(&196_608u32.to_be_bytes());
        wire.push(0);
        // Parse (empty body), Sync, Query "x".
        wire.extend_from_slice(&[b'P', 0, 0, 0, 4, b'S', 0, 0, 0, 4]);
        wire.extend_from_slice(&[b'Q', 0, 0, 0, 6, b'x', 0]);
        // Close + Sync of a dropped statement: not waited for.
        wire.extend_from_slice(&[b'C', 0, 0, 0, 6, b'S', 0, b'S', 0, 0, 0, 4]);
        // Close, Parse, Sync: waited for.
        wire.extend_from_slice(&[b'C', 0, 0, 0, 6, b'S', 0, b'P', 0, 0, 0, 4]);
        wire.extend_from_slice(&[b'S', 0, 0, 0, 4]);
        let counted: u64 = wire.chunks(3).map(|chunk| messages.feed(chunk)).sum();
        assert_eq!(counted, 3);
        // Terminate.
        assert_eq!(messages.feed(&[b'X', 0, 0, 0, 4]), 0);
        assert!(messages.pending.is_empty());
    }

    #[test]
    fn rewrites_the_host() {
        let (url, upstream) = through_proxy(
            "postgres://postgres@127.0.0.1:5432/bench?sslmode=disable",
            7000,
        )
        .unwrap_or_default();
        assert_eq!(
            url,
            "postgres://postgres@127.0.0.1:7000/bench?sslmode=disable"
        );
        assert_eq!(upstream, "127.0.0.1:5432");
    }
}
