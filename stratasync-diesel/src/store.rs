//! The store: one database, the registered models, and the operations the
//! sync protocol needs, independent of the backend.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use diesel_async::pooled_connection::deadpool::Pool;
use futures::Stream;
use futures::future::BoxFuture;
use stratasync_core::{ActionKind, FilterContext, SyncAction, SyncId};

use crate::log::{LogConn, NewAction, to_sync_action};
use crate::mutate::Mutation;
use crate::pool::{PoolOptions, SnapshotGate};
use crate::registry::Registry;
use crate::snapshot::{SnapshotCutOff, SnapshotPlan};
use crate::write::Applied;
use crate::write::scope::{Leased, Scope};
use crate::write::writer::Writer;
use crate::{MutationError, StoreError};

#[derive(Clone)]
enum Db {
    #[cfg(feature = "postgres")]
    Postgres(Pool<crate::PgConn>),
    #[cfg(feature = "sqlite")]
    Sqlite {
        pool: Pool<crate::SqliteConn>,
        writer: Arc<tokio::sync::Mutex<()>>,
    },
}

/// Runs `$body` with `$pool` bound to the pool of whichever backend the
/// store uses; the body is compiled once per backend.
macro_rules! on_backend {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            #[cfg(feature = "postgres")]
            Db::Postgres($pool) => $body,
            #[cfg(feature = "sqlite")]
            Db::Sqlite { pool: $pool, .. } => $body,
        }
    };
    ($db:expr, $pool:ident as $conn:ident => $body:expr) => {
        match $db {
            #[cfg(feature = "postgres")]
            Db::Postgres($pool) => {
                type $conn = crate::PgConn;
                $body
            }
            #[cfg(feature = "sqlite")]
            Db::Sqlite { pool: $pool, .. } => {
                type $conn = crate::SqliteConn;
                $body
            }
        }
    };
}

/// The model name of `G` actions (no registered model has it).
const GROUPS_MODEL: &str = "SyncGroups";

/// A connection from `$pool`, or the pool's failure as a [`StoreError`].
macro_rules! connection {
    ($pool:expr) => {
        $pool.get().await.map_err(crate::pool::pool_error)
    };
}

/// How a store's connection pool is used ([`Store::pool_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections the pool may open.
    pub max_size: usize,
    /// Connections lent out.
    pub in_use: usize,
    /// Open connections waiting to be lent.
    pub idle: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

/// Where the log starts and ends ([`Store::log_bounds`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBounds {
    /// The oldest action kept (`None`: the log is empty).
    pub oldest: Option<SyncId>,
    /// The newest action (0 when the log is empty).
    pub head: SyncId,
    /// The highest id trimmed in any group (0: never trimmed).
    pub trimmed_through: SyncId,
}

/// The actions of one group in the log ([`Store::log_stats`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLog {
    /// The group (`None`: actions of no group).
    pub group: Option<String>,
    /// How many actions it has.
    pub actions: u64,
    /// Its oldest action.
    pub oldest: SyncId,
    /// Its newest action.
    pub newest: SyncId,
}

/// What the log and memberships hold ([`Store::log_stats`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStats {
    /// Per group, ordered by group.
    pub groups: Vec<GroupLog>,
    /// Each group's trim watermark (`""`: global actions).
    pub trims: Vec<(String, SyncId)>,
    /// Members per group.
    pub members: Vec<(String, u64)>,
}

/// The sync store: sync tables, log and models on PostgreSQL or SQLite.
#[derive(Clone)]
pub struct Store {
    db: Db,
    registry: Arc<Registry>,
    /// The write path.
    write: Writer,
    /// The slots of the snapshot share of the pool.
    snapshots: SnapshotGate,
    /// How long a snapshot waits for its reader.
    snapshot_stall: std::time::Duration,
    /// Memberships changed by [`Store::add_member`] and
    /// [`Store::remove_member`] of this store and its clones.
    member_writes: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend_name())
            .finish()
    }
}

impl Store {
    /// Connects to `url` with the default [`PoolOptions`] and creates or
    /// upgrades the sync tables.
    ///
    /// `postgres://` and `postgresql://` URLs select PostgreSQL; `sqlite://`
    /// URLs and plain file paths select SQLite (the file is created).
    pub async fn connect(url: &str, registry: Registry) -> Result<Store, StoreError> {
        Store::connect_with(url, registry, &PoolOptions::default()).await
    }

    /// Connects to `url` (see [`Store::connect`]) with a pool sized and
    /// shared as `options` say.
    pub async fn connect_with(
        url: &str,
        registry: Registry,
        options: &PoolOptions,
    ) -> Result<Store, StoreError> {
        options.validate()?;
        let registry = Arc::new(registry);
        let snapshots = SnapshotGate::new(options);
        let snapshot_stall = options.snapshot_stall_timeout;
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            #[cfg(feature = "postgres")]
            {
                let pool = crate::postgres::connect(url, options).await?;
                let group =
                    crate::write::group::GroupCommit::start(pool.clone(), Arc::clone(&registry));
                return Ok(Store {
                    write: Writer::Postgres {
                        pool: pool.clone(),
                        group: Some(group),
                    },
                    db: Db::Postgres(pool),
                    registry,
                    snapshots,
                    snapshot_stall,
                    member_writes: Arc::default(),
                });
            }
            #[cfg(not(feature = "postgres"))]
            return Err(StoreError::Connect(
                "this build has no PostgreSQL support (enable the `postgres` feature)".into(),
            ));
        }
        if url.contains("://") && !url.starts_with("sqlite://") {
            return Err(StoreError::Connect(format!(
                "unsupported database URL `{}`: use postgres://... or sqlite://<file>",
                crate::Redacted(url)
            )));
        }
        #[cfg(feature = "sqlite")]
        {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            let pool = crate::sqlite::connect(path, options).await?;
            let writer: Arc<tokio::sync::Mutex<()>> = Arc::default();
            Ok(Store {
                write: Writer::Sqlite {
                    pool: pool.clone(),
                    writer: Arc::clone(&writer),
                },
                db: Db::Sqlite { pool, writer },
                registry,
                snapshots,
                snapshot_stall,
                member_writes: Arc::default(),
            })
        }
        #[cfg(not(feature = "sqlite"))]
        Err(StoreError::Connect(format!(
            "`{url}` is not a postgres:// URL and this build has no SQLite support"
        )))
    }

    /// `"postgres"` or `"sqlite"`.
    pub fn backend_name(&self) -> &'static str {
        match &self.db {
            #[cfg(feature = "postgres")]
            Db::Postgres(_) => "postgres",
            #[cfg(feature = "sqlite")]
            Db::Sqlite { .. } => "sqlite",
        }
    }

    /// The registered models.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The groups `user_id` holds through `sync_group_memberships`.
    pub async fn member_groups(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
        on_backend!(&self.db, pool => {
            let mut conn = connection!(pool)?;
            Ok(conn.member_groups(user_id).await?)
        })
    }

    /// Whether a cursor at `after` has lost actions of `groups` to trimming.
    pub async fn is_stale(&self, after: SyncId, groups: &[String]) -> Result<bool, StoreError> {
        if after == SyncId::ZERO {
            return Ok(false);
        }
        on_backend!(&self.db, pool => {
            let mut conn = connection!(pool)?;
            Ok(conn.is_stale(after, groups).await?)
        })
    }

    /// Up to `limit` actions after `after` in id order: those visible to
    /// `groups`, or all of them when `groups` is `None`.
    pub async fn read_actions(
        &self,
        after: SyncId,
        limit: i64,
        groups: Option<&[String]>,
    ) -> Result<Vec<SyncAction>, StoreError> {
        on_backend!(&self.db, pool => {
            let mut conn = connection!(pool)?;
            Ok(conn.read_actions(after, limit, groups).await?)
        })
    }

    /// The highest action id visible to `groups` (0 when there is none).
    pub async fn last_visible_id(&self, groups: &[String]) -> Result<SyncId, StoreError> {
        on_backend!(&self.db, pool => {
            let mut conn = connection!(pool)?;
            Ok(conn.last_visible_id(groups).await?)
        })
    }

    /// The highest action id in the log, whatever its group (0 when empty):
    /// where a reader of every new action starts.
    pub async fn last_id(&self) -> Result<SyncId, StoreError> {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;

        use crate::schema::sync_actions::dsl as a;
        on_backend!(&self.db, pool => {
            let mut conn = connection!(pool)?;
            let id = a::sync_actions
                .select(diesel::dsl::max(a::id))
                .first::<Option<i64>>(&mut *conn)
                .await?;
            Ok(SyncId::from_i64(id.unwrap_or(0)))
        })
    }

    /// How the connection pool is used right now.
    pub fn pool_status(&self) -> PoolStatus {
        let status = on_backend!(&self.db, pool => pool.status());
        PoolStatus {
            max_size: status.max_size,
            in_use: status.size.saturating_sub(status.available),
            idle: status.available,
            waiting: status.waiting,
        }
    }

    /// The oldest and newest action ids of the log and its highest trim
    /// watermark (index lookups, cheap enough for every metrics scrape).
    pub async fn log_bounds(&self) -> Result<LogBounds, StoreError> {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;

        use crate::schema::sync_actions::dsl as a;
        use crate::schema::sync_log_trims::dsl as t;
        on_backend!(&self.db, pool => {
            let mut conn = connection!(pool)?;
            let oldest = a::sync_actions
                .select(diesel::dsl::min(a::id))
                .first::<Option<i64>>(&mut *conn)
                .await?;
            let head = a::sync_actions
                .select(diesel::dsl::max(a::id))
                .first::<Option<i64>>(&mut *conn)
                .await?;
            let trimmed = t::sync_log_trims
                .select(diesel::dsl::max(t::trimmed_through))
                .first::<Option<i64>>(&mut *conn)
                .await?;
            Ok(LogBounds {
                oldest: oldest.map(SyncId::from_i64),
                head: SyncId::from_i64(head.unwrap_or(0)),
                trimmed_through: SyncId::from_i64(trimmed.unwrap_or(0)),
            })
        })
    }

    /// Deletes the actions below `before`; cursors that had not reached the
    /// trimmed actions of their groups are then stale. Returns how many were
    /// deleted.
    pub async fn trim_before(&self, before: SyncId) -> Result<usize, StoreError> {
        on_backend!(&self.db, pool as Conn => {
            let mut conn = Leased::<Conn>::get(pool).await?;
            let mut tx = Scope::begin(conn.conn()).await?;
            let deleted = tx.conn().trim_before(before).await;
            tx.finish(deleted.map_err(StoreError::from)).await
        })
    }

    /// Deletes the actions created before `at` (see [`Store::trim_before`]).
    pub async fn trim_older_than(&self, at: DateTime<Utc>) -> Result<usize, StoreError> {
        let first_kept = on_backend!(&self.db, pool => {
            let mut conn = connection!(pool)?;
            conn.first_id_after(at).await?
        });
        match first_kept {
            Some(id) => self.trim_before(id).await,
            // Nothing is that recent: trim everything.
            None => {
                self.trim_before(SyncId::new(u64::try_from(i64::MAX).unwrap_or(u64::MAX)))
                    .await
            }
        }
    }

    /// The id of the first action created at or after `at` (`None`: none is
    /// that recent).
    pub async fn first_id_since(&self, at: DateTime<Utc>) -> Result<Option<SyncId>, StoreError> {
        on_backend!(&self.db, pool => {
            let mut conn = connection!(pool)?;
            Ok(conn.first_id_after(at).await?)
        })
    }

    /// [`Store::trim_before`] by one node at a time: on PostgreSQL only
    /// while this node holds the retention advisory lock, and `None`
    /// without trimming when another node holds it. SQLite trims at once.
    pub async fn trim_before_exclusive(&self, before: SyncId) -> Result<Option<usize>, StoreError> {
        match &self.db {
            #[cfg(feature = "postgres")]
            Db::Postgres(pool) => {
                let mut holder = Leased::<crate::PgConn>::get(pool).await?;
                if !crate::postgres::try_lock_retention(holder.conn()).await? {
                    return Ok(None);
                }
                // Until the unlock succeeds the holder counts as broken, so
                // an error or a cancelled trim closes the session (releasing
                // the lock) instead of pooling a connection that holds it.
                crate::write::scope::mark_broken(holder.conn());
                let trimmed = self.trim_before(before).await;
                crate::postgres::unlock_retention(holder.conn()).await?;
                crate::write::scope::mark_clean(holder.conn());
                trimmed.map(Some)
            }
            #[cfg(feature = "sqlite")]
            Db::Sqlite { .. } => self.trim_before(before).await.map(Some),
        }
    }

    /// What the log and memberships hold, for operators: per group, its
    /// actions and their id range; the trim watermarks; members per group.
    /// Reads every row: meant for a CLI, not for every scrape.
    pub async fn log_stats(&self) -> Result<LogStats, StoreError> {
        use diesel::dsl::{count_star, max, min};
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;

        use crate::schema::sync_actions::dsl as a;
        use crate::schema::sync_group_memberships::dsl as m;
        use crate::schema::sync_log_trims::dsl as t;
        on_backend!(&self.db, pool => {
            let mut conn = connection!(pool)?;
            let groups = a::sync_actions
                .group_by(a::group_id)
                .select((a::group_id, count_star(), min(a::id), max(a::id)))
                .order_by(a::group_id)
                .load::<(Option<String>, i64, Option<i64>, Option<i64>)>(&mut *conn)
                .await?
                .into_iter()
                .map(|(group, actions, oldest, newest)| GroupLog {
                    group,
                    actions: actions.unsigned_abs(),
                    oldest: SyncId::from_i64(oldest.unwrap_or(0)),
                    newest: SyncId::from_i64(newest.unwrap_or(0)),
                })
                .collect();
            let trims = t::sync_log_trims
                .select((t::group_id, t::trimmed_through))
                .order_by(t::group_id)
                .load::<(String, i64)>(&mut *conn)
                .await?
                .into_iter()
                .map(|(group, through)| (group, SyncId::from_i64(through)))
                .collect();
            let members = m::sync_group_memberships
                .group_by(m::group_id)
                .select((m::group_id, count_star()))
                .order_by(m::group_id)
                .load::<(String, i64)>(&mut *conn)
                .await?
                .into_iter()
                .map(|(group, count)| (group, count.unsigned_abs()))
                .collect();
            Ok(LogStats { groups, trims, members })
        })
    }

    /// Applies one client mutation for the caller described by `ctx`.
    ///
    /// Idempotent per (user, `client_id`, `client_tx_id`): a transaction the
    /// same user applied before, even in a concurrent request, answers its
    /// original id; another user's transaction never does.
    pub fn mutate<'a>(
        &'a self,
        ctx: &'a FilterContext,
        mutation: &'a Mutation,
    ) -> BoxFuture<'a, Result<Applied, MutationError>> {
        Box::pin(async move {
            let outcome = self
                .mutate_all(ctx, std::slice::from_ref(mutation))
                .await
                .pop();
            outcome.unwrap_or_else(|| Err(StoreError::Pool("no outcome".into()).into()))
        })
    }

    /// Applies the mutations of one request, in order, each on its own
    /// (one failing does not stop the rest); outcomes come in the same order.
    ///
    /// On PostgreSQL with group commit they share one transaction and one
    /// commit when they can (see [`Store::mutate`] for idempotency).
    pub fn mutate_all<'a>(
        &'a self,
        ctx: &'a FilterContext,
        mutations: &'a [Mutation],
    ) -> BoxFuture<'a, Vec<Result<Applied, MutationError>>> {
        Box::pin(async move {
            let mut outcomes: Vec<Option<Result<Applied, MutationError>>> =
                mutations.iter().map(|m| self.refusal(m).map(Err)).collect();
            let accepted: Vec<Mutation> = mutations
                .iter()
                .zip(&outcomes)
                .filter(|(_, refused)| refused.is_none())
                .map(|(m, _)| m.clone())
                .collect();
            let mut applied = self
                .write
                .apply_all(&self.registry, ctx, accepted)
                .await
                .into_iter();
            for outcome in &mut outcomes {
                if outcome.is_none() {
                    *outcome = applied.next();
                }
            }
            outcomes
                .into_iter()
                .map(|o| o.unwrap_or_else(|| Err(StoreError::Pool("no outcome".into()).into())))
                .collect()
        })
    }

    /// Why `mutation` is refused before touching the database, if it is.
    fn refusal(&self, mutation: &Mutation) -> Option<MutationError> {
        let Some(model) = self.registry.get(&mutation.model) else {
            return Some(MutationError::rejected(format!(
                "Unknown model \"{}\"",
                mutation.model
            )));
        };
        (!model.meta().actions.contains(mutation.action)).then(|| {
            MutationError::rejected(format!(
                "Unsupported action \"{}\" for this model",
                mutation.action.letter()
            ))
        })
    }

    /// Turns group commit off (on by default on PostgreSQL): each mutation
    /// then commits in its own transaction. See the `group_commit` module.
    pub fn without_group_commit(self) -> Store {
        Store {
            write: self.write.without_group_commit(),
            ..self
        }
    }

    /// Adds `user_id` to `group_id`; returns whether the membership is new.
    /// No `G` action announces it (see [`Store::change_membership`]).
    pub async fn add_member(
        &self,
        user_id: &str,
        group_id: &str,
        group_type: &str,
    ) -> Result<bool, StoreError> {
        let added = on_backend!(&self.db, pool => {
            let mut conn = connection!(pool)?;
            Ok::<_, StoreError>(conn.add_member(user_id, group_id, group_type).await?)
        })?;
        self.wrote_member(added);
        Ok(added)
    }

    /// Removes `user_id` from `group_id`; returns whether they were a member.
    /// No `G` action announces it (see [`Store::change_membership`]).
    pub async fn remove_member(&self, user_id: &str, group_id: &str) -> Result<bool, StoreError> {
        let removed = on_backend!(&self.db, pool => {
            let mut conn = connection!(pool)?;
            Ok::<_, StoreError>(conn.remove_member(user_id, group_id).await?)
        })?;
        self.wrote_member(removed);
        Ok(removed)
    }

    fn wrote_member(&self, changed: bool) {
        if changed {
            self.member_writes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// How many memberships [`Store::add_member`] and
    /// [`Store::remove_member`] changed through this store and its clones.
    /// No `G` action announces those, so a server's cache of its users'
    /// groups starts afresh whenever this count moves.
    pub fn member_writes(&self) -> u64 {
        self.member_writes.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Adds (`join`) or removes a membership of `user_id` in `group_id` and,
    /// in the same transaction, appends the `G` action that announces the
    /// user's new group list (PROTOCOL §11) in their personal group.
    ///
    /// `full_groups` turns the user's memberships after the change into the
    /// full list to announce (the application's groups and the personal
    /// group added). Returns `None` when the membership was already as asked.
    pub async fn change_membership(
        &self,
        user_id: &str,
        group_id: &str,
        group_type: &str,
        join: bool,
        full_groups: impl FnOnce(Vec<String>) -> Vec<String> + Send,
    ) -> Result<Option<SyncAction>, StoreError> {
        let _one_writer = match &self.db {
            #[cfg(feature = "sqlite")]
            Db::Sqlite { writer, .. } => Some(writer.lock().await),
            #[cfg(feature = "postgres")]
            Db::Postgres(_) => None,
        };
        on_backend!(&self.db, pool as Conn => {
            let mut conn = Leased::<Conn>::get(pool).await?;
            let mut tx = Scope::begin(conn.conn()).await?;
            let conn = tx.conn();
            let outcome = async {
                let changed = if join {
                    conn.add_member(user_id, group_id, group_type).await?
                } else {
                    conn.remove_member(user_id, group_id).await?
                };
                if !changed {
                    return Ok(None);
                }
                let groups = full_groups(conn.member_groups(user_id).await?);
                let action = NewAction {
                    model: GROUPS_MODEL,
                    model_id: user_id,
                    action: ActionKind::GroupsChanged.letter(),
                    data: serde_json::json!({ "subscribedSyncGroups": groups }),
                    group_id: Some(user_id),
                    key: None,
                    answers_retries: false,
                };
                conn.lock_append_order().await?;
                let (id, created_at) = conn.append(&action).await?;
                Ok::<_, diesel::result::Error>(Some(to_sync_action(&action, id, created_at)))
            }
            .await;
            tx.finish(outcome.map_err(StoreError::from)).await
        })
    }

    /// A slot of the snapshot share and a connection for a snapshot reader,
    /// or [`StoreError::Unavailable`] when neither freed up in time.
    pub(crate) async fn snapshot_conn(&self) -> Result<SnapshotConn, StoreError> {
        let slot = self.snapshots.enter().await?;
        let conn = match &self.db {
            #[cfg(feature = "postgres")]
            Db::Postgres(pool) => PooledConn::Postgres(connection!(pool)?),
            #[cfg(feature = "sqlite")]
            Db::Sqlite { pool, .. } => PooledConn::Sqlite(connection!(pool)?),
        };
        Ok(SnapshotConn {
            conn,
            _slot: slot,
            stall: self.snapshot_stall,
        })
    }
}

/// A pooled connection of either backend (one per snapshot: its size does
/// not matter).
#[allow(clippy::large_enum_variant)]
enum PooledConn {
    #[cfg(feature = "postgres")]
    Postgres(diesel_async::pooled_connection::deadpool::Object<crate::PgConn>),
    #[cfg(feature = "sqlite")]
    Sqlite(diesel_async::pooled_connection::deadpool::Object<crate::SqliteConn>),
}

/// A snapshot reader's connection and its slot of the snapshot share; both
/// return when it is dropped.
pub(crate) struct SnapshotConn {
    conn: PooledConn,
    _slot: tokio::sync::OwnedSemaphorePermit,
    stall: std::time::Duration,
}

impl SnapshotConn {
    pub(crate) async fn run(
        mut self,
        registry: Arc<Registry>,
        plan: SnapshotPlan,
        sink: tokio::sync::mpsc::Sender<bytes::Bytes>,
    ) -> Result<(), crate::snapshot::SnapshotError> {
        let stall = self.stall;
        match &mut self.conn {
            #[cfg(feature = "postgres")]
            PooledConn::Postgres(conn) => {
                crate::snapshot::stream_snapshot(&mut **conn, &registry, plan, sink, stall).await
            }
            #[cfg(feature = "sqlite")]
            PooledConn::Sqlite(conn) => {
                crate::snapshot::stream_snapshot(&mut **conn, &registry, plan, sink, stall).await
            }
        }
    }
}

impl Store {
    pub(crate) fn registry_arc(&self) -> Arc<Registry> {
        Arc::clone(&self.registry)
    }

    /// Streams the rows `plan` asks for, read from one consistent snapshot
    /// (see the `snapshot` module).
    ///
    /// Waits for a slot of the snapshot share and a connection first; when
    /// none frees up in time the answer is [`StoreError::Unavailable`].
    /// The stream yields NDJSON chunks; a failure after the first chunk ends
    /// it with a `{"message":...,"type":"error"}` line; a reader that
    /// stalls past the stall timeout gets [`SnapshotCutOff`] as its last item.
    pub async fn snapshot(
        &self,
        plan: SnapshotPlan,
    ) -> Result<impl Stream<Item = Result<Bytes, SnapshotCutOff>> + Send + 'static, StoreError>
    {
        let conn = self.snapshot_conn().await?;
        let registry = self.registry_arc();
        Ok(crate::snapshot::stream(move |sink| {
            conn.run(registry, plan, sink)
        }))
    }
}
