//! (e) Nodes: what each extra node costs the database and Redis. One, two,
//! four, eight server nodes on one PostgreSQL database and a Redis of the
//! bench's own (so its command counts are the bench's alone); one writer of
//! a few clients mutating through the first node; one socket on the last
//! node, so deliveries cross nodes. Measured per mutation: PostgreSQL
//! transactions and tuples read (`pg_stat_database` of the bench database),
//! Redis commands (`INFO commandstats`), and the delay from each mutate
//! request to the socket's delta.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::node::Node;
use crate::stats::Latency;
use crate::ws::{self, Frame};

/// How long the counters settle before and after a run (PostgreSQL
/// flushes a backend's statistics at most once a second).
const SETTLE: Duration = Duration::from_millis(1500);

/// What one node count measured.
#[derive(Debug, Clone)]
pub struct NodesRow {
    /// Server nodes.
    pub nodes: usize,
    /// Mutations acknowledged.
    pub mutations: u64,
    /// Wall time of the writes.
    pub elapsed: Duration,
    /// PostgreSQL transactions committed in the bench database.
    pub xacts: u64,
    /// Tuples read (`tup_returned + tup_fetched`).
    pub tuples: u64,
    /// Redis commands, by command.
    pub redis: HashMap<String, u64>,
    /// From sending a mutate request to the socket receiving its delta.
    pub delivery: Latency,
    /// Deltas the socket received.
    pub delivered: u64,
}

impl NodesRow {
    fn per_mutation(&self, count: u64) -> f64 {
        count as f64 / self.mutations.max(1) as f64
    }

    /// PostgreSQL transactions per mutation.
    pub fn xacts_per_mutation(&self) -> f64 {
        self.per_mutation(self.xacts)
    }

    /// Tuples read per mutation.
    pub fn tuples_per_mutation(&self) -> f64 {
        self.per_mutation(self.tuples)
    }

    /// Redis commands per mutation (all, or one command).
    pub fn redis_per_mutation(&self, command: Option<&str>) -> f64 {
        let count = match command {
            Some(command) => self.redis.get(command).copied().unwrap_or(0),
            None => self.redis.values().sum(),
        };
        self.per_mutation(count)
    }

    /// Mutations per second.
    pub fn rate(&self) -> f64 {
        self.mutations as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A Redis server of the bench's own on a free loopback port.
pub struct OwnRedis {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    child: std::process::Child,
}

impl OwnRedis {
    /// Starts `redis-server` without persistence and waits until it answers.
    pub async fn start() -> Result<OwnRedis, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("the nodes section runs its own redis-server: {e}"))?;
        let redis = OwnRedis {
            addr: format!("127.0.0.1:{port}"),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while command(&redis.addr, "PING").await.is_err() {
            if Instant::now() > deadline {
                return Err("redis-server did not start".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(redis)
    }

    /// Calls per command since the server started (`INFO commandstats`).
    async fn calls(&self) -> Result<HashMap<String, u64>, String> {
        let text = command(&self.addr, "INFO commandstats").await?;
        Ok(text
            .lines()
            .filter_map(|line| {
                let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
                Some((name.to_owned(), calls.parse().ok()?))
            })
            .collect())
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One inline command and its reply, read until the server pauses.
async fn command(addr: &str, line: &str) -> Result<String, String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    stream
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    let mut buf = vec![0_u8; 16 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => reply.extend_from_slice(&buf[..n]),
            _ if !reply.is_empty() => break,
            Ok(Ok(_)) => return Err("Redis closed the connection".to_owned()),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("Redis did not answer".to_owned()),
        }
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// The bench database's counters.
async fn pg_counters(admin: &tokio_postgres::Client, database: &str) -> Result<(u64, u64), String> {
    // Statistics as they are now, not a snapshot of this session's transaction.
    admin
        .batch_execute("SELECT pg_stat_clear_snapshot()")
        .await
        .map_err(|e| e.to_string())?;
    let row = admin
        .query_one(
            "SELECT xact_commit, tup_returned + tup_fetched FROM pg_stat_database WHERE datname = $1",
            &[&database],
        )
        .await
        .map_err(|e| e.to_string())?;
    let (xacts, tuples): (i64, i64) = (row.get(0), row.get(1));
    Ok((xacts.unsigned_abs(), tuples.unsigned_abs()))
}

/// The parameters of one run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Nodes to start.
    pub nodes: usize,
    /// Concurrent writer clients.
    pub clients: usize,
    /// How long they write.
    pub time: Duration,
    /// The writer's and the socket's token.
    pub token: String,
    /// Todos the writer updates.
    pub ids: Arc<Vec<String>>,
    /// A tag making transaction ids and stream keys unique.
    pub run: String,
}

/// Runs `plan`: starts the nodes, writes, counts, stops them.
pub async fn run(
    server_bin: &std::path::Path,
    url: &str,
    admin: &tokio_postgres::Client,
    database: &str,
    redis: &OwnRedis,
    plan: Plan,
) -> Result<NodesRow, String> {
    let redis_url = format!("redis://{}", redis.addr);
    let channel = format!("bench:{}", plan.run);
    let env = [("STRATASYNC_REDIS_CHANNEL", channel.as_str())];
    let mut nodes = Vec::new();
    for _ in 0..plan.nodes {
        nodes.push(Node::start_with(server_bin, url, Some(&redis_url), &env).await?);
        // The first node started leads; the others wait for its lock.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after: i64 = admin_max_id(url).await?;
    let last = nodes.last().ok_or("no node")?;
    let mut socket = ws::subscribe(&last.ws_base(), &plan.token, after).await?;
    ws::until_subscribed(&mut socket).await?;
    tokio::time::sleep(SETTLE).await;

    let pg_before = pg_counters(admin, database).await?;
    let redis_before = redis.calls().await?;
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let marker = "\"clientTxId\":\"";
    let reader = tokio::spawn(async move {
        let mut seen: Vec<(String, Instant)> = Vec::new();
        while let Ok(Some(Ok(frame))) =
            tokio::time::timeout(Duration::from_secs(5), ws::next(&mut socket)).await
        {
            let at = Instant::now();
            if let Frame::Delta(text) = frame
                && let Some(start) = text.find(marker)
            {
                let rest = &text[start + marker.len()..];
                if let Some(end) = rest.find('"') {
                    seen.push((rest[..end].to_owned(), at));
                }
            }
        }
        seen
    });

    let started = Instant::now();
    let base = nodes[0].base.clone();
    let writers: Vec<_> = (0..plan.clients)
        .map(|c| {
            let (base, token, ids, run, sent) = (
                base.clone(),
                plan.token.clone(),
                Arc::clone(&plan.ids),
                plan.run.clone(),
                Arc::clone(&sent),
            );
            let time = plan.time;
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let url = format!("{base}/sync/mutate");
                let mut n = 0u64;
                while started.elapsed() < time {
                    let tx = format!("{run}-{c}-{n}");
                    let body = json!({"transactions": [{
                        "clientTxId": tx,
                        "clientId": format!("nodes-{run}-{c}"),
                        "modelName": "Todo",
                        "modelId": ids[(c * 7919 + n as usize) % ids.len()],
                        "action": "UPDATE",
                        "payload": {"title": format!("Nodes {n}")},
                    }]});
                    sent.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(tx, Instant::now());
                    let response = http
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                        .map_err(|e| format!("mutate: {e}"))?;
                    if !response.status().is_success() {
                        return Err(format!("mutate answered {}", response.status()));
                    }
                    n += 1;
                }
                Ok::<u64, String>(n)
            })
        })
        .collect();
    let mut mutations = 0;
    for writer in writers {
        mutations += writer.await.map_err(|e| e.to_string())??;
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(SETTLE).await;
    let pg_after = pg_counters(admin, database).await?;
    let redis_after = redis.calls().await?;
    let seen = reader.await.map_err(|e| e.to_string())?;
    for node in nodes {
        node.stop().await;
    }

    let sent = sent.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut delays: Vec<Duration> = seen
        .iter()
        .filter_map(|(tx, at)| Some(at.duration_since(*sent.get(tx)?)))
        .collect();
    let redis_calls = redis_after
        .iter()
        .map(|(name, calls)| {
            let before = redis_before.get(name).copied().unwrap_or(0);
            (name.clone(), calls.saturating_sub(before))
        })
        // The bench's own INFO is not the server's.
        .filter(|(name, calls)| name != "info" && *calls > 0)
        .collect();
    Ok(NodesRow {
        nodes: plan.nodes,
        mutations,
        elapsed,
        xacts: pg_after.0.saturating_sub(pg_before.0),
        tuples: pg_after.1.saturating_sub(pg_before.1),
        redis: redis_calls,
        delivered: delays.len() as u64,
        delivery: Latency::of(&mut delays),
    })
}

/// The log's last id, read over a connection of its own (so the bench's
/// reads are not counted in the middle of a run).
async fn admin_max_id(url: &str) -> Result<i64, String> {
    let db = crate::db::connect(url).await?;
    Ok(db
        .query_one("SELECT COALESCE(MAX(id), 0) FROM sync_actions", &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0))
}
