//! Authentication and sync-group resolution (PROTOCOL §2).

use std::sync::Arc;

use futures::future::BoxFuture;
use stratasync_core::FilterContext;
use stratasync_diesel::Store;

/// An error an application callback may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The user a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthUser {
    /// Stable user id; also the id of the user's personal group.
    pub user_id: String,
    /// Email, when the application knows it.
    pub email: Option<String>,
    /// Display name, when the application knows it.
    pub name: Option<String>,
}

impl AuthUser {
    /// A user known only by id.
    pub fn new(user_id: impl Into<String>) -> Self {
        AuthUser {
            user_id: user_id.into(),
            email: None,
            name: None,
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token this application issued, or revoked.
    #[error("Invalid token")]
    Invalid,
    /// A valid token past its expiry.
    #[error("Token expired")]
    Expired,
}

/// The application's half of authentication: who a token is, and which sync
/// groups (workspaces, teams...) that user belongs to.
///
/// The groups a request may read are the union of
/// [`resolve_groups`](Auth::resolve_groups), the user's rows in
/// `sync_group_memberships`, and the user's personal group (their id).
///
/// Implement it with `async fn`s; their futures must be `Send`:
///
/// ```
/// use stratasync::{Auth, AuthUser, BoxError, TokenError};
///
/// struct MyAuth;
///
/// impl Auth for MyAuth {
///     async fn verify_token(&self, token: &str) -> Result<AuthUser, TokenError> {
///         token.strip_prefix("user:").map(AuthUser::new).ok_or(TokenError::Invalid)
///     }
///
///     async fn resolve_groups(&self, user: &AuthUser) -> Result<Vec<String>, BoxError> {
///         Ok(vec![user.user_id.clone()])
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not implement `stratasync::Auth`",
    note = "implement `verify_token` and `resolve_groups` as `async fn`s in `impl stratasync::Auth for {Self}`"
)]
pub trait Auth: Send + Sync + 'static {
    /// Verifies a bearer token.
    fn verify_token(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<AuthUser, TokenError>> + Send;

    /// The groups the application says `user` belongs to.
    fn resolve_groups(
        &self,
        user: &AuthUser,
    ) -> impl Future<Output = Result<Vec<String>, BoxError>> + Send;
}

/// [`Auth`] in the object-safe form the server stores.
pub(crate) trait DynAuth: Send + Sync + 'static {
    /// [`Auth::verify_token`], boxed.
    fn verify_token<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<AuthUser, TokenError>>;

    /// [`Auth::resolve_groups`], boxed.
    fn resolve_groups<'a>(
        &'a self,
        user: &'a AuthUser,
    ) -> BoxFuture<'a, Result<Vec<String>, BoxError>>;
}

impl<T: Auth> DynAuth for T {
    fn verify_token<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<AuthUser, TokenError>> {
        Box::pin(Auth::verify_token(self, token))
    }

    fn resolve_groups<'a>(
        &'a self,
        user: &'a AuthUser,
    ) -> BoxFuture<'a, Result<Vec<String>, BoxError>> {
        Box::pin(Auth::resolve_groups(self, user))
    }
}

/// Why a caller could not be authorized.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    /// The token was refused.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The user's groups could not be resolved.
    #[error("Failed to resolve sync groups")]
    Groups(#[source] BoxError),
}

/// An authenticated caller and every group they hold.
///
/// `Caller` is an axum extractor: on the sync routes, and on any route of
/// the application whose state gives the [`SyncServer`](crate::SyncServer)
/// through `axum::extract::FromRef`. It reads `Authorization: Bearer
/// <token>`, verifies it with the server's [`Auth`] and gathers the caller's
/// groups; a missing, malformed or refused token is answered 401 with the
/// body the sync routes give (`{"error": "Invalid token"}`, PROTOCOL §2).
///
/// ```
/// use axum::extract::FromRef;
/// use axum::http::StatusCode;
/// use stratasync::{Caller, SyncServer};
///
/// #[derive(Clone)]
/// struct AppState {
///     sync: SyncServer,
/// }
///
/// impl FromRef<AppState> for SyncServer {
///     fn from_ref(state: &AppState) -> Self {
///         state.sync.clone()
///     }
/// }
///
/// /// Only members of the `admins` group may reach this route.
/// async fn admin_only(caller: Caller) -> Result<String, StatusCode> {
///     if !caller.groups.iter().any(|group| group == "admins") {
///         return Err(StatusCode::FORBIDDEN);
///     }
///     Ok(format!("hello, {}", caller.user.user_id))
/// }
///
/// fn app(sync: SyncServer) -> axum::Router {
///     axum::Router::new()
///         .route("/admin", axum::routing::get(admin_only))
///         .with_state(AppState { sync: sync.clone() })
///         .merge(sync.router())
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Who.
    pub user: AuthUser,
    /// Every group the caller holds, de-duplicated, personal group last.
    pub groups: Vec<String>,
}

impl Caller {
    /// The effective groups of a request naming `requested` groups
    /// (PROTOCOL §2): the requested ones the caller holds, in request order;
    /// all held groups when the request names none. Never wider than held.
    pub fn effective_groups(&self, requested: Option<&[String]>) -> Vec<String> {
        match requested {
            Some(requested) if !requested.is_empty() => {
                let mut effective: Vec<String> = Vec::with_capacity(requested.len());
                for group in requested {
                    if self.groups.contains(group) && !effective.contains(group) {
                        effective.push(group.clone());
                    }
                }
                effective
            }
            _ => self.groups.clone(),
        }
    }

    /// The filter context for `groups`.
    pub fn filter_context(&self, groups: Vec<String>) -> FilterContext {
        FilterContext::new(self.user.user_id.clone(), groups)
    }
}

/// Every group `user` holds (PROTOCOL §2).
pub(crate) async fn caller_groups(
    auth: &Arc<dyn DynAuth>,
    store: &Store,
    user: &AuthUser,
) -> Result<Vec<String>, AuthorizeError> {
    let resolved = auth
        .resolve_groups(user)
        .await
        .map_err(AuthorizeError::Groups)?;
    let members = store
        .member_groups(&user.user_id)
        .await
        .map_err(|e| AuthorizeError::Groups(Box::new(e)))?;
    Ok(union_groups(resolved, members, &user.user_id))
}

/// Every group of a user: the application's, then the memberships, then the
/// personal group, each once (PROTOCOL §2).
pub(crate) fn union_groups(
    resolved: Vec<String>,
    members: Vec<String>,
    user_id: &str,
) -> Vec<String> {
    let mut groups: Vec<String> = Vec::with_capacity(resolved.len() + members.len() + 1);
    for group in resolved
        .into_iter()
        .chain(members)
        .chain([user_id.to_owned()])
    {
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller {
        Caller {
            user: AuthUser::new("u1"),
            groups: vec!["w1".into(), "w2".into(), "u1".into()],
        }
    }

    #[test]
    fn effective_groups_narrow_and_never_widen() {
        let c = caller();
        assert_eq!(c.effective_groups(None), c.groups);
        assert_eq!(c.effective_groups(Some(&[])), c.groups);
        assert_eq!(
            c.effective_groups(Some(&["w2".into(), "x".into(), "w1".into()])),
            ["w2", "w1"]
        );
        assert!(c.effective_groups(Some(&["x".into()])).is_empty());
    }
}
