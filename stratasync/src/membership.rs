//! Membership changes (PROTOCOL §11): a user joins or leaves a group, and
//! their clients learn it through a `G` action in their personal group.

use serde_json::json;
use stratasync_core::SyncAction;
use stratasync_diesel::NewAction;

use crate::auth::{AuthUser, AuthorizeError, caller_groups};
use crate::error::Error;
use crate::server::Shared;

/// The model name of `G` actions (no registered model has it).
const GROUPS_MODEL: &str = "SyncGroups";

/// Adds a membership and announces it.
pub(crate) async fn add(
    shared: &Shared,
    user_id: &str,
    group_id: &str,
    group_type: &str,
) -> Result<Option<SyncAction>, Error> {
    if !shared
        .store
        .add_member(user_id, group_id, group_type)
        .await?
    {
        return Ok(None);
    }
    announce(shared, user_id).await.map(Some)
}

/// Removes a membership and announces it.
pub(crate) async fn remove(
    shared: &Shared,
    user_id: &str,
    group_id: &str,
) -> Result<Option<SyncAction>, Error> {
    if !shared.store.remove_member(user_id, group_id).await? {
        return Ok(None);
    }
    announce(shared, user_id).await.map(Some)
}

/// Appends the `G` action carrying the user's full group list, after the
/// membership change committed, so every socket that reads it sees the new
/// membership.
async fn announce(shared: &Shared, user_id: &str) -> Result<SyncAction, Error> {
    let user = AuthUser::new(user_id);
    let groups = caller_groups(&shared.auth, &shared.store, &user)
        .await
        .map_err(|error| match error {
            AuthorizeError::Groups(error) => Error::Groups(error),
            AuthorizeError::Token(error) => Error::Groups(Box::new(error)),
        })?;
    let action = shared
        .store
        .append(NewAction {
            model: GROUPS_MODEL,
            model_id: user_id,
            action: "G",
            data: json!({ "subscribedSyncGroups": groups }),
            group_id: Some(user_id),
            client_id: None,
            client_tx_id: None,
        })
        .await?;
    tracing::info!(user = user_id, sync_id = %action.id, ?groups, "sync groups changed");
    shared.appended(&action);
    Ok(action)
}
