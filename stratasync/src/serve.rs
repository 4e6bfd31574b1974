//! Running a server from the environment: [`ServeConfig`] reads every
//! setting (README, "Configuration"), [`serve`] runs it in one call.

use std::time::Duration;

use tokio::net::TcpListener;

use crate::error::Error;
use crate::{Auth, Limits, Redacted, Registry, SyncServer, SyncServerBuilder};

/// Where [`serve`] stores data when `DATABASE_URL` is unset.
pub const DEFAULT_DATABASE: &str = "sqlite://stratasync.sqlite3";

/// Where [`serve`] listens when `BIND` is unset.
pub const DEFAULT_BIND: &str = "127.0.0.1:3000";

/// Everything a deployment sets from its environment. Unset settings keep
/// the builder's defaults. Its `Debug` hides passwords.
///
/// | variable | setting |
/// |---|---|
/// | `BIND` | [`bind`](ServeConfig::bind) |
/// | `DATABASE_URL` | [`database_url`](ServeConfig::database_url) |
/// | `REDIS_URL` | [`redis_url`](ServeConfig::redis_url) |
/// | `STRATASYNC_REDIS_CHANNEL` | [`SyncServerBuilder::redis_channel`] |
/// | `STRATASYNC_STREAM_SHARDS` | `SyncServerBuilder::stream_shards` (feature `redis`) |
/// | `STRATASYNC_STREAM_PREFIX` | `SyncServerBuilder::stream_prefix` (feature `redis`) |
/// | `STRATASYNC_STREAM_MAX_LEN` | `SyncServerBuilder::stream_max_len` (feature `redis`) |
/// | `STRATASYNC_STREAM_MAX_AGE` | `SyncServerBuilder::stream_max_age` (feature `redis`) |
/// | `STRATASYNC_BASE_PATH` | [`SyncServerBuilder::base_path`] |
/// | `STRATASYNC_POLL_INTERVAL` | [`SyncServerBuilder::poll_interval`] |
/// | `STRATASYNC_BUS_CAPACITY` | [`SyncServerBuilder::bus_capacity`] |
/// | `STRATASYNC_HEARTBEAT_INTERVAL` | [`SyncServerBuilder::heartbeat_interval`] |
/// | `STRATASYNC_TOKEN_RECHECK_INTERVAL` | [`SyncServerBuilder::token_recheck_interval`] |
/// | `STRATASYNC_REPLAY_BUFFER_LIMIT` | [`SyncServerBuilder::replay_buffer_limit`] |
/// | `STRATASYNC_GROUP_COMMIT` | [`SyncServerBuilder::group_commit`] |
/// | `STRATASYNC_SHUTDOWN_GRACE` | [`SyncServerBuilder::shutdown_grace`] |
/// | `STRATASYNC_RETAIN_FOR` | [`SyncServerBuilder::retain_for`] |
/// | `STRATASYNC_RETAIN_ACTIONS` | [`SyncServerBuilder::retain_actions`] |
/// | `STRATASYNC_RETENTION_INTERVAL` | [`SyncServerBuilder::retention_interval`] |
/// | `STRATASYNC_CORS_ORIGINS` | [`SyncServerBuilder::cors_origins`] (comma-separated) |
/// | `STRATASYNC_WS_ORIGINS` | [`SyncServerBuilder::ws_origins`] (comma-separated) |
/// | `STRATASYNC_METRICS` | whether `/metrics` is served (default on) |
/// | `STRATASYNC_METRICS_BIND` | serve `/metrics` on this address instead of [`bind`](ServeConfig::bind) |
/// | the limits' variables ([`crate::limits::VARIABLES`]) | [`limits`](ServeConfig::limits), see [`Limits`] |
///
/// Durations are written `500ms`, `30s`, `5m`, `2h` or `7d`; a bare number
/// is seconds. Switches are `true`/`false` (or `1`/`0`, `on`/`off`).
#[derive(Clone, PartialEq)]
pub struct ServeConfig {
    /// The address to listen on (`BIND`).
    pub bind: String,
    /// The database (`DATABASE_URL`): a `postgres://` URL or a SQLite file.
    pub database_url: String,
    /// Redis for fan-out between nodes (`REDIS_URL`); `None` for one node.
    pub redis_url: Option<String>,
    /// The Redis channel (`STRATASYNC_REDIS_CHANNEL`).
    pub redis_channel: Option<String>,
    /// Shard streams of several nodes (`STRATASYNC_STREAM_SHARDS`).
    pub stream_shards: Option<u32>,
    /// The key prefix of the streams (`STRATASYNC_STREAM_PREFIX`).
    pub stream_prefix: Option<String>,
    /// Entries each stream keeps, about (`STRATASYNC_STREAM_MAX_LEN`).
    pub stream_max_len: Option<u64>,
    /// Stream entries older than this are trimmed (`STRATASYNC_STREAM_MAX_AGE`).
    pub stream_max_age: Option<Duration>,
    /// Where the routes live (`STRATASYNC_BASE_PATH`).
    pub base_path: Option<String>,
    /// The log tailer's poll (`STRATASYNC_POLL_INTERVAL`).
    pub poll_interval: Option<Duration>,
    /// Actions the in-process bus holds (`STRATASYNC_BUS_CAPACITY`).
    pub bus_capacity: Option<usize>,
    /// Between heartbeat pings (`STRATASYNC_HEARTBEAT_INTERVAL`).
    pub heartbeat_interval: Option<Duration>,
    /// Between token re-checks of live sockets (`STRATASYNC_TOKEN_RECHECK_INTERVAL`).
    pub token_recheck_interval: Option<Duration>,
    /// Live actions a replay may buffer (`STRATASYNC_REPLAY_BUFFER_LIMIT`).
    pub replay_buffer_limit: Option<usize>,
    /// Group commit on PostgreSQL (`STRATASYNC_GROUP_COMMIT`).
    pub group_commit: Option<bool>,
    /// The shutdown grace period (`STRATASYNC_SHUTDOWN_GRACE`).
    pub shutdown_grace: Option<Duration>,
    /// Trim actions older than this (`STRATASYNC_RETAIN_FOR`).
    pub retain_for: Option<Duration>,
    /// Keep at most this many actions (`STRATASYNC_RETAIN_ACTIONS`).
    pub retain_actions: Option<u64>,
    /// Between background trims (`STRATASYNC_RETENTION_INTERVAL`).
    pub retention_interval: Option<Duration>,
    /// Browser origins allowed by CORS (`STRATASYNC_CORS_ORIGINS`).
    pub cors_origins: Vec<String>,
    /// Browser origins allowed to open live sockets (`STRATASYNC_WS_ORIGINS`).
    pub ws_origins: Vec<String>,
    /// Whether `/metrics` is served (`STRATASYNC_METRICS`, default on).
    pub metrics: bool,
    /// A separate address for `/metrics` (`STRATASYNC_METRICS_BIND`).
    pub metrics_bind: Option<String>,
    /// Connection, memory and time limits (the `STRATASYNC_*` variables of
    /// [`Limits::from_lookup`]).
    pub limits: Limits,
}

impl Default for ServeConfig {
    /// The configuration of an empty environment.
    fn default() -> Self {
        ServeConfig {
            bind: DEFAULT_BIND.to_owned(),
            database_url: DEFAULT_DATABASE.to_owned(),
            redis_url: None,
            redis_channel: None,
            stream_shards: None,
            stream_prefix: None,
            stream_max_len: None,
            stream_max_age: None,
            base_path: None,
            poll_interval: None,
            bus_capacity: None,
            heartbeat_interval: None,
            token_recheck_interval: None,
            replay_buffer_limit: None,
            group_commit: None,
            shutdown_grace: None,
            retain_for: None,
            retain_actions: None,
            retention_interval: None,
            cors_origins: Vec::new(),
            ws_origins: Vec::new(),
            metrics: true,
            metrics_bind: None,
            limits: Limits::default(),
        }
    }
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("bind", &self.bind)
            .field("database_url", &Redacted(&self.database_url))
            .field("redis_url", &self.redis_url.as_deref().map(Redacted))
            .field("redis_channel", &self.redis_channel)
            .field("stream_shards", &self.stream_shards)
            .field("stream_prefix", &self.stream_prefix)
            .field("stream_max_len", &self.stream_max_len)
            .field("stream_max_age", &self.stream_max_age)
            .field("base_path", &self.base_path)
            .field("poll_interval", &self.poll_interval)
            .field("bus_capacity", &self.bus_capacity)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("token_recheck_interval", &self.token_recheck_interval)
            .field("replay_buffer_limit", &self.replay_buffer_limit)
            .field("group_commit", &self.group_commit)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("retain_for", &self.retain_for)
            .field("retain_actions", &self.retain_actions)
            .field("retention_interval", &self.retention_interval)
            .field("cors_origins", &self.cors_origins)
            .field("ws_origins", &self.ws_origins)
            .field("metrics", &self.metrics)
            .field("metrics_bind", &self.metrics_bind)
            .field("limits", &self.limits)
            .finish()
    }
}

impl ServeConfig {
    /// The configuration the process environment gives.
    pub fn from_env() -> Result<Self, Error> {
        ServeConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// The configuration `lookup` gives (see the table above), with the
    /// defaults for what it leaves out. A value that does not parse is an
    /// error naming its variable.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stratasync::ServeConfig;
    /// let config = ServeConfig::from_lookup(|name| match name {
    ///     "BIND" => Some("0.0.0.0:8080".to_owned()),
    ///     "STRATASYNC_SHUTDOWN_GRACE" => Some("45s".to_owned()),
    ///     _ => None,
    /// })
    /// .unwrap();
    /// assert_eq!(config.bind, "0.0.0.0:8080");
    /// assert_eq!(config.database_url, stratasync::DEFAULT_DATABASE);
    /// assert_eq!(config.shutdown_grace, Some(Duration::from_secs(45)));
    ///
    /// let error = ServeConfig::from_lookup(|name| {
    ///     (name == "STRATASYNC_POLL_INTERVAL").then(|| "soon".to_owned())
    /// })
    /// .unwrap_err();
    /// assert!(error.to_string().contains("STRATASYNC_POLL_INTERVAL=soon"));
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let env = Env(&lookup);
        let defaults = ServeConfig::default();
        Ok(ServeConfig {
            bind: env.text("BIND").unwrap_or(defaults.bind),
            database_url: env.text("DATABASE_URL").unwrap_or(defaults.database_url),
            redis_url: env.text("REDIS_URL"),
            redis_channel: env.text("STRATASYNC_REDIS_CHANNEL"),
            stream_shards: env.parse("STRATASYNC_STREAM_SHARDS", |text| {
                text.parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or("a whole number above 0")
            })?,
            stream_prefix: env.text("STRATASYNC_STREAM_PREFIX"),
            stream_max_len: env.parse("STRATASYNC_STREAM_MAX_LEN", |text| {
                text.parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or("a whole number above 0")
            })?,
            stream_max_age: env.parse("STRATASYNC_STREAM_MAX_AGE", parse_duration)?,
            base_path: env.text("STRATASYNC_BASE_PATH"),
            poll_interval: env.parse("STRATASYNC_POLL_INTERVAL", parse_duration)?,
            bus_capacity: env.parse("STRATASYNC_BUS_CAPACITY", parse_count)?,
            heartbeat_interval: env.parse("STRATASYNC_HEARTBEAT_INTERVAL", parse_duration)?,
            token_recheck_interval: env
                .parse("STRATASYNC_TOKEN_RECHECK_INTERVAL", parse_duration)?,
            replay_buffer_limit: env.parse("STRATASYNC_REPLAY_BUFFER_LIMIT", parse_count)?,
            group_commit: env.parse("STRATASYNC_GROUP_COMMIT", parse_switch)?,
            shutdown_grace: env.parse("STRATASYNC_SHUTDOWN_GRACE", parse_duration)?,
            retain_for: env.parse("STRATASYNC_RETAIN_FOR", parse_duration)?,
            retain_actions: env.parse("STRATASYNC_RETAIN_ACTIONS", |text| {
                text.parse().map_err(|_| "a whole number")
            })?,
            retention_interval: env.parse("STRATASYNC_RETENTION_INTERVAL", parse_duration)?,
            cors_origins: env
                .parse("STRATASYNC_CORS_ORIGINS", parse_origins)?
                .unwrap_or_default(),
            ws_origins: env
                .parse("STRATASYNC_WS_ORIGINS", parse_origins)?
                .unwrap_or_default(),
            metrics: env
                .parse("STRATASYNC_METRICS", parse_switch)?
                .unwrap_or(defaults.metrics),
            metrics_bind: env.text("STRATASYNC_METRICS_BIND"),
            limits: Limits::from_lookup(&lookup)?,
        })
    }

    /// A builder for the models of `registry` with every setting applied;
    /// add the auth (and any hooks) and build it.
    pub fn builder(&self, registry: Registry) -> SyncServerBuilder {
        let mut builder = SyncServer::builder(registry)
            .database_url(&self.database_url)
            .limits(self.limits.clone());
        if let Some(url) = &self.redis_url {
            builder = builder.redis_url(url);
        }
        if let Some(channel) = &self.redis_channel {
            builder = builder.redis_channel(channel);
        }
        #[cfg(feature = "redis")]
        {
            if let Some(shards) = self.stream_shards {
                builder = builder.stream_shards(shards);
            }
            if let Some(prefix) = &self.stream_prefix {
                builder = builder.stream_prefix(prefix);
            }
            if let Some(entries) = self.stream_max_len {
                builder = builder.stream_max_len(entries);
            }
            if let Some(age) = self.stream_max_age {
                builder = builder.stream_max_age(age);
            }
        }
        if let Some(path) = &self.base_path {
            builder = builder.base_path(path);
        }
        if let Some(interval) = self.poll_interval {
            builder = builder.poll_interval(interval);
        }
        if let Some(capacity) = self.bus_capacity {
            builder = builder.bus_capacity(capacity);
        }
        if let Some(interval) = self.heartbeat_interval {
            builder = builder.heartbeat_interval(interval);
        }
        if let Some(interval) = self.token_recheck_interval {
            builder = builder.token_recheck_interval(interval);
        }
        if let Some(limit) = self.replay_buffer_limit {
            builder = builder.replay_buffer_limit(limit);
        }
        if let Some(on) = self.group_commit {
            builder = builder.group_commit(on);
        }
        if let Some(grace) = self.shutdown_grace {
            builder = builder.shutdown_grace(grace);
        }
        if let Some(age) = self.retain_for {
            builder = builder.retain_for(age);
        }
        if let Some(count) = self.retain_actions {
            builder = builder.retain_actions(count);
        }
        if let Some(interval) = self.retention_interval {
            builder = builder.retention_interval(interval);
        }
        builder
            .cors_origins(self.cors_origins.iter().cloned())
            .ws_origins(self.ws_origins.iter().cloned())
    }

    /// Binds [`bind`](ServeConfig::bind); a port in use fails at once.
    pub async fn listen(&self) -> Result<TcpListener, Error> {
        TcpListener::bind(&self.bind)
            .await
            .map_err(|source| Error::Bind {
                addr: self.bind.clone(),
                source,
            })
    }

    /// Serves `app` (holding `server`'s router) on `listener` with
    /// `/metrics` as configured (beside `app`, on its own address, or not at
    /// all) until SIGTERM or SIGINT, then shuts down gracefully.
    pub async fn run(
        &self,
        server: &SyncServer,
        listener: TcpListener,
        app: axum::Router,
    ) -> Result<(), Error> {
        let app = match (&self.metrics_bind, self.metrics) {
            (None, true) => app.merge(server.metrics_router()),
            (Some(addr), true) => {
                let metrics = TcpListener::bind(addr)
                    .await
                    .map_err(|source| Error::Bind {
                        addr: addr.clone(),
                        source,
                    })?;
                let router = server.metrics_router();
                let stopping = server.clone();
                tokio::spawn(async move {
                    let serving = axum::serve(metrics, router)
                        .with_graceful_shutdown(async move { stopping.shutdown_signal().await });
                    if let Err(error) = serving.await {
                        tracing::warn!(%error, "the metrics listener stopped");
                    }
                });
                app
            }
            (_, false) => app,
        };
        server.serve_app(listener, app).await
    }
}

/// Reads variables through a lookup function.
struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    /// A variable's value; empty counts as unset.
    fn text(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|value| !value.is_empty())
    }

    /// A variable parsed by `parse`; an error names the variable and value.
    fn parse<T>(
        &self,
        name: &str,
        parse: fn(&str) -> Result<T, &'static str>,
    ) -> Result<Option<T>, Error> {
        self.text(name)
            .map(|value| {
                parse(value.trim()).map_err(|expected| {
                    Error::Config(format!("{name}={value}: expected {expected}"))
                })
            })
            .transpose()
    }
}

/// Reads a duration as the configuration writes them: `500ms`, `30s`, `5m`,
/// `2h`, `7d`, or a bare number of seconds. The error says what was
/// expected.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(stratasync::parse_duration("5m"), Ok(Duration::from_secs(300)));
/// assert!(stratasync::parse_duration("soon").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, &'static str> {
    const EXPECTED: &str = "a duration such as 500ms, 30s, 5m, 2h or 7d";
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| EXPECTED)?;
    let seconds = |factor: u64| number.checked_mul(factor).map(Duration::from_secs);
    match unit {
        "ms" => Some(Duration::from_millis(number)),
        "" | "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3600),
        "d" => seconds(86_400),
        _ => None,
    }
    .ok_or(EXPECTED)
}

fn parse_count(text: &str) -> Result<usize, &'static str> {
    text.parse().map_err(|_| "a whole number")
}

/// A comma-separated list of browser origins.
fn parse_origins(text: &str) -> Result<Vec<String>, &'static str> {
    let origins: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(str::to_owned)
        .collect();
    if origins
        .iter()
        .all(|origin| crate::origins::is_origin(origin))
    {
        Ok(origins)
    } else {
        Err("comma-separated origins such as https://app.example.com (or *)")
    }
}

fn parse_switch(text: &str) -> Result<bool, &'static str> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" => Ok(false),
        _ => Err("true or false"),
    }
}

/// Serves the models of `registry` with `auth`, configured from the
/// environment ([`ServeConfig::from_env`]; by default on `127.0.0.1:3000`
/// with the SQLite file `stratasync.sqlite3`).
///
/// Runs until SIGTERM or SIGINT, then shuts down gracefully (see
/// [`crate::shutdown`]).
pub async fn serve(registry: Registry, auth: impl Auth) -> Result<(), Error> {
    serve_with(ServeConfig::from_env()?, registry, auth).await
}

/// Serves the models of `registry` with `auth` as `config` says.
///
/// The address is taken before the database is touched, so a port in use
/// fails at once.
pub async fn serve_with(
    config: ServeConfig,
    registry: Registry,
    auth: impl Auth,
) -> Result<(), Error> {
    let listener = config.listen().await?;
    let server = config.builder(registry).auth(auth).build().await?;
    tracing::info!(
        bind = %config.bind,
        backend = server.store().backend_name(),
        database = %Redacted(&config.database_url),
        "stratasync serving"
    );
    config.run(&server, listener, server.router()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit_or_mean_seconds() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("20"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn a_malformed_origin_names_the_variable() {
        let error = ServeConfig::from_lookup(|name| {
            (name == "STRATASYNC_WS_ORIGINS").then(|| "https://a.example,a.example".to_owned())
        })
        .expect_err("a.example has no scheme");
        assert!(
            error
                .to_string()
                .contains("STRATASYNC_WS_ORIGINS=https://a.example,a.example"),
            "{error}"
        );
    }

    #[test]
    fn every_builder_setting_is_read() {
        let config = ServeConfig::from_lookup(|name| {
            Some(
                match name {
                    "STRATASYNC_BUS_CAPACITY"
                    | "STRATASYNC_REPLAY_BUFFER_LIMIT"
                    | "STRATASYNC_RETAIN_ACTIONS"
                    | "STRATASYNC_STREAM_SHARDS"
                    | "STRATASYNC_STREAM_MAX_LEN" => "7",
                    "STRATASYNC_STREAM_PREFIX" => "app:log",
                    name if crate::limits::VARIABLES.contains(&name) => return None,
                    "STRATASYNC_GROUP_COMMIT" | "STRATASYNC_METRICS" => "off",
                    "STRATASYNC_BASE_PATH" => "/api/sync",
                    "STRATASYNC_REDIS_CHANNEL" => "chan",
                    "STRATASYNC_METRICS_BIND" => "127.0.0.1:9100",
                    "STRATASYNC_CORS_ORIGINS" => "https://a.example, http://localhost:5173",
                    "STRATASYNC_WS_ORIGINS" => "https://a.example",
                    "BIND" | "DATABASE_URL" | "REDIS_URL" => return None,
                    _ => "3s",
                }
                .to_owned(),
            )
        })
        .expect("valid");
        let three = Some(Duration::from_secs(3));
        assert_eq!(
            config,
            ServeConfig {
                redis_channel: Some("chan".into()),
                stream_shards: Some(7),
                stream_prefix: Some("app:log".into()),
                stream_max_len: Some(7),
                stream_max_age: three,
                base_path: Some("/api/sync".into()),
                poll_interval: three,
                bus_capacity: Some(7),
                heartbeat_interval: three,
                token_recheck_interval: three,
                replay_buffer_limit: Some(7),
                group_commit: Some(false),
                shutdown_grace: three,
                retain_for: three,
                retain_actions: Some(7),
                retention_interval: three,
                metrics: false,
                metrics_bind: Some("127.0.0.1:9100".into()),
                cors_origins: vec!["https://a.example".into(), "http://localhost:5173".into()],
                ws_origins: vec!["https://a.example".into()],
                ..ServeConfig::default()
            }
        );
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let error = ServeConfig::from_lookup(|name| {
            (name == "STRATASYNC_GROUP_COMMIT").then(|| "maybe".to_owned())
        })
        .expect_err("invalid");
        assert_eq!(error.to_string().lines().count(), 1, "one line: {error}");
        assert!(
            error
                .to_string()
                .contains("STRATASYNC_GROUP_COMMIT=maybe: expected true or false"),
            "{error}"
        );
    }
}
