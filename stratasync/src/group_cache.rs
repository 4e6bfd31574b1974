//! Each user's groups, kept by the node between requests (PROTOCOL §2).
//!
//! A request's groups are the application's
//! [`Auth::resolve_groups`](crate::Auth::resolve_groups), the user's rows in
//! `sync_group_memberships` (a database round trip) and the personal group.
//! The node keeps that answer per user, for the token it was resolved for,
//! and answers the user's next requests from it:
//!
//! - **Memberships changed by the server** ([`SyncServer::add_member`],
//!   [`SyncServer::remove_member`], the CLI's `members`) append a `G` action
//!   to the user's personal group. The node that made the change forgets the
//!   user at once; every node forgets them when its log tailer (or, with the
//!   streams of several nodes, its stream consumer) hands that action to the
//!   node's bus, before it answers the user's next request. While it keeps a
//!   user, a node of several reads the shard of the user's personal group, so
//!   that the action reaches it; a node that cannot start reading it at
//!   once (Redis away) keeps nothing for that user.
//! - **Memberships written through the node's own store**
//!   ([`Store::add_member`], [`Store::remove_member`], which append no `G`
//!   action): the node starts afresh, for every user, at its next request.
//! - **Everything else** (what `resolve_groups` answers, memberships written
//!   with SQL or by another node's store without a `G` action) is kept at
//!   most [`Limits::group_cache_ttl`] (5 s by default).
//! - **Another token** of the user is resolved afresh: a JWT's groups claim
//!   belongs to its token.
//! - **At most [`Limits::group_cache_entries`] users** are kept (10,000 by
//!   default); past it the oldest entry goes first.
//!
//! Live sockets resolve their groups themselves, at subscribe and on each
//! `G` action and token re-check; they do not read this cache.
//!
//! [`SyncServer::add_member`]: crate::SyncServer::add_member
//! [`SyncServer::remove_member`]: crate::SyncServer::remove_member
//! [`Limits::group_cache_ttl`]: crate::Limits::group_cache_ttl
//! [`Limits::group_cache_entries`]: crate::Limits::group_cache_entries
//! [`Store::add_member`]: stratasync_diesel::Store::add_member
//! [`Store::remove_member`]: stratasync_diesel::Store::remove_member

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use stratasync_core::ActionKind;
use stratasync_diesel::Store;
use tokio::sync::broadcast::{self, error::TryRecvError};
use tokio::sync::watch;

use crate::auth::{AuthorizeError, Caller, DynAuth, caller_groups};
use crate::fanout::{Fanout, Interest, LiveAction};

/// What [`authorize`] reads: the node's auth, store, cache of groups and
/// fan-out (whose bus tells the cache of membership changes).
pub(crate) struct Authorizer<'a> {
    pub(crate) auth: &'a Arc<dyn DynAuth>,
    pub(crate) store: &'a Store,
    pub(crate) groups: &'a GroupCache,
    pub(crate) fanout: &'a Fanout,
}

/// Verifies `token` and gathers the caller's groups: those the node keeps
/// for the user and token, or resolved and then kept.
pub(crate) async fn authorize(node: Authorizer<'_>, token: &str) -> Result<Caller, AuthorizeError> {
    let user = node.auth.verify_token(token).await?;
    let miss = match node
        .groups
        .get(&user.user_id, token, node.store.member_writes())
    {
        Ok(groups) => return Ok(Caller { user, groups }),
        Err(miss) => miss,
    };
    // The personal group's `G` actions reach the bus before the memberships
    // are read, so a change after the read forgets what is kept here. With
    // the streams, a shard the node does not read yet waits for its stream
    // consumer; past a short wait (Redis away) the groups are not kept.
    let interest = tokio::time::timeout(
        INTEREST_WAIT,
        node.fanout.interest(std::slice::from_ref(&user.user_id)),
    )
    .await;
    let groups = caller_groups(node.auth, node.store, &user).await?;
    if let Ok(interest) = interest {
        let member_writes = node.store.member_writes();
        node.groups
            .keep(miss, member_writes, (&user.user_id, &groups), interest);
    }
    Ok(Caller { user, groups })
}

/// How long a request waits for the node to read the shard of its user's
/// personal group (the streams of several nodes) before it is answered
/// without keeping its groups.
const INTEREST_WAIT: Duration = Duration::from_millis(100);

/// The users' groups one node keeps; each entry holds an `H` while it lives
/// (the [`Interest`] that keeps its user's personal group on the bus).
pub(crate) struct GroupCache<H = Interest> {
    /// How long an entry answers.
    ttl: Duration,
    /// Users kept at most.
    capacity: usize,
    /// Keys of the token fingerprints, random per node.
    keys: [RandomState; 2],
    /// Set once the node shuts down: its bus carries nothing from then on,
    /// so nothing is answered from the cache.
    shutdown: watch::Receiver<bool>,
    state: Mutex<State<H>>,
}

/// A token, by two keyed hashes: the cache keeps no token.
type Fingerprint = [u64; 2];

struct State<H> {
    /// The node's bus, read up to its end before every answer.
    bus: broadcast::Receiver<Arc<LiveAction>>,
    /// Bumped whenever a user is forgotten: groups resolved before that are
    /// not kept.
    generation: u64,
    /// The store's [`member_writes`](stratasync_diesel::Store::member_writes)
    /// when the entries were last checked against it.
    member_writes: u64,
    entries: HashMap<String, Entry<H>>,
    /// The users in the order their entries were made, and so expire, each
    /// with its entry's stamp; a record whose stamp is not its user's entry's
    /// is left from a forgotten or replaced entry.
    order: VecDeque<(u64, String)>,
    next_stamp: u64,
}

struct Entry<H> {
    token: Fingerprint,
    groups: Vec<String>,
    made: Instant,
    stamp: u64,
    _held: H,
}

/// A miss: what [`GroupCache::keep`] needs to keep the groups resolved
/// after it.
#[derive(Debug)]
pub(crate) struct Miss {
    generation: u64,
    fingerprint: Fingerprint,
}

impl<H> GroupCache<H> {
    /// A cache fed by `bus` (a receiver of the node's fan-out bus), keeping
    /// `capacity` users for `ttl` each.
    pub(crate) fn new(
        bus: broadcast::Receiver<Arc<LiveAction>>,
        shutdown: watch::Receiver<bool>,
        capacity: usize,
        ttl: Duration,
    ) -> Self {
        GroupCache {
            ttl,
            capacity: capacity.max(1),
            keys: [RandomState::new(), RandomState::new()],
            shutdown,
            state: Mutex::new(State {
                bus,
                generation: 0,
                member_writes: 0,
                entries: HashMap::new(),
                order: VecDeque::new(),
                next_stamp: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<H>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The groups kept for `user_id` with `token`, or the [`Miss`] to
    /// resolve them with; `member_writes` is the store's count now.
    pub(crate) fn get(
        &self,
        user_id: &str,
        token: &str,
        member_writes: u64,
    ) -> Result<Vec<String>, Miss> {
        let fingerprint = self.keys.each_ref().map(|key| key.hash_one(token));
        let mut state = self.lock();
        state.catch_up(member_writes);
        let miss = Miss {
            generation: state.generation,
            fingerprint,
        };
        if *self.shutdown.borrow() {
            return Err(miss);
        }
        match state.entries.get(user_id) {
            Some(entry) if entry.token == fingerprint && entry.made.elapsed() < self.ttl => {
                Ok(entry.groups.clone())
            }
            _ => Err(miss),
        }
    }

    /// Keeps `groups`, resolved for `user_id` after `miss`, unless a user
    /// was forgotten since; the entry holds `held` for as long as it lives.
    /// `member_writes` is the store's count now.
    pub(crate) fn keep(
        &self,
        miss: Miss,
        member_writes: u64,
        (user_id, groups): (&str, &[String]),
        held: H,
    ) {
        let mut state = self.lock();
        state.catch_up(member_writes);
        if state.generation != miss.generation || *self.shutdown.borrow() {
            return;
        }
        let now = Instant::now();
        state.make_room(now, self.ttl, self.capacity);
        let stamp = state.next_stamp;
        state.next_stamp += 1;
        state.order.push_back((stamp, user_id.to_owned()));
        state.entries.insert(
            user_id.to_owned(),
            Entry {
                token: miss.fingerprint,
                groups: groups.to_vec(),
                made: now,
                stamp,
                _held: held,
            },
        );
    }

    /// Forgets `user_id`'s groups (their memberships changed on this node).
    pub(crate) fn forget(&self, user_id: &str) {
        self.lock().forget(user_id);
    }

    /// Users kept now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

impl<H> State<H> {
    /// Forgets the user of every `G` action the bus carried since the last
    /// read; everyone when this reader fell behind the bus, or when the
    /// store wrote memberships since.
    fn catch_up(&mut self, member_writes: u64) {
        if member_writes != self.member_writes {
            self.member_writes = member_writes;
            self.forget_everyone();
        }
        loop {
            match self.bus.try_recv() {
                Ok(live) => {
                    if live.action.action == ActionKind::GroupsChanged.letter() {
                        self.forget(&live.action.model_id);
                    }
                }
                Err(TryRecvError::Lagged(_)) => self.forget_everyone(),
                Err(TryRecvError::Empty | TryRecvError::Closed) => return,
            }
        }
    }

    fn forget(&mut self, user_id: &str) {
        self.generation += 1;
        self.entries.remove(user_id);
    }

    fn forget_everyone(&mut self) {
        self.generation += 1;
        self.entries.clear();
        self.order.clear();
    }

    /// Drops expired entries, then the oldest ones until one more fits.
    fn make_room(&mut self, now: Instant, ttl: Duration, capacity: usize) {
        if self.order.len() > 2 * capacity {
            let entries = &self.entries;
            self.order.retain(|(stamp, user)| {
                entries.get(user).is_some_and(|entry| entry.stamp == *stamp)
            });
        }
        while let Some((stamp, user)) = self.order.front() {
            let drop_it = match self.entries.get(user) {
                Some(entry) if entry.stamp == *stamp => {
                    if now.duration_since(entry.made) >= ttl || self.entries.len() >= capacity {
                        Some(user.clone())
                    } else {
                        break;
                    }
                }
                _ => None,
            };
            self.order.pop_front();
            if let Some(user) = drop_it {
                self.entries.remove(&user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;
    use stratasync_core::{SyncAction, SyncId};

    use super::*;

    fn cache(
        capacity: usize,
        ttl: Duration,
    ) -> (GroupCache<()>, broadcast::Sender<Arc<LiveAction>>) {
        let (bus, receiver) = broadcast::channel(4);
        let (_, shutdown) = watch::channel(false);
        (GroupCache::new(receiver, shutdown, capacity, ttl), bus)
    }

    fn groups(user: &str) -> Vec<String> {
        vec!["w1".to_owned(), user.to_owned()]
    }

    /// Resolves `user` (a miss) and keeps the answer.
    fn fill(cache: &GroupCache<()>, user: &str, token: &str) {
        let miss = cache.get(user, token, 0).expect_err("a miss");
        cache.keep(miss, 0, (user, &groups(user)), ());
    }

    fn action(user: &str, letter: &str) -> Arc<LiveAction> {
        Arc::new(LiveAction::new(SyncAction {
            id: SyncId::new(1),
            model: "SyncGroups".to_owned(),
            model_id: user.to_owned(),
            action: letter.to_owned(),
            data: RawValue::NULL.to_owned(),
            group_id: Some(user.to_owned()),
            client_id: None,
            client_tx_id: None,
            created_at: chrono::Utc::now(),
        }))
    }

    #[test]
    fn a_kept_user_is_answered_for_the_same_token_only() {
        let (cache, _bus) = cache(8, Duration::from_secs(60));
        fill(&cache, "u1", "token-a");
        assert_eq!(cache.get("u1", "token-a", 0).expect("a hit"), groups("u1"));
        assert!(cache.get("u1", "token-b", 0).is_err(), "another token");
        assert!(cache.get("u2", "token-a", 0).is_err(), "another user");
    }

    #[test]
    fn a_g_action_on_the_bus_forgets_its_user_only() {
        let (cache, bus) = cache(8, Duration::from_secs(60));
        fill(&cache, "u1", "t1");
        fill(&cache, "u2", "t2");
        bus.send(action("u1", "U")).expect("sent");
        assert!(cache.get("u1", "t1", 0).is_ok(), "not a G action");
        bus.send(action("u1", "G")).expect("sent");
        assert!(cache.get("u1", "t1", 0).is_err(), "forgotten");
        assert!(cache.get("u2", "t2", 0).is_ok(), "another user is kept");
    }

    #[test]
    fn groups_resolved_across_a_forget_are_not_kept() {
        let (cache, bus) = cache(8, Duration::from_secs(60));
        let miss = cache.get("u1", "t1", 0).expect_err("a miss");
        // The membership changes while the groups are being resolved.
        bus.send(action("u1", "G")).expect("sent");
        cache.keep(miss, 0, ("u1", &groups("u1")), ());
        assert!(cache.get("u1", "t1", 0).is_err(), "a stale answer was kept");
        let miss = cache.get("u1", "t1", 0).expect_err("a miss");
        cache.forget("u1");
        cache.keep(miss, 0, ("u1", &groups("u1")), ());
        assert!(cache.get("u1", "t1", 0).is_err(), "a stale answer was kept");
    }

    #[test]
    fn a_membership_the_store_wrote_forgets_everyone() {
        let (cache, _bus) = cache(8, Duration::from_secs(60));
        fill(&cache, "u1", "t1");
        assert!(cache.get("u1", "t1", 0).is_ok());
        assert!(cache.get("u1", "t1", 1).is_err());
        // Resolved before the write: not kept.
        let miss = cache.get("u2", "t2", 1).expect_err("a miss");
        cache.keep(miss, 2, ("u2", &groups("u2")), ());
        assert!(cache.get("u2", "t2", 2).is_err());
    }

    #[test]
    fn a_lagging_reader_forgets_everyone() {
        let (cache, bus) = cache(8, Duration::from_secs(60));
        fill(&cache, "u1", "t1");
        for _ in 0..10 {
            bus.send(action("other", "U")).expect("sent");
        }
        assert!(cache.get("u1", "t1", 0).is_err());
    }

    #[test]
    fn entries_expire() {
        let (cache, _bus) = cache(8, Duration::from_millis(1));
        fill(&cache, "u1", "t1");
        std::thread::sleep(Duration::from_millis(5));
        assert!(cache.get("u1", "t1", 0).is_err());
    }

    #[test]
    fn the_oldest_entry_goes_past_the_capacity() {
        let (cache, _bus) = cache(3, Duration::from_secs(60));
        for user in ["u1", "u2", "u3", "u4"] {
            fill(&cache, user, "t");
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.get("u1", "t", 0).is_err(), "the oldest went");
        assert!(cache.get("u4", "t", 0).is_ok());
        // Forgotten and refilled entries leave records behind; they stay bounded.
        for _ in 0..100 {
            cache.forget("u4");
            fill(&cache, "u4", "t");
        }
        assert!(cache.lock().order.len() <= 2 * 3 + 1);
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn nothing_is_answered_after_shutdown() {
        let (bus, receiver) = broadcast::channel::<Arc<LiveAction>>(4);
        let (stop, shutdown) = watch::channel(false);
        let cache = GroupCache::<()>::new(receiver, shutdown, 8, Duration::from_secs(60));
        fill(&cache, "u1", "t1");
        stop.send_replace(true);
        assert!(cache.get("u1", "t1", 0).is_err());
        drop(bus);
    }
}
