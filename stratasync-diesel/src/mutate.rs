//! Applying one client mutation to a model, inside an open transaction.

use chrono::{DateTime, Utc};
use serde_json::Value;
use stratasync_core::{
    ActionKind, FieldCodec, FilterContext, GroupKey, JsonMap, SyncModel, map_contains_nul,
};

use crate::hooks::{DynModelHooks, HookConn};
use crate::log::LogConn;
use crate::references;
use crate::{DieselModel, MutationError, Settled};

/// One client transaction of a mutate request.
#[derive(Debug, Clone)]
pub struct Mutation {
    /// The writing client.
    pub client_id: String,
    /// The client's id for this transaction (idempotency key with `client_id`).
    pub client_tx_id: String,
    /// Model wire name.
    pub model: String,
    /// Row id as the client sent it (ignored for composite models).
    pub model_id: String,
    /// What to do.
    pub action: ActionKind,
    /// The fields the client sent.
    pub payload: JsonMap,
}

/// What an applied mutation appends to the log.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) model_id: String,
    /// The action: the mutation's own, or an insert for a move.
    pub(crate) action: ActionKind,
    pub(crate) group_id: Option<String>,
    pub(crate) data: Value,
    /// For a move between groups, the delete appended first, in the group
    /// the row left.
    pub(crate) left: Option<Left>,
}

/// The delete a move appends for the subscribers of the group the row left.
#[derive(Debug, Clone)]
pub(crate) struct Left {
    pub(crate) group_id: String,
    /// The row as it was, as a client's delete payload would carry it.
    pub(crate) data: Value,
}

/// Refuses a write into a group the caller does not hold.
fn authorize(ctx: &FilterContext, group: Option<&str>) -> Result<(), MutationError> {
    match group {
        Some(group) if !ctx.holds(group) => Err(MutationError::rejected("Access denied")),
        _ => Ok(()),
    }
}

/// Why the row a mutation names is missing. A committed delete the caller
/// can see removed it, or removed a row its payload references: the
/// mutation is moot ([`MutationError::AlreadyDeleted`],
/// [`MutationError::ReferenceDeleted`]). Otherwise the row never existed
/// for the caller: not found, as strictly as ever (a composite row that was
/// never linked included).
async fn missing_row<T: SyncModel, C: LogConn>(
    conn: &mut C,
    mutation: &Mutation,
    model_id: &str,
    ctx: &FilterContext,
) -> MutationError {
    match visible_delete(conn, &mutation.model, model_id, ctx).await {
        Ok(Some(settled)) => return MutationError::AlreadyDeleted(settled),
        Ok(None) => {}
        Err(error) => return error,
    }
    for (model, id) in T::payload_references(&mutation.payload) {
        match visible_delete(conn, model, &id, ctx).await {
            Ok(Some(settled)) => return MutationError::ReferenceDeleted(settled),
            Ok(None) => {}
            Err(error) => return error,
        }
    }
    MutationError::not_found()
}

/// The delete that is the latest action on a row, when it is in a group
/// the caller holds.
async fn visible_delete<C: LogConn>(
    conn: &mut C,
    model: &str,
    model_id: &str,
    ctx: &FilterContext,
) -> Result<Option<Settled>, MutationError> {
    Ok(conn
        .last_action_on(model, model_id)
        .await?
        .filter(|last| {
            last.action == ActionKind::Delete.letter()
                && last
                    .group_id
                    .as_deref()
                    .is_none_or(|group| ctx.holds(group))
        })
        .map(|last| Settled {
            by: last.id,
            group_id: last.group_id,
        }))
}

/// Whether the composite pair `key` names is linked, by an insert, in a
/// group the caller holds: inserting it again relinks it. Another group's
/// pair is left to the insert, which finds it already exists.
async fn linked_before<T, C>(
    conn: &mut C,
    mutation: &Mutation,
    key: &T::Key,
    model_id: &str,
    ctx: &FilterContext,
) -> Result<bool, MutationError>
where
    T: DieselModel<C>,
    C: HookConn + LogConn,
{
    let visible = match T::find_group(conn, key).await? {
        Some(Some(group)) => ctx.holds(&group),
        Some(None) => T::META.group == GroupKey::Global,
        None => false,
    };
    if !visible {
        return Ok(false);
    }
    let last = conn.last_action_on(&mutation.model, model_id).await?;
    Ok(last.is_some_and(|last| last.action == ActionKind::Insert.letter()))
}

/// For a model without hooks: `mutation` (not an insert) written in one
/// statement that also checks the row is the caller's to write (its group
/// held, in the caller's scope). `None` when the mutation takes the checked
/// path of [`apply`] instead: a payload that path refuses after finding the
/// row, a change of the row's group, a change of nothing. A write that
/// matches no row (missing, of a group the caller does not hold, out of
/// scope) is answered as that path answers each of them: [`missing_row`].
async fn write_visible<T, C>(
    conn: &mut C,
    mutation: &Mutation,
    key: &T::Key,
    model_id: &str,
    ctx: &FilterContext,
) -> Result<Option<Change>, MutationError>
where
    T: DieselModel<C>,
    C: HookConn + LogConn,
{
    let (written, data) = match mutation.action {
        ActionKind::Update => {
            let Ok((changes, data)) = T::decode_changes(&mutation.payload) else {
                return Ok(None);
            };
            if T::changed_group(&changes).is_some() || T::changes_nothing(&changes) {
                return Ok(None);
            }
            let recheck = T::touches_references(&changes);
            let written = T::update_visible(conn, key, changes, ctx).await?;
            if written.is_some() && recheck {
                let row = T::find(conn, key)
                    .await?
                    .ok_or_else(MutationError::not_found)?;
                references::check_row(conn, &row).await?;
            }
            (written, Value::Object(data))
        }
        ActionKind::Delete => {
            if map_contains_nul(&mutation.payload) {
                return Ok(None);
            }
            let written = T::delete_visible(conn, key, ctx).await?;
            (written, Value::Object(mutation.payload.clone()))
        }
        ActionKind::Archive => {
            let at = match mutation.payload.get("archivedAt") {
                Some(value) if value.is_number() => {
                    match DateTime::<Utc>::decode(value, "archivedAt") {
                        Ok(at) => at,
                        Err(_) => return Ok(None),
                    }
                }
                _ => return Ok(None),
            };
            let written = T::set_archived_visible(conn, key, Some(at), ctx).await?;
            (written, serde_json::json!({ "archivedAt": at.to_json() }))
        }
        ActionKind::Unarchive => {
            let written = T::set_archived_visible(conn, key, None, ctx).await?;
            (written, serde_json::json!({ "archivedAt": null }))
        }
        ActionKind::Insert | ActionKind::GroupsChanged => return Ok(None),
    };
    match written {
        Some(group_id) => Ok(Some(Change {
            model_id: model_id.to_owned(),
            action: mutation.action,
            group_id,
            data,
            left: None,
        })),
        None => Err(missing_row::<T, C>(conn, mutation, model_id, ctx).await),
    }
}

/// Applies `mutation` to model `T` on `conn` (inside the caller's
/// transaction), running the model's `hooks` if it has any. `hook_ran` is
/// set before a hook runs: from then on the transaction may hold the hook's
/// writes, which a refusal must undo.
pub(crate) async fn apply<T, C>(
    conn: &mut C,
    mutation: &Mutation,
    ctx: &FilterContext,
    now: DateTime<Utc>,
    hooks: Option<&dyn DynModelHooks<T>>,
    hook_ran: &mut bool,
) -> Result<Change, MutationError>
where
    T: DieselModel<C>,
    C: HookConn + LogConn,
{
    let key = match T::key_from_request(&mutation.model_id, &mutation.payload) {
        Ok(key) => key,
        // A standard model's id that does not parse names no row that exists.
        Err(_) if !T::META.composite && mutation.action != ActionKind::Insert => {
            return Err(MutationError::not_found());
        }
        Err(error) => return Err(error.into()),
    };
    let model_id = T::model_id(&key);

    if mutation.action == ActionKind::Insert {
        // A relink: the pair is logged again as it is, so that the client's
        // insert is ordered among the other actions on the pair
        // (docs/protocol.md, "Relinks"). The row is deleted and put back as
        // it was, which waits for a concurrent unlink of the pair: when that
        // one removed it, the insert below links the pair anew.
        if T::META.composite
            && linked_before::<T, C>(conn, mutation, &key, &model_id, ctx).await?
            && let Some(row) = T::find(conn, &key).await?
            && T::delete(conn, &key).await? == 1
        {
            T::insert(conn, &row).await?;
            return Ok(Change {
                model_id,
                action: ActionKind::Insert,
                group_id: row.group_id(),
                data: Value::Object(row.insert_data()),
                left: None,
            });
        }
        let mut row = T::from_insert(key, &mutation.payload, now)?;
        if let Some(hooks) = hooks {
            *hook_ran = true;
            hooks
                .before_insert(conn.tx(), ctx, &mut row)
                .await
                .map_err(MutationError::Rejected)?;
        }
        let group_id = row.group_id();
        authorize(ctx, group_id.as_deref())?;
        references::check_row(conn, &row).await?;
        T::insert(conn, &row).await?;
        return Ok(Change {
            model_id,
            action: ActionKind::Insert,
            group_id,
            data: Value::Object(row.insert_data()),
            left: None,
        });
    }

    if hooks.is_none()
        && let Some(change) = write_visible::<T, C>(conn, mutation, &key, &model_id, ctx).await?
    {
        return Ok(change);
    }

    // Rows of groups the caller does not hold, and rows outside the
    // caller's read scope, are answered as missing rows.
    let Some(mut group_id) = T::find_visible_group(conn, &key, ctx).await? else {
        return Err(missing_row::<T, C>(conn, mutation, &model_id, ctx).await);
    };

    let mut action = mutation.action;
    let mut left = None;
    let data = match mutation.action {
        ActionKind::Update => {
            let (changes, data) = T::decode_changes(&mutation.payload)?;
            let moved_to = T::changed_group(&changes).filter(|to| group_id.as_ref() != Some(to));
            if let Some(moved_to) = &moved_to {
                authorize(ctx, Some(moved_to))?;
            }
            if let Some(hooks) = hooks {
                *hook_ran = true;
                hooks
                    .before_update(conn.tx(), ctx, &key, &data)
                    .await
                    .map_err(MutationError::Rejected)?;
            }
            // A move is logged as a delete in the old group and an insert of
            // the whole row in the new one: a client drops an update of a row
            // it does not hold, and keeps a row until told it is gone.
            let before = match moved_to {
                Some(_) => T::find(conn, &key).await?,
                None => None,
            };
            let recheck = T::touches_references(&changes);
            if !T::changes_nothing(&changes) && T::update(conn, &key, changes).await? == 0 {
                return Err(missing_row::<T, C>(conn, mutation, &model_id, ctx).await);
            }
            if recheck {
                let row = T::find(conn, &key)
                    .await?
                    .ok_or_else(MutationError::not_found)?;
                references::check_row(conn, &row).await?;
            }
            match before.zip(moved_to) {
                Some((before, moved_to)) => {
                    let after = T::find(conn, &key)
                        .await?
                        .ok_or_else(MutationError::not_found)?;
                    left = group_id.replace(moved_to).map(|group_id| Left {
                        group_id,
                        data: Value::Object(before.insert_data()),
                    });
                    action = ActionKind::Insert;
                    Value::Object(after.insert_data())
                }
                None => Value::Object(data),
            }
        }
        ActionKind::Delete => {
            // The payload becomes the action's data verbatim.
            if map_contains_nul(&mutation.payload) {
                return Err(MutationError::rejected(
                    "Invalid mutation: the payload contains a NUL character",
                ));
            }
            if let Some(hooks) = hooks {
                *hook_ran = true;
                hooks
                    .before_delete(conn.tx(), ctx, &key)
                    .await
                    .map_err(MutationError::Rejected)?;
            }
            if T::delete(conn, &key).await? == 0 {
                return Err(missing_row::<T, C>(conn, mutation, &model_id, ctx).await);
            }
            Value::Object(mutation.payload.clone())
        }
        ActionKind::Archive => {
            let at = match mutation.payload.get("archivedAt") {
                Some(value) if value.is_number() => DateTime::<Utc>::decode(value, "archivedAt")?,
                _ => return Err(MutationError::rejected("archivedAt is required")),
            };
            if T::set_archived(conn, &key, Some(at)).await? == 0 {
                return Err(missing_row::<T, C>(conn, mutation, &model_id, ctx).await);
            }
            serde_json::json!({ "archivedAt": at.to_json() })
        }
        ActionKind::Unarchive => {
            if T::set_archived(conn, &key, None).await? == 0 {
                return Err(missing_row::<T, C>(conn, mutation, &model_id, ctx).await);
            }
            serde_json::json!({ "archivedAt": null })
        }
        ActionKind::Insert | ActionKind::GroupsChanged => {
            return Err(MutationError::rejected(format!(
                "Unsupported action \"{}\" for this model",
                mutation.action.letter()
            )));
        }
    };
    Ok(Change {
        model_id,
        action,
        group_id,
        data,
        left,
    })
}
