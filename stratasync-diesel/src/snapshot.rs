//! Consistent snapshots of model rows, streamed as NDJSON: bootstrap and
//! batch loads.
//!
//! Snapshots take a slot of the pool's snapshot share and a connection
//! before anything is answered, so a busy store is a `503`, not a stream that
//! never starts (see [`PoolOptions`](crate::PoolOptions)). Pages are bounded
//! by bytes as well as rows: after the first page, the rows of the next are
//! sized from the last ones so a page stays near
//! [`SnapshotPlan::page_bytes`]. A reader that takes nothing for the stall
//! timeout is cut off: the transaction ends, the connection returns to the
//! pool, and the stream ends with an error (the response is aborted rather
//! than ended, so the client cannot take it for a complete snapshot).
//!
//! A snapshot is read in one read-only transaction that sees a single
//! database snapshot, so the rows and the `lastSyncId` of the metadata line
//! describe the same instant: a client that applies every action after
//! `lastSyncId` ends with exactly the server's rows. Pages are handed to a
//! bounded channel, so a slow reader holds back the reading instead of
//! growing a buffer.

use bytes::Bytes;
use futures::Stream;
use serde_json::json;
use std::time::Duration;
use stratasync_core::SyncId;

use tokio::sync::mpsc;

use crate::registry::Registry;
use crate::{RowScope, StoreConn, StoreError};

/// Rows read per query at most (PROTOCOL §4: keyset pages of 1000).
const PAGE_ROWS: i64 = 1000;

/// Rows of a model's first page, before its row size is known.
const FIRST_PAGE_ROWS: i64 = 16;

/// The default of [`SnapshotPlan::page_bytes`]: 1 MiB.
pub const DEFAULT_SNAPSHOT_PAGE_BYTES: usize = 1024 * 1024;

/// Pages buffered between the database reader and the response.
const PAGES_IN_FLIGHT: usize = 2;

/// What a snapshot reads.
#[derive(Debug, Clone)]
pub struct SnapshotPlan {
    /// For a bootstrap: the metadata line to write first.
    pub header: Option<BootstrapHeader>,
    /// The model reads, in output order.
    pub parts: Vec<SnapshotPart>,
    /// About how many bytes one page of rows holds (default
    /// [`DEFAULT_SNAPSHOT_PAGE_BYTES`]); a page holds at least one row.
    pub page_bytes: usize,
}

impl Default for SnapshotPlan {
    fn default() -> Self {
        SnapshotPlan {
            header: None,
            parts: Vec::new(),
            page_bytes: DEFAULT_SNAPSHOT_PAGE_BYTES,
        }
    }
}

/// The metadata line of a bootstrap.
#[derive(Debug, Clone, Default)]
pub struct BootstrapHeader {
    /// The effective groups; `lastSyncId` is the last action visible to them.
    pub groups: Vec<String>,
    /// Echoed back as `schemaHash`.
    pub schema_hash: String,
}

/// One model's rows within a scope.
#[derive(Debug, Clone)]
pub struct SnapshotPart {
    /// Model wire name (must be registered).
    pub model: String,
    /// Which rows.
    pub scope: RowScope,
    /// More rows than this fail the snapshot with an error line (batch loads).
    pub max_rows: Option<i64>,
}

/// Why a snapshot stopped early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapshotError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "{model} has {count} rows for this request, more than the {limit} a batch load may return"
    )]
    TooManyRows {
        model: String,
        count: i64,
        limit: i64,
    },
    #[error("the client went away")]
    ClientGone,
    #[error("the client stopped reading for {0:?}")]
    Stalled(Duration),
}

impl From<diesel::result::Error> for SnapshotError {
    fn from(error: diesel::result::Error) -> Self {
        SnapshotError::Store(StoreError::Query(error))
    }
}

/// The stream of a snapshot was cut off before its end (its reader stalled
/// or the read failed without a way to tell the client).
#[derive(Debug, thiserror::Error)]
#[error("the snapshot was cut off")]
pub struct SnapshotCutOff;

/// The NDJSON stream of a snapshot that `read` writes into the sink it is
/// given (run on a task of its own, so that the reading goes on while the
/// stream is handed on).
///
/// A failure after the first chunk ends the stream with a
/// `{"message":...,"type":"error"}` line; a reader that stalled, or one that
/// ended without saying it finished, leaves [`SnapshotCutOff`] as the
/// stream's last item.
pub(crate) fn stream<F>(
    read: impl FnOnce(mpsc::Sender<Bytes>) -> F,
) -> impl Stream<Item = Result<Bytes, SnapshotCutOff>> + Send + 'static
where
    F: Future<Output = Result<(), SnapshotError>> + Send + 'static,
{
    let (sink, mut chunks) = mpsc::channel::<Bytes>(PAGES_IN_FLIGHT);
    let reading = read(sink.clone());
    let (ended, mut end) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let failure = match reading.await {
            Ok(()) => {
                let _ = ended.send(());
                return;
            }
            Err(SnapshotError::ClientGone) => return,
            Err(SnapshotError::Stalled(after)) => {
                tracing::info!(?after, "snapshot reader stalled; cut off");
                return;
            }
            Err(SnapshotError::Store(error)) => {
                tracing::error!(%error, "snapshot read failed");
                "Bootstrap failed".to_owned()
            }
            Err(too_many) => too_many.to_string(),
        };
        let mut line = json!({ "message": failure, "type": "error" })
            .to_string()
            .into_bytes();
        line.push(b'\n');
        if sink.send(Bytes::from(line)).await.is_ok() {
            let _ = ended.send(());
        }
    });
    let mut done = false;
    futures::stream::poll_fn(move |cx| {
        if done {
            return std::task::Poll::Ready(None);
        }
        match chunks.poll_recv(cx) {
            std::task::Poll::Ready(Some(chunk)) => std::task::Poll::Ready(Some(Ok(chunk))),
            std::task::Poll::Ready(None) => {
                done = true;
                // The reader ended: cleanly only if it said so.
                match end.try_recv() {
                    Ok(()) => std::task::Poll::Ready(None),
                    Err(_) => std::task::Poll::Ready(Some(Err(SnapshotCutOff))),
                }
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    })
}

/// Reads `plan` on `conn` inside one snapshot transaction; a send that waits
/// longer than `stall` ends it.
pub(crate) async fn stream_snapshot<C: StoreConn>(
    conn: &mut C,
    registry: &Registry,
    plan: SnapshotPlan,
    sink: mpsc::Sender<Bytes>,
    stall: Duration,
) -> Result<(), SnapshotError> {
    conn.batch_execute(C::BEGIN_SNAPSHOT).await?;
    let mut open = OpenSnapshot {
        conn,
        closed: false,
    };
    let sink = Sink { sink, stall };
    let result = read_plan(open.conn, registry, plan, &sink).await;
    // Read-only: nothing to commit.
    open.closed = open.conn.batch_execute("ROLLBACK").await.is_ok();
    result
}

/// A connection inside the snapshot's raw `BEGIN`, which diesel's
/// transaction manager does not track. Dropped before its `ROLLBACK`
/// succeeded (a failed rollback, a panic while reading), it marks the
/// connection's transaction state broken, so the pool closes the connection
/// instead of lending it out again inside the open transaction.
struct OpenSnapshot<'c, C: StoreConn> {
    conn: &'c mut C,
    closed: bool,
}

impl<C: StoreConn> Drop for OpenSnapshot<'_, C> {
    fn drop(&mut self) {
        use diesel_async::TransactionManager as _;
        if !self.closed {
            <C as diesel_async::AsyncConnection>::TransactionManager::transaction_manager_status_mut(
                self.conn,
            )
            .set_in_error();
        }
    }
}

/// Where pages go, with the stall bound of one send.
struct Sink {
    sink: mpsc::Sender<Bytes>,
    stall: Duration,
}

impl Sink {
    async fn send(&self, chunk: Bytes) -> Result<(), SnapshotError> {
        match tokio::time::timeout(self.stall, self.sink.send(chunk)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(SnapshotError::ClientGone),
            Err(_) => Err(SnapshotError::Stalled(self.stall)),
        }
    }
}

async fn read_plan<C: StoreConn>(
    conn: &mut C,
    registry: &Registry,
    plan: SnapshotPlan,
    sink: &Sink,
) -> Result<(), SnapshotError> {
    let parts: Vec<_> = plan
        .parts
        .iter()
        .filter_map(|part| registry.get(&part.model).map(|model| (C::ops(model), part)))
        .collect();

    if let Some(header) = &plan.header {
        let last: SyncId = conn.last_visible_id(&header.groups).await?;
        let mut counts = serde_json::Map::new();
        for (ops, part) in &parts {
            let count = ops.count(conn, &part.scope).await?;
            let total = counts
                .get(&part.model)
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0)
                + count;
            counts.insert(part.model.clone(), json!(total));
        }
        let mut line = serde_json::to_vec(&json!({
            "lastSyncId": last,
            "returnedModelsCount": counts,
            "schemaHash": header.schema_hash,
            "subscribedSyncGroups": header.groups,
        }))
        .map_err(|e| StoreError::Query(diesel::result::Error::SerializationError(Box::new(e))))?;
        line.push(b'\n');
        sink.send(Bytes::from(line)).await?;
    }

    for (ops, part) in parts {
        if let Some(limit) = part.max_rows {
            let count = ops.count(conn, &part.scope).await?;
            if count > limit {
                return Err(SnapshotError::TooManyRows {
                    model: part.model.clone(),
                    count,
                    limit,
                });
            }
        }
        let mut cursor = None;
        // Pages of one model are alike: size each from the last one's rows
        // (a 1000-row page of small rows is ~250 KB; of 1 MB titles, 1 GB).
        let mut rows = FIRST_PAGE_ROWS;
        let mut page_bytes = 64 * 1024;
        loop {
            let mut out = Vec::with_capacity(page_bytes.min(plan.page_bytes));
            let read = ops
                .write_page(conn, &part.scope, &mut cursor, rows, &mut out)
                .await?;
            let Some(row_bytes) = out.len().checked_div(read) else {
                break;
            };
            page_bytes = page_bytes.max(out.len() + out.len() / 8);
            let row_bytes = i64::try_from(row_bytes).unwrap_or(i64::MAX).max(1);
            let budget = i64::try_from(plan.page_bytes).unwrap_or(i64::MAX);
            sink.send(Bytes::from(out)).await?;
            if i64::try_from(read).unwrap_or(i64::MAX) < rows {
                break;
            }
            rows = (budget / row_bytes).clamp(1, PAGE_ROWS);
        }
    }
    Ok(())
}
