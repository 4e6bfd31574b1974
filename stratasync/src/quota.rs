//! Per-user fairness: how many bootstraps and sockets one user holds at once.
//!
//! A [`Quota`] counts what each user holds; [`Quota::take`] hands out a
//! [`Held`] that gives its unit back when dropped, so a request or socket
//! that ends in any way frees its place.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Per-user counts of one resource, each at most a limit.
#[derive(Debug, Clone)]
pub(crate) struct Quota {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: usize,
    held: Mutex<HashMap<String, usize>>,
}

/// One unit of a user's quota; returned when dropped.
#[derive(Debug)]
pub(crate) struct Held {
    inner: Arc<Inner>,
    user: String,
}

impl Quota {
    /// At most `limit` units per user.
    pub(crate) fn new(limit: usize) -> Self {
        Quota {
            inner: Arc::new(Inner {
                limit,
                held: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The limit.
    pub(crate) fn limit(&self) -> usize {
        self.inner.limit
    }

    /// A unit for `user`, or `None` when they hold the limit already.
    pub(crate) fn take(&self, user: &str) -> Option<Held> {
        let mut held = self
            .inner
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = held.entry(user.to_owned()).or_insert(0);
        if *count >= self.inner.limit {
            return None;
        }
        *count += 1;
        Some(Held {
            inner: Arc::clone(&self.inner),
            user: user.to_owned(),
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self
            .inner
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_holds_at_most_the_limit_and_drops_give_back() {
        let quota = Quota::new(2);
        let a = quota.take("ann").expect("first");
        let _b = quota.take("ann").expect("second");
        assert!(quota.take("ann").is_none(), "third is over the limit");
        assert!(quota.take("bob").is_some(), "other users are not affected");
        drop(a);
        assert!(quota.take("ann").is_some(), "a dropped unit is free again");
    }
}
