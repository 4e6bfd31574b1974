//! Run: `ulimit -n 20000; cargo run --release -p stratasync-bench -- --out BENCHMARKS.md`
//! (PostgreSQL on 127.0.0.1:5432 with trust auth for `postgres`, Redis on
//! 127.0.0.1:6379; `--quick` for a smoke run, `--help` for sizes).
//!
//! Measures the stratasync server against what the database alone can do,
//! in the same run on the same machine, and writes `BENCHMARKS.md`:
//!
//! - (a) bootstrap: rows/s, bytes on the wire with and without gzip, time to
//!   first byte, server peak RSS, a slow reader; baselines: binary `COPY`
//!   of the same rows (the limit), a plain `SELECT` read to the end, and
//!   `COPY` of them as JSON, before and after the server's reads;
//! - (b) mutate: tx/s and p50/p99 latency at several concurrencies and batch
//!   sizes; baselines the same SQL issued directly, committed per mutation
//!   and per request;
//! - (c) fan-out: WebSocket subscribers, delivery latency, server CPU per
//!   delivered frame, RSS per idle socket, one node and two nodes over Redis;
//!   baseline a minimal tokio-tungstenite broadcast server (this binary run
//!   with `--serve-broadcast`) sending the same frames to as many sockets;
//! - (d) catch-up: actions/s through `/sync/deltas` and WebSocket replay;
//!   baseline `COPY` of the same actions;
//! - (e) nodes: PostgreSQL transactions and tuples, and Redis commands, per
//!   mutation with 1 to 8 nodes (the streams topology), and a model of 100
//!   nodes; `--only nodes` rewrites only that section of the report.
//!
//! The server is the `todo-example` binary (built in release mode by this
//! command), run as a child process on loopback ports against a database
//! the bench creates (`stratasync_bench`, dropped at the end) and seeds with
//! `INSERT ... SELECT generate_series`.

mod args;
mod bootstrap;
mod broadcast;
mod catchup;
mod db;
mod fanout;
mod machine;
mod mutate;
mod node;
mod nodes;
mod profile;
mod report;
mod stats;
mod targets;
mod wire;
mod ws;

use std::sync::Arc;
use std::time::{Duration, Instant};

use args::Args;
use bootstrap::Reader;
use machine::Machine;
use node::Node;
use report::{BootstrapRow, CatchupRow, MutateRow, Report};

/// The workspace and user of the mutate benchmark.
const MUTATE_WORKSPACE: (&str, &str) = ("wmut", "umut");
/// Rows of the mutate workspace.
const MUTATE_ROWS: u64 = 20_000;
/// The mutate configuration `--profile` samples: clients, transactions per
/// request.
const PROFILED_MUTATE: (usize, usize) = (16, 1);
/// The workspace and user of the fan-out benchmark.
const FANOUT_WORKSPACE: (&str, &str) = ("wfan", "ufan");
/// The workspace (group) and user of the catch-up benchmark.
const CATCHUP_WORKSPACE: (&str, &str) = ("wcat", "ucat");
/// `/sync/deltas` page size of the catch-up benchmark (the protocol's default).
const DELTAS_LIMIT: u32 = 1000;
/// Concurrent clients of the nodes section's writer.
const NODES_CLIENTS: usize = 4;
/// How long the slow reader pauses.
const SLOW_PAUSE: Duration = Duration::from_secs(3);

#[tokio::main]
async fn main() {
    let outcome = if std::env::args().nth(1).as_deref() == Some(broadcast::SERVE) {
        broadcast::serve().await
    } else {
        run().await
    };
    if let Err(error) = outcome {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

/// Progress on stderr.
macro_rules! step {
    ($($arg:tt)*) => { eprintln!("[bench] {}", format!($($arg)*)) };
}

async fn run() -> Result<(), String> {
    let args = Args::parse()?;
    let started = Instant::now();
    let machine = Machine::read();
    build_server(&args)?;

    step!("creating database {}", args.database);
    db::recreate(&args.postgres, &args.database).await?;
    let url = args.database_url();
    // The server creates its tables and the sync tables on start.
    Node::start(&args.server_bin, &url, None)
        .await?
        .stop()
        .await;
    let db = db::connect(&url).await?;

    let mut report = Report {
        command: command_line(),
        date: db
            .query_one(
                "SELECT to_char(now() AT TIME ZONE 'utc', 'YYYY-MM-DD HH24:MI \"UTC\"')",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?
            .get(0),
        versions: versions(&db, &args.redis).await,
        revision: revision(),
        ..Report::default()
    };

    if args.runs("bootstrap") {
        (report.bootstrap, report.bootstrap_profile) =
            bootstrap_section(&args, &db, &url, &mut report.slow).await?;
    }
    if args.runs("mutate") || args.runs("fanout") || args.runs("catchup") || args.runs("nodes") {
        step!("seeding {MUTATE_ROWS} todos for mutate and fan-out");
        db::seed_todos(&db, MUTATE_WORKSPACE.0, MUTATE_WORKSPACE.1, MUTATE_ROWS).await?;
        db::seed_todos(&db, FANOUT_WORKSPACE.0, FANOUT_WORKSPACE.1, 1_000).await?;
    }
    if args.runs("mutate") {
        (report.mutate, report.mutate_profile) = mutate_section(&args, &db, &url).await?;
    }
    let has_ws = {
        let node = Node::start(&args.server_bin, &url, None).await?;
        let has = has_websocket(&node).await;
        node.stop().await;
        has
    };
    if args.runs("catchup") {
        report.catchup = Some(catchup_section(&args, &db, &url, has_ws).await?);
    }
    if args.runs("fanout") {
        if has_ws {
            report.fanout = fanout_section(&args, &db, &url).await?;
        } else {
            report.fanout_skipped =
                Some("this build of the server has no `/sync/ws` route.".to_owned());
        }
    }

    if args.runs("nodes") {
        report.nodes = nodes_section(&args, &db, &url).await?;
    }

    report.total_secs = started.elapsed().as_secs_f64();
    drop(db);
    db::drop_database(&args.postgres, &args.database).await?;
    let existing = std::fs::read_to_string(&args.out).ok();
    let page = match existing {
        // Only the nodes section ran: the rest of the report stays.
        Some(existing) if args.sections == ["nodes"] => {
            report::splice_nodes(&existing, &report.render_nodes())
        }
        _ => report.render(&machine),
    };
    std::fs::write(&args.out, page)
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    step!("wrote {} in {:.0} s", args.out.display(), report.total_secs);
    Ok(())
}

/// Under `cargo run` (which sets `CARGO`), builds `todo-example` in release
/// mode when it is the server to run, so that the two binaries match.
fn build_server(args: &Args) -> Result<(), String> {
    let default = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name("todo-example");
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(());
    };
    if args.server_bin != default || cfg!(debug_assertions) {
        return Ok(());
    }
    step!("building todo-example (release)");
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "-p", "todo-example"])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err("building todo-example failed".to_owned())
    }
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!(
        "ulimit -n 20000; cargo run --release -p stratasync-bench -- {}",
        args.join(" ")
    )
    .trim_end()
    .to_owned()
}

/// `git describe`-like: the commit, and whether the work tree differed.
fn revision() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(commit) = git(&["rev-parse", "--short", "HEAD"]).filter(|c| !c.is_empty()) else {
        return "unknown (not a git checkout)".to_owned();
    };
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{commit} plus uncommitted changes in the work tree")
    } else {
        commit
    }
}

async fn versions(db: &tokio_postgres::Client, redis: &str) -> Vec<String> {
    let mut versions = Vec::new();
    if let Ok(row) = db.query_one("SHOW server_version", &[]).await {
        versions.push(format!("PostgreSQL {}", row.get::<_, String>(0)));
    }
    if let Some(version) = redis_version(redis).await {
        versions.push(format!("Redis {version}"));
    }
    versions
}

/// `redis_version` from `INFO server`, over a raw connection.
async fn redis_version(url: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let address = url.strip_prefix("redis://")?.trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    stream.write_all(b"INFO server\r\n").await.ok()?;
    let mut buf = vec![0u8; 8192];
    let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .map(str::to_owned)
}

async fn bootstrap_section(
    args: &Args,
    db: &tokio_postgres::Client,
    url: &str,
    slow: &mut Option<(bootstrap::Fetched, bootstrap::Fetched)>,
) -> Result<(Vec<BootstrapRow>, Option<profile::Profile>), String> {
    let mut rows = Vec::new();
    let mut profiled = None;
    let largest = args.rows.iter().copied().max().unwrap_or(0);
    for &size in &args.rows {
        let (workspace, user) = (format!("w{size}"), format!("u{size}"));
        step!("seeding {size} todos");
        db::seed_todos(db, &workspace, &user, size).await?;
        let token = format!("user:{user}");
        step!("bootstrap {size} rows: baselines (binary COPY, SELECT, JSON COPY)");
        let before = bootstrap::baselines(db, &workspace).await?;
        let read = |gzip, pause| Reader {
            gzip,
            pause,
            expected_rows: size,
        };
        step!("bootstrap {size} rows: identity");
        let (plain, _) =
            bootstrap::on_fresh_node(&args.server_bin, url, &token, read(false, None), None)
                .await?;
        step!("bootstrap {size} rows: gzip");
        let (gzip, _) =
            bootstrap::on_fresh_node(&args.server_bin, url, &token, read(true, None), None).await?;
        for fetched in [&plain, &gzip] {
            if fetched.rows != size {
                return Err(format!(
                    "bootstrap returned {} rows, expected {size}",
                    fetched.rows
                ));
            }
        }
        if slow.is_none() {
            step!("bootstrap {size} rows: slow reader");
            let (paused, _) = bootstrap::on_fresh_node(
                &args.server_bin,
                url,
                &token,
                read(false, Some(SLOW_PAUSE)),
                None,
            )
            .await?;
            *slow = Some((paused, plain));
        }
        if args.profile && size == largest {
            // Sampled in a read of its own, so that perf does not weigh on
            // the figures.
            let during = format!(
                "bootstrap of {} rows, identity",
                stats::thousands(size as f64)
            );
            step!("{during}: again, sampled by perf");
            let (_, profile) = bootstrap::on_fresh_node(
                &args.server_bin,
                url,
                &token,
                read(false, None),
                Some(&during),
            )
            .await?;
            profiled = profile;
        }
        step!("bootstrap {size} rows: baselines again");
        let after = bootstrap::baselines(db, &workspace).await?;
        rows.push(BootstrapRow {
            rows: size,
            plain,
            gzip,
            baselines: before.best(after),
        });
    }
    Ok((rows, profiled))
}

async fn mutate_section(
    args: &Args,
    db: &tokio_postgres::Client,
    url: &str,
) -> Result<(Vec<MutateRow>, Option<profile::Profile>), String> {
    let ids = Arc::new(
        db::todo_ids(
            db,
            MUTATE_WORKSPACE.0,
            i64::try_from(MUTATE_ROWS).unwrap_or(0),
        )
        .await?,
    );
    let token = format!("user:{}", MUTATE_WORKSPACE.1);
    let wire = wire::RoundTrips::start(url).await?;
    let node = Node::start(&args.server_bin, &wire.url, None).await?;
    let mut rows = Vec::new();
    let configs = args
        .batches
        .iter()
        .flat_map(|&batch| args.clients.iter().map(move |&clients| (clients, batch)));
    for (index, (clients, batch)) in configs.enumerate() {
        let run = format!("m{clients}x{batch}");
        let direct_sql = async |commit: mutate::Commit, suffix: &str| {
            step!("mutate {clients} clients × {batch} tx/request: direct SQL, {commit:?}");
            mutate::direct_sql(
                url,
                Arc::clone(&ids),
                clients,
                batch,
                args.mutate_time,
                &format!("{run}{suffix}"),
                commit,
            )
            .await
        };
        let server = async || {
            step!("mutate {clients} clients × {batch} tx/request: server");
            let before = wire.count();
            let server = mutate::through_server(
                &node,
                &token,
                Arc::clone(&ids),
                clients,
                batch,
                args.mutate_time,
                &run,
            )
            .await?;
            let round_trips = (wire.count() - before) as f64 / server.transactions.max(1) as f64;
            step!(
                "mutate {clients} clients × {batch} tx/request: {} transactions, {round_trips:.2} round trips per transaction",
                server.transactions
            );
            Ok::<_, String>((server, round_trips))
        };
        // Baselines and server alternate which runs first, so that a drift
        // of the shared machine does not always favour the same side.
        let server_first = index % 2 == 1;
        let early = if server_first {
            Some(server().await?)
        } else {
            None
        };
        let direct = direct_sql(mutate::Commit::PerMutation, "d").await?;
        let per_request = if batch > 1 {
            Some(direct_sql(mutate::Commit::PerRequest, "r").await?)
        } else {
            None
        };
        let (server, round_trips) = match early {
            Some(server) => server,
            None => server().await?,
        };
        rows.push(MutateRow {
            clients,
            batch,
            server,
            direct,
            per_request,
            server_first,
            round_trips,
        });
    }
    // Sampled in a run of its own, so that perf does not weigh on the
    // figures above.
    let profiled = if args.profile {
        let (clients, batch) = PROFILED_MUTATE;
        let during = format!("mutate, {clients} clients × {batch} tx/request");
        step!("{during}: again, sampled by perf");
        let recording = profile::record(node.pid(), args.mutate_time, &during);
        mutate::through_server(
            &node,
            &token,
            Arc::clone(&ids),
            clients,
            batch,
            args.mutate_time,
            &format!("m{clients}x{batch}p"),
        )
        .await?;
        Some(recording.finish().await)
    } else {
        None
    };
    node.stop().await;
    Ok((rows, profiled))
}

async fn has_websocket(node: &Node) -> bool {
    // Without a token the route answers 401; a build without it answers 404.
    reqwest::get(format!("{}/sync/ws", node.base))
        .await
        .is_ok_and(|r| r.status() != reqwest::StatusCode::NOT_FOUND)
}

async fn catchup_section(
    args: &Args,
    db: &tokio_postgres::Client,
    url: &str,
    has_ws: bool,
) -> Result<CatchupRow, String> {
    let (group, user) = CATCHUP_WORKSPACE;
    step!("seeding {} actions", args.actions);
    db::add_member(db, user, group).await?;
    let after = db::seed_actions(db, group, args.actions).await?;
    let token = format!("user:{user}");
    step!("catch-up: COPY baseline");
    let query = format!(
        "SELECT row_to_json(a) FROM sync_actions a WHERE a.id > {after} AND a.group_id = '{group}' ORDER BY a.id"
    );
    let copy = db::copy_out(db, &query).await?;
    let node = Node::start(&args.server_bin, url, None).await?;
    step!("catch-up: /sync/deltas");
    let deltas = catchup::deltas(&node, &token, after, DELTAS_LIMIT, false).await?;
    let deltas_gzip = catchup::deltas(&node, &token, after, DELTAS_LIMIT, true).await?;
    let replay = if has_ws {
        step!("catch-up: WebSocket replay");
        Some(catchup::replay(&node, &token, after).await?)
    } else {
        None
    };
    node.stop().await;
    for caught in [Some(&deltas), Some(&deltas_gzip), replay.as_ref()]
        .into_iter()
        .flatten()
    {
        if caught.actions != args.actions {
            return Err(format!(
                "catch-up delivered {} actions, expected {}",
                caught.actions, args.actions
            ));
        }
    }
    Ok(CatchupRow {
        deltas,
        deltas_gzip,
        replay,
        copy,
        limit: DELTAS_LIMIT,
    })
}

async fn fanout_section(
    args: &Args,
    db: &tokio_postgres::Client,
    url: &str,
) -> Result<Vec<fanout::Fanout>, String> {
    let ids = Arc::new(db::todo_ids(db, FANOUT_WORKSPACE.0, 1_000).await?);
    let token = format!("user:{}", FANOUT_WORKSPACE.1);
    let mut results = Vec::new();
    let bench_bin = std::env::current_exe().map_err(|e| e.to_string())?;
    for (index, &subscribers) in args.subscribers.iter().enumerate() {
        let rate = args.fanout_rate(index);
        let mut sample = None;
        let one_node = results.len();
        let plan = |after, run, profile| fanout::Plan {
            subscribers,
            mutations: args.fanout_mutations,
            rate,
            token: token.clone(),
            ids: Arc::clone(&ids),
            after,
            run,
            profile,
        };
        // The server on one node, the baseline, the server on two nodes.
        for nodes in [1usize, 0, 2] {
            if nodes == 0 {
                let Some((template, template_run)) = sample.take() else {
                    continue;
                };
                step!("fan-out: {subscribers} subscribers on the broadcast baseline");
                let mut server = broadcast::Broadcaster::start(&bench_bin).await?;
                let target = fanout::Target::Baseline {
                    server: &mut server,
                    template,
                    template_run,
                };
                let result = fanout::run(target, plan(0, format!("b{subscribers}"), false)).await;
                server.stop().await;
                results.push(result?);
                continue;
            }
            step!("fan-out: {subscribers} subscribers on {nodes} node(s)");
            let redis = (nodes > 1).then_some(args.redis.as_str());
            let mut started = Vec::new();
            for _ in 0..nodes {
                started.push(Node::start(&args.server_bin, url, redis).await?);
            }
            let after = log_head(db).await?;
            let run = format!("f{subscribers}n{nodes}");
            let result = fanout::run(
                fanout::Target::Nodes(&started),
                plan(after, run.clone(), false),
            )
            .await;
            for node in started {
                node.stop().await;
            }
            let result = result?;
            if nodes == 1 {
                sample = result.sample.clone().map(|frame| (frame, run));
            }
            results.push(result);
        }
        // The first one-node run again, sampled by perf in a run of its
        // own (perf would weigh on the figures above); its profile goes
        // with that row.
        if args.profile && index == 0 {
            step!("fan-out: {subscribers} subscribers on 1 node, again, sampled by perf");
            let node = Node::start(&args.server_bin, url, None).await?;
            let sampled_plan = plan(log_head(db).await?, format!("f{subscribers}n1p"), true);
            let sampled = fanout::run(
                fanout::Target::Nodes(std::slice::from_ref(&node)),
                sampled_plan,
            )
            .await;
            node.stop().await;
            if let Some(row) = results.get_mut(one_node) {
                row.profile = sampled?.profile;
            }
        }
    }
    Ok(results)
}

/// The highest id in the log.
async fn log_head(db: &tokio_postgres::Client) -> Result<i64, String> {
    Ok(db
        .query_one("SELECT COALESCE(MAX(id), 0) FROM sync_actions", &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0))
}

async fn nodes_section(
    args: &Args,
    db: &tokio_postgres::Client,
    url: &str,
) -> Result<Vec<nodes::NodesRow>, String> {
    let ids = Arc::new(db::todo_ids(db, MUTATE_WORKSPACE.0, 1_000).await?);
    let token = format!("user:{}", MUTATE_WORKSPACE.1);
    let admin = db::connect(&args.postgres).await?;
    let redis = nodes::OwnRedis::start().await?;
    let mut rows = Vec::new();
    for &count in &args.nodes {
        step!("nodes: {count} node(s), one writer of {NODES_CLIENTS} clients");
        let plan = nodes::Plan {
            nodes: count,
            clients: NODES_CLIENTS,
            time: args.nodes_time,
            token: token.clone(),
            ids: Arc::clone(&ids),
            run: format!("n{count}-{}", uuid::Uuid::new_v4().simple()),
        };
        rows.push(nodes::run(&args.server_bin, url, &admin, &args.database, &redis, plan).await?);
    }
    Ok(rows)
}
