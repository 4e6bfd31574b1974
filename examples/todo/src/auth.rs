//! Development authentication: the token `user:<id>` is user `<id>`.
//! Workspaces come from `sync_group_memberships` (the seed adds them).

use stratasync::{Auth, AuthUser, BoxError, TokenError};

/// Accepts `user:<id>` tokens. Not for production.
pub struct DevAuth;

impl Auth for DevAuth {
    async fn verify_token(&self, token: &str) -> Result<AuthUser, TokenError> {
        match token.strip_prefix("user:") {
            Some(user) if !user.is_empty() => Ok(AuthUser::new(user)),
            _ => Err(TokenError::Invalid),
        }
    }

    async fn resolve_groups(&self, _user: &AuthUser) -> Result<Vec<String>, BoxError> {
        Ok(Vec::new())
    }
}
