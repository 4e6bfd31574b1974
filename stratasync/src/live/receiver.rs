//! A subscription's receiver of the memory bus, polled by its session.
//!
//! Waiting for the bus registers the socket in the channel's list of
//! waiters, under the channel's lock. The receiver keeps one wait alive
//! from one action to the next instead of re-registering on every wake-up
//! of the session, and polls it with the session's bus waker, so that only
//! the bus wakes it. The waits of a subscription share one allocation.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures::Stream;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::fanout::LiveAction;

/// The actions of the bus, one wait after the other, each wait holding the
/// receiver while it runs.
type Waits = Pin<Box<dyn Stream<Item = Result<Arc<LiveAction>, RecvError>> + Send>>;

/// A receiver of the memory bus that is polled, not awaited.
pub(crate) struct BusReceiver {
    waits: Waits,
    /// Fires the session's bus source.
    waker: Waker,
}

/// Waits on `rx` for one action after the other. A wait is outside tokio's
/// cooperative budget: it is `Pending` only when the bus has nothing (so
/// [`BusReceiver::try_recv`] is as exact as the channel's own), and a
/// session drains at most the bus's capacity before it waits.
fn waits(rx: Receiver<Arc<LiveAction>>) -> Waits {
    Box::pin(futures::stream::unfold(rx, |mut rx| {
        tokio::task::unconstrained(async move {
            let next = rx.recv().await;
            Some((next, rx))
        })
    }))
}

impl BusReceiver {
    /// Reads `rx`, waking the session through `waker`, which fires now so
    /// that the session starts the first wait.
    pub(crate) fn new(rx: Receiver<Arc<LiveAction>>, waker: Waker) -> Self {
        waker.wake_by_ref();
        BusReceiver {
            waits: waits(rx),
            waker,
        }
    }

    /// The next action, or `Pending` (the bus waker fires when there is one).
    pub(crate) fn poll_recv(&mut self) -> Poll<Result<Arc<LiveAction>, RecvError>> {
        let mut cx = Context::from_waker(&self.waker);
        match std::task::ready!(self.waits.as_mut().poll_next(&mut cx)) {
            Some(next) => Poll::Ready(next),
            // The stream ends only with its receiver, which it never drops.
            None => Poll::Ready(Err(RecvError::Closed)),
        }
    }

    /// The next action if there is one now.
    pub(crate) fn try_recv(&mut self) -> Result<Arc<LiveAction>, TryRecvError> {
        match self.poll_recv() {
            Poll::Ready(Ok(live)) => Ok(live),
            Poll::Ready(Err(RecvError::Lagged(missed))) => Err(TryRecvError::Lagged(missed)),
            Poll::Ready(Err(RecvError::Closed)) => Err(TryRecvError::Closed),
            Poll::Pending => Err(TryRecvError::Empty),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::task::Wake;

    use stratasync_core::{SyncAction, SyncId};
    use tokio::sync::broadcast;

    use super::*;

    /// A waker that does nothing.
    struct Idle;

    impl Wake for Idle {
        fn wake(self: Arc<Self>) {}
    }

    fn action(id: u64) -> Arc<LiveAction> {
        Arc::new(LiveAction::new(SyncAction {
            id: SyncId::new(id),
            model: "Task".into(),
            model_id: id.to_string(),
            action: "I".into(),
            data: serde_json::value::RawValue::from_string("{}".into()).expect("json"),
            group_id: None,
            client_id: None,
            client_tx_id: None,
            created_at: chrono::Utc::now(),
        }))
    }

    /// A replay counts what arrived on the bus with `try_recv`: it must see
    /// everything there, past tokio's cooperative budget (128 per poll).
    #[tokio::test]
    async fn try_recv_sees_everything_the_bus_holds() {
        let (bus, rx) = broadcast::channel(1024);
        let mut receiver = BusReceiver::new(rx, Waker::from(Arc::new(Idle)));
        assert!(matches!(receiver.try_recv(), Err(TryRecvError::Empty)));
        for id in 1..=1000 {
            bus.send(action(id)).expect("a receiver");
        }
        for id in 1..=1000 {
            let live = receiver.try_recv().expect("held by the bus");
            assert_eq!(live.id(), SyncId::new(id));
        }
        assert!(matches!(receiver.try_recv(), Err(TryRecvError::Empty)));
    }
}
