//! Consistent snapshots of model rows, streamed as NDJSON: bootstrap and
//! batch loads.
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
use stratasync_core::SyncId;
use tokio::sync::mpsc;

use crate::registry::Registry;
use crate::{RowScope, Store, StoreConn, StoreError};

/// Rows read per query (PROTOCOL §4: keyset pages of 1000).
const PAGE_ROWS: i64 = 1000;

/// Pages buffered between the database reader and the response.
const PAGES_IN_FLIGHT: usize = 2;

/// What a snapshot reads.
#[derive(Debug, Clone, Default)]
pub struct SnapshotPlan {
    /// For a bootstrap: the metadata line to write first.
    pub header: Option<BootstrapHeader>,
    /// The model reads, in output order.
    pub parts: Vec<SnapshotPart>,
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
}

impl From<diesel::result::Error> for SnapshotError {
    fn from(error: diesel::result::Error) -> Self {
        SnapshotError::Store(StoreError::Query(error))
    }
}

impl Store {
    /// Streams the rows `plan` asks for, read from one consistent snapshot.
    ///
    /// The stream yields NDJSON chunks; a failure after the first chunk ends
    /// it with a `{"message":...,"type":"error"}` line.
    pub fn snapshot(&self, plan: SnapshotPlan) -> impl Stream<Item = Bytes> + Send + 'static {
        let (sink, mut chunks) = mpsc::channel::<Bytes>(PAGES_IN_FLIGHT);
        let db = self.db_pool_for_snapshot();
        let registry = self.registry_arc();
        tokio::spawn(async move {
            let failure = match db.run(registry, plan, sink.clone()).await {
                Ok(()) | Err(SnapshotError::ClientGone) => return,
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
            let _ = sink.send(Bytes::from(line)).await;
        });
        futures::stream::poll_fn(move |cx| chunks.poll_recv(cx))
    }
}

/// Reads `plan` on `conn` inside one snapshot transaction.
pub(crate) async fn stream_snapshot<C: StoreConn>(
    conn: &mut C,
    registry: &Registry,
    plan: SnapshotPlan,
    sink: mpsc::Sender<Bytes>,
) -> Result<(), SnapshotError> {
    conn.batch_execute(C::BEGIN_SNAPSHOT).await?;
    let result = read_plan(conn, registry, plan, &sink).await;
    // Read-only: nothing to commit. A failed rollback breaks the connection,
    // and the pool drops broken connections.
    let _ = conn.batch_execute("ROLLBACK").await;
    result
}

async fn read_plan<C: StoreConn>(
    conn: &mut C,
    registry: &Registry,
    plan: SnapshotPlan,
    sink: &mpsc::Sender<Bytes>,
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
        sink.send(Bytes::from(line))
            .await
            .map_err(|_| SnapshotError::ClientGone)?;
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
        // Pages of one model are alike: start each at the last one's size
        // rather than growing from small (a 1000-row page is ~250 KB).
        let mut page_bytes = 64 * 1024;
        loop {
            let mut out = Vec::with_capacity(page_bytes);
            let rows = ops
                .write_page(conn, &part.scope, &mut cursor, PAGE_ROWS, &mut out)
                .await?;
            if rows > 0 {
                page_bytes = page_bytes.max(out.len() + out.len() / 8);
                sink.send(Bytes::from(out))
                    .await
                    .map_err(|_| SnapshotError::ClientGone)?;
            }
            if i64::try_from(rows).unwrap_or(i64::MAX) < PAGE_ROWS {
                break;
            }
        }
    }
    Ok(())
}
