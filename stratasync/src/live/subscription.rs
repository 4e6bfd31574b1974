//! A subscribed socket's state, and the delivery of one action to it.

use axum::extract::ws::Utf8Bytes;
use stratasync_core::{ActionKind, SyncAction, SyncId};

use super::outbox::{Outbox, SendError};
use super::receiver::BusReceiver;
use crate::auth::{AuthUser, Caller, caller_groups};
use crate::fanout::{self, bus::visible};
use crate::state::Shared;

/// A subscribed socket's state.
pub(crate) struct Subscription {
    /// The token of the subscribe, re-checked periodically.
    pub(crate) token: String,
    /// Who subscribed.
    pub(crate) user: AuthUser,
    /// The groups the subscribe named (`None`: all the user holds).
    pub(crate) requested: Option<Vec<String>>,
    /// The effective groups.
    pub(crate) groups: Vec<String>,
    /// The last action delivered.
    pub(crate) cursor: SyncId,
    /// The memory bus.
    pub(crate) rx: BusReceiver,
    /// Keeps the node reading the streams of `groups` (several nodes).
    _interest: fanout::Interest,
    /// Counts this subscription in the metrics while it lives.
    _counted: crate::metrics::Held,
    /// Counts the deltas it delivers.
    delivered: metrics::Counter,
}

/// What [`Subscription::deliver`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivered {
    /// Not above the cursor, or not visible.
    Skipped,
    /// Sent; the cursor advanced.
    Sent,
    /// Sent, and it changed the socket's groups.
    Regrouped,
}

impl Subscription {
    /// A subscription of `user` (with `token`) to `groups` of those it
    /// `requested`, delivering from `cursor` on what `rx` receives, while
    /// `interest` keeps the node reading the groups' streams.
    pub(crate) fn new(
        token: String,
        user: AuthUser,
        requested: Option<Vec<String>>,
        groups: Vec<String>,
        cursor: SyncId,
        rx: BusReceiver,
        interest: fanout::Interest,
    ) -> Subscription {
        Subscription {
            token,
            user,
            requested,
            groups,
            cursor,
            rx,
            _interest: interest,
            _counted: crate::metrics::Held::subscription(),
            delivered: crate::metrics::deltas_delivered(),
        }
    }

    /// Sends `action` if it is above the cursor and visible, advancing the
    /// cursor. A `G` action of this user re-reads the user's groups, so that
    /// a new group's deltas start, and a removed group's stop, at that point
    /// of the log on every node.
    pub(crate) async fn deliver(
        &mut self,
        shared: &Shared,
        outbox: &mut Outbox,
        action: &SyncAction,
        frame: impl FnOnce() -> Utf8Bytes,
    ) -> Result<Delivered, SendError> {
        if action.id <= self.cursor || !visible(action, &self.groups) {
            return Ok(Delivered::Skipped);
        }
        outbox.send(frame()).await?;
        self.delivered.increment(1);
        self.cursor = action.id;
        if action.action == ActionKind::GroupsChanged.letter()
            && action.group_id.as_deref() == Some(self.user.user_id.as_str())
        {
            return Ok(if Box::pin(self.regroup(shared)).await {
                Delivered::Regrouped
            } else {
                Delivered::Sent
            });
        }
        Ok(Delivered::Sent)
    }

    /// Re-reads the groups the user holds; returns whether the effective
    /// groups changed. A subscribe that named groups never widens past them.
    async fn regroup(&mut self, shared: &Shared) -> bool {
        match caller_groups(&shared.auth, &shared.store, &self.user).await {
            Ok(held) => {
                let caller = Caller {
                    user: self.user.clone(),
                    groups: held,
                };
                let groups = caller.effective_groups(self.requested.as_deref());
                let changed = groups != self.groups;
                if changed {
                    tracing::info!(?groups, "groups changed");
                    self._interest = shared.fanout.interest(&groups).await;
                }
                self.groups = groups;
                changed
            }
            Err(error) => {
                tracing::warn!(%error, "re-reading the user's groups failed; keeping the current ones");
                false
            }
        }
    }
}
