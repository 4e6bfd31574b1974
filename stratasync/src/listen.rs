//! The connections of [`serve`](crate::serve): a cap on how many are held,
//! and time limits on each.
//!
//! - At most [`Limits::max_connections`] connections are held; one more is
//!   answered `503` with `Retry-After` and closed, so a flood of sockets
//!   meets a clear answer rather than file-descriptor exhaustion.
//! - A request's headers must arrive within [`Limits::header_read_timeout`],
//!   counted from when the connection starts waiting for them; so an idle
//!   keep-alive connection is closed after that long too.
//! - A connection that moves no byte either way for [`Limits::idle_timeout`]
//!   is closed: a slow body, a response its client does not read, a dead
//!   peer. Live sockets stay busy with their heartbeat.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};

use crate::error::RETRY_AFTER_SECS;
use crate::limits::Limits;

/// How long a refused connection is given to take its `503`.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves `router` on `listener` within `limits` until `stop` resolves;
/// then stops accepting, asks every connection to finish its request in
/// flight and close, and waits up to `grace` for them.
pub(crate) async fn run(
    listener: TcpListener,
    router: axum::Router,
    limits: &Limits,
    stop: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stopping, stopped) = watch::channel(false);
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let (stream, _peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors or a connection reset before accept:
                // wait a little instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(
                max = limits.max_connections,
                "connection limit reached; answering 503"
            );
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(IdleTimeout::new(stream, limits.idle_timeout));
        let service = TowerToHyperService::new(router.clone());
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .keep_alive(true);
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let connection = http.serve_connection(io, service).with_upgrades();
            tokio::pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                () = async { let _ = stopped.wait_for(|stopping| *stopping).await; } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = served {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    let every_slot = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, slots.acquire_many(every_slot))
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = grace.as_secs_f64(),
            "requests still in flight at the end of the grace period were abandoned"
        );
    }
    Ok(())
}

/// Answers a connection over the limit with `503` and closes it.
async fn refuse(mut stream: TcpStream) {
    let body = r#"{"error":"Too many connections, retry later"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: {RETRY_AFTER_SECS}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sent, so that closing does not reset the
        // connection before the client reads the answer.
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// A stream that fails once no byte moved either way for its timeout.
///
/// A read or write only notes the time; the timer is moved when it fires
/// and bytes moved since (a live socket writes every delta, and moving a
/// timer entry per write showed in the fan-out profile).
#[derive(Debug)]
struct IdleTimeout {
    inner: TcpStream,
    timeout: Duration,
    /// When a byte last moved.
    moved_at: Instant,
    /// Set for an earlier `moved_at` plus the timeout, or for the present one.
    deadline: Pin<Box<Sleep>>,
}

impl IdleTimeout {
    fn new(inner: TcpStream, timeout: Duration) -> Self {
        let now = Instant::now();
        IdleTimeout {
            inner,
            timeout,
            moved_at: now,
            deadline: Box::pin(tokio::time::sleep_until(now + timeout)),
        }
    }

    fn moved(&mut self) {
        self.moved_at = Instant::now();
    }

    /// For a pending operation: an error once the deadline has passed.
    fn expired(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        loop {
            ready!(self.deadline.as_mut().poll(cx));
            let due = self.moved_at + self.timeout;
            if due <= Instant::now() {
                return Poll::Ready(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connection idle past the idle timeout",
                ));
            }
            self.deadline.as_mut().reset(due);
        }
    }
}

impl AsyncRead for IdleTimeout {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.expired(cx).map(Err),
        }
    }
}

impl AsyncWrite for IdleTimeout {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, data) {
            Poll::Ready(result) => {
                if matches!(result, Ok(n) if n > 0) {
                    this.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.expired(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                if matches!(result, Ok(n) if n > 0) {
                    this.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.expired(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.expired(cx).map(Err),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connected pair: the server's end behind an idle timeout, and the
    /// client's.
    async fn pair(timeout: Duration) -> (IdleTimeout, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (IdleTimeout::new(server, timeout), client)
    }

    #[tokio::test]
    async fn bytes_moving_keep_a_connection_past_its_idle_timeout_and_silence_ends_it() {
        let timeout = Duration::from_millis(300);
        let (mut server, mut client) = pair(timeout).await;
        let start = Instant::now();
        let mut last = start;
        // Writes every 100 ms for three timeouts: the connection lives on.
        while start.elapsed() < timeout * 3 {
            server.write_all(b"x").await.expect("a moving connection");
            last = Instant::now();
            let mut byte = [0u8; 1];
            client.read_exact(&mut byte).await.expect("read");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Then nothing moves: a pending read fails one timeout after the
        // last byte.
        let mut buf = [0u8; 1];
        let error = server
            .read(&mut buf)
            .await
            .expect_err("idle past the timeout");
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        let idle = last.elapsed();
        assert!(
            idle >= timeout && idle < timeout * 2,
            "failed {idle:?} after the last byte"
        );
    }
}
