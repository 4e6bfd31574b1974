//! Memberships cached per user, so that a request does not pay a round trip
//! for its caller's groups.
//!
//! An entry is dropped when the membership changes:
//!
//! - on this node, by the store's own membership writes, once they are
//!   done ([`Store::add_member`](crate::Store::add_member),
//!   [`Store::remove_member`](crate::Store::remove_member),
//!   [`Store::change_membership`](crate::Store::change_membership));
//! - on every node, when its log tailer reads the user's `G` action
//!   ([`Store::forget_member_groups`](crate::Store::forget_member_groups));
//! - after [`TTL`] in any case, which bounds how long a membership written
//!   by other means (SQL by hand, another node's store without a `G`
//!   action) goes unseen.
//!
//! A read that began before a change must not cache what it read after the
//! change dropped the entry: every drop bumps an epoch, and a read caches
//! its result only when no drop happened while it ran.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an entry is used at most.
pub(crate) const TTL: Duration = Duration::from_secs(2);

/// Entries kept at most; past it, expired ones go, then all.
const CAPACITY: usize = 65_536;

/// A user's cached memberships.
struct Entry {
    groups: Vec<String>,
    loaded: Instant,
}

/// The entries and the epoch, under one lock.
#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Bumped by every drop.
    epoch: u64,
}

/// The cache; see the module documentation.
#[derive(Default)]
pub(crate) struct MemberCache {
    inner: Mutex<Inner>,
}

impl MemberCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached groups of `user_id`, when fresh; else the epoch to hand
    /// to [`MemberCache::insert`] with what the database answers.
    pub(crate) fn get(&self, user_id: &str) -> Result<Vec<String>, u64> {
        let inner = self.lock();
        match inner.entries.get(user_id) {
            Some(entry) if entry.loaded.elapsed() < TTL => Ok(entry.groups.clone()),
            _ => Err(inner.epoch),
        }
    }

    /// Caches `groups`, read for `user_id` since [`MemberCache::get`]
    /// answered `epoch`, unless an entry was dropped meanwhile.
    pub(crate) fn insert(&self, user_id: &str, groups: &[String], epoch: u64) {
        let mut inner = self.lock();
        if inner.epoch != epoch {
            return;
        }
        if inner.entries.len() >= CAPACITY {
            inner
                .entries
                .retain(|_, entry| entry.loaded.elapsed() < TTL);
            if inner.entries.len() >= CAPACITY {
                inner.entries.clear();
            }
        }
        inner.entries.insert(
            user_id.to_owned(),
            Entry {
                groups: groups.to_vec(),
                loaded: Instant::now(),
            },
        );
    }

    /// Drops the entry of `user_id`.
    pub(crate) fn forget(&self, user_id: &str) {
        let mut inner = self.lock();
        inner.epoch += 1;
        inner.entries.remove(user_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_overlapped_a_change_is_not_cached() {
        let cache = MemberCache::default();
        let epoch = cache.get("u").unwrap_err();
        cache.forget("u");
        cache.insert("u", &["old".to_owned()], epoch);
        assert!(cache.get("u").is_err());

        let epoch = cache.get("u").unwrap_err();
        cache.insert("u", &["w1".to_owned()], epoch);
        assert_eq!(cache.get("u"), Ok(vec!["w1".to_owned()]));
        cache.forget("u");
        assert!(cache.get("u").is_err());
    }
}
