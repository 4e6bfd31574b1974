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
//! 1. each mutation in its own savepoint: deduplicate, check, apply. One
//!    that fails (a rejection, a value the database refuses, a hook's
//!    failing SQL) is rolled back to its savepoint and answered alone; the
//!    rest of the group goes on;
//! 2. then the append lock, and the actions of every applied mutation
//!    appended in queue order;
//! 3. one commit; only then is anything answered.
//!
//! When the group as a whole fails, nothing of it was committed. A deadlock
//! or serialization failure reruns the group, at most
//! [`ATTEMPTS`](super::ATTEMPTS) times; a lost connection, or conflicts past
//! that, runs each mutation alone on the single path, on a fresh connection
//! (deduplication answers any that did commit before the connection
//! dropped).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel_async::pooled_connection::deadpool::Pool;
use stratasync_core::{ActionKind, FilterContext, SyncId};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::scope::{Leased, Scope};
use super::{ATTEMPTS, Applied, Outcome, actions_of, apply_alone, back_off, key};
use crate::error::{Fault, classify};
use crate::log::{LogConn, NewAction, TxKey, to_sync_action};
use crate::mutate::{Change, Mutation};
use crate::registry::{RegisteredModel, Registry};
use crate::{MutationError, PgConn, StoreConn, StoreError};

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
    // A group of one too: it costs fewer round trips than the single path
    // (no per-key lock, one idempotency lookup), and a failure still sends
    // it there.
    if !together.is_empty() {
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
    /// Its row was settled by the group's mutation at this index: deleted
    /// (for a write to the row) or linked (for an insert of the same
    /// composite pair). Answered once that mutation is appended, as the
    /// single path answers a write a committed action made moot.
    AfterEarlier(usize),
}

/// The earlier member of the group whose `action` on the row `mutation`
/// names settled it, if any.
fn settled_earlier(
    group: &[Entry<'_>],
    steps: &[Step],
    ctx: &FilterContext,
    mutation: &Mutation,
    action: ActionKind,
) -> Option<usize> {
    steps.iter().zip(group).position(|(step, (_, earlier))| {
        matches!(step, Step::Append(change)
            if earlier.action == action
                && earlier.model == mutation.model
                && change.model_id == mutation.model_id
                && change.group_id.as_deref().is_none_or(|g| ctx.holds(g)))
    })
}

/// What a member refused with `error` (its writes undone, the transaction
/// still open) comes to: a duplicate when its key committed meanwhile, moot
/// when an earlier member settled its row, else the refusal.
async fn settle_refused(
    conn: &mut PgConn,
    group: &[Entry<'_>],
    steps: &[Step],
    model: &RegisteredModel,
    (ctx, mutation): Entry<'_>,
    error: MutationError,
) -> Result<Step, StoreError> {
    let settled_by = if error.is_not_found() {
        settled_earlier(group, steps, ctx, mutation, ActionKind::Delete)
    } else if error.is_already_exists() && model.meta().composite {
        settled_earlier(group, steps, ctx, mutation, ActionKind::Insert)
    } else {
        None
    };
    Ok(match conn.find_client_tx(key(ctx, mutation)).await? {
        Some(id) => Step::Settled(Ok(Applied::Duplicate(id))),
        None => settled_by.map_or(Step::Settled(Err(error)), Step::AfterEarlier),
    })
}

/// A member's index (from 1) and the action its key already produced.
#[derive(diesel::QueryableByName)]
struct AppliedBefore {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    member: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}

/// The action each member's idempotency key already produced, if any: one
/// query for the whole group, each key an index lookup.
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

/// Fails when the group's transaction was aborted by a statement the
/// database refused (a refusal does not say whether one was).
async fn still_open(conn: &mut PgConn) -> Result<(), StoreError> {
    use diesel_async::RunQueryDsl;
    diesel::sql_query("SELECT 1").execute(conn).await?;
    Ok(())
}

/// Inside the group's transaction: each member applied (in its savepoint
/// when its model has hooks), then the appends. `Err` fails the whole group.
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
        // No per-transaction lock here: a concurrent duplicate in another
        // group either makes this apply fail after waiting on its rows (then
        // its action is committed and found below) or makes the append fail
        // on the unique key, which reruns this group and finds it.
        if let Some(id) = applied_before {
            steps.push(Step::Settled(Ok(Applied::Duplicate(id))));
            continue;
        }
        // A model without hooks writes nothing before a refusal, so its
        // mutation needs no savepoint; one the database refuses aborts the
        // group's transaction, and the group runs one by one instead.
        if !model.has_hooks() {
            match PgConn::ops(model).apply(conn, mutation, ctx, now).await {
                Ok(change) => steps.push(Step::Append(change)),
                Err(MutationError::Store(error)) => return Err(error),
                Err(error) => {
                    still_open(conn).await?;
                    steps.push(
                        settle_refused(conn, group, &steps, model, (ctx, mutation), error).await?,
                    );
                }
            }
            continue;
        }
        let mut savepoint = Scope::begin(&mut *conn).await?;
        let applied = PgConn::ops(model)
            .apply(savepoint.conn(), mutation, ctx, now)
            .await;
        match applied {
            Ok(change) => {
                savepoint.commit().await?;
                steps.push(Step::Append(change));
            }
            // A deadlock or a lost connection fails the group.
            Err(MutationError::Store(StoreError::Query(error)))
                if matches!(classify(&error), Fault::Conflict | Fault::Broken) =>
            {
                savepoint.rollback().await?;
                return Err(StoreError::Query(error));
            }
            Err(error) => {
                savepoint.rollback().await?;
                steps.push(
                    settle_refused(conn, group, &steps, model, (ctx, mutation), error).await?,
                );
            }
        }
    }
    conn.lock_append_order().await?;
    // Every action of the applied members, in group order, in one statement.
    let mut actions = Vec::new();
    let mut answered = Vec::new();
    for (&(ctx, mutation), step) in group.iter().zip(&mut steps) {
        if let Step::Append(change) = step {
            let (left, action) = actions_of(ctx, mutation, change);
            actions.extend(left);
            answered.push(actions.len());
            actions.push(action);
        }
    }
    let appended = append_all(conn, &actions).await?;
    let mut new_actions = answered
        .into_iter()
        .map(|i| {
            let (id, created_at) = appended[i];
            to_sync_action(&actions[i], id, created_at)
        })
        .collect::<Vec<_>>()
        .into_iter();
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(steps.len());
    for step in steps {
        let outcome = match step {
            Step::Settled(outcome) => outcome,
            Step::Append(_) => match new_actions.next() {
                Some(action) => Ok(Applied::New(action)),
                None => return Err(StoreError::Pool("an action was not appended".into())),
            },
            Step::AfterEarlier(index) => match (&outcomes[index], group[index].1.action) {
                (Ok(delete), ActionKind::Delete) => {
                    Err(MutationError::AlreadyDeleted(delete.sync_id()))
                }
                (Ok(link), _) => Err(MutationError::AlreadyLinked(link.sync_id())),
                (Err(_), _) => Err(MutationError::not_found()),
            },
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Appends `actions` (the append lock is held) in one statement; their ids
/// and timestamps, in the same order. PostgreSQL inserts the rows of a
/// `VALUES` list, draws their ids and returns them in the list's order.
async fn append_all(
    conn: &mut PgConn,
    actions: &[NewAction<'_>],
) -> Result<Vec<(SyncId, DateTime<Utc>)>, StoreError> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;

    use crate::schema::sync_actions::dsl as a;
    if actions.is_empty() {
        return Ok(Vec::new());
    }
    let now = Utc::now();
    let rows: Vec<_> = actions
        .iter()
        .map(|action| {
            (
                a::model.eq(action.model),
                a::model_id.eq(action.model_id),
                a::action.eq(action.action),
                a::data.eq(crate::Bind(&action.data)),
                a::group_id.eq(action.group_id),
                a::user_id.eq(action
                    .key
                    .filter(|_| action.answers_retries)
                    .map(|k| k.user_id)),
                a::client_id.eq(action.key.map(|k| k.client_id)),
                a::client_tx_id.eq(action.key.map(|k| k.client_tx_id)),
                a::created_at.eq(crate::Bind(now)),
            )
        })
        .collect();
    let appended = diesel::insert_into(a::sync_actions)
        .values(rows)
        .returning((a::id, a::created_at))
        .get_results::<(i64, DateTime<Utc>)>(conn)
        .await?;
    if appended.len() != actions.len() {
        return Err(StoreError::Pool(format!(
            "{} actions appended for {}",
            appended.len(),
            actions.len()
        )));
    }
    Ok(appended
        .into_iter()
        .map(|(id, at)| (SyncId::from_i64(id), at))
        .collect())
}
