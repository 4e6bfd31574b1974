//! Which groups the sockets of this node hold, and so which shard streams
//! the consumer reads: a node with no socket for a shard's groups reads
//! nothing of it.
//!
//! A socket registers its groups before it reads the bus. When that adds a
//! shard the consumer does not read yet, the registration waits until the
//! consumer has taken the shard in (at its current bus position), so the bus
//! carries every later action of the socket's groups, in order.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, oneshot};

use super::{Shard, StreamsConfig};

/// The registered groups and shards of one node.
pub(super) struct Table {
    config: Arc<StreamsConfig>,
    state: Mutex<State>,
    /// Wakes the consumer when a registration waits for it.
    pub(super) changed: Notify,
}

#[derive(Default)]
struct State {
    /// Sockets per group.
    groups: HashMap<String, usize>,
    /// Sockets per shard (every socket holds the global one).
    shards: HashMap<Shard, usize>,
    /// The shards the consumer has taken in.
    taken: BTreeSet<Shard>,
    /// Registrations waiting for the consumer.
    waiting: Vec<oneshot::Sender<()>>,
}

/// A socket's registered groups; dropping it unregisters them.
pub(crate) struct Interest {
    table: Arc<Table>,
    groups: Vec<String>,
}

impl Table {
    pub(super) fn new(config: Arc<StreamsConfig>) -> Table {
        Table {
            config,
            state: Mutex::default(),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The shards of `groups`, the global one included.
    fn shards_of<'a>(&'a self, groups: &'a [String]) -> impl Iterator<Item = Shard> + 'a {
        groups
            .iter()
            .map(|g| self.config.shard_of(Some(g)))
            .chain(std::iter::once(Shard::Global))
    }

    /// Registers `groups`; waits until the consumer reads all their shards.
    pub(super) async fn register(self: &Arc<Self>, groups: &[String]) -> Interest {
        let waiting = {
            let mut state = self.lock();
            for group in groups {
                *state.groups.entry(group.clone()).or_default() += 1;
            }
            let mut untaken = false;
            for shard in self.shards_of(groups) {
                *state.shards.entry(shard).or_default() += 1;
                untaken |= !state.taken.contains(&shard);
            }
            untaken.then(|| {
                let (tx, rx) = oneshot::channel();
                state.waiting.push(tx);
                rx
            })
        };
        let interest = Interest {
            table: Arc::clone(self),
            groups: groups.to_vec(),
        };
        if let Some(taken) = waiting {
            self.changed.notify_one();
            // An error means the consumer stopped (shutdown): nothing to wait for.
            let _ = taken.await;
        }
        interest
    }

    /// The shards to read now, marked taken, and the registrations to
    /// release once the consumer has taken them in.
    pub(super) fn take(&self) -> (BTreeSet<Shard>, Vec<oneshot::Sender<()>>) {
        let mut state = self.lock();
        let active: BTreeSet<Shard> = state.shards.keys().copied().collect();
        state.taken.clone_from(&active);
        (active, std::mem::take(&mut state.waiting))
    }

    /// Whether a registration waits for the consumer.
    pub(super) fn has_waiting(&self) -> bool {
        !self.lock().waiting.is_empty()
    }

    /// The registered groups, only those of `shard` when given.
    pub(super) fn groups(&self, shard: Option<Shard>) -> Vec<String> {
        let state = self.lock();
        state
            .groups
            .keys()
            .filter(|g| shard.is_none_or(|s| self.config.shard_of(Some(g)) == s))
            .cloned()
            .collect()
    }
}

impl Drop for Interest {
    fn drop(&mut self) {
        let mut state = self.table.lock();
        for group in &self.groups {
            if let Some(count) = state.groups.get_mut(group) {
                *count -= 1;
                if *count == 0 {
                    state.groups.remove(group);
                }
            }
        }
        let shards: Vec<Shard> = self.table.shards_of(&self.groups).collect();
        for shard in shards {
            if let Some(count) = state.shards.get_mut(&shard) {
                *count -= 1;
                if *count == 0 {
                    state.shards.remove(&shard);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_new_shard_waits_for_the_consumer_and_a_dropped_one_is_released() {
        let table = Arc::new(Table::new(Arc::new(StreamsConfig::default())));
        let groups = vec!["w1".to_owned()];
        let waiting = tokio::spawn({
            let table = Arc::clone(&table);
            let groups = groups.clone();
            async move { table.register(&groups).await }
        });
        while !table.has_waiting() {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished());
        let (active, waiters) = table.take();
        assert!(active.contains(&Shard::Global));
        assert_eq!(active.len(), 2);
        for waiter in waiters {
            let _ = waiter.send(());
        }
        let first = waiting.await.expect("registered");
        // The shards are taken: a second socket does not wait.
        let second = table.register(&groups).await;
        assert_eq!(table.groups(None), groups);
        drop(first);
        drop(second);
        let (active, _) = table.take();
        assert!(active.is_empty(), "{active:?}");
        assert!(table.groups(None).is_empty());
    }
}
