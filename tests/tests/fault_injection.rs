//! Fault injection on the write path: an acknowledged write is never lost.
//!
//! A seeded property test. Each case sends concurrent mutate requests from
//! several clients, a random mix of good transactions and transactions
//! poisoned by one fault: values a backend cannot store, unique violations,
//! a hook that runs failing SQL, rejects, or sleeps past a statement timeout,
//! deadlocks between two groups, the server's connections terminated
//! mid-group, and a PostgreSQL outage (a TCP proxy between the server and
//! PostgreSQL, cut and restored). Writers retry 5xx answers as the client
//! does. Each case ends with the oracle:
//!
//! - every `success: true` has its row change in the table and exactly one
//!   action with that syncId in `sync_actions`;
//! - every error result has neither;
//! - no connection of the test database is `idle in transaction`;
//! - a live subscriber of each group received exactly the committed actions
//!   of its group, in order.
//!
//! `STRATASYNC_FAULT_CASES` sets the number of cases per backend (default
//! 200 on PostgreSQL, 60 on SQLite); `STRATASYNC_FAULT_SEED` replays a run
//! (the seed is printed at the start and in every failure).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use serde_json::{Value, json};
use stratasync::{FilterContext, HookResult, JsonMap, ModelHooks, Registry, SyncId, SyncModel, Tx};
use stratasync_tests::harness::{Backend, TestDb, new_id, run};
use stratasync_tests::live::{CuttableProxy, Frame, Ws, delta_id};
use stratasync_tests::models::{Task, TaskLabel};

/// The groups the writers write into; one live subscriber each.
const GROUPS: [&str; 2] = ["w1", "w2"];
/// How long writers keep retrying a request answered 5xx.
const RETRY_BUDGET: Duration = Duration::from_secs(20);
/// How long the database stays cut in an outage case.
const OUTAGE: Duration = Duration::from_millis(1200);
/// After the database comes back, the service must be back within this.
const RECOVERY: Duration = Duration::from_secs(10);
/// A request that takes longer than this hangs.
const HANG: Duration = Duration::from_secs(15);

/// A small deterministic generator (splitmix64): the seed replays a run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// The fault a case injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// A date or instant no backend can store.
    OutOfRange,
    /// An insert of a row that exists.
    Unique,
    /// A hook rejects the mutation.
    HookReject,
    /// A hook runs SQL that fails and goes on as if nothing happened.
    HookSql,
    /// A hook sleeps past its statement timeout.
    HookTimeout,
    /// Two groups update the same rows in opposite orders.
    Deadlock,
    /// The server's connections are terminated mid-group.
    Terminate,
    /// PostgreSQL becomes unreachable, then comes back.
    Outage,
}

/// The faults of a backend, each with its weight among the cases.
fn faults(backend: Backend) -> &'static [(Fault, usize)] {
    match backend {
        Backend::Postgres => &[
            (Fault::OutOfRange, 4),
            (Fault::Unique, 3),
            (Fault::HookReject, 2),
            (Fault::HookSql, 3),
            (Fault::HookTimeout, 2),
            (Fault::Deadlock, 2),
            (Fault::Terminate, 3),
            (Fault::Outage, 1),
        ],
        Backend::Sqlite => &[
            (Fault::OutOfRange, 3),
            (Fault::Unique, 2),
            (Fault::HookReject, 1),
            (Fault::HookSql, 1),
        ],
    }
}

fn pick_fault(backend: Backend, rng: &mut Rng) -> Fault {
    let table = faults(backend);
    let total: usize = table.iter().map(|(_, w)| w).sum();
    let mut roll = rng.below(total);
    for &(fault, weight) in table {
        if roll < weight {
            return fault;
        }
        roll -= weight;
    }
    table[0].0
}

/// Hooks that misbehave on request, keyed by the title's prefix.
struct FaultHooks;

async fn hook(tx: Tx<'_>, title: &str) -> HookResult {
    if title.starts_with("reject") {
        return Err("rejected by the hook".into());
    }
    match tx {
        Tx::Postgres(conn) => {
            if title.starts_with("sql") {
                // A careless hook: its query fails and it carries on.
                let _ = diesel::sql_query("SELECT * FROM no_such_table")
                    .execute(conn)
                    .await;
            } else if title.starts_with("sleep") {
                diesel::sql_query("SET LOCAL statement_timeout = '50ms'")
                    .execute(conn)
                    .await
                    .map_err(|_| "the hook could not set its timeout".to_owned())?;
                diesel::sql_query("SELECT pg_sleep(0.5)")
                    .execute(conn)
                    .await
                    .map_err(|_| "the hook timed out".to_owned())?;
            } else if title.starts_with("slow") {
                let _ = diesel::sql_query("SELECT pg_sleep(0.03)")
                    .execute(conn)
                    .await;
            }
        }
        Tx::Sqlite(conn) => {
            if title.starts_with("sql") {
                let _ = diesel::sql_query("SELECT * FROM no_such_table")
                    .execute(conn)
                    .await;
            }
        }
    }
    Ok(())
}

impl ModelHooks<Task> for FaultHooks {
    async fn before_insert(&self, tx: Tx<'_>, _ctx: &FilterContext, row: &mut Task) -> HookResult {
        hook(tx, &row.title).await
    }

    async fn before_update(
        &self,
        tx: Tx<'_>,
        _ctx: &FilterContext,
        _key: &<Task as SyncModel>::Key,
        changes: &JsonMap,
    ) -> HookResult {
        let title = changes.get("title").and_then(Value::as_str).unwrap_or("");
        hook(tx, title).await
    }
}

/// What the oracle demands of one transaction's final answer.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// `success: true` (possibly after 5xx retries).
    Success,
    /// `success: false` with an error containing this text.
    Rejected(&'static str),
    /// Anything but `success: true` (a rejection or a 5xx never overcome).
    NotApplied,
    /// Either; the oracle still checks that the answer matches the database.
    Either,
}

/// One transaction of the plan.
#[derive(Debug, Clone)]
struct Planned {
    tx: Value,
    expect: Expect,
    /// The task row it writes and the title it writes there.
    row: String,
    title: String,
    insert: bool,
    group: &'static str,
}

/// The final answer to one transaction.
#[derive(Debug, Clone)]
enum Answer {
    Success(u64),
    Rejected(String),
    Failed(u16),
}

/// A task row the suite knows about: its group and expected title.
#[derive(Debug, Clone)]
struct KnownRow {
    group: &'static str,
    title: String,
}

/// State carried from case to case on one server.
struct Session {
    backend: Backend,
    db_url: String,
    server_url: String,
    server: stratasync::SyncServer,
    proxy: Option<CuttableProxy>,
    known: BTreeMap<String, KnownRow>,
    received: Vec<Arc<Mutex<Vec<u64>>>>,
    subscribers: Vec<tokio::task::JoinHandle<()>>,
    http: reqwest::Client,
}

impl Drop for Session {
    fn drop(&mut self) {
        for task in &self.subscribers {
            task.abort();
        }
    }
}

fn case_count(backend: Backend) -> usize {
    std::env::var("STRATASYNC_FAULT_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(match backend {
            Backend::Postgres => 200,
            Backend::Sqlite => 60,
        })
}

fn base_seed() -> u64 {
    std::env::var("STRATASYNC_FAULT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
        })
}

/// A live subscriber of `group` that reconnects after the last id it saw,
/// as the client does, and records every delta id.
fn subscribe(
    server_url: String,
    group: &'static str,
    ids: Arc<Mutex<Vec<u64>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Some(mut ws) = Ws::connect_opt(&server_url, "user:watcher").await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let after = ids.lock().expect("ids").last().copied().unwrap_or(0);
            ws.subscribe("user:watcher", &after.to_string(), Some(&[group]))
                .await;
            loop {
                match ws.next_within(Duration::from_secs(3600)).await {
                    Frame::Json(frame) if frame["type"] == "delta" => {
                        ids.lock().expect("ids").push(delta_id(&frame));
                    }
                    Frame::Json(_) => {}
                    Frame::Close(..) | Frame::Ended | Frame::Timeout => break,
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// Runs SQL on the test database directly (not through the proxy) and
/// loads `(id, title)` of every task.
async fn task_rows(backend: Backend, url: &str) -> HashMap<String, String> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        id: String,
        #[diesel(sql_type = Text)]
        title: String,
    }
    let rows: Vec<Row> = match backend {
        Backend::Postgres => {
            let mut conn = diesel_async::AsyncPgConnection::establish(url)
                .await
                .expect("connect");
            diesel::sql_query("SELECT id::text AS id, title FROM tasks")
                .load(&mut conn)
                .await
                .expect("tasks")
        }
        Backend::Sqlite => {
            let mut conn = diesel_async::sync_connection_wrapper::SyncConnectionWrapper::<
                diesel::SqliteConnection,
            >::establish(url)
            .await
            .expect("open SQLite");
            diesel::sql_query("SELECT id, title FROM tasks")
                .load(&mut conn)
                .await
                .expect("tasks")
        }
    };
    rows.into_iter().map(|r| (r.id, r.title)).collect()
}

/// Connections of the test database left inside a transaction.
async fn idle_in_transaction(url: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = diesel_async::AsyncPgConnection::establish(url)
        .await
        .expect("connect");
    let count: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_stat_activity \
         WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
    )
    .get_result(&mut conn)
    .await
    .expect("pg_stat_activity");
    count.n
}

/// Terminates the server's connections to the test database (and only those).
async fn terminate_backends(url: &str) {
    if let Ok(mut conn) = diesel_async::AsyncPgConnection::establish(url).await {
        let _ = conn
            .batch_execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .await;
    }
}

impl Session {
    /// A server on `db`; `hooks`: tasks run [`FaultHooks`] (each mutation
    /// of a group in its savepoint), else none (no savepoints).
    async fn start(db: &TestDb, hooks: bool) -> (Session, tokio::task::JoinHandle<()>) {
        let registry = if hooks {
            Registry::new().model_with_hooks::<Task>(FaultHooks)
        } else {
            Registry::new().model::<Task>()
        }
        .model::<TaskLabel>();
        let (proxy, server_db) = match db.backend {
            Backend::Postgres => {
                let (prefix, name) = db.url.rsplit_once('/').expect("database name");
                // Deadlocks are detected fast, in this test's database only.
                db.execute(&format!(
                    "ALTER DATABASE {name} SET deadlock_timeout = '100ms'"
                ))
                .await;
                let upstream = prefix.rsplit('@').next().expect("host:port").to_owned();
                let proxy = CuttableProxy::start(upstream).await;
                let via = proxy.url.trim_start_matches("redis://").to_owned();
                (Some(proxy), format!("postgres://postgres@{via}/{name}"))
            }
            Backend::Sqlite => (None, db.url.clone()),
        };
        let server = stratasync::SyncServer::builder(registry)
            .database_url(&server_db)
            .auth(stratasync_tests::harness::TestAuth)
            .build()
            .await
            .expect("build the server");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let server_url = format!("http://{}", listener.local_addr().expect("address"));
        let router = server.router();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        for group in GROUPS {
            for user in ["writer", "watcher"] {
                server
                    .store()
                    .add_member(user, group, "workspace")
                    .await
                    .expect("add member");
            }
        }
        let received: Vec<_> = GROUPS
            .iter()
            .map(|_| Arc::new(Mutex::new(Vec::new())))
            .collect();
        let subscribers = GROUPS
            .iter()
            .zip(&received)
            .map(|(group, ids)| subscribe(server_url.clone(), group, Arc::clone(ids)))
            .collect();
        let session = Session {
            backend: db.backend,
            db_url: db.url.clone(),
            server_url,
            server,
            proxy,
            known: BTreeMap::new(),
            received,
            subscribers,
            http: reqwest::Client::new(),
        };
        (session, task)
    }
}

/// A task payload of `group` titled `title`.
fn insert_payload(title: &str, group: &str) -> Value {
    json!({ "title": title, "priority": 1, "workspaceId": group })
}

fn transaction(client_tx_id: &str, row: &str, action: &str, payload: Value) -> Value {
    json!({
        "clientTxId": client_tx_id,
        "clientId": "fault-client",
        "modelName": "Task",
        "modelId": row,
        "action": action,
        "payload": payload,
    })
}

/// A request of the plan: its transactions, sent together.
type Request = Vec<Planned>;

/// Builds case `case`'s requests per writer, all injecting `fault`.
fn plan(
    case: usize,
    fault: Fault,
    backend: Backend,
    known: &BTreeMap<String, KnownRow>,
    rng: &mut Rng,
) -> Vec<Vec<Request>> {
    let mut serial = 0;
    let mut next_tx = || {
        serial += 1;
        format!("c{case}-t{serial}")
    };
    let slow = matches!(fault, Fault::Terminate | Fault::Outage | Fault::Deadlock);
    let mut updatable: Vec<(&String, &KnownRow)> = known.iter().collect();
    // Each known row is written by at most one transaction of a case, but
    // for the deadlock pair and the unique-violation race.
    let mut take_row = |rng: &mut Rng| {
        (!updatable.is_empty()).then(|| {
            let i = rng.below(updatable.len());
            let (id, row) = updatable.swap_remove(i);
            (id.clone(), row.group)
        })
    };
    let good = |rng: &mut Rng, tx_id: String, take: Option<(String, &'static str)>| {
        let title = format!("{}ok-{tx_id}", if slow { "slow-" } else { "" });
        match take {
            Some((row, group)) if rng.chance(40) => Planned {
                tx: transaction(&tx_id, &row, "UPDATE", json!({ "title": title })),
                expect: Expect::Success,
                row,
                title,
                insert: false,
                group,
            },
            _ => {
                let group = GROUPS[rng.below(GROUPS.len())];
                let row = new_id();
                Planned {
                    tx: transaction(&tx_id, &row, "INSERT", insert_payload(&title, group)),
                    expect: Expect::Success,
                    row,
                    title,
                    insert: true,
                    group,
                }
            }
        }
    };
    let writers = 2 + rng.below(4);
    let mut plans: Vec<Vec<Request>> = Vec::with_capacity(writers + 1);
    let mut race_id: Option<(String, &'static str)> = None;
    for _ in 0..writers {
        let mut requests = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let mut request = Vec::new();
            for _ in 0..1 + rng.below(3) {
                let tx_id = next_tx();
                let poisoned = rng.chance(35)
                    && !matches!(fault, Fault::Deadlock | Fault::Terminate | Fault::Outage);
                if !poisoned {
                    let take = take_row(rng);
                    request.push(good(rng, tx_id, take));
                    continue;
                }
                let group = GROUPS[rng.below(GROUPS.len())];
                let planned = match fault {
                    Fault::OutOfRange => {
                        let field = if rng.chance(50) {
                            "completedAt"
                        } else {
                            "dueOn"
                        };
                        let value = if rng.chance(50) {
                            json!(-1_000_000_000_000_000_i64)
                        } else {
                            json!(9_000_000_000_000_000_i64)
                        };
                        let title = format!("range-{tx_id}");
                        match take_row(rng) {
                            Some((row, group)) if rng.chance(50) => Planned {
                                tx: transaction(
                                    &tx_id,
                                    &row,
                                    "UPDATE",
                                    json!({ "title": title, field: value }),
                                ),
                                expect: Expect::Rejected(field),
                                row,
                                title,
                                insert: false,
                                group,
                            },
                            _ => {
                                let row = new_id();
                                let mut payload = insert_payload(&title, group);
                                payload[field] = value;
                                Planned {
                                    tx: transaction(&tx_id, &row, "INSERT", payload),
                                    expect: Expect::Rejected(field),
                                    row,
                                    title,
                                    insert: true,
                                    group,
                                }
                            }
                        }
                    }
                    Fault::Unique => {
                        let title = format!("dup-{tx_id}");
                        let existing = known
                            .iter()
                            .nth(rng.below(known.len().max(1)))
                            .map(|(id, row)| (id.clone(), row.group));
                        match existing {
                            Some((row, group)) if rng.chance(60) => Planned {
                                tx: transaction(
                                    &tx_id,
                                    &row,
                                    "INSERT",
                                    insert_payload(&title, group),
                                ),
                                expect: Expect::Rejected("already exists"),
                                row,
                                title,
                                insert: true,
                                group,
                            },
                            _ => {
                                // Two writers insert the same new row at once.
                                let (row, group) =
                                    race_id.get_or_insert_with(|| (new_id(), group)).clone();
                                Planned {
                                    tx: transaction(
                                        &tx_id,
                                        &row,
                                        "INSERT",
                                        insert_payload(&title, group),
                                    ),
                                    expect: Expect::Either,
                                    row,
                                    title,
                                    insert: true,
                                    group,
                                }
                            }
                        }
                    }
                    Fault::HookReject | Fault::HookSql | Fault::HookTimeout => {
                        let (prefix, expect) = match fault {
                            Fault::HookReject => {
                                ("reject", Expect::Rejected("rejected by the hook"))
                            }
                            Fault::HookTimeout => ("sleep", Expect::Rejected("timed out")),
                            // SQLite's failed statement does not spoil the transaction.
                            _ if backend == Backend::Sqlite => ("sql", Expect::Success),
                            _ => ("sql", Expect::NotApplied),
                        };
                        let title = format!("{prefix}-{tx_id}");
                        let row = new_id();
                        Planned {
                            tx: transaction(&tx_id, &row, "INSERT", insert_payload(&title, group)),
                            expect,
                            row,
                            title,
                            insert: true,
                            group,
                        }
                    }
                    Fault::Deadlock | Fault::Terminate | Fault::Outage => unreachable!(),
                };
                // A transaction that keeps failing with 5xx goes alone, so the
                // rest of its writer's work is not held hostage.
                if planned.expect == Expect::NotApplied {
                    requests.push(vec![planned]);
                } else {
                    request.push(planned);
                }
            }
            if !request.is_empty() {
                requests.push(request);
            }
        }
        plans.push(requests);
    }
    if fault == Fault::Deadlock {
        let rows: Vec<(String, &'static str)> = known
            .iter()
            .filter(|(_, row)| row.group == "w1")
            .take(2)
            .map(|(id, row)| (id.clone(), row.group))
            .collect();
        if let [a, b] = rows.as_slice() {
            for order in [[a, b], [b, a]] {
                let request = order
                    .iter()
                    .map(|(row, group)| {
                        let tx_id = next_tx();
                        let title = format!("slow-deadlock-{tx_id}");
                        Planned {
                            tx: transaction(&tx_id, row, "UPDATE", json!({ "title": title })),
                            expect: Expect::Success,
                            row: row.clone(),
                            title,
                            insert: false,
                            group,
                        }
                    })
                    .collect();
                plans.push(vec![request]);
            }
        }
    }
    plans
}

/// One request's final answers and when the last attempt ended.
struct Sent {
    answers: Vec<Answer>,
    saw_5xx: bool,
    done: Instant,
}

/// Sends `request` until it is answered 200, retrying 5xx as the client does
/// (a request that keeps failing is given up after its budget). Protocol
/// violations go to `problems`.
async fn send(
    http: &reqwest::Client,
    server_url: &str,
    request: &Request,
    problems: &Mutex<Vec<String>>,
) -> Sent {
    let body = json!({
        "batchId": "fault",
        "transactions": request.iter().map(|p| p.tx.clone()).collect::<Vec<_>>(),
    });
    let gives_up_early = request.iter().any(|p| p.expect == Expect::NotApplied);
    let started = Instant::now();
    let mut attempts = 0;
    let mut saw_5xx = false;
    let problem = |text: String| problems.lock().expect("problems").push(text);
    loop {
        attempts += 1;
        let sending = http
            .post(format!("{server_url}/sync/mutate"))
            .bearer_auth("user:writer")
            .json(&body)
            .send();
        let response = match tokio::time::timeout(HANG, sending).await {
            Err(_) => {
                problem(format!("a request hung for {HANG:?}"));
                return Sent {
                    answers: request.iter().map(|_| Answer::Failed(0)).collect(),
                    saw_5xx,
                    done: Instant::now(),
                };
            }
            Ok(Err(error)) => {
                problem(format!("the server did not answer: {error}"));
                return Sent {
                    answers: request.iter().map(|_| Answer::Failed(0)).collect(),
                    saw_5xx,
                    done: Instant::now(),
                };
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status().as_u16();
        let retry_after = response.headers().contains_key("retry-after");
        let reply: Value = response.json().await.unwrap_or(Value::Null);
        if status == 200 {
            let answers = request
                .iter()
                .zip(reply["results"].as_array().cloned().unwrap_or_default())
                .map(|(_, result)| {
                    if result["success"] == true {
                        let id = result["syncId"]
                            .as_str()
                            .unwrap_or("0")
                            .parse()
                            .unwrap_or(0);
                        Answer::Success(id)
                    } else {
                        Answer::Rejected(result["error"].as_str().unwrap_or("").to_owned())
                    }
                })
                .collect::<Vec<_>>();
            if answers.len() != request.len() {
                problem(format!(
                    "{} results for {} transactions: {reply}",
                    answers.len(),
                    request.len()
                ));
            }
            return Sent {
                answers,
                saw_5xx,
                done: Instant::now(),
            };
        }
        if status < 500 {
            problem(format!(
                "a retryable request was answered {status}: {reply}"
            ));
        }
        if status == 503 && !retry_after {
            problem(format!("503 without Retry-After: {reply}"));
        }
        if status == 500 && !gives_up_early {
            problem(format!(
                "500 for a request that can succeed on retry: {reply}"
            ));
        }
        saw_5xx = true;
        if (gives_up_early && attempts >= 2) || started.elapsed() > RETRY_BUDGET {
            return Sent {
                answers: request.iter().map(|_| Answer::Failed(status)).collect(),
                saw_5xx,
                done: Instant::now(),
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A rejection message that shows SQL or database internals.
fn leaks_sql(message: &str) -> bool {
    let lower = message.to_lowercase();
    [
        "select ",
        "insert ",
        "update ",
        "relation",
        "violates",
        "sqlstate",
        "syntax",
        "pg_",
        "column ",
        "constraint",
        "out of range for type",
        "timestamp",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

/// Starts one task per writer, each sending its requests in order.
fn start_writers(
    session: &Session,
    plans: Vec<Vec<Request>>,
    problems: &Arc<Mutex<Vec<String>>>,
) -> Vec<tokio::task::JoinHandle<Vec<(Request, Sent)>>> {
    plans
        .into_iter()
        .map(|requests| {
            let http = session.http.clone();
            let url = session.server_url.clone();
            let problems = Arc::clone(problems);
            tokio::spawn(async move {
                let mut sent = Vec::new();
                for request in requests {
                    let answer = send(&http, &url, &request, &problems).await;
                    sent.push((request, answer));
                }
                sent
            })
        })
        .collect()
}

/// Runs case `case` on `session`; returns what went wrong (empty: nothing).
async fn run_case(session: &mut Session, case: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng(seed);
    let fault = pick_fault(session.backend, &mut rng);
    let plans = plan(case, fault, session.backend, &session.known, &mut rng);
    let start_id = session
        .server
        .store()
        .last_id()
        .await
        .expect("last id")
        .get();
    let problems = Arc::new(Mutex::new(Vec::<String>::new()));
    let writers = start_writers(session, plans, &problems);

    // The disturbance of this case, while the writers run.
    let mut restored_at = None;
    match fault {
        Fault::Terminate => {
            for _ in 0..2 {
                tokio::time::sleep(Duration::from_millis(10 + rng.below(40) as u64)).await;
                terminate_backends(&session.db_url).await;
            }
        }
        Fault::Outage => {
            let proxy = session.proxy.as_ref().expect("a proxy on PostgreSQL");
            tokio::time::sleep(Duration::from_millis(rng.below(40) as u64)).await;
            proxy.cut();
            tokio::time::sleep(OUTAGE / 3).await;
            // A request during the outage: 503 with Retry-After, at once.
            let probe_row = new_id();
            let probe = vec![Planned {
                tx: transaction(
                    &format!("c{case}-probe"),
                    &probe_row,
                    "INSERT",
                    insert_payload(&format!("ok-c{case}-probe"), "w1"),
                ),
                expect: Expect::Success,
                row: probe_row,
                title: format!("ok-c{case}-probe"),
                insert: true,
                group: "w1",
            }];
            let asked = Instant::now();
            let during = tokio::time::timeout(
                HANG,
                session
                    .http
                    .post(format!("{}/sync/mutate", session.server_url))
                    .bearer_auth("user:writer")
                    .json(&json!({ "batchId": "probe", "transactions": [probe[0].tx.clone()] }))
                    .send(),
            )
            .await;
            match during {
                Ok(Ok(response)) => {
                    let status = response.status().as_u16();
                    if status != 503 || !response.headers().contains_key("retry-after") {
                        problems.lock().expect("problems").push(format!(
                            "during the outage: {status} (want 503 with Retry-After)"
                        ));
                    }
                }
                other => problems
                    .lock()
                    .expect("problems")
                    .push(format!("during the outage the request failed: {other:?}")),
            }
            if asked.elapsed() > Duration::from_secs(5) {
                problems
                    .lock()
                    .expect("problems")
                    .push(format!("the outage answer took {:?}", asked.elapsed()));
            }
            tokio::time::sleep(OUTAGE.saturating_sub(asked.elapsed() + OUTAGE / 3)).await;
            proxy.restore();
            let at = Instant::now();
            restored_at = Some(at);
            let answer = send(&session.http, &session.server_url, &probe, &problems).await;
            if answer.done.duration_since(at) > RECOVERY {
                problems.lock().expect("problems").push(format!(
                    "service came back {:?} after the database",
                    answer.done.duration_since(at)
                ));
            }
            let mut all = Vec::new();
            for writer in writers {
                all.extend(writer.await.expect("writer"));
            }
            all.push((probe, answer));
            return oracle(session, start_id, fault, all, restored_at, problems).await;
        }
        _ => {}
    }
    let mut all = Vec::new();
    for writer in writers {
        all.extend(writer.await.expect("writer"));
    }
    oracle(session, start_id, fault, all, restored_at, problems).await
}

/// Checks every answer of the case against the database and the subscribers.
async fn oracle(
    session: &mut Session,
    start_id: u64,
    fault: Fault,
    sent: Vec<(Request, Sent)>,
    restored_at: Option<Instant>,
    problems: Arc<Mutex<Vec<String>>>,
) -> Vec<String> {
    let mut problems = std::mem::take(&mut *problems.lock().expect("problems"));
    let store = session.server.store();
    let mut log = Vec::new();
    let mut cursor = SyncId::new(start_id);
    loop {
        let page = store.read_actions(cursor, 1000, None).await.expect("log");
        let done = page.len() < 1000;
        if let Some(last) = page.last() {
            cursor = last.id;
        }
        log.extend(page);
        if done {
            break;
        }
    }
    let mut by_tx: HashMap<String, Vec<u64>> = HashMap::new();
    for action in &log {
        if let Some(tx) = &action.client_tx_id {
            by_tx.entry(tx.clone()).or_default().push(action.id.get());
        }
    }
    let rows = task_rows(session.backend, &session.db_url).await;
    let mut applied: Vec<(u64, &Planned)> = Vec::new();
    for (request, answer) in &sent {
        if let (Some(at), true) = (restored_at, answer.saw_5xx)
            && answer.done.duration_since(at.min(answer.done)) > RECOVERY
        {
            problems
                .push("a request retried through the outage took more than 10 s after it".into());
        }
        for (planned, answer) in request.iter().zip(&answer.answers) {
            let tx_id = planned.tx["clientTxId"].as_str().unwrap_or_default();
            let actions = by_tx.get(tx_id).cloned().unwrap_or_default();
            match (answer, &planned.expect) {
                (Answer::Success(_), Expect::Rejected(_) | Expect::NotApplied)
                | (Answer::Rejected(_) | Answer::Failed(_), Expect::Success) => {
                    problems.push(format!(
                        "{fault:?}: {tx_id} ({}) answered {answer:?}, expected {:?}",
                        planned.title, planned.expect
                    ))
                }
                (Answer::Failed(status), _) if !(500..600).contains(status) => {
                    problems.push(format!("{tx_id} got no answer from the server"));
                }
                (Answer::Rejected(message), Expect::Rejected(text)) if !message.contains(text) => {
                    problems.push(format!(
                        "{tx_id}: rejection {message:?} does not say {text:?}"
                    ));
                }
                _ => {}
            }
            match answer {
                Answer::Success(id) => {
                    if actions != [*id] {
                        problems.push(format!(
                            "ACKNOWLEDGED BUT MISSING: {tx_id} answered syncId {id}, log has {actions:?}"
                        ));
                    }
                    if planned.insert && !rows.contains_key(&planned.row) {
                        problems.push(format!(
                            "ACKNOWLEDGED BUT MISSING: row {} of {tx_id}",
                            planned.row
                        ));
                    }
                    applied.push((*id, planned));
                }
                Answer::Rejected(_) | Answer::Failed(_) => {
                    if let Answer::Rejected(message) = answer
                        && leaks_sql(message)
                    {
                        problems.push(format!("{tx_id}: the rejection leaks SQL: {message:?}"));
                    }
                    if !actions.is_empty() {
                        problems.push(format!(
                            "{tx_id} answered {answer:?} but the log has {actions:?}"
                        ));
                    }
                }
            }
        }
    }
    applied.sort_by_key(|(id, _)| *id);
    let mut inserted: HashMap<&str, usize> = HashMap::new();
    for (_, planned) in &applied {
        if planned.insert {
            *inserted.entry(&planned.row).or_default() += 1;
        }
        session.known.insert(
            planned.row.clone(),
            KnownRow {
                group: planned.group,
                title: planned.title.clone(),
            },
        );
    }
    if let Some((row, n)) = inserted.iter().find(|(_, n)| **n > 1) {
        problems.push(format!("row {row} inserted {n} times with success"));
    }
    for (id, title) in &rows {
        match session.known.get(id) {
            Some(row) if &row.title == title => {}
            Some(row) => problems.push(format!(
                "row {id} has title {title:?}, the last acknowledged write says {:?}",
                row.title
            )),
            None => problems.push(format!("row {id} ({title}) was never acknowledged")),
        }
    }
    if session.known.len() != rows.len() {
        problems.push(format!(
            "{} acknowledged rows, {} in the table",
            session.known.len(),
            rows.len()
        ));
    }
    if session.backend == Backend::Postgres {
        let mut left = 0;
        for _ in 0..10 {
            left = idle_in_transaction(&session.db_url).await;
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if left > 0 {
            problems.push(format!("{left} connections left idle in transaction"));
        }
    }
    for (group, received) in GROUPS.iter().zip(&session.received) {
        let expected: Vec<u64> = log
            .iter()
            .filter(|a| a.group_id.as_deref() == Some(group))
            .map(|a| a.id.get())
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        let got = loop {
            let got: Vec<u64> = received
                .lock()
                .expect("ids")
                .iter()
                .copied()
                .filter(|id| *id > start_id)
                .collect();
            if got.len() >= expected.len() || Instant::now() > deadline {
                break got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if got != expected {
            problems.push(format!(
                "the subscriber of {group} received {got:?}, the committed actions are {expected:?}"
            ));
        }
    }
    problems
}

/// Runs the property test on `backend`: case after case on one server.
async fn property(db: &TestDb) {
    let seed = base_seed();
    let cases = case_count(db.backend);
    eprintln!(
        "fault injection on {:?}: {cases} cases, STRATASYNC_FAULT_SEED={seed}",
        db.backend
    );
    let (mut session, server) = Session::start(db, true).await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for case in 0..cases {
        let case_seed = seed.wrapping_add(case as u64);
        let fault = pick_fault(db.backend, &mut Rng(case_seed));
        *counts.entry(format!("{fault:?}")).or_default() += 1;
        let problems = run_case(&mut session, case, case_seed).await;
        assert!(
            problems.is_empty(),
            "case {case} ({fault:?}) failed; replay with STRATASYNC_FAULT_SEED={seed}:\n{}",
            problems.join("\n")
        );
    }
    eprintln!(
        "fault injection on {:?}: all {cases} cases held: {counts:?}",
        db.backend
    );
    drop(session);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_faults_postgres() {
    run(Backend::Postgres, |db| Box::pin(property(db))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_faults_sqlite() {
    run(Backend::Sqlite, |db| Box::pin(property(db))).await;
}

/// Group commit under grouped failures: twelve clients at once, each request
/// carrying good transactions around one that fails in the database (a
/// unique violation; a hook whose SQL fails) or is rolled back by its hook.
/// A member refused after its hook ran (the hook may have written) rolls its
/// group back, which then runs one by one; the failing members are answered
/// alone, and every answer matches the table, the log and the live
/// subscribers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grouped_members_fail_alone() {
    run(Backend::Postgres, |db| Box::pin(grouped_failures(db, true))).await;
}

/// The same without hooks: a unique violation aborts its group's
/// transaction; the group then runs one by one, and the answers are the
/// same.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grouped_members_without_hooks_fail_alone() {
    run(Backend::Postgres, |db| {
        Box::pin(grouped_failures(db, false))
    })
    .await;
}

/// Twelve writers' requests of good members around a failing one (see
/// [`grouped_members_fail_alone`]); `hooks` as in [`Session::start`]: without
/// them every failing member is a unique violation.
async fn grouped_failures(db: &TestDb, hooks: bool) {
    let (mut session, server) = Session::start(db, hooks).await;
    let problems = Arc::new(Mutex::new(Vec::new()));
    let good = |tx_id: &str, group: &'static str| {
        let (row, title) = (new_id(), format!("ok-{tx_id}"));
        Planned {
            tx: transaction(tx_id, &row, "INSERT", insert_payload(&title, group)),
            expect: Expect::Success,
            row,
            title,
            insert: true,
            group,
        }
    };
    // Rows for the unique violations to collide with.
    let seed: Request = (0..4).map(|i| good(&format!("seed{i}"), "w1")).collect();
    let start_id = session
        .server
        .store()
        .last_id()
        .await
        .expect("last id")
        .get();
    let seeded = start_writers(&session, vec![vec![seed]], &problems);
    let mut sent = Vec::new();
    for writer in seeded {
        sent.extend(writer.await.expect("writer"));
    }
    let found = oracle(&mut session, start_id, Fault::Unique, sent, None, problems).await;
    assert!(found.is_empty(), "{}", found.join("\n"));
    let seeded: Vec<String> = session.known.keys().cloned().collect();

    let problems = Arc::new(Mutex::new(Vec::new()));
    let start_id = session
        .server
        .store()
        .last_id()
        .await
        .expect("last id")
        .get();
    let plans: Vec<Vec<Request>> = (0..12)
        .map(|w| {
            let mut requests: Vec<Request> = (0..6)
                .map(|r| {
                    let tx = |n: usize| format!("g-w{w}-r{r}-{n}");
                    let group = GROUPS[(w + r) % GROUPS.len()];
                    let failing = if !hooks || (w + r) % 2 == 0 {
                        let row = seeded[(w + r) % seeded.len()].clone();
                        let title = format!("dup-{}", tx(1));
                        Planned {
                            tx: transaction(&tx(1), &row, "INSERT", insert_payload(&title, "w1")),
                            expect: Expect::Rejected("already exists"),
                            row,
                            title,
                            insert: true,
                            group: "w1",
                        }
                    } else {
                        let (row, title) = (new_id(), format!("reject-{}", tx(1)));
                        Planned {
                            tx: transaction(&tx(1), &row, "INSERT", insert_payload(&title, group)),
                            expect: Expect::Rejected("rejected by the hook"),
                            row,
                            title,
                            insert: true,
                            group,
                        }
                    };
                    vec![good(&tx(0), group), failing, good(&tx(2), group)]
                })
                .collect();
            if hooks && w % 3 == 0 {
                let (row, title) = (new_id(), format!("sql-g-w{w}"));
                requests.insert(
                    2,
                    vec![Planned {
                        tx: transaction(
                            &format!("g-w{w}-sql"),
                            &row,
                            "INSERT",
                            insert_payload(&title, "w2"),
                        ),
                        expect: Expect::NotApplied,
                        row,
                        title,
                        insert: true,
                        group: "w2",
                    }],
                );
            }
            requests
        })
        .collect();
    let writers = start_writers(&session, plans, &problems);
    let mut sent = Vec::new();
    for writer in writers {
        sent.extend(writer.await.expect("writer"));
    }
    let committed = sent
        .iter()
        .flat_map(|(_, s)| &s.answers)
        .filter(|a| matches!(a, Answer::Success(_)))
        .count();
    assert_eq!(committed, 12 * 6 * 2, "every good member committed");
    let found = oracle(&mut session, start_id, Fault::Unique, sent, None, problems).await;
    assert!(found.is_empty(), "{}", found.join("\n"));
    drop(session);
    server.abort();
}

/// The pool checks no connection with a query when it hands it out: a
/// connection whose backend was terminated while it sat in the pool (as in a
/// database restart) must be dropped, not handed to the next request. Every
/// request after the termination is answered, reads and writes alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_lost_while_pooled_are_not_handed_out() {
    run(Backend::Postgres, |db| {
        Box::pin(async move {
            let server = stratasync_tests::harness::Fixture::on(db)
                .members(&[("alice", "w1")])
                .start()
                .await;
            // Fill the pool: several requests at once, each on a connection.
            let warm: Vec<_> = (0..6)
                .map(|i| {
                    let client = server.client(&format!("user:u{i}"));
                    tokio::spawn(async move { client.get("/sync/bootstrap").await.status })
                })
                .collect();
            for request in warm {
                assert_eq!(request.await.expect("request"), 200);
            }
            terminate_backends(&db.url).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let alice = server.client("user:alice");
            for path in ["/sync/bootstrap", "/sync/deltas?afterSyncId=0"] {
                let reply = alice.get(path).await;
                assert_eq!(reply.status, 200, "{path}: {}", reply.text);
            }
            alice.insert_task("w1", "after the restart").await;
            for i in 0..6 {
                let reply = server
                    .client(&format!("user:v{i}"))
                    .get("/sync/bootstrap")
                    .await;
                assert_eq!(reply.status, 200, "{}", reply.text);
            }
        })
    })
    .await;
}
