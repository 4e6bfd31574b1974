//! Which sources woke a socket's session.
//!
//! A session is one task that waits on several sources at once: its socket,
//! the memory bus, its timer, the shutdown signal and the frames application
//! hooks queue for it. Each source is polled with a waker of its own, which
//! records the source before it wakes the task; a wake-up then polls only
//! the sources that fired. A delta thus costs a poll of the bus and one
//! write, not also a poll of the socket's reading half (which zero-fills a
//! read buffer), of every timer and of the shutdown signal.
//!
//! A source that was polled to `Pending` is polled again only once its
//! waker fires; one that was ready is kept (see [`Wakes::keep`]) until it
//! is polled to `Pending`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Wake, Waker};

use futures::task::AtomicWaker;

/// One of a session's sources, as a bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Source(u8);

impl Source {
    /// The socket: readable, or writable again.
    pub(crate) const SOCKET: Source = Source(1);
    /// The memory bus of the subscription.
    pub(crate) const BUS: Source = Source(2);
    /// The session's timer.
    pub(crate) const TIMER: Source = Source(4);
    /// The node's shutdown signal.
    pub(crate) const SHUTDOWN: Source = Source(8);
    /// Frames queued by application hooks.
    pub(crate) const INBOX: Source = Source(16);
}

/// A set of sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fired(u8);

impl From<Source> for Fired {
    fn from(source: Source) -> Self {
        Fired(source.0)
    }
}

impl Fired {
    /// Whether `source` is in the set.
    pub(crate) fn has(self, source: Source) -> bool {
        self.0 & source.0 != 0
    }

    /// Takes `source` out of the set.
    pub(crate) fn remove(&mut self, source: Source) {
        self.0 &= !source.0;
    }
}

/// The sources that fired since the session last looked, and the task to
/// wake.
#[derive(Debug)]
pub(crate) struct Wakes {
    fired: AtomicU8,
    task: AtomicWaker,
}

impl Wakes {
    /// Wake-ups of a new session: every source but the bus counts as fired,
    /// so that each is polled once (and so registers its waker). The bus
    /// fires when a subscription starts.
    pub(crate) fn new() -> Arc<Wakes> {
        let first = [
            Source::SOCKET,
            Source::TIMER,
            Source::SHUTDOWN,
            Source::INBOX,
        ];
        Arc::new(Wakes {
            fired: AtomicU8::new(first.iter().fold(0, |all, s| all | s.0)),
            task: AtomicWaker::new(),
        })
    }

    /// Wakes `waker` from now on when a source fires. Call it on each poll of
    /// the session, before [`Wakes::take`].
    pub(crate) fn register(&self, waker: &Waker) {
        self.task.register(waker);
    }

    /// The sources that fired since the last call, and forgets them.
    pub(crate) fn take(&self) -> Fired {
        Fired(self.fired.swap(0, Ordering::AcqRel))
    }

    /// Marks `sources` as fired again without waking the task: they were
    /// taken but not polled to `Pending`, so the next look polls them.
    pub(crate) fn keep(&self, sources: Fired) {
        self.fired.fetch_or(sources.0, Ordering::AcqRel);
    }

    /// Records `source` and wakes the task.
    pub(crate) fn fire(&self, source: Source) {
        self.fired.fetch_or(source.0, Ordering::AcqRel);
        self.task.wake();
    }

    /// The waker that fires `source`.
    pub(crate) fn waker(self: &Arc<Self>, source: Source) -> Waker {
        Waker::from(Arc::new(SourceWaker {
            wakes: Arc::clone(self),
            source,
        }))
    }
}

/// The waker of one source.
struct SourceWaker {
    wakes: Arc<Wakes>,
    source: Source,
}

impl Wake for SourceWaker {
    fn wake(self: Arc<Self>) {
        self.wakes.fire(self.source);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fire(self.source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::AtomicUsize;

    /// Counts its wake-ups.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_source_waker_records_its_source_and_wakes_the_task() {
        let wakes = Wakes::new();
        let first = wakes.take();
        assert!(first.has(Source::SOCKET) && first.has(Source::TIMER));
        assert!(!first.has(Source::BUS), "the bus fires on subscribe");
        assert_eq!(wakes.take(), Fired(0));

        let count = Arc::new(Count(AtomicUsize::new(0)));
        wakes.register(&Waker::from(Arc::clone(&count)));
        wakes.waker(Source::BUS).wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        let fired = wakes.take();
        assert!(fired.has(Source::BUS) && !fired.has(Source::SOCKET));

        let mut kept = fired;
        kept.remove(Source::BUS);
        wakes.keep(Fired::from(Source::SOCKET));
        assert!(wakes.take().has(Source::SOCKET));
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "keep does not wake");
        assert_eq!(kept, Fired(0));
    }
}
