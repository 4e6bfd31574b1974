//! Running a server from the environment in one call.

use crate::error::Error;
use crate::{Auth, Registry, SyncServer};

/// Where [`serve`] stores data when `DATABASE_URL` is unset.
pub const DEFAULT_DATABASE: &str = "sqlite://stratasync.sqlite3";

/// Where [`serve`] listens when `BIND` is unset.
pub const DEFAULT_BIND: &str = "127.0.0.1:3000";

/// Serves the models of `registry` with `auth`, configured from the
/// environment: `BIND` (default `127.0.0.1:3000`) and `DATABASE_URL`
/// (a `postgres://` URL; default: the SQLite file `stratasync.sqlite3`).
///
/// Runs until the process is stopped.
pub async fn serve(registry: Registry, auth: impl Auth) -> Result<(), Error> {
    let database = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE.to_owned());
    let bind = std::env::var("BIND").unwrap_or_else(|_| DEFAULT_BIND.to_owned());
    let server = SyncServer::builder(registry)
        .database_url(database)
        .auth(auth)
        .build()
        .await?;
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .map_err(|source| Error::Bind {
            addr: bind.clone(),
            source,
        })?;
    tracing::info!(%bind, backend = server.store().backend_name(), "stratasync serving");
    axum::serve(listener, server.router()).await?;
    Ok(())
}
