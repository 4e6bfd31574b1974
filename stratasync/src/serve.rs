//! Running a server from the environment in one call.

use crate::error::Error;
use crate::{Auth, Limits, Redacted, Registry, SyncServer};

/// Where [`serve`] stores data when `DATABASE_URL` is unset.
pub const DEFAULT_DATABASE: &str = "sqlite://stratasync.sqlite3";

/// Where [`serve`] listens when `BIND` is unset.
pub const DEFAULT_BIND: &str = "127.0.0.1:3000";

/// Where and on what [`serve_with`] runs. Its `Debug` hides passwords.
#[derive(Clone, PartialEq)]
pub struct ServeConfig {
    /// The address to listen on (`BIND`).
    pub bind: String,
    /// The database (`DATABASE_URL`): a `postgres://` URL or a SQLite file.
    pub database_url: String,
    /// Redis for fan-out between nodes (`REDIS_URL`); `None` for one node.
    pub redis_url: Option<String>,
    /// Connection, memory and time limits ([`serve`] reads them from the
    /// `STRATASYNC_*` variables with [`Limits::from_env`]).
    pub limits: Limits,
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("bind", &self.bind)
            .field("database_url", &Redacted(&self.database_url))
            .field("redis_url", &self.redis_url.as_deref().map(Redacted))
            .field("limits", &self.limits)
            .finish()
    }
}

impl ServeConfig {
    /// The configuration the process environment gives.
    pub fn from_env() -> Self {
        ServeConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// The configuration `lookup` gives for `BIND`, `DATABASE_URL` and
    /// `REDIS_URL`, with the defaults for what it leaves out, and the
    /// default [`Limits`] (read those with [`Limits::from_lookup`]).
    ///
    /// ```
    /// use stratasync::ServeConfig;
    /// let config = ServeConfig::from_lookup(|name| (name == "BIND").then(|| "0.0.0.0:8080".to_owned()));
    /// assert_eq!(config.bind, "0.0.0.0:8080");
    /// assert_eq!(config.database_url, stratasync::DEFAULT_DATABASE);
    /// assert_eq!(config.redis_url, None);
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let set = |name: &str| lookup(name).filter(|value| !value.is_empty());
        ServeConfig {
            bind: set("BIND").unwrap_or_else(|| DEFAULT_BIND.to_owned()),
            database_url: set("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE.to_owned()),
            redis_url: set("REDIS_URL"),
            limits: Limits::default(),
        }
    }
}

/// Serves the models of `registry` with `auth`, configured from the
/// environment ([`ServeConfig::from_env`]): `BIND` (default
/// `127.0.0.1:3000`), `DATABASE_URL` (default: the SQLite file
/// `stratasync.sqlite3`) and `REDIS_URL` (unset: one node), with the limits
/// of the `STRATASYNC_*` variables ([`Limits::from_env`]; a bad value fails
/// at once, naming the variable).
///
/// Runs until SIGTERM or SIGINT, then shuts down gracefully (see
/// [`crate::shutdown`]).
pub async fn serve(registry: Registry, auth: impl Auth) -> Result<(), Error> {
    let mut config = ServeConfig::from_env();
    config.limits = Limits::from_env()?;
    serve_with(config, registry, auth).await
}

/// Serves the models of `registry` with `auth` as `config` says.
///
/// The address is taken before the database is touched, so a port in use
/// fails at once. Connections are held and timed as the limits say (see
/// [`Limits::max_connections`], [`Limits::header_read_timeout`] and
/// [`Limits::idle_timeout`]).
pub async fn serve_with(
    config: ServeConfig,
    registry: Registry,
    auth: impl Auth,
) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(&config.bind)
        .await
        .map_err(|source| Error::Bind {
            addr: config.bind.clone(),
            source,
        })?;
    let mut builder = SyncServer::builder(registry)
        .database_url(&config.database_url)
        .limits(config.limits.clone())
        .auth(auth);
    if let Some(redis) = &config.redis_url {
        builder = builder.redis_url(redis);
    }
    let server = builder.build().await?;
    tracing::info!(bind = %config.bind, backend = server.store().backend_name(), "stratasync serving");
    server.serve(listener).await
}
