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
//! 1. each mutation in its own savepoint: deduplicate, check, apply; a
//!    rejected one is rolled back to its savepoint alone;
//! 2. then the append lock, and the actions of every applied mutation
//!    appended in queue order;
//! 3. one commit.
//!
//! Each mutation keeps its own outcome, exactly as on the single path. If the
//! group as a whole fails (a deadlock with another group, a lost connection)
//! each of its mutations is retried alone on the single path.

use std::sync::Arc;

use chrono::Utc;
use stratasync_core::{ActionKind, FilterContext};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::mutate::{Change, Mutation};
use crate::registry::Registry;
use crate::store::{Applied, StoreConn, append_change, begin, finish, mutate_on};
use crate::{MutationError, StoreError};

/// Mutations one group transaction carries at most.
pub(crate) const MAX_GROUP: usize = 64;

/// Workers committing groups concurrently (their applies overlap; their
/// appends and commits take turns).
pub(crate) const WORKERS: usize = 4;

/// The outcome of one mutation.
type Outcome = Result<Applied, MutationError>;

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
    pub(crate) fn start(
        pool: diesel_async::pooled_connection::deadpool::Pool<crate::PgConn>,
        registry: Arc<Registry>,
    ) -> GroupCommit {
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
async fn work(
    pool: diesel_async::pooled_connection::deadpool::Pool<crate::PgConn>,
    registry: Arc<Registry>,
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
) {
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
        let mut conn = match pool.get().await {
            Ok(conn) => conn,
            Err(error) => {
                for job in group {
                    let outcomes = job
                        .mutations
                        .iter()
                        .map(|_| Err(StoreError::Pool(error.to_string()).into()))
                        .collect();
                    let _ = job.reply.send(outcomes);
                }
                continue;
            }
        };
        commit_group(&mut *conn, &registry, group).await;
    }
}

/// One mutation of a group: its caller and what it asks.
type Entry<'a> = (&'a FilterContext, &'a Mutation);

/// Commits every mutation of `group` on `conn`, replying to each job.
async fn commit_group<C: StoreConn>(conn: &mut C, registry: &Registry, group: Vec<Job>) {
    let entries: Vec<Entry<'_>> = group
        .iter()
        .flat_map(|job| job.mutations.iter().map(move |m| (&job.ctx, m)))
        .collect();
    // Two mutations of one client transaction never share a group: the later
    // one runs alone afterwards and finds the earlier one's action.
    let mut together: Vec<usize> = Vec::with_capacity(entries.len());
    for (i, (_, mutation)) in entries.iter().enumerate() {
        let key = (&mutation.client_id, &mutation.client_tx_id);
        if !together
            .iter()
            .any(|&j| (&entries[j].1.client_id, &entries[j].1.client_tx_id) == key)
        {
            together.push(i);
        }
    }
    let mut outcomes: Vec<Option<Outcome>> = entries.iter().map(|_| None).collect();
    if together.len() > 1 {
        let members: Vec<Entry<'_>> = together.iter().map(|&i| entries[i]).collect();
        match run_group(conn, registry, &members).await {
            Ok(results) => {
                for (&i, outcome) in together.iter().zip(results) {
                    outcomes[i] = Some(outcome);
                }
            }
            Err(error) => {
                tracing::debug!(%error, size = together.len(), "group commit failed; committing one by one");
            }
        }
    }
    // Whatever the group did not settle commits alone, in queue order.
    for (i, &(ctx, mutation)) in entries.iter().enumerate() {
        if outcomes[i].is_some() {
            continue;
        }
        outcomes[i] = Some(match registry.get(&mutation.model) {
            Some(model) => mutate_on(conn, model, ctx, mutation).await,
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

/// What one mutation of a group came to before the append.
enum Step {
    Rejected(MutationError),
    Duplicate(Applied),
    Append(Change),
    /// Its row was settled by the group's mutation at this index: deleted
    /// (for a write to the row) or linked (for an insert of the same
    /// composite pair). Answered once that mutation is appended, as the
    /// single path answers a write a committed action made moot.
    Settled(usize),
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

/// Runs `group` in one transaction; `Err` when the group as a whole failed
/// (then nothing of it was committed).
async fn run_group<C: StoreConn>(
    conn: &mut C,
    registry: &Registry,
    group: &[Entry<'_>],
) -> Result<Vec<Outcome>, StoreError> {
    begin(conn).await?;
    let outcome = apply_and_append_all(conn, registry, group).await;
    finish(conn, outcome).await
}

async fn apply_and_append_all<C: StoreConn>(
    conn: &mut C,
    registry: &Registry,
    group: &[Entry<'_>],
) -> Result<Vec<Outcome>, StoreError> {
    let now = Utc::now();
    let mut steps = Vec::with_capacity(group.len());
    for &(ctx, mutation) in group {
        let Some(model) = registry.get(&mutation.model) else {
            steps.push(Step::Rejected(MutationError::rejected(format!(
                "Unknown model \"{}\"",
                mutation.model
            ))));
            continue;
        };
        let (client_id, client_tx_id) =
            (mutation.client_id.as_str(), mutation.client_tx_id.as_str());
        // No per-transaction lock here: a concurrent duplicate in another
        // group either makes this apply fail after waiting on its rows (then
        // its action is committed and found below) or makes the append fail
        // on the unique (client_id, client_tx_id), which retries this group
        // one by one on the locked single path.
        if let Some(id) = conn.find_client_tx(client_id, client_tx_id).await? {
            steps.push(Step::Duplicate(Applied::Duplicate(id)));
            continue;
        }
        begin(conn).await?; // a savepoint
        match C::ops(model).apply(conn, mutation, ctx, now).await {
            Ok(change) => {
                finish(conn, Ok::<_, StoreError>(())).await?; // release it
                steps.push(Step::Append(change));
            }
            Err(MutationError::Rejected(message)) => {
                finish(conn, Err::<(), _>(MutationError::Rejected(message.clone())))
                    .await
                    .ok();
                let refusal = MutationError::Rejected(message);
                let settled_by = if refusal.is_not_found() {
                    settled_earlier(group, &steps, ctx, mutation, ActionKind::Delete)
                } else if refusal.is_already_exists() && model.meta().composite {
                    settled_earlier(group, &steps, ctx, mutation, ActionKind::Insert)
                } else {
                    None
                };
                steps.push(match conn.find_client_tx(client_id, client_tx_id).await? {
                    Some(id) => Step::Duplicate(Applied::Duplicate(id)),
                    None => settled_by.map_or(Step::Rejected(refusal), Step::Settled),
                });
            }
            Err(moot @ (MutationError::AlreadyDeleted(_) | MutationError::AlreadyLinked(_))) => {
                if let Err(moot) = finish(conn, Err::<(), _>(moot)).await {
                    steps.push(Step::Rejected(moot));
                }
            }
            Err(MutationError::Store(error)) => return Err(error),
        }
    }
    conn.lock_append_order().await?;
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(steps.len());
    for (&(_, mutation), step) in group.iter().zip(steps) {
        let outcome = match step {
            Step::Rejected(error) => Err(error),
            Step::Duplicate(applied) => Ok(applied),
            Step::Append(change) => Ok(append_change(conn, mutation, change).await?),
            Step::Settled(index) => match (&outcomes[index], group[index].1.action) {
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
