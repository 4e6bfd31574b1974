//! (b) Mutate: transactions per second and request latency through
//! `POST /sync/mutate`, against the same SQL (the UPDATE and the INSERT into
//! `sync_actions`, no ordering lock) issued directly by as many connections
//! as there are clients, committed per mutation or per request ([`Commit`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_postgres::Client;

use crate::db;
use crate::node::Node;
use crate::stats::Latency;

/// One configuration's outcome.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// Committed transactions per second.
    pub tx_per_sec: f64,
    /// Latency of one request (a batch of transactions).
    pub latency: Latency,
    /// Committed transactions.
    pub transactions: u64,
}

/// What a run of workers produced.
struct Tally {
    transactions: u64,
    latencies: Vec<Duration>,
}

/// Which rows worker `worker` of `workers` updates: disjoint per worker, so
/// clients do not wait on each other's row locks.
fn row_of(ids: &[String], worker: usize, workers: usize, n: usize) -> &str {
    let usable = ids.len() - ids.len() % workers;
    &ids[(worker + workers * n) % usable.max(1)]
}

/// Runs `clients` HTTP clients for `time`, each sending `batch` UPDATEs per request.
pub async fn through_server(
    node: &Node,
    token: &str,
    ids: Arc<Vec<String>>,
    clients: usize,
    batch: usize,
    time: Duration,
    run: &str,
) -> Result<Throughput, String> {
    let http = reqwest::Client::new();
    let url = format!("{}/sync/mutate", node.base);
    let start = Instant::now();
    let deadline = start + time;
    let workers = (0..clients).map(|worker| {
        let (http, url, ids, token, run) =
            (http.clone(), url.clone(), Arc::clone(&ids), token.to_owned(), run.to_owned());
        tokio::spawn(async move {
            let mut tally = Tally { transactions: 0, latencies: Vec::new() };
            let mut n = 0usize;
            while Instant::now() < deadline {
                let transactions: Vec<_> = (0..batch)
                    .map(|i| {
                        n += 1;
                        json!({
                            "clientTxId": format!("{run}-{worker}-{n}"),
                            "clientId": format!("bench-{run}-{worker}"),
                            "modelName": "Todo",
                            "modelId": row_of(&ids, worker, clients, n),
                            "action": "UPDATE",
                            "payload": {"title": format!("Renamed {n} by {worker}"), "priority": i % 4},
                        })
                    })
                    .collect();
                let body = json!({"batchId": format!("{run}-{worker}-{n}"), "transactions": transactions});
                let sent = Instant::now();
                let response = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| format!("mutate: {e}"))?;
                let status = response.status();
                let answer: serde_json::Value =
                    response.json().await.map_err(|e| format!("mutate answer: {e}"))?;
                if !status.is_success() || answer["success"] != json!(true) {
                    return Err(format!("mutate failed ({status}): {answer}"));
                }
                tally.latencies.push(sent.elapsed());
                tally.transactions += batch as u64;
            }
            Ok::<_, String>(tally)
        })
    });
    let workers: Vec<_> = workers.collect();
    collect(workers, start).await
}

/// How often the direct-SQL baseline commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// One database transaction per mutation.
    PerMutation,
    /// One database transaction per request: the work of a whole batch, as
    /// the server commits a request's batch.
    PerRequest,
}

/// The baseline: `clients` PostgreSQL connections each running, per
/// mutation, `UPDATE todos ...; INSERT INTO sync_actions ...`, inside
/// `BEGIN ... COMMIT` per mutation or per batch as `commit` says.
pub async fn direct_sql(
    database_url: &str,
    ids: Arc<Vec<String>>,
    clients: usize,
    batch: usize,
    time: Duration,
    run: &str,
    commit: Commit,
) -> Result<Throughput, String> {
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        connections.push(db::connect(database_url).await?);
    }
    let start = Instant::now();
    let deadline = start + time;
    let workers: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(worker, mut conn)| {
            let (ids, run) = (Arc::clone(&ids), run.to_owned());
            tokio::spawn(async move {
                let mut tally = Tally {
                    transactions: 0,
                    latencies: Vec::new(),
                };
                let statements = prepare(&conn).await?;
                let mut n = 0usize;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let mut request = Vec::with_capacity(batch);
                    for i in 0..batch {
                        n += 1;
                        request.push(Direct {
                            id: row_of(&ids, worker, clients, n),
                            title: format!("Renamed {n} by {worker}"),
                            priority: i32::try_from(i % 4).unwrap_or(0),
                            tx_id: format!("{run}-{worker}-{n}"),
                        });
                    }
                    let done = match commit {
                        Commit::PerMutation => {
                            let mut done = Ok(());
                            for one in &request {
                                done = mutate_directly(
                                    &mut conn,
                                    &statements,
                                    std::slice::from_ref(one),
                                )
                                .await;
                                if done.is_err() {
                                    break;
                                }
                            }
                            done
                        }
                        Commit::PerRequest => {
                            mutate_directly(&mut conn, &statements, &request).await
                        }
                    };
                    done.map_err(|e| format!("direct mutate: {e}"))?;
                    tally.latencies.push(sent.elapsed());
                    tally.transactions += batch as u64;
                }
                Ok::<_, String>(tally)
            })
        })
        .collect();
    collect(workers, start).await
}

struct Statements {
    update: tokio_postgres::Statement,
    append: tokio_postgres::Statement,
}

async fn prepare(conn: &Client) -> Result<Statements, String> {
    let update = conn
        .prepare(
            "UPDATE todos SET title = $1, priority = $2 WHERE id = $3::text::uuid RETURNING workspace_id",
        )
        .await
        .map_err(|e| e.to_string())?;
    let append = conn
        .prepare(
            "INSERT INTO sync_actions (model, model_id, action, data, group_id, client_id, client_tx_id) \
             VALUES ('Todo', $1, 'U', $2::text::jsonb, $3, $4, $5) RETURNING id, created_at",
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(Statements { update, append })
}

/// One mutation of the baseline.
struct Direct<'a> {
    id: &'a str,
    title: String,
    priority: i32,
    tx_id: String,
}

/// Applies `mutations` in one database transaction.
async fn mutate_directly(
    conn: &mut Client,
    statements: &Statements,
    mutations: &[Direct<'_>],
) -> Result<(), tokio_postgres::Error> {
    let tx = conn.transaction().await?;
    for m in mutations {
        let row = tx
            .query_one(&statements.update, &[&m.title, &m.priority, &m.id])
            .await?;
        let group: String = row.get(0);
        let data = json!({"title": m.title, "priority": m.priority}).to_string();
        let client_id = "direct";
        tx.query_one(
            &statements.append,
            &[&m.id, &data, &group, &client_id, &m.tx_id],
        )
        .await?;
    }
    tx.commit().await
}

async fn collect(
    workers: Vec<tokio::task::JoinHandle<Result<Tally, String>>>,
    start: Instant,
) -> Result<Throughput, String> {
    let (mut transactions, mut latencies) = (0u64, Vec::new());
    for worker in workers {
        let tally = worker.await.map_err(|e| e.to_string())??;
        transactions += tally.transactions;
        latencies.extend(tally.latencies);
    }
    let elapsed = start.elapsed();
    Ok(Throughput {
        tx_per_sec: crate::stats::per_sec(transactions as f64, elapsed),
        latency: Latency::of(&mut latencies),
        transactions,
    })
}
