//! Group commit on PostgreSQL: concurrent mutations share one database
//! transaction and one ordered append.
//!
//! Ids must become visible in id order, so appends are serialized by a lock
//! held until commit. Committing one mutation at a time under that lock caps
//! throughput at one commit (one WAL flush) per mutation. Here, mutations
//! that arrive while others are being committed wait in a queue; a worker
//! takes what has queued (up to [`MAX_GROUP`]) and runs it in one
//! transaction:
//!
//! 1. the idempotency keys of the whole group looked up in one query;
//!    then each mutation checked and applied. An update whose references
//!    are checked after the write runs in its own savepoint: when it fails
//!    (a rejection, a value the database refuses) it is rolled back to its
//!    savepoint and answered alone, and the rest of the group goes on. Any
//!    other mutation refuses before writing, so it needs no savepoint: a
//!    refusal is answered alone, and a statement the database refuses
//!    (which aborts the transaction) fails the whole group. So does a
//!    refusal after one of the model's hooks ran (the hook may have
//!    written): hooks that refuse are rare, and a savepoint around every
//!    hooked mutation cost two round trips each;
//! 2. then the append lock, and the actions of every applied mutation
//!    appended in queue order, in one statement (a moot mutation's delete
//!    on its own, in its turn);
//! 3. one commit; only then is anything answered.
//!
//! When the group as a whole fails, nothing of it was committed. A deadlock
//! or serialization failure reruns the group, at most
//! [`ATTEMPTS`](super::ATTEMPTS) times; a lost connection, a statement
//! refused outside a savepoint, or conflicts past that, runs each mutation
//! alone on the single path (each in its own transaction), on a fresh connection
//! (deduplication answers any that did commit before the connection
//! dropped).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel_async::pooled_connection::deadpool::Pool;
use stratasync_core::{ActionKind, FilterContext, SyncId};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::scope::{Leased, Scope};
use super::{ATTEMPTS, Applied, Outcome, actions_of, append_moot, apply_alone, back_off, key};
use crate::error::{Fault, classify};
use crate::log::{LogConn, TxKey, append_all, to_sync_action};
use crate::mutate::{Change, Mutation};
use crate::registry::{RegisteredModel, Registry};
use crate::{MutationError, PgConn, Settled, StoreConn, StoreError};

/// Mutations one group transaction carries at most.
pub(crate) const MAX_GROUP: usize = 64;

/// Workers committing groups concurrently (their applies overlap; their
/// appends and commits take turns).
pub(crate) const WORKERS: usize = 4;

/// Mutations of one request, queued together, and where their outcomes go.
/// A job is never split across groups, so its mutations apply in order.
pub(crate) struct Job {
    pub(crate) ctx: FilterContext,
    pub(crate) mutations: Vec<Mutation>,
    pub(crate) reply: oneshot::Sender<Vec<Outcome>>,
}

/// The queue in front of the workers.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the workers on `pool`.
    pub(crate) fn start(pool: Pool<PgConn>, registry: Arc<Registry>) -> GroupCommit {
        let (queue, jobs) = mpsc::channel(MAX_GROUP * WORKERS * 4);
        let jobs = Arc::new(Mutex::new(jobs));
        for _ in 0..WORKERS {
            tokio::spawn(work(pool.clone(), Arc::clone(&registry), Arc::clone(&jobs)));
        }
        GroupCommit { queue }
    }

    /// Queues `mutations` (applied in order, in one group) and waits for
    /// their outcomes, in the same order.
    pub(crate) async fn submit(
        &self,
        ctx: &FilterContext,
        mutations: Vec<Mutation>,
    ) -> Vec<Outcome> {
        let count = mutations.len();
        let failed = |message: &str| -> Vec<Outcome> {
            (0..count)
                .map(|_| Err(StoreError::Pool(message.into()).into()))
                .collect()
        };
        let (reply, outcome) = oneshot::channel();
        let job = Job {
            ctx: ctx.clone(),
            mutations,
            reply,
        };
        if self.queue.send(job).await.is_err() {
            return failed("the group-commit workers stopped");
        }
        outcome
            .await
            .unwrap_or_else(|_| failed("a group-commit worker failed"))
    }
}

/// One worker: takes what has queued and commits it as one group.
async fn work(pool: Pool<PgConn>, registry: Arc<Registry>, jobs: Arc<Mutex<mpsc::Receiver<Job>>>) {
    loop {
        let group = {
            let mut jobs = jobs.lock().await;
            let Some(first) = jobs.recv().await else {
                return;
            };
            let mut size = first.mutations.len();
            let mut group = vec![first];
            while size < MAX_GROUP {
                match jobs.try_recv() {
                    Ok(job) => {
                        size += job.mutations.len();
                        group.push(job);
                    }
                    Err(_) => break,
                }
            }
            group
        };
        commit_group(&pool, &registry, group).await;
    }
}

/// One mutation of a group: its caller and what it asks.
type Entry<'a> = (&'a FilterContext, &'a Mutation);

/// Commits every mutation of `group`, replying to each job.
async fn commit_group(pool: &Pool<PgConn>, registry: &Registry, group: Vec<Job>) {
    let entries: Vec<Entry<'_>> = group
        .iter()
        .flat_map(|job| job.mutations.iter().map(move |m| (&job.ctx, m)))
        .collect();
    // Two mutations of one client transaction never share a group: the later
    // one runs alone afterwards and finds the earlier one's action.
    let mut together: Vec<usize> = Vec::with_capacity(entries.len());
    for (i, &(ctx, mutation)) in entries.iter().enumerate() {
        let this = key(ctx, mutation);
        let same = |j: &usize| {
            let other = key(entries[*j].0, entries[*j].1);
            (other.user_id, other.client_id, other.client_tx_id)
                == (this.user_id, this.client_id, this.client_tx_id)
        };
        if !together.iter().any(same) {
            together.push(i);
        }
    }
    let mut outcomes: Vec<Option<Outcome>> = entries.iter().map(|_| None).collect();
    metrics::histogram!("stratasync_group_commit_size").record(together.len() as f64);
    if together.len() > 1 {
        let members: Vec<Entry<'_>> = together.iter().map(|&i| entries[i]).collect();
        if let Some(results) = run_group(pool, registry, &members).await {
            for (&i, outcome) in together.iter().zip(results) {
                outcomes[i] = Some(outcome);
            }
        }
    }
    // Whatever the group did not settle commits alone, in queue order.
    for (i, &(ctx, mutation)) in entries.iter().enumerate() {
        if outcomes[i].is_some() {
            continue;
        }
        outcomes[i] = Some(match registry.get(&mutation.model) {
            Some(model) => apply_alone::<PgConn>(pool, model, ctx, mutation).await,
            None => Err(MutationError::rejected(format!(
                "Unknown model \"{}\"",
                mutation.model
            ))),
        });
    }
    let mut outcomes = outcomes.into_iter().flatten();
    for job in group {
        let replies = outcomes.by_ref().take(job.mutations.len()).collect();
        let _ = job.reply.send(replies);
    }
}

/// Runs `members` as one group, rerunning it after a deadlock or a
/// serialization failure; `None` when it did not commit (each member is
/// then run alone).
async fn run_group(
    pool: &Pool<PgConn>,
    registry: &Registry,
    members: &[Entry<'_>],
) -> Option<Vec<Outcome>> {
    for attempt in 1..=ATTEMPTS {
        let mut conn = match Leased::<PgConn>::get(pool).await {
            Ok(conn) => conn,
            Err(error) => {
                tracing::warn!(%error, "no connection for a group");
                return None;
            }
        };
        let mut tx = match Scope::begin(conn.conn()).await {
            Ok(tx) => tx,
            Err(error) => {
                tracing::debug!(%error, "group transaction did not open");
                return None;
            }
        };
        let outcome = apply_and_append_all(tx.conn(), registry, members).await;
        match tx.finish(outcome).await {
            Ok(outcomes) => return Some(outcomes),
            Err(error) => {
                let conflict =
                    matches!(&error, StoreError::Query(e) if classify(e) == Fault::Conflict);
                tracing::debug!(%error, attempt, size = members.len(), "group commit failed");
                if !conflict {
                    return None;
                }
            }
        }
        drop(conn);
        back_off(attempt).await;
    }
    None
}

/// What one mutation of a group came to before the append.
enum Step {
    Settled(Outcome),
    Append(Change),
    /// Moot: a committed delete settled its row, or a row its payload
    /// references. Its own delete is appended in its turn.
    Moot(MutationError),
    /// Its row, or a row its payload references, was deleted by the group's
    /// mutation at this index. Moot once that mutation is appended, as if the
    /// delete had committed first.
    AfterEarlier(usize),
}

/// Applies `mutation` again, in its own savepoint, after its link failed on
/// a pair a concurrent transaction linked: that link is committed now, and
/// the insert relinks the pair, as on the single path's second attempt.
async fn relink_committed(
    conn: &mut PgConn,
    model: &RegisteredModel,
    ctx: &FilterContext,
    mutation: &Mutation,
    now: DateTime<Utc>,
) -> Result<Option<Change>, StoreError> {
    let mut savepoint = Scope::begin(&mut *conn).await?;
    match PgConn::ops(model)
        .apply(savepoint.conn(), mutation, ctx, now, &mut false)
        .await
    {
        Ok(change) => {
            savepoint.commit().await?;
            Ok(Some(change))
        }
        Err(MutationError::Store(StoreError::Query(error)))
            if matches!(classify(&error), Fault::Conflict | Fault::Broken) =>
        {
            savepoint.rollback().await?;
            Err(StoreError::Query(error))
        }
        Err(_) => {
            savepoint.rollback().await?;
            Ok(None)
        }
    }
}

/// The latest earlier member of the group whose appended change is an
/// `action` on the row `model_id` of `model`, in a group the caller holds:
/// a delete that settled the row, or a link an insert of the same pair
/// relinks.
fn settled_earlier(
    group: &[Entry<'_>],
    steps: &[Step],
    ctx: &FilterContext,
    (model, model_id): (&str, &str),
    action: ActionKind,
) -> Option<usize> {
    steps.iter().zip(group).rposition(|(step, (_, earlier))| {
        matches!(step, Step::Append(change)
            if change.action == action
                && earlier.model == model
                && change.model_id == model_id
                && change.group_id.as_deref().is_none_or(|g| ctx.holds(g)))
    })
}

/// Appends the delete answering the moot member `mutation` (see
/// [`append_moot`]). A row written again since it was found deleted fails
/// the group, which runs again.
async fn append_moot_of(
    conn: &mut PgConn,
    registry: &Registry,
    ctx: &FilterContext,
    mutation: &Mutation,
    moot: &MutationError,
) -> Result<Outcome, StoreError> {
    let (Some(model), Some(settled)) = (registry.get(&mutation.model), moot.settled()) else {
        return Ok(Err(MutationError::not_found()));
    };
    Ok(Ok(append_moot(
        conn,
        model,
        ctx,
        mutation,
        settled,
        moot.to_string(),
    )
    .await?))
}

/// A member's position in its group (from 1) and the action its
/// idempotency key produced before.
#[derive(diesel::QueryableByName)]
struct AppliedBefore {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    member: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}

/// The action each member's idempotency key already produced, if any: one
/// query for the whole group (each key an index lookup on the log's unique
/// key), in the group's order.
async fn find_applied(
    conn: &mut PgConn,
    group: &[Entry<'_>],
) -> Result<Vec<Option<SyncId>>, StoreError> {
    use diesel::sql_types::{Array, Text};
    use diesel_async::RunQueryDsl;
    let keys: Vec<TxKey<'_>> = group.iter().map(|&(ctx, m)| key(ctx, m)).collect();
    let found = diesel::sql_query(
        "SELECT k.member, a.id \
         FROM unnest($1::text[], $2::text[], $3::text[]) \
              WITH ORDINALITY AS k(user_id, client_id, client_tx_id, member) \
         JOIN sync_actions a USING (user_id, client_id, client_tx_id)",
    )
    .bind::<Array<Text>, _>(keys.iter().map(|k| k.user_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(keys.iter().map(|k| k.client_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(keys.iter().map(|k| k.client_tx_id).collect::<Vec<_>>())
    .load::<AppliedBefore>(conn)
    .await?;
    let mut applied = vec![None; group.len()];
    for row in found {
        if let Some(slot) = usize::try_from(row.member - 1)
            .ok()
            .and_then(|i| applied.get_mut(i))
        {
            *slot = Some(SyncId::from_i64(row.id));
        }
    }
    Ok(applied)
}

/// Inside the group's transaction: each member in its savepoint, then the
/// appends. `Err` fails the whole group.
async fn apply_and_append_all(
    conn: &mut PgConn,
    registry: &Registry,
    group: &[Entry<'_>],
) -> Result<Vec<Outcome>, StoreError> {
    let now = Utc::now();
    let applied_before = find_applied(conn, group).await?;
    let mut steps = Vec::with_capacity(group.len());
    for (&(ctx, mutation), applied_before) in group.iter().zip(applied_before) {
        let Some(model) = registry.get(&mutation.model) else {
            steps.push(Step::Settled(Err(MutationError::rejected(format!(
                "Unknown model \"{}\"",
                mutation.model
            )))));
            continue;
        };
        let key = key(ctx, mutation);
        // No per-transaction lock here: a concurrent duplicate in another
        // group either makes this apply fail after waiting on its rows (then
        // its action is committed and found below) or makes the append fail
        // on the unique key, which reruns this group and finds it.
        if let Some(id) = applied_before {
            steps.push(Step::Settled(Ok(Applied::Duplicate(id))));
            continue;
        }
        let ops = PgConn::ops(model);
        let savepoint = ops.needs_savepoint(mutation);
        let mut hook_ran = false;
        let applied = if savepoint {
            let mut savepoint = Scope::begin(&mut *conn).await?;
            let applied = ops
                .apply(savepoint.conn(), mutation, ctx, now, &mut hook_ran)
                .await;
            match &applied {
                Ok(_) => savepoint.commit().await?,
                Err(_) => savepoint.rollback().await?,
            }
            applied
        } else {
            ops.apply(conn, mutation, ctx, now, &mut hook_ran).await
        };
        match applied {
            Ok(change) => steps.push(Step::Append(change)),
            // A deadlock or a lost connection fails the group; so does any
            // failed statement outside a savepoint (it aborted the group's
            // transaction).
            Err(MutationError::Store(StoreError::Query(error)))
                if !savepoint || matches!(classify(&error), Fault::Conflict | Fault::Broken) =>
            {
                return Err(StoreError::Query(error));
            }
            // A refusal after a hook ran, outside a savepoint: only the
            // whole transaction can undo what the hook wrote, so the group
            // is rolled back and each member runs alone.
            Err(_) if hook_ran && !savepoint => {
                return Err(StoreError::Query(
                    diesel::result::Error::RollbackTransaction,
                ));
            }
            Err(error) => {
                let row = (mutation.model.as_str(), mutation.model_id.as_str());
                let settled_by = if error.is_not_found() {
                    // Deleted, or a row its payload references was.
                    settled_earlier(group, &steps, ctx, row, ActionKind::Delete).or_else(|| {
                        model.payload_references(&mutation.payload).iter().find_map(
                            |(model, id)| {
                                settled_earlier(group, &steps, ctx, (model, id), ActionKind::Delete)
                            },
                        )
                    })
                } else {
                    None
                };
                // Outside a savepoint, a refusal may come from a statement
                // the database refused (a value it cannot store, a unique
                // violation): then the transaction is aborted, this query
                // fails, and with it the group.
                let step = match conn.find_client_tx(key).await? {
                    Some(id) => Step::Settled(Ok(Applied::Duplicate(id))),
                    // A link of a pair linked earlier in the group, or by a
                    // concurrent transaction: a relink.
                    None if error.is_already_exists() && model.meta().composite => {
                        let linked = settled_earlier(group, &steps, ctx, row, ActionKind::Insert);
                        let relink = match linked.map(|index| &steps[index]) {
                            Some(Step::Append(change)) => Some(change.clone()),
                            _ => relink_committed(conn, model, ctx, mutation, now).await?,
                        };
                        relink.map_or(Step::Settled(Err(error)), Step::Append)
                    }
                    None if error.settled().is_some() => Step::Moot(error),
                    None => settled_by.map_or(Step::Settled(Err(error)), Step::AfterEarlier),
                };
                steps.push(step);
            }
        }
    }
    conn.lock_append_order().await?;
    // The actions of applied members go in one statement; a moot member's
    // delete is appended alone, after the actions before it, as it checks
    // the row's latest action.
    let mut outcomes: Vec<Option<Outcome>> = (0..steps.len()).map(|_| None).collect();
    let mut applied: Vec<(usize, Change)> = Vec::new();
    for (member, step) in steps.into_iter().enumerate() {
        let (ctx, mutation) = group[member];
        if matches!(step, Step::Moot(_) | Step::AfterEarlier(_)) {
            append_applied(conn, group, &mut applied, &mut outcomes).await?;
        }
        let moot = match step {
            Step::Settled(outcome) => {
                outcomes[member] = Some(outcome);
                continue;
            }
            Step::Append(change) => {
                applied.push((member, change));
                continue;
            }
            Step::Moot(moot) => Some(moot),
            Step::AfterEarlier(index) => match &outcomes[index] {
                Some(Ok(Applied::New(delete))) => {
                    let settled = Settled {
                        by: delete.id,
                        group_id: delete.group_id.clone(),
                    };
                    Some(if group[index].1.model == mutation.model {
                        MutationError::AlreadyDeleted(settled)
                    } else {
                        MutationError::ReferenceDeleted(settled)
                    })
                }
                _ => None,
            },
        };
        outcomes[member] = Some(match moot {
            Some(moot) => append_moot_of(conn, registry, ctx, mutation, &moot).await?,
            None => Err(MutationError::not_found()),
        });
    }
    append_applied(conn, group, &mut applied, &mut outcomes).await?;
    Ok(outcomes.into_iter().flatten().collect())
}

/// Appends the actions of the `applied` members, in order, in one statement,
/// and answers each with its own; `applied` is left empty.
async fn append_applied(
    conn: &mut PgConn,
    group: &[Entry<'_>],
    applied: &mut Vec<(usize, Change)>,
    outcomes: &mut [Option<Outcome>],
) -> Result<(), StoreError> {
    if applied.is_empty() {
        return Ok(());
    }
    let mut actions = Vec::with_capacity(applied.len());
    let mut answers = Vec::with_capacity(applied.len());
    for (member, change) in applied.iter_mut() {
        let (ctx, mutation) = group[*member];
        let (left, own) = actions_of(ctx, mutation, change);
        actions.extend(left);
        actions.push(own);
        answers.push((*member, actions.len() - 1));
    }
    let appended = append_all(conn, &actions).await?;
    if appended.len() != actions.len() {
        // Never answer a member with another's id: the group is rolled back.
        return Err(StoreError::Query(
            diesel::result::Error::RollbackTransaction,
        ));
    }
    for (member, index) in answers {
        let (id, created_at) = appended[index];
        outcomes[member] = Some(Ok(Applied::New(to_sync_action(
            &actions[index],
            id,
            created_at,
        ))));
    }
    applied.clear();
    Ok(())
}
