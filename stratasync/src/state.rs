//! The state every route and socket of one server shares, and the
//! [`SyncServer`] handle that holds it. This module is below the routes,
//! sockets and the router: it imports none of them.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::extract::FromRef;
use futures::future::BoxFuture;
use stratasync_core::{SyncAction, SyncId};
use stratasync_diesel::Store;
use tokio::sync::watch;

use crate::auth::{AuthUser, BoxError, DynAuth};
use crate::fanout::Fanout;
use crate::group_cache::GroupCache;
use crate::limits::Limits;
use crate::live::{DynLiveHooks, LiveConfig};
use crate::quota::Quota;
use crate::schema_check::SchemaCheck;

/// What the after-mutation hook is told.
#[derive(Debug, Clone)]
pub struct MutationEvent {
    /// Who wrote.
    pub user: AuthUser,
    /// The committed action.
    pub action: SyncAction,
}

/// Runs after a mutation commits; a failure becomes a warning on its result.
pub(crate) type AfterMutation =
    Arc<dyn Fn(MutationEvent) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>;

/// State shared by every route and socket of one server.
pub(crate) struct Shared {
    /// The sync tables and the application's models.
    pub(crate) store: Store,
    /// How tokens are verified and groups resolved.
    pub(crate) auth: Arc<dyn DynAuth>,
    /// The highest id this node has committed; live delivery watches it.
    pub(crate) last_committed: watch::Sender<SyncId>,
    /// The log tailer, memory bus and Redis link of this node.
    pub(crate) fanout: Fanout,
    /// The groups of the users this node answered lately.
    pub(crate) groups: GroupCache,
    /// How live sockets run.
    pub(crate) live: LiveConfig,
    /// The application's live-socket hooks.
    pub(crate) hooks: Arc<dyn DynLiveHooks>,
    /// The node's limits.
    pub(crate) limits: Limits,
    /// Bootstraps each user runs at once.
    pub(crate) bootstraps: Quota,
    /// Sockets each user holds at once.
    pub(crate) sockets: Quota,
    /// The after-mutation hook, when one is set.
    pub(crate) after_mutation: Option<AfterMutation>,
    /// Set when shutdown begins: `/ready` answers 503 from then on.
    pub(crate) draining: AtomicBool,
    /// How long requests in flight may run once shutdown began.
    pub(crate) shutdown_grace: Duration,
    /// The server's schema hash and the clients that differ from it.
    pub(crate) schema_check: SchemaCheck,
    /// The CORS allowlist's layer, when one is configured.
    pub(crate) cors: Option<tower_http::cors::CorsLayer>,
    /// The origins that may open live sockets.
    pub(crate) ws_origins: crate::origins::WsOrigins,
}

impl Shared {
    /// Announces a committed action; returns the hook's warnings.
    pub(crate) async fn committed(&self, user: &AuthUser, action: SyncAction) -> Vec<String> {
        self.appended(&action);
        let Some(hook) = &self.after_mutation else {
            return Vec::new();
        };
        match hook(MutationEvent {
            user: user.clone(),
            action,
        })
        .await
        {
            Ok(()) => Vec::new(),
            Err(error) => vec![format!("onAfterMutation hook failed: {error}")],
        }
    }

    /// Pokes this node's log tailer and tells the other nodes that `action`
    /// is in the log.
    pub(crate) fn appended(&self, action: &SyncAction) {
        self.last_committed.send_if_modified(|last| {
            let advanced = action.id > *last;
            *last = (*last).max(action.id);
            advanced
        });
        self.fanout.announce(action);
    }
}

/// A configured sync server: mount [`SyncServer::router`] into an axum app,
/// or run it with [`crate::serve`].
///
/// It is cheap to clone, and it is the state of its own router: an
/// application state holding one implements `axum::extract::FromRef` for it,
/// so that its routes can extract [`Caller`](crate::Caller).
#[derive(Clone)]
pub struct SyncServer {
    pub(crate) shared: Arc<Shared>,
    /// Where the routes live (`/sync`).
    pub(crate) base_path: Arc<str>,
}

/// The sync routes' handlers take the shared state out of the router's.
impl FromRef<SyncServer> for Arc<Shared> {
    fn from_ref(server: &SyncServer) -> Self {
        Arc::clone(&server.shared)
    }
}

impl std::fmt::Debug for SyncServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncServer")
            .field("base_path", &self.base_path)
            .field("store", &self.shared.store)
            .finish()
    }
}
