//! Graceful shutdown: how a node leaves a deployment without losing a
//! client's work.
//!
//! When SIGTERM or SIGINT arrives (or [`SyncServer::shutdown`] is called):
//!
//! 1. `/ready` answers 503, so the load balancer stops sending traffic;
//! 2. the listener stops accepting connections;
//! 3. every live socket is closed with 1001 ("going away"): its client
//!    reconnects, to another node, and resumes from its cursor;
//! 4. HTTP requests in flight run to completion, for up to the grace period
//!    (20 s unless [`SyncServerBuilder::shutdown_grace`] says otherwise).
//!
//! A mutation is acknowledged only after its transaction committed, so a
//! request cut off by the end of the grace period was either committed and
//! not acknowledged (the client retries it and the idempotency key answers
//! with the same `syncId`) or not committed at all.
//!
//! [`SyncServerBuilder::shutdown_grace`]: crate::SyncServerBuilder::shutdown_grace

use std::time::Duration;

use tokio::net::TcpListener;

use crate::error::Error;
use crate::{SyncServer, fanout};

/// The grace period in-flight requests get by default.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Resolves when the process receives SIGTERM or SIGINT.
async fn os_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C: shutting down");
    }
}

impl SyncServer {
    /// Resolves once shutdown has begun: at SIGTERM or SIGINT, or when
    /// [`SyncServer::shutdown`] was called. Pass it to axum's
    /// `with_graceful_shutdown` when serving the router yourself; see
    /// [`SyncServer::serve_app`] for the whole sequence.
    pub async fn shutdown_signal(&self) {
        let mut stopped = self.shared.fanout.shutdown_signal();
        tokio::select! {
            () = os_signal() => self.shutdown(),
            () = fanout::stopped(&mut stopped) => {}
        }
    }

    /// Serves `app` (this server's [`router`](SyncServer::router), possibly
    /// merged into the application's routes) on `listener` until SIGTERM,
    /// SIGINT or [`SyncServer::shutdown`], then shuts down gracefully (see
    /// the [`shutdown`](crate::shutdown) module): stops accepting, closes live
    /// sockets with 1001 and lets requests in flight finish within the grace
    /// period. Connections are held and timed as the server's
    /// [`Limits`](crate::Limits) say.
    pub async fn serve_app(&self, listener: TcpListener, app: axum::Router) -> Result<(), Error> {
        let server = self.clone();
        crate::listen::run(
            listener,
            app,
            &self.shared.limits,
            async move { server.shutdown_signal().await },
            self.shared.shutdown_grace,
        )
        .await?;
        Ok(())
    }
}
