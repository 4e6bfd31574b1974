//! The write path: a client mutation becomes a row change and its action in
//! the log, in one transaction, exactly once per idempotency key.
//!
//! Every transaction here is a [`scope::Scope`] on a [`scope::Leased`]
//! connection (see that module for why none can be left open). One mutation
//! runs alone on the single path ([`apply_alone`]); on PostgreSQL concurrent
//! mutations share a transaction through the [`group`] commit. On both paths
//! a database error is sorted by [`crate::error::classify`]:
//!
//! - the client's data (classes 22 and 23): a rejection of that mutation;
//! - a deadlock or serialization failure: retried here, at most
//!   [`ATTEMPTS`] times, before anything is answered;
//! - a lost connection: the connection is discarded and the mutation is run
//!   again on a fresh one (deduplication makes that safe), else answered
//!   with an error the client retries;
//! - anything else: an error for that mutation alone.
//!
//! Nothing is answered `Ok` before its transaction has committed.

#[cfg(feature = "postgres")]
pub(crate) mod group;
pub(crate) mod scope;
pub(crate) mod writer;

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use stratasync_core::{ActionKind, FilterContext, JsonMap, SyncAction, SyncId};

use crate::error::{Fault, classify};
use crate::log::{NewAction, TxKey, to_sync_action};
use crate::mutate::{Change, Mutation};
use crate::registry::RegisteredModel;
use crate::{MutationError, Settled, StoreConn, StoreError};
use scope::{Leased, Scope};

/// How many times a transaction is tried when it deadlocks, fails to
/// serialize or loses its connection.
pub(crate) const ATTEMPTS: u32 = 3;

/// The outcome of an applied (or already applied) mutation.
#[derive(Debug, Clone)]
pub enum Applied {
    /// Newly applied; the action was appended to the log.
    New(SyncAction),
    /// The same client transaction was applied before, as this action id.
    Duplicate(SyncId),
    /// Nothing was applied: a committed delete had settled the row (or a row
    /// its payload references) first. A delete of the row was appended with
    /// the mutation's idempotency key, so the client's transaction settles
    /// in log order, by its own delta (docs/protocol.md, "Moot writes").
    Moot {
        /// The delete appended for the mutation.
        action: SyncAction,
        /// For the client: which delete settled the row.
        warning: String,
    },
}

impl Applied {
    /// The sync id of the action.
    pub fn sync_id(&self) -> SyncId {
        match self {
            Applied::New(action) | Applied::Moot { action, .. } => action.id,
            Applied::Duplicate(id) => *id,
        }
    }
}

/// The outcome of one mutation.
pub(crate) type Outcome = Result<Applied, MutationError>;

/// The idempotency key of `mutation` sent by the caller of `ctx`.
pub(crate) fn key<'a>(ctx: &'a FilterContext, mutation: &'a Mutation) -> TxKey<'a> {
    TxKey {
        user_id: &ctx.user_id,
        client_id: &mutation.client_id,
        client_tx_id: &mutation.client_tx_id,
    }
}

/// Whether an attempt that failed with `error` is worth another one.
fn retryable(error: &MutationError) -> bool {
    match error {
        MutationError::Store(StoreError::Query(error)) => {
            matches!(classify(error), Fault::Conflict | Fault::Broken)
        }
        _ => false,
    }
}

/// Whether a first attempt failed because the composite pair it links was
/// linked by a concurrent transaction: applied again, now that the link is
/// committed, it relinks the pair (docs/protocol.md, "Relinks").
fn lost_a_link_race(model: &RegisteredModel, error: &MutationError, attempt: u32) -> bool {
    attempt == 1 && model.meta().composite && error.is_already_exists()
}

/// A short pause before attempt `attempt` + 1, growing with each attempt.
pub(crate) async fn back_off(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt * attempt))).await;
}

/// Applies one registered, supported mutation in its own transaction on a
/// connection of `pool`, retrying conflicts and lost connections.
pub(crate) async fn apply_alone<C: StoreConn>(
    pool: &C::Pool,
    model: &RegisteredModel,
    ctx: &FilterContext,
    mutation: &Mutation,
) -> Outcome {
    let mut attempt = 1;
    loop {
        let mut conn = Leased::<C>::get(pool).await?;
        let outcome = apply_on(conn.conn(), model, ctx, mutation).await;
        match outcome {
            Err(error)
                if attempt < ATTEMPTS
                    && (retryable(&error) || lost_a_link_race(model, &error, attempt)) =>
            {
                tracing::debug!(%error, attempt, "mutation retried");
                drop(conn);
                back_off(attempt).await;
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

/// Applies one mutation in its own transaction on `conn`: deduplicates,
/// applies, appends, commits. A moot mutation is rolled back (a hook may
/// have written) and its delete logged in a transaction of its own.
///
/// A concurrent duplicate (the same key, applied by another transaction
/// meanwhile) waits on the row the first one wrote and then fails to append
/// on the log's unique key: it is rolled back and answered with the first
/// one's id.
pub(crate) async fn apply_on<C: StoreConn>(
    conn: &mut C,
    model: &RegisteredModel,
    ctx: &FilterContext,
    mutation: &Mutation,
) -> Outcome {
    let key = key(ctx, mutation);
    if let Some(id) = conn.find_client_tx(key).await.map_err(StoreError::from)? {
        return Ok(Applied::Duplicate(id));
    }
    let mut tx = Scope::begin(&mut *conn).await?;
    let outcome = apply_and_append(tx.conn(), model, ctx, mutation).await;
    let outcome = match tx.finish(outcome).await {
        Err(moot) if moot.settled().is_some() => {
            let mut tx = Scope::begin(&mut *conn).await?;
            let outcome = log_moot(tx.conn(), model, ctx, mutation, moot).await;
            tx.finish(outcome).await
        }
        outcome => outcome,
    };
    match outcome {
        // A concurrent duplicate that won the race leaves its id behind.
        Err(error) if !scope::is_dirty(conn) => match conn.find_client_tx(key).await {
            Ok(Some(id)) => Ok(Applied::Duplicate(id)),
            _ => Err(error),
        },
        outcome => outcome,
    }
}

/// Inside an open transaction: appends the delete of a moot mutation.
async fn log_moot<C: StoreConn>(
    conn: &mut C,
    model: &RegisteredModel,
    ctx: &FilterContext,
    mutation: &Mutation,
    moot: MutationError,
) -> Outcome {
    let Some(settled) = moot.settled() else {
        return Err(moot);
    };
    conn.lock_append_order().await.map_err(StoreError::from)?;
    Ok(append_moot(conn, model, ctx, mutation, settled, moot.to_string()).await?)
}

/// Appends the delete that answers a moot mutation (the append lock is
/// held): the row the mutation names, in the group of the delete that
/// settled it, with the mutation's key. Nothing else is written, so the log
/// says what the table holds: the row is gone.
///
/// Only while the row is still gone: when a transaction that committed
/// after the mutation looked wrote the row again (its latest action is no
/// longer a delete), the mutation is no longer moot, and the error is a
/// serialization failure, so that the caller runs it again and it writes
/// the row.
pub(crate) async fn append_moot<C: StoreConn>(
    conn: &mut C,
    model: &RegisteredModel,
    ctx: &FilterContext,
    mutation: &Mutation,
    settled: &Settled,
    warning: String,
) -> Result<Applied, StoreError> {
    let model_id = model
        .row_id(mutation)
        .unwrap_or_else(|| mutation.model_id.clone());
    let last = conn.last_action_on(&mutation.model, &model_id).await?;
    if last.is_some_and(|last| last.action != ActionKind::Delete.letter()) {
        return Err(StoreError::Query(raced()));
    }
    let action = NewAction {
        model: &mutation.model,
        model_id: &model_id,
        action: ActionKind::Delete.letter(),
        data: Value::Object(JsonMap::new()),
        group_id: settled.group_id.as_deref(),
        key: Some(key(ctx, mutation)),
        answers_retries: true,
    };
    let (id, created_at) = conn.append(&action).await?;
    Ok(Applied::Moot {
        action: to_sync_action(&action, id, created_at),
        warning,
    })
}

/// The error of a moot mutation whose row was written again before its
/// delete could be logged: a serialization failure, which the write path
/// answers by running the mutation again.
fn raced() -> diesel::result::Error {
    diesel::result::Error::DatabaseError(
        diesel::result::DatabaseErrorKind::SerializationFailure,
        Box::new(String::from(
            "a moot mutation's row was written again before its delete was logged",
        )),
    )
}

/// Inside an open transaction: applies the mutation and appends its action
/// in commit order.
async fn apply_and_append<C: StoreConn>(
    conn: &mut C,
    model: &RegisteredModel,
    ctx: &FilterContext,
    mutation: &Mutation,
) -> Outcome {
    // A refusal rolls the whole transaction back, hooks' writes included.
    let change = C::ops(model)
        .apply(conn, mutation, ctx, Utc::now(), &mut false)
        .await?;
    conn.lock_append_order().await.map_err(StoreError::from)?;
    Ok(append_change(conn, ctx, mutation, change).await?)
}

/// Appends the actions of an applied `mutation` (the append lock is held)
/// and answers it with the last ([`actions_of`]).
pub(crate) async fn append_change<C: StoreConn>(
    conn: &mut C,
    ctx: &FilterContext,
    mutation: &Mutation,
    mut change: Change,
) -> Result<Applied, StoreError> {
    let (left, answer) = actions_of(ctx, mutation, &mut change);
    if let Some(left) = left {
        conn.append(&left).await?;
    }
    let (id, created_at) = conn.append(&answer).await?;
    Ok(Applied::New(to_sync_action(&answer, id, created_at)))
}

/// The actions an applied `mutation` appends, in this order: for a move,
/// the delete in the group the row left; then its own action (for a move,
/// the insert in the new group), the one answered, now and to retries. The
/// change's data moves into them.
pub(crate) fn actions_of<'a>(
    ctx: &'a FilterContext,
    mutation: &'a Mutation,
    change: &'a mut Change,
) -> (Option<NewAction<'a>>, NewAction<'a>) {
    let left = change.left.as_mut().map(|left| {
        let data = std::mem::take(&mut left.data);
        NewAction {
            model: &mutation.model,
            model_id: &change.model_id,
            action: ActionKind::Delete.letter(),
            data,
            group_id: Some(&left.group_id),
            key: Some(key(ctx, mutation)),
            answers_retries: false,
        }
    });
    let own = NewAction {
        model: &mutation.model,
        model_id: &change.model_id,
        action: change.action.letter(),
        data: std::mem::take(&mut change.data),
        group_id: change.group_id.as_deref(),
        key: Some(key(ctx, mutation)),
        answers_retries: true,
    };
    (left, own)
}
