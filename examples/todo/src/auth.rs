//! Development authentication: the token `user:<id>` is user `<id>`.
//! Workspaces come from `sync_group_memberships` (the seed adds them); the
//! user `admin` also holds [`ADMIN_GROUP`], which the admin routes require.

use stratasync::{Auth, AuthUser, BoxError, TokenError};

/// The group whose members may call the admin routes.
pub const ADMIN_GROUP: &str = "admins";

/// The one user of [`ADMIN_GROUP`] (token `user:admin`).
pub const ADMIN_USER: &str = "admin";

/// Accepts `user:<id>` tokens. Not for production.
pub struct DevAuth;

impl Auth for DevAuth {
    async fn verify_token(&self, token: &str) -> Result<AuthUser, TokenError> {
        match token.strip_prefix("user:") {
            // A user's id is also their personal group: a user named like
            // the admin group would hold it.
            Some(user) if !user.is_empty() && user != ADMIN_GROUP => Ok(AuthUser::new(user)),
            _ => Err(TokenError::Invalid),
        }
    }

    async fn resolve_groups(&self, user: &AuthUser) -> Result<Vec<String>, BoxError> {
        if user.user_id == ADMIN_USER {
            Ok(vec![ADMIN_GROUP.to_owned()])
        } else {
            Ok(Vec::new())
        }
    }
}
