//! Development authentication: the token `user:<id>` is user `<id>`.
//! Workspaces come from `sync_group_memberships` (the seed adds them).

use futures::future::BoxFuture;
use stratasync::{Auth, AuthUser, BoxError, TokenError};

/// Accepts `user:<id>` tokens. Not for production.
pub struct DevAuth;

impl Auth for DevAuth {
    fn verify_token<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<AuthUser, TokenError>> {
        Box::pin(async move {
            match token.strip_prefix("user:") {
                Some(user) if !user.is_empty() => Ok(AuthUser::new(user)),
                _ => Err(TokenError::Invalid),
            }
        })
    }

    fn resolve_groups<'a>(
        &'a self,
        _user: &'a AuthUser,
    ) -> BoxFuture<'a, Result<Vec<String>, BoxError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}
