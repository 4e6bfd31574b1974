//! Real servers on loopback ports against fresh databases, for the
//! integration suites.
//!
//! Every case runs once per backend through [`on_each_backend!`](crate::on_each_backend). SQLite is
//! always available. PostgreSQL is used at `STRATASYNC_TEST_POSTGRES`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`); when it cannot
//! be reached the PostgreSQL cases say so and pass, unless `CI` is set, where
//! a missing service fails the run. Each case is counted in the
//! [tally] as ran or skipped, so a run shows what it exercised.

use std::net::SocketAddr;
use std::time::Duration;

use diesel_async::{AsyncConnection, SimpleAsyncConnection};
use futures::future::BoxFuture;
use serde_json::Value;
use stratasync::{Auth, AuthUser, BoxError, Registry, SyncServer, SyncServerBuilder, TokenError};

use crate::models::{Note, Task, TaskLabel};
use crate::tally::{self, Service};

/// A database backend of the suites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL, a fresh database per case.
    Postgres,
    /// SQLite, a fresh file per case.
    Sqlite,
}

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn postgres_admin_url() -> String {
    std::env::var("STRATASYNC_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

const POSTGRES_TABLES: &str = "
CREATE TABLE tasks (
    id UUID PRIMARY KEY,
    title TEXT NOT NULL,
    completed_at TIMESTAMPTZ,
    due_on DATE,
    priority INTEGER NOT NULL,
    workspace_id TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    archived_at TIMESTAMPTZ
);
CREATE TABLE task_labels (
    task_id UUID NOT NULL,
    label_id UUID NOT NULL,
    workspace_id TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (task_id, label_id)
);
CREATE TABLE notes (
    id UUID PRIMARY KEY,
    title TEXT NOT NULL,
    workspace_id TEXT NOT NULL
);";

const SQLITE_TABLES: &str = "
CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    completed_at TEXT,
    due_on TEXT,
    priority INTEGER NOT NULL,
    workspace_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE TABLE task_labels (
    task_id TEXT NOT NULL,
    label_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (task_id, label_id)
);
CREATE TABLE notes (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    workspace_id TEXT NOT NULL
);";

/// A fresh database with the test models' tables.
#[derive(Debug)]
pub struct TestDb {
    /// Its backend.
    pub backend: Backend,
    /// URL (PostgreSQL) or file path (SQLite) to connect to.
    pub url: String,
    name: String,
    _dir: Option<TempDir>,
}

/// A directory removed when dropped.
#[derive(Debug)]
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl TestDb {
    /// Creates the database, or `None` when PostgreSQL is unreachable
    /// outside CI (the case is then skipped, and says so).
    pub async fn create(backend: Backend) -> Option<TestDb> {
        let name = format!("stratasync_test_{}", uuid::Uuid::new_v4().simple());
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(&name);
                std::fs::create_dir_all(&dir).expect("create a temp dir");
                let url = dir.join("sync.sqlite3").display().to_string();
                create_sqlite_tables(&url).await;
                Some(TestDb {
                    backend,
                    url,
                    name,
                    _dir: Some(TempDir(dir)),
                })
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url();
                let mut admin = match diesel_async::AsyncPgConnection::establish(&admin_url).await {
                    Ok(conn) => conn,
                    Err(error) if !in_ci() => {
                        eprintln!(
                            "skipped on PostgreSQL: {admin_url} unreachable ({error}); set CI=1 to require it"
                        );
                        tally::skipped(Service::Postgres);
                        return None;
                    }
                    Err(error) => panic!("CI requires PostgreSQL at {admin_url}: {error}"),
                };
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create database");
                let url = match admin_url.rsplit_once('/') {
                    Some((server, _)) => format!("{server}/{name}"),
                    None => panic!("STRATASYNC_TEST_POSTGRES must end with /<database>"),
                };
                let mut conn = diesel_async::AsyncPgConnection::establish(&url)
                    .await
                    .expect("connect");
                conn.batch_execute(POSTGRES_TABLES)
                    .await
                    .expect("create PostgreSQL tables");
                Some(TestDb {
                    backend,
                    url,
                    name,
                    _dir: None,
                })
            }
        }
    }

    /// Drops the database (PostgreSQL; SQLite files go with the value).
    pub async fn drop_database(self) {
        if self.backend != Backend::Postgres {
            return;
        }
        if let Ok(mut admin) =
            diesel_async::AsyncPgConnection::establish(&postgres_admin_url()).await
        {
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            let _ = admin.batch_execute(&sql).await;
        }
    }

    /// Inserts `count` tasks into `workspace` with one bulk statement; their
    /// ids are `<g as 8 hex digits>-<salt as 4 hex digits>-4000-8000-000000000000`
    /// for g in 1..=count, so they sort by g.
    pub async fn seed_tasks(&self, workspace: &str, count: u32, salt: u16) {
        let sql = match self.backend {
            Backend::Postgres => format!(
                "INSERT INTO tasks (id, title, priority, workspace_id, created_at)
                 SELECT (lpad(to_hex(g), 8, '0') || '-{salt:04x}-4000-8000-000000000000')::uuid,
                        'seeded task ' || g, g % 5, '{workspace}', now()
                 FROM generate_series(1, {count}) AS g"
            ),
            Backend::Sqlite => format!(
                "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {count})
                 INSERT INTO tasks (id, title, priority, workspace_id, created_at)
                 SELECT printf('%08x-{salt:04x}-4000-8000-000000000000', g),
                        'seeded task ' || g, g % 5, '{workspace}', '2026-01-01T00:00:00.000Z'
                 FROM s"
            ),
        };
        self.execute(&sql).await;
    }

    /// Runs SQL directly against the database (test setup and inspection).
    pub async fn execute(&self, sql: &str) {
        match self.backend {
            Backend::Postgres => {
                let mut conn = diesel_async::AsyncPgConnection::establish(&self.url)
                    .await
                    .expect("connect");
                conn.batch_execute(sql).await.expect("execute SQL");
            }
            Backend::Sqlite => {
                let mut conn = stratasync_sqlite_conn(&self.url).await;
                conn.batch_execute(sql).await.expect("execute SQL");
            }
        }
    }
}

type SqliteConn =
    diesel_async::sync_connection_wrapper::SyncConnectionWrapper<diesel::SqliteConnection>;

/// Creates the test models' tables in the SQLite file at `path`.
pub async fn create_sqlite_tables(path: &str) {
    let mut conn = stratasync_sqlite_conn(path).await;
    conn.batch_execute(SQLITE_TABLES)
        .await
        .expect("create SQLite tables");
}

async fn stratasync_sqlite_conn(path: &str) -> SqliteConn {
    SqliteConn::establish(path).await.expect("open SQLite")
}

/// Runs `case` on `backend` against a fresh database; PostgreSQL cases are
/// skipped (loudly) when PostgreSQL is unreachable outside CI.
pub async fn run<F>(backend: Backend, case: F)
where
    F: FnOnce(&TestDb) -> BoxFuture<'_, ()>,
{
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    tally::ran(match backend {
        Backend::Postgres => Service::Postgres,
        Backend::Sqlite => Service::Sqlite,
    });
    case(&db).await;
    db.drop_database().await;
}

/// Declares `case` as two tests, one per backend: `case::postgres` and `case::sqlite`.
#[macro_export]
macro_rules! on_each_backend {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                $crate::harness::run($crate::harness::Backend::Postgres, |db| Box::pin(super::$case(db))).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                $crate::harness::run($crate::harness::Backend::Sqlite, |db| Box::pin(super::$case(db))).await;
            }
        }
    )*};
}

/// Test authentication: `user:<id>` is user `<id>`; `expired:<id>` is an
/// expired token; anything else is invalid. The groups of a user whose id
/// starts with `broken` cannot be resolved (the group service fails).
#[derive(Debug, Clone, Copy, Default)]
pub struct TestAuth;

impl Auth for TestAuth {
    async fn verify_token(&self, token: &str) -> Result<AuthUser, TokenError> {
        if let Some(user) = token.strip_prefix("user:") {
            Ok(AuthUser::new(user))
        } else if token.starts_with("expired:") {
            Err(TokenError::Expired)
        } else {
            Err(TokenError::Invalid)
        }
    }

    async fn resolve_groups(&self, user: &AuthUser) -> Result<Vec<String>, BoxError> {
        if user.user_id.starts_with("broken") {
            Err("the group service is down".into())
        } else {
            Ok(Vec::new())
        }
    }
}

/// The registry of the test models.
pub fn registry() -> Registry {
    Registry::new().model::<Task>().model::<TaskLabel>()
}

/// The registry of the test models plus [`Note`], whose rows move between
/// groups (kept apart so the other suites' bootstraps stay as they are).
pub fn registry_with_notes() -> Registry {
    registry().model::<Note>()
}

/// A server running on a loopback port.
#[derive(Debug)]
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The server, for direct store access.
    pub server: SyncServer,
    task: tokio::task::JoinHandle<()>,
}

/// A test server about to start on a database: its models, its builder
/// settings and the memberships the store holds before the first request,
/// as in `Fixture::on(db).members(&[("alice", "w1"), ("bob", "w2")]).start().await`.
pub struct Fixture<'a> {
    db: &'a TestDb,
    registry: Registry,
    configure: Configure<'a>,
    members: Vec<(String, String)>,
}

/// Builder settings of a [`Fixture`], applied after the database and auth.
type Configure<'a> = Box<dyn FnOnce(SyncServerBuilder) -> SyncServerBuilder + Send + 'a>;

impl std::fmt::Debug for Fixture<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("db", &self.db)
            .field("registry", &self.registry)
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

impl<'a> Fixture<'a> {
    /// A server on `db` for the models of [`registry`], with [`TestAuth`]
    /// and no members yet.
    pub fn on(db: &'a TestDb) -> Fixture<'a> {
        Fixture {
            db,
            registry: registry(),
            configure: Box::new(|builder| builder),
            members: Vec::new(),
        }
    }

    /// Serves the models of `registry` instead (e.g. [`registry_with_notes`]).
    pub fn registry(mut self, registry: Registry) -> Fixture<'a> {
        self.registry = registry;
        self
    }

    /// Adjusts the builder (hooks, limits, intervals, another auth) after
    /// the database and auth are set; later calls apply after earlier ones.
    pub fn configure(
        mut self,
        configure: impl FnOnce(SyncServerBuilder) -> SyncServerBuilder + Send + 'a,
    ) -> Fixture<'a> {
        let earlier = self.configure;
        self.configure = Box::new(move |builder| configure(earlier(builder)));
        self
    }

    /// Puts each `(user, group)` membership in the store before the server
    /// answers its first request.
    pub fn members(mut self, members: &[(&str, &str)]) -> Fixture<'a> {
        self.members.extend(
            members
                .iter()
                .map(|(user, group)| ((*user).to_owned(), (*group).to_owned())),
        );
        self
    }

    /// Builds the server, adds the members and serves it on a loopback port.
    pub async fn start(self) -> TestServer {
        let builder = SyncServer::builder(self.registry)
            .database_url(&self.db.url)
            .auth(TestAuth);
        let server = (self.configure)(builder)
            .build()
            .await
            .expect("build the server");
        let test_server = TestServer::serve(server).await;
        for (user, group) in &self.members {
            test_server.add_member(user, group).await;
        }
        test_server
    }
}

impl TestServer {
    /// Starts a server on `db` with no members: `Fixture::on(db).start()`.
    pub async fn start(db: &TestDb) -> TestServer {
        Fixture::on(db).start().await
    }

    /// Starts a server on `db` with no members, letting `configure` adjust
    /// the builder: `Fixture::on(db).configure(configure).start()`.
    pub async fn start_with<'a>(
        db: &'a TestDb,
        configure: impl FnOnce(SyncServerBuilder) -> SyncServerBuilder + Send + 'a,
    ) -> TestServer {
        Fixture::on(db).configure(configure).start().await
    }

    /// Serves `server` on a loopback port.
    async fn serve(server: SyncServer) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("address");
        let router = server.router();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        TestServer {
            url: format!("http://{addr}"),
            server,
            task,
        }
    }

    /// A client sending `token` as its bearer token.
    pub fn client(&self, token: &str) -> Client {
        self.with_authorization(Some(&format!("Bearer {token}")))
    }

    /// A client sending no `Authorization` header.
    pub fn anonymous(&self) -> Client {
        self.with_authorization(None)
    }

    /// A client sending `authorization` as its `Authorization` header, as
    /// written (malformed ones included), or no header for `None`.
    pub fn with_authorization(&self, authorization: Option<&str>) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: self.url.clone(),
            authorization: authorization.map(str::to_owned),
        }
    }

    /// Adds `user` to `group` directly in the store.
    pub async fn add_member(&self, user: &str, group: &str) {
        self.server
            .store()
            .add_member(user, group, "workspace")
            .await
            .expect("add member");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTP response: status and body (JSON when it parses, else a string).
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body as JSON (a JSON string holding the text when it is not JSON).
    pub json: Value,
    /// The raw body.
    pub text: String,
    /// The `content-type` header.
    pub content_type: String,
}

impl Reply {
    /// The body's NDJSON lines, each parsed.
    pub fn lines(&self) -> Vec<Value> {
        self.text
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("bad NDJSON line {line:?}: {e}"))
            })
            .collect()
    }
}

/// A client of one test server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    authorization: Option<String>,
}

impl Client {
    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let request = match &self.authorization {
            Some(value) => request.header("authorization", value),
            None => request,
        };
        let response = request
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()));
        Reply {
            status,
            json,
            text,
            content_type,
        }
    }

    /// `GET <path>` (with its query string).
    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// `POST <path>` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// `GET <path>` or `POST <path>` (any other `method`), with a JSON body
    /// when `body` is given.
    pub async fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        let url = format!("{}{path}", self.base);
        let request = if method == "GET" {
            self.http.get(url)
        } else {
            self.http.post(url)
        };
        match body {
            Some(body) => self.send(request.json(body)).await,
            None => self.send(request).await,
        }
    }

    /// `POST <path>` with a raw body.
    pub async fn post_raw(&self, path: &str, body: &'static str) -> Reply {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    /// `POST /sync/mutate` with one transaction; returns the reply.
    pub async fn mutate_one(&self, tx: Value) -> Reply {
        self.post(
            "/sync/mutate",
            &serde_json::json!({ "batchId": "b", "transactions": [tx] }),
        )
        .await
    }

    /// `POST /sync/mutate` with one transaction that must succeed; returns its syncId.
    pub async fn mutate_ok(&self, tx: Value) -> String {
        let reply = self.mutate_one(tx).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json["results"][0]["success"], true, "{}", reply.text);
        reply.json["results"][0]["syncId"]
            .as_str()
            .expect("syncId")
            .to_owned()
    }

    /// Inserts a task titled `title` into `workspace`; returns its id and syncId.
    pub async fn insert_task(&self, workspace: &str, title: &str) -> (String, String) {
        let id = new_id();
        let payload =
            serde_json::json!({ "title": title, "priority": 1, "workspaceId": workspace });
        let sync_id = self
            .mutate_ok(tx(&new_id(), "Task", &id, "INSERT", payload))
            .await;
        (id, sync_id)
    }
}

/// A mutate transaction.
pub fn tx(client_tx_id: &str, model: &str, model_id: &str, action: &str, payload: Value) -> Value {
    serde_json::json!({
        "clientTxId": client_tx_id,
        "clientId": "test-client",
        "modelName": model,
        "modelId": model_id,
        "action": action,
        "payload": payload,
    })
}

/// A fresh UUID as a string.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
