//! The sync server's builder and its axum router, on top of the routes and
//! the shared state ([`crate::state`]) they use.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use stratasync_core::{SyncAction, SyncId};
use stratasync_diesel::{Registry, Store};
use tokio::sync::watch;

use crate::auth::{Auth, BoxError, DynAuth};
use crate::error::Error;
use crate::fanout::{Fanout, FanoutConfig};
use crate::group_cache::GroupCache;
use crate::limits::{Clipped, Limits};
use crate::live::{DynLiveHooks, LiveConfig, LiveHooks, NoHooks};
use crate::quota::Quota;
use crate::schema_check::SchemaCheck;
use crate::state::{AfterMutation, MutationEvent, Shared, SyncServer};

impl SyncServer {
    /// Starts configuring a server for the models of `registry`.
    pub fn builder(registry: Registry) -> SyncServerBuilder {
        SyncServerBuilder {
            registry,
            database_url: None,
            auth: None,
            base_path: "/sync".to_owned(),
            after_mutation: None,
            fanout: FanoutConfig::default(),
            live: LiveConfig::default(),
            hooks: None,
            group_commit: true,
            shutdown_grace: crate::shutdown::DEFAULT_SHUTDOWN_GRACE,
            limits: Limits::default(),
            retention: crate::retention::Policy::default(),
            refuse_schema_mismatch: false,
            cors_origins: Vec::new(),
            ws_origins: Vec::new(),
        }
    }

    /// The routes of the protocol under the base path, ready to merge into
    /// an application's router, with the unauthenticated probes
    /// `{base}/health` and `{base}/ready` (200 only while the database
    /// answers within a second, Redis is subscribed when configured, and the
    /// server is not shutting down). Responses are gzip-compressed when the
    /// client sends `Accept-Encoding: gzip` (bootstrap and batch streams,
    /// delta pages); small bodies are left as they are. Every request has
    /// an id (the client's sane `x-request-id`, or a fresh UUID): it is
    /// answered in `x-request-id`, carried by the request's tracing span as
    /// `request_id`, and written as `requestId` into every error body.
    pub fn router(&self) -> axum::Router {
        let router = crate::http::routes(&self.base_path)
            .merge(crate::health::routes(&self.base_path))
            .route_layer(axum::middleware::from_fn(crate::metrics::track))
            .layer(axum::middleware::from_fn(crate::request_id::stamp_errors))
            // The fastest level: the stream is produced faster than the
            // default level can compress it (BENCHMARKS.md, bootstrap).
            .layer(
                tower_http::compression::CompressionLayer::new()
                    .quality(tower_http::CompressionLevel::Fastest),
            )
            .layer(
                tower_http::trace::TraceLayer::new_for_http().make_span_with(
                    // The URI is the client's: log at most a prefix of it.
                    |request: &axum::http::Request<axum::body::Body>| {
                        let uri = request.uri().to_string();
                        tracing::debug_span!(
                            "request",
                            request_id = %crate::request_id::of(request).unwrap_or_default(),
                            method = %request.method(),
                            uri = %Clipped(&uri),
                            version = ?request.version(),
                        )
                    },
                ),
            )
            .layer(tower_http::request_id::PropagateRequestIdLayer::new(
                crate::request_id::REQUEST_ID,
            ))
            .layer(tower_http::request_id::SetRequestIdLayer::new(
                crate::request_id::REQUEST_ID,
                tower_http::request_id::MakeRequestUuid,
            ))
            .layer(axum::middleware::map_request(
                crate::request_id::drop_insane,
            ))
            .layer(axum::extract::DefaultBodyLimit::max(
                self.shared.limits.request_body_bytes,
            ));
        match &self.shared.cors {
            Some(cors) => router.layer(cors.clone()),
            None => router,
        }
        .with_state(self.clone())
    }

    /// `GET /metrics`: this process's Prometheus metrics (see
    /// [`crate::metrics`]). Merge it into the application's router, or
    /// serve it on its own address so that it stays private.
    pub fn metrics_router(&self) -> axum::Router {
        crate::scrape::routes().with_state(Arc::clone(&self.shared))
    }

    /// The limits this server runs with.
    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// Serves [`SyncServer::router`] on `listener` within the server's
    /// limits: at most [`Limits::max_connections`] connections, each timed
    /// by [`Limits::header_read_timeout`] and [`Limits::idle_timeout`]
    /// (see [`crate::serve`]), until SIGTERM, SIGINT or
    /// [`SyncServer::shutdown`]; then it drains as
    /// [`SyncServer::serve_app`] does.
    pub async fn serve(&self, listener: tokio::net::TcpListener) -> Result<(), Error> {
        self.serve_app(listener, self.router()).await
    }

    /// The store, for application code that trims the log or reads it.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Whether this node is the leader that publishes the log to the Redis
    /// streams (README "Several nodes"); `None` when the node does not use
    /// the streams (no Redis, or SQLite).
    pub fn is_stream_leader(&self) -> Option<bool> {
        self.shared.fanout.stream_leader()
    }

    /// The `schemaHash` a client generated from the server's models sends
    /// ([`Registry::schema_hash`]).
    pub fn schema_hash(&self) -> &str {
        self.shared.schema_check.expected()
    }

    /// How many clients (distinct user and hash) bootstrapped with another
    /// `schemaHash` since the server started (see
    /// [`SyncServerBuilder::refuse_schema_mismatch`]).
    pub fn schema_mismatches(&self) -> u64 {
        self.shared.schema_check.mismatched_clients()
    }

    /// Adds `user_id` to `group_id` (PROTOCOL §11): writes the membership,
    /// then appends a `G` action with the user's new full
    /// `subscribedSyncGroups` to their personal group. The user's live
    /// sockets, on every node, receive that action and from then on the
    /// group's deltas. Returns the `G` action, or `None` when the user was
    /// already a member.
    pub async fn add_member(
        &self,
        user_id: &str,
        group_id: &str,
    ) -> Result<Option<SyncAction>, Error> {
        crate::membership::add(&self.shared, user_id, group_id, "workspace").await
    }

    /// Like [`SyncServer::add_member`], recording `group_type` on the
    /// membership row (`"workspace"` by default).
    pub async fn add_member_of_type(
        &self,
        user_id: &str,
        group_id: &str,
        group_type: &str,
    ) -> Result<Option<SyncAction>, Error> {
        crate::membership::add(&self.shared, user_id, group_id, group_type).await
    }

    /// Removes `user_id` from `group_id`: deletes the membership, then
    /// appends a `G` action with the new list. The user's live sockets stop
    /// receiving the group's deltas after that action. Returns the `G`
    /// action, or `None` when the user was not a member.
    pub async fn remove_member(
        &self,
        user_id: &str,
        group_id: &str,
    ) -> Result<Option<SyncAction>, Error> {
        crate::membership::remove(&self.shared, user_id, group_id).await
    }

    /// Begins shutdown on this node: `/ready` answers 503, the log tailer
    /// and Redis tasks end and every live socket is closed with 1001, so
    /// that its client resumes from its cursor on another node. HTTP routes
    /// keep working until the application stops serving them
    /// ([`SyncServer::serve_app`] does that gracefully).
    pub fn shutdown(&self) {
        self.shared.draining.store(true, Ordering::SeqCst);
        self.shared.fanout.shut_down();
    }
}

/// Configures a [`SyncServer`].
pub struct SyncServerBuilder {
    registry: Registry,
    database_url: Option<String>,
    auth: Option<Arc<dyn DynAuth>>,
    base_path: String,
    after_mutation: Option<AfterMutation>,
    fanout: FanoutConfig,
    live: LiveConfig,
    hooks: Option<Arc<dyn DynLiveHooks>>,
    group_commit: bool,
    shutdown_grace: Duration,
    limits: Limits,
    retention: crate::retention::Policy,
    refuse_schema_mismatch: bool,
    cors_origins: Vec<String>,
    ws_origins: Vec<String>,
}

impl std::fmt::Debug for SyncServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncServerBuilder")
            .field("base_path", &self.base_path)
            .finish_non_exhaustive()
    }
}

impl SyncServerBuilder {
    /// The database: a `postgres://` URL, or a SQLite file path / `sqlite://` URL.
    #[must_use]
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.database_url = Some(url.into());
        self
    }

    /// How tokens are verified and groups resolved.
    #[must_use]
    pub fn auth(mut self, auth: impl Auth) -> Self {
        self.auth = Some(Arc::new(auth));
        self
    }

    /// Where the routes live (default `/sync`).
    #[must_use]
    pub fn base_path(mut self, path: impl Into<String>) -> Self {
        self.base_path = path.into().trim_end_matches('/').to_owned();
        self
    }

    /// A hook run after each committed mutation: an `async` closure, or any
    /// closure returning a `Send` future. Its failure becomes a warning on
    /// the mutation's result; the mutation stays committed.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::sync::atomic::{AtomicU64, Ordering};
    /// # use stratasync::{MutationEvent, Registry, SyncServer};
    /// let builder = SyncServer::builder(Registry::new())
    ///     .after_mutation(async |event: MutationEvent| {
    ///         println!("{} wrote {}", event.user.user_id, event.action.model);
    ///         Ok(())
    ///     });
    ///
    /// // An `async` closure implements `Fn` only when its future borrows
    /// // nothing it captured: with state, return an owned future instead.
    /// let writes = Arc::new(AtomicU64::new(0));
    /// let builder = builder.after_mutation(move |_event| {
    ///     let writes = Arc::clone(&writes);
    ///     async move {
    ///         writes.fetch_add(1, Ordering::Relaxed);
    ///         Ok(())
    ///     }
    /// });
    /// ```
    #[must_use]
    pub fn after_mutation<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(MutationEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.after_mutation = Some(Arc::new(move |event| Box::pin(hook(event))));
        self
    }

    /// Fans deltas out to the other nodes through the Redis at `url`
    /// (`redis://host:port/db`; PROTOCOL §9). Without it, one node works
    /// alone. Needs the `redis` feature.
    #[must_use]
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.fanout.redis_url = Some(url.into());
        self
    }

    /// The Redis channel of the fan-out (default `sync:deltas`); every node
    /// of one deployment must use the same.
    #[must_use]
    pub fn redis_channel(mut self, channel: impl Into<String>) -> Self {
        self.fanout.redis_channel = channel.into();
        self
    }

    /// Shard streams the groups are spread over when several nodes share
    /// PostgreSQL and Redis (default 16; README "Several nodes"). Every node
    /// of one deployment must use the same. Needs the `redis` feature.
    #[cfg(feature = "redis")]
    #[must_use]
    pub fn stream_shards(mut self, shards: u32) -> Self {
        self.fanout.streams.shards = shards.max(1);
        self
    }

    /// The key prefix of the shard streams (default: the Redis channel
    /// followed by `:log`, `sync:deltas:log`); one deployment, one prefix,
    /// one leader. Needs the `redis` feature.
    #[cfg(feature = "redis")]
    #[must_use]
    pub fn stream_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.fanout.streams.prefix = prefix.into();
        self
    }

    /// Entries each shard stream keeps, about (default 10 000; `MAXLEN ~`).
    /// Nodes further behind read the log. Needs the `redis` feature.
    #[cfg(feature = "redis")]
    #[must_use]
    pub fn stream_max_len(mut self, entries: u64) -> Self {
        self.fanout.streams.max_len = entries.max(1);
        self
    }

    /// Also trims stream entries older than `age` (each stream keeps its
    /// newest). Unset by default. Needs the `redis` feature.
    #[cfg(feature = "redis")]
    #[must_use]
    pub fn stream_max_age(mut self, age: Duration) -> Self {
        self.fanout.streams.max_age = Some(age);
        self
    }

    /// How often the log tailer reads the log without being poked (default
    /// 1 s): the delay of live delivery across nodes when Redis is down.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.fanout.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Actions the in-process bus holds (default 4096); a socket further
    /// behind reads the log instead.
    #[must_use]
    pub fn bus_capacity(mut self, capacity: usize) -> Self {
        self.fanout.bus_capacity = capacity.max(1);
        self
    }

    /// Between heartbeat pings of a live socket (default 30 s).
    #[must_use]
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.live.heartbeat_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Browser origins allowed to call the sync routes across origins
    /// (CORS), each `scheme://host[:port]`, or `*` for any. Default none: no
    /// CORS headers, so a browser only calls from the server's own origin.
    /// Preflights are answered for `GET` and `POST` with `Authorization`
    /// and `Content-Type`. An origin of another shape fails [`build`](Self::build).
    #[must_use]
    pub fn cors_origins<S: Into<String>>(mut self, origins: impl IntoIterator<Item = S>) -> Self {
        self.cors_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// Browser origins allowed to open live sockets (`GET {base}/ws`), each
    /// `scheme://host[:port]`, or `*` for any. Default none: any origin. With
    /// a list, an upgrade whose `Origin` header is not on it is answered
    /// `403 {"error":"Origin not allowed"}`; an upgrade without `Origin`
    /// (not a browser) proceeds. An origin of another shape fails
    /// [`build`](Self::build).
    #[must_use]
    pub fn ws_origins<S: Into<String>>(mut self, origins: impl IntoIterator<Item = S>) -> Self {
        self.ws_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// Between re-checks of a subscribed socket's token (default 60 s); a
    /// token the verifier now refuses stops the socket's deltas.
    #[must_use]
    pub fn token_recheck_interval(mut self, interval: Duration) -> Self {
        self.live.token_recheck_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Live actions a replay may see arrive before it is closed with
    /// `BUFFER_OVERFLOW` (default 10 000).
    #[must_use]
    pub fn replay_buffer_limit(mut self, limit: usize) -> Self {
        self.live.replay_buffer_limit = limit;
        self
    }

    /// Frames a live socket's outgoing queue holds (default 1024), and how
    /// long it may stay full (default 10 s) before the socket is closed with
    /// `SLOW_CONSUMER` / 4008. The same as setting
    /// [`Limits::outgoing_queue_frames`] and [`Limits::slow_consumer_timeout`].
    #[must_use]
    pub fn outgoing_queue(mut self, frames: usize, slow_consumer_timeout: Duration) -> Self {
        self.limits.outgoing_queue_frames = frames.max(1);
        self.limits.slow_consumer_timeout = slow_consumer_timeout;
        self
    }

    /// The limits of connections, memory and time (default
    /// [`Limits::default`]; from the environment with [`Limits::from_env`]).
    /// README's "Limits" table lists each with what a client sees when it is
    /// hit. [`build`](Self::build) refuses limits out of range.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Whether concurrent mutations share database transactions on
    /// PostgreSQL (default on): each keeps its own savepoint and outcome,
    /// the group appends its actions in order under one lock and commits
    /// once. Off, each mutation commits alone.
    #[must_use]
    pub fn group_commit(mut self, on: bool) -> Self {
        self.group_commit = on;
        self
    }

    /// How long requests in flight may still run once shutdown began
    /// (default 20 s; see [`crate::shutdown`]).
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Trims, in the background, the actions older than `age` (see
    /// [`crate::retention`]; with [`SyncServerBuilder::retain_actions`],
    /// what either rule drops goes).
    #[must_use]
    pub fn retain_for(mut self, age: Duration) -> Self {
        self.retention.max_age = Some(age);
        self
    }

    /// Trims, in the background, all but the newest `count` actions (see
    /// [`crate::retention`]).
    #[must_use]
    pub fn retain_actions(mut self, count: u64) -> Self {
        self.retention.max_actions = Some(count);
        self
    }

    /// Between background trims (default 1 min).
    #[must_use]
    pub fn retention_interval(mut self, interval: Duration) -> Self {
        self.retention.interval = Some(interval.max(Duration::from_millis(1)));
        self
    }

    /// Refuses bootstraps whose `schemaHash` differs from
    /// [`SyncServer::schema_hash`] with `409 SCHEMA_MISMATCH` naming both
    /// hashes, for teams that deploy clients and server together. Off by
    /// default: such a client is served, and logged and counted once per
    /// user and hash ([`SyncServer::schema_mismatches`]).
    #[must_use]
    pub fn refuse_schema_mismatch(mut self, refuse: bool) -> Self {
        self.refuse_schema_mismatch = refuse;
        self
    }

    /// Hooks on live sockets: subscribe, application frames, close.
    #[must_use]
    pub fn live_hooks(mut self, hooks: impl LiveHooks) -> Self {
        self.hooks = Some(Arc::new(hooks));
        self
    }

    /// Connects to the database, creates the sync tables and returns the server.
    pub async fn build(self) -> Result<SyncServer, Error> {
        let url = self.database_url.ok_or_else(|| {
            Error::Config("no database configured: call .database_url(...)".into())
        })?;
        let auth = self
            .auth
            .ok_or_else(|| Error::Config("no auth configured: call .auth(...)".into()))?;
        crate::metrics::recorder();
        self.limits.validate()?;
        let cors = crate::origins::cors_layer(&self.cors_origins)?;
        let ws_origins = crate::origins::WsOrigins::new(self.ws_origins)?;
        let schema_check =
            SchemaCheck::new(self.registry.schema_hash(), self.refuse_schema_mismatch);
        let mut store =
            Store::connect_with(&url, self.registry, &self.limits.pool_options()).await?;
        if !self.group_commit {
            store = store.without_group_commit();
        }
        let (last_committed, committed) = watch::channel(SyncId::ZERO);
        let mut fanout_config = self.fanout;
        fanout_config.page_bytes = self.limits.delta_page_bytes;
        let fanout = Fanout::start(store.clone(), &url, fanout_config, committed).await?;
        crate::retention::start(store.clone(), self.retention, fanout.shutdown_signal());
        let hooks = self.hooks.unwrap_or_else(|| Arc::new(NoHooks));
        let groups = GroupCache::new(
            fanout.subscribe(),
            fanout.shutdown_signal(),
            self.limits.group_cache_entries,
            self.limits.group_cache_ttl,
        );
        Ok(SyncServer {
            shared: Arc::new(Shared {
                store,
                auth,
                last_committed,
                fanout,
                groups,
                live: self.live,
                hooks,
                bootstraps: Quota::new(self.limits.bootstraps_per_user),
                sockets: Quota::new(self.limits.sockets_per_user),
                limits: self.limits,
                after_mutation: self.after_mutation,
                draining: AtomicBool::new(false),
                shutdown_grace: self.shutdown_grace,
                schema_check,
                cors,
                ws_origins,
            }),
            base_path: self.base_path.into(),
        })
    }
}
