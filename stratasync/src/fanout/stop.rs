//! The shutdown signal of the fan-out's tasks.

use tokio::sync::watch;

/// Waits until `signal` says shutdown (or its sender is gone).
pub(crate) async fn stopped(signal: &mut watch::Receiver<bool>) {
    let _ = signal.wait_for(|stop| *stop).await;
}
