//! The sync server: its configuration, shared state and axum router.

use std::sync::Arc;

use futures::future::BoxFuture;
use stratasync_core::{SyncAction, SyncId};
use stratasync_diesel::{Registry, Store};
use tokio::sync::watch;

use crate::auth::{Auth, AuthUser, BoxError};
use crate::error::Error;

/// What the after-mutation hook is told.
#[derive(Debug, Clone)]
pub struct MutationEvent {
    /// Who wrote.
    pub user: AuthUser,
    /// The committed action.
    pub action: SyncAction,
}

/// Runs after a mutation commits; a failure becomes a warning on its result.
pub type AfterMutation = Arc<dyn Fn(MutationEvent) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>;

/// State shared by every route and socket of one server.
pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) auth: Arc<dyn Auth>,
    /// The highest id this node has committed; live delivery watches it.
    pub(crate) last_committed: watch::Sender<SyncId>,
    after_mutation: Option<AfterMutation>,
}

impl Shared {
    /// Announces a committed action; returns the hook's warnings.
    pub(crate) async fn committed(&self, user: &AuthUser, action: SyncAction) -> Vec<String> {
        self.last_committed.send_if_modified(|last| {
            let advanced = action.id > *last;
            *last = (*last).max(action.id);
            advanced
        });
        let Some(hook) = &self.after_mutation else { return Vec::new() };
        match hook(MutationEvent { user: user.clone(), action }).await {
            Ok(()) => Vec::new(),
            Err(error) => vec![format!("onAfterMutation hook failed: {error}")],
        }
    }
}

/// A configured sync server: mount [`SyncServer::router`] into an axum app,
/// or run it with [`crate::serve`].
#[derive(Clone)]
pub struct SyncServer {
    shared: Arc<Shared>,
    base_path: String,
}

impl std::fmt::Debug for SyncServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncServer").field("base_path", &self.base_path).field("store", &self.shared.store).finish()
    }
}

impl SyncServer {
    /// Starts configuring a server for the models of `registry`.
    pub fn builder(registry: Registry) -> SyncServerBuilder {
        SyncServerBuilder {
            registry,
            database_url: None,
            auth: None,
            base_path: "/sync".to_owned(),
            after_mutation: None,
        }
    }

    /// The routes of the protocol under the base path, ready to merge into
    /// an application's router. Responses are gzip-compressed when the
    /// client sends `Accept-Encoding: gzip` (bootstrap and batch streams,
    /// delta pages); small bodies are left as they are.
    pub fn router(&self) -> axum::Router {
        crate::http::routes(&self.base_path)
            .layer(tower_http::compression::CompressionLayer::new())
            .layer(tower_http::trace::TraceLayer::new_for_http())
            .with_state(Arc::clone(&self.shared))
    }

    /// The store, for application code that trims the log or manages memberships.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }
}

/// Configures a [`SyncServer`].
pub struct SyncServerBuilder {
    registry: Registry,
    database_url: Option<String>,
    auth: Option<Arc<dyn Auth>>,
    base_path: String,
    after_mutation: Option<AfterMutation>,
}

impl std::fmt::Debug for SyncServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncServerBuilder").field("base_path", &self.base_path).finish_non_exhaustive()
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

    /// A hook run after each committed mutation.
    #[must_use]
    pub fn after_mutation<F>(mut self, hook: F) -> Self
    where
        F: Fn(MutationEvent) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync + 'static,
    {
        self.after_mutation = Some(Arc::new(hook));
        self
    }

    /// Connects to the database, creates the sync tables and returns the server.
    pub async fn build(self) -> Result<SyncServer, Error> {
        let url = self
            .database_url
            .ok_or_else(|| Error::Config("no database configured: call .database_url(...)".into()))?;
        let auth = self.auth.ok_or_else(|| Error::Config("no auth configured: call .auth(...)".into()))?;
        let store = Store::connect(&url, self.registry).await?;
        let (last_committed, _) = watch::channel(SyncId::ZERO);
        Ok(SyncServer {
            shared: Arc::new(Shared { store, auth, last_committed, after_mutation: self.after_mutation }),
            base_path: self.base_path,
        })
    }
}
