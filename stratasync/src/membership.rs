//! Membership changes (PROTOCOL §11): a user joins or leaves a group, and
//! their clients learn it through a `G` action in their personal group.

use stratasync_core::SyncAction;

use crate::auth::{AuthUser, union_groups};
use crate::error::Error;
use crate::state::Shared;

/// Adds a membership and announces it.
pub(crate) async fn add(
    shared: &Shared,
    user_id: &str,
    group_id: &str,
    group_type: &str,
) -> Result<Option<SyncAction>, Error> {
    change(shared, user_id, group_id, group_type, true).await
}

/// Removes a membership and announces it.
pub(crate) async fn remove(
    shared: &Shared,
    user_id: &str,
    group_id: &str,
) -> Result<Option<SyncAction>, Error> {
    change(shared, user_id, group_id, "", false).await
}

/// Changes the membership and appends the `G` action carrying the user's
/// full group list in the same transaction, so every socket that reads the
/// action sees the new membership, and neither is ever written without the
/// other.
async fn change(
    shared: &Shared,
    user_id: &str,
    group_id: &str,
    group_type: &str,
    join: bool,
) -> Result<Option<SyncAction>, Error> {
    let resolved = shared
        .auth
        .resolve_groups(&AuthUser::new(user_id))
        .await
        .map_err(Error::Groups)?;
    let action = shared
        .store
        .change_membership(user_id, group_id, group_type, join, |members| {
            union_groups(resolved, members, user_id)
        })
        .await?;
    if let Some(action) = &action {
        tracing::info!(user = user_id, group = group_id, join, sync_id = %action.id, "sync groups changed");
        shared.groups.forget(user_id);
        shared.appended(action);
    }
    Ok(action)
}
