//! The sync log: appending actions in commit order, reading pages of it,
//! staleness and trimming.

use chrono::{DateTime, Utc};
use diesel::QueryResult;
use diesel::dsl::Eq;
use futures::future::BoxFuture;
use serde_json::value::RawValue;
use stratasync_core::{SyncAction, SyncId};

use crate::schema::sync_actions;

/// An action about to be appended.
#[derive(Debug, Clone)]
pub(crate) struct NewAction<'a> {
    /// Model wire name.
    pub model: &'a str,
    /// Row id (composite id for join tables).
    pub model_id: &'a str,
    /// One-letter action code.
    pub action: &'static str,
    /// Action data.
    pub data: serde_json::Value,
    /// Group the action belongs to (`None`: global).
    pub group_id: Option<&'a str>,
    /// The idempotency key of the client transaction that wrote it.
    pub key: Option<TxKey<'a>>,
    /// Whether a retry of that client transaction is answered with this
    /// action's id. Only then is the key's user recorded (the key is unique
    /// in the log); the client ids are recorded either way, so the writing
    /// client recognizes every action of its transaction as its own.
    pub answers_retries: bool,
}

/// The columns of an appended action, as diesel inserts them.
pub(crate) type ActionValues<'a> = (
    Eq<sync_actions::model, &'a str>,
    Eq<sync_actions::model_id, &'a str>,
    Eq<sync_actions::action, &'static str>,
    Eq<sync_actions::data, crate::Bind<&'a serde_json::Value>>,
    Eq<sync_actions::group_id, Option<&'a str>>,
    Eq<sync_actions::user_id, Option<&'a str>>,
    Eq<sync_actions::client_id, Option<&'a str>>,
    Eq<sync_actions::client_tx_id, Option<&'a str>>,
    Eq<sync_actions::created_at, crate::Bind<DateTime<Utc>>>,
);

impl<'a> NewAction<'a> {
    /// Its columns, appended at `now`.
    pub(crate) fn values(&'a self, now: DateTime<Utc>) -> ActionValues<'a> {
        use diesel::ExpressionMethods as _;
        use sync_actions::dsl as a;
        (
            a::model.eq(self.model),
            a::model_id.eq(self.model_id),
            a::action.eq(self.action),
            a::data.eq(crate::Bind(&self.data)),
            a::group_id.eq(self.group_id),
            a::user_id.eq(self.key.filter(|_| self.answers_retries).map(|k| k.user_id)),
            a::client_id.eq(self.key.map(|k| k.client_id)),
            a::client_tx_id.eq(self.key.map(|k| k.client_tx_id)),
            a::created_at.eq(crate::Bind(now)),
        )
    }
}

/// The idempotency key of a client transaction: a user's client and its
/// transaction id. One user's key never answers for another user's write.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxKey<'a> {
    /// The writing user.
    pub user_id: &'a str,
    /// The writing client.
    pub client_id: &'a str,
    /// The client's transaction id.
    pub client_tx_id: &'a str,
}

/// The [`SyncAction`] that appending `action` as `id` at `created_at` made.
pub(crate) fn to_sync_action(
    action: &NewAction<'_>,
    id: SyncId,
    created_at: DateTime<Utc>,
) -> SyncAction {
    SyncAction {
        id,
        model: action.model.to_owned(),
        model_id: action.model_id.to_owned(),
        action: action.action.to_owned(),
        data: serde_json::value::to_raw_value(&action.data)
            .unwrap_or_else(|_| RawValue::from_string("{}".into()).unwrap_or_default()),
        group_id: action.group_id.map(str::to_owned),
        client_id: action.key.map(|key| key.client_id.to_owned()),
        client_tx_id: action.key.map(|key| key.client_tx_id.to_owned()),
        created_at,
    }
}

/// Appends `actions` in order with one statement on PostgreSQL (the append
/// lock is held); their ids and creation times, in the same order.
///
/// One `INSERT ... VALUES` of every row: the sequence numbers them in the
/// order of the list, and the ids are handed back sorted, so each action
/// gets its own whatever order `RETURNING` lists them in.
#[cfg(feature = "postgres")]
pub(crate) async fn append_all(
    conn: &mut crate::PgConn,
    actions: &[NewAction<'_>],
) -> QueryResult<Vec<(SyncId, DateTime<Utc>)>> {
    use diesel_async::RunQueryDsl;

    use crate::schema::sync_actions::dsl as a;
    let now = Utc::now();
    let rows: Vec<_> = actions.iter().map(|action| action.values(now)).collect();
    let mut appended = RunQueryDsl::get_results::<(i64, DateTime<Utc>)>(
        crate::BySql(
            diesel::insert_into(a::sync_actions)
                .values(rows)
                .returning((a::id, a::created_at)),
        ),
        conn,
    )
    .await?;
    appended.sort_unstable_by_key(|&(id, _)| id);
    Ok(appended
        .into_iter()
        .map(|(id, at)| (SyncId::from_i64(id), at))
        .collect())
}

/// The log operations of one backend's connection.
///
/// Every method runs on the connection as it is, inside whatever transaction
/// is open on it.
pub(crate) trait LogConn: Send {
    /// Serializes appends until the enclosing transaction ends, so that ids
    /// become visible in id order (PROTOCOL §7, commit order).
    fn lock_append_order(&mut self) -> BoxFuture<'_, QueryResult<()>>;

    /// Appends an action; returns its id and timestamp.
    fn append<'a>(
        &'a mut self,
        action: &'a NewAction<'a>,
    ) -> BoxFuture<'a, QueryResult<(SyncId, DateTime<Utc>)>>;

    /// The id of the action a client transaction already produced.
    fn find_client_tx<'a>(
        &'a mut self,
        key: TxKey<'a>,
    ) -> BoxFuture<'a, QueryResult<Option<SyncId>>>;

    /// Up to `limit` actions after `after`, ascending; only global ones and
    /// those of `groups` unless `groups` is `None` (every action).
    fn read_actions<'a>(
        &'a mut self,
        after: SyncId,
        limit: i64,
        groups: Option<&'a [String]>,
    ) -> BoxFuture<'a, QueryResult<Vec<SyncAction>>>;

    /// The latest action on one row: its id, action letter and group.
    fn last_action_on<'a>(
        &'a mut self,
        model: &'a str,
        model_id: &'a str,
    ) -> BoxFuture<'a, QueryResult<Option<RowAction>>>;

    /// The highest id visible to `groups` (global actions included), or 0.
    fn last_visible_id<'a>(
        &'a mut self,
        groups: &'a [String],
    ) -> BoxFuture<'a, QueryResult<SyncId>>;

    /// Whether an action visible to `groups` with an id above `after` was trimmed.
    fn is_stale<'a>(
        &'a mut self,
        after: SyncId,
        groups: &'a [String],
    ) -> BoxFuture<'a, QueryResult<bool>>;

    /// Deletes actions below `before`, recording per group what was trimmed;
    /// returns how many were deleted.
    fn trim_before(&mut self, before: SyncId) -> BoxFuture<'_, QueryResult<usize>>;

    /// The id of the first action created at or after `at`.
    fn first_id_after(&mut self, at: DateTime<Utc>) -> BoxFuture<'_, QueryResult<Option<SyncId>>>;

    /// The groups a user holds through `sync_group_memberships`.
    fn member_groups<'a>(&'a mut self, user_id: &'a str)
    -> BoxFuture<'a, QueryResult<Vec<String>>>;

    /// Adds a membership; returns whether it is new.
    fn add_member<'a>(
        &'a mut self,
        user_id: &'a str,
        group_id: &'a str,
        group_type: &'a str,
    ) -> BoxFuture<'a, QueryResult<bool>>;

    /// Removes a membership; returns whether it existed.
    fn remove_member<'a>(
        &'a mut self,
        user_id: &'a str,
        group_id: &'a str,
    ) -> BoxFuture<'a, QueryResult<bool>>;
}

/// Implements the backend-neutral [`LogConn`] methods for a connection type;
/// the append lock is given per backend.
macro_rules! impl_log_conn {
    ($conn:ty, lock_append_order: $order:expr $(,)?) => {
        impl $crate::log::LogConn for $conn {
            fn lock_append_order(
                &mut self,
            ) -> ::futures::future::BoxFuture<'_, ::diesel::QueryResult<()>> {
                Box::pin($order(self))
            }

            fn append<'a>(
                &'a mut self,
                action: &'a $crate::log::NewAction<'a>,
            ) -> ::futures::future::BoxFuture<
                'a,
                ::diesel::QueryResult<(
                    ::stratasync_core::SyncId,
                    ::chrono::DateTime<::chrono::Utc>,
                )>,
            > {
                use ::diesel_async::RunQueryDsl;
                use $crate::schema::sync_actions::dsl as a;
                Box::pin(async move {
                    let (id, at) = ::diesel::insert_into(a::sync_actions)
                        .values(action.values(::chrono::Utc::now()))
                        .returning((a::id, a::created_at))
                        .get_result::<(i64, ::chrono::DateTime<::chrono::Utc>)>(self)
                        .await?;
                    Ok((::stratasync_core::SyncId::from_i64(id), at))
                })
            }

            fn find_client_tx<'a>(
                &'a mut self,
                key: $crate::log::TxKey<'a>,
            ) -> ::futures::future::BoxFuture<
                'a,
                ::diesel::QueryResult<Option<::stratasync_core::SyncId>>,
            > {
                use ::diesel::prelude::*;
                use ::diesel_async::RunQueryDsl;
                use $crate::schema::sync_actions::dsl as a;
                Box::pin(async move {
                    let id = a::sync_actions
                        .filter(a::user_id.eq(key.user_id))
                        .filter(a::client_id.eq(key.client_id))
                        .filter(a::client_tx_id.eq(key.client_tx_id))
                        .select(a::id)
                        .first::<i64>(self)
                        .await
                        .optional()?;
                    Ok(id.map(::stratasync_core::SyncId::from_i64))
                })
            }

            fn read_actions<'a>(
                &'a mut self,
                after: ::stratasync_core::SyncId,
                limit: i64,
                groups: Option<&'a [String]>,
            ) -> ::futures::future::BoxFuture<
                'a,
                ::diesel::QueryResult<Vec<::stratasync_core::SyncAction>>,
            > {
                use ::diesel::prelude::*;
                use ::diesel_async::RunQueryDsl;
                use $crate::schema::sync_actions::dsl as a;
                Box::pin(async move {
                    let mut query = a::sync_actions
                        .filter(a::id.gt(after.as_i64()))
                        .order(a::id.asc())
                        .limit(limit)
                        .into_boxed();
                    if let Some(groups) = groups {
                        query = query.filter(a::group_id.is_null().or(a::group_id.eq_any(groups)));
                    }
                    let rows = query
                        .select((
                            a::id,
                            a::model,
                            a::model_id,
                            a::action,
                            a::data,
                            a::group_id,
                            a::client_id,
                            a::client_tx_id,
                            a::created_at,
                        ))
                        .load::<$crate::log::ActionRow>(self)
                        .await?;
                    Ok(rows
                        .into_iter()
                        .map($crate::log::ActionRow::into_action)
                        .collect())
                })
            }

            fn last_action_on<'a>(
                &'a mut self,
                model: &'a str,
                model_id: &'a str,
            ) -> ::futures::future::BoxFuture<
                'a,
                ::diesel::QueryResult<Option<$crate::log::RowAction>>,
            > {
                use ::diesel::prelude::*;
                use ::diesel_async::RunQueryDsl;
                use $crate::schema::sync_actions::dsl as a;
                Box::pin(async move {
                    let row = a::sync_actions
                        .filter(a::model.eq(model))
                        .filter(a::model_id.eq(model_id))
                        .order(a::id.desc())
                        .select((a::id, a::action, a::group_id))
                        .first::<(i64, String, Option<String>)>(self)
                        .await
                        .optional()?;
                    Ok(row.map(|(id, action, group_id)| $crate::log::RowAction {
                        id: ::stratasync_core::SyncId::from_i64(id),
                        action: action.trim_end().to_owned(),
                        group_id,
                    }))
                })
            }

            fn last_visible_id<'a>(
                &'a mut self,
                groups: &'a [String],
            ) -> ::futures::future::BoxFuture<'a, ::diesel::QueryResult<::stratasync_core::SyncId>>
            {
                use ::diesel::prelude::*;
                use ::diesel_async::RunQueryDsl;
                use $crate::schema::sync_actions::dsl as a;
                Box::pin(async move {
                    let id = a::sync_actions
                        .filter(a::group_id.is_null().or(a::group_id.eq_any(groups)))
                        .select(::diesel::dsl::max(a::id))
                        .first::<Option<i64>>(self)
                        .await?;
                    Ok(::stratasync_core::SyncId::from_i64(id.unwrap_or(0)))
                })
            }

            fn is_stale<'a>(
                &'a mut self,
                after: ::stratasync_core::SyncId,
                groups: &'a [String],
            ) -> ::futures::future::BoxFuture<'a, ::diesel::QueryResult<bool>> {
                use ::diesel::prelude::*;
                use ::diesel_async::RunQueryDsl;
                use $crate::schema::sync_actions::dsl as a;
                use $crate::schema::sync_log_trims::dsl as t;
                Box::pin(async move {
                    let after = after.as_i64();
                    let trimmed = t::sync_log_trims
                        .filter(t::group_id.eq("").or(t::group_id.eq_any(groups)))
                        .select(::diesel::dsl::max(t::trimmed_through))
                        .first::<Option<i64>>(self)
                        .await?;
                    // Actions up to `trimmed` are gone; a cursor at or past the
                    // last of them has lost nothing.
                    if trimmed.is_some_and(|through| through > after) {
                        return Ok(true);
                    }
                    // Actions deleted without `trim_before` (plain SQL) left no
                    // record of their groups: below the first retained id and
                    // above every recorded trim, assume the cursor lost some.
                    let first = a::sync_actions
                        .select(::diesel::dsl::min(a::id))
                        .first::<Option<i64>>(self)
                        .await?;
                    let Some(first) = first else { return Ok(false) };
                    let recorded = t::sync_log_trims
                        .select(::diesel::dsl::max(t::trimmed_through))
                        .first::<Option<i64>>(self)
                        .await?
                        .unwrap_or(0);
                    let unrecorded_through = first - 1;
                    Ok(unrecorded_through > recorded && after < unrecorded_through)
                })
            }

            fn trim_before(
                &mut self,
                before: ::stratasync_core::SyncId,
            ) -> ::futures::future::BoxFuture<'_, ::diesel::QueryResult<usize>> {
                use ::diesel::prelude::*;
                use ::diesel_async::RunQueryDsl;
                use $crate::schema::sync_actions::dsl as a;
                use $crate::schema::sync_log_trims::dsl as t;
                Box::pin(async move {
                    let below = before.as_i64();
                    let per_group = a::sync_actions
                        .filter(a::id.lt(below))
                        .group_by(a::group_id)
                        .select((a::group_id, ::diesel::dsl::max(a::id)))
                        .load::<(Option<String>, Option<i64>)>(self)
                        .await?;
                    // Every id below `before` is accounted for, whether or not
                    // an action had it (rolled-back ids leave gaps).
                    let whole_log = ($crate::log::WHOLE_LOG_TRIM.to_owned(), below - 1);
                    let per_group = per_group
                        .into_iter()
                        .map(|(group, through)| (group.unwrap_or_default(), through.unwrap_or(0)))
                        .chain([whole_log]);
                    for (group, through) in per_group {
                        ::diesel::insert_into(t::sync_log_trims)
                            .values((t::group_id.eq(&group), t::trimmed_through.eq(through)))
                            .on_conflict(t::group_id)
                            .do_update()
                            .set(t::trimmed_through.eq(through))
                            .execute(self)
                            .await?;
                    }
                    ::diesel::delete(a::sync_actions.filter(a::id.lt(below)))
                        .execute(self)
                        .await
                })
            }

            fn first_id_after(
                &mut self,
                at: ::chrono::DateTime<::chrono::Utc>,
            ) -> ::futures::future::BoxFuture<
                '_,
                ::diesel::QueryResult<Option<::stratasync_core::SyncId>>,
            > {
                use ::diesel::prelude::*;
                use ::diesel_async::RunQueryDsl;
                use $crate::schema::sync_actions::dsl as a;
                Box::pin(async move {
                    let id = a::sync_actions
                        .filter(a::created_at.ge($crate::Bind(at)))
                        .select(::diesel::dsl::min(a::id))
                        .first::<Option<i64>>(self)
                        .await?;
                    Ok(id.map(::stratasync_core::SyncId::from_i64))
                })
            }

            fn member_groups<'a>(
                &'a mut self,
                user_id: &'a str,
            ) -> ::futures::future::BoxFuture<'a, ::diesel::QueryResult<Vec<String>>> {
                use ::diesel::prelude::*;
                use ::diesel_async::RunQueryDsl;
                use $crate::schema::sync_group_memberships::dsl as m;
                Box::pin(async move {
                    m::sync_group_memberships
                        .filter(m::user_id.eq(user_id))
                        .order(m::created_at.asc())
                        .select(m::group_id)
                        .load::<String>(self)
                        .await
                })
            }

            fn add_member<'a>(
                &'a mut self,
                user_id: &'a str,
                group_id: &'a str,
                group_type: &'a str,
            ) -> ::futures::future::BoxFuture<'a, ::diesel::QueryResult<bool>> {
                use ::diesel::prelude::*;
                use ::diesel_async::RunQueryDsl;
                use $crate::schema::sync_group_memberships::dsl as m;
                Box::pin(async move {
                    let inserted = ::diesel::insert_into(m::sync_group_memberships)
                        .values((
                            m::id.eq($crate::Bind(::uuid::Uuid::new_v4())),
                            m::user_id.eq(user_id),
                            m::group_id.eq(group_id),
                            m::group_type.eq(group_type),
                            m::created_at.eq($crate::Bind(::chrono::Utc::now())),
                        ))
                        .on_conflict((m::user_id, m::group_id))
                        .do_nothing()
                        .execute(self)
                        .await?;
                    Ok(inserted > 0)
                })
            }

            fn remove_member<'a>(
                &'a mut self,
                user_id: &'a str,
                group_id: &'a str,
            ) -> ::futures::future::BoxFuture<'a, ::diesel::QueryResult<bool>> {
                use ::diesel::prelude::*;
                use ::diesel_async::RunQueryDsl;
                use $crate::schema::sync_group_memberships::dsl as m;
                Box::pin(async move {
                    let removed = ::diesel::delete(
                        m::sync_group_memberships
                            .filter(m::user_id.eq(user_id))
                            .filter(m::group_id.eq(group_id)),
                    )
                    .execute(self)
                    .await?;
                    Ok(removed > 0)
                })
            }
        }
    };
}
pub(crate) use impl_log_conn;

/// The `sync_log_trims` key under which a trim records the whole range it
/// accounted for, apart from the per-group rows that staleness checks read.
pub(crate) const WHOLE_LOG_TRIM: &str = "__stratasync_whole_log__";

/// The latest action logged on one row (see [`LogConn::last_action_on`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowAction {
    /// Its sync id.
    pub(crate) id: SyncId,
    /// Its one-letter action code.
    pub(crate) action: String,
    /// Its group (`None`: global).
    pub(crate) group_id: Option<String>,
}

/// A `sync_actions` row as read.
#[derive(diesel::Queryable)]
pub(crate) struct ActionRow {
    id: i64,
    model: String,
    model_id: String,
    action: String,
    data: crate::sql_types::RawJson,
    group_id: Option<String>,
    client_id: Option<String>,
    client_tx_id: Option<String>,
    created_at: DateTime<Utc>,
}

impl ActionRow {
    pub(crate) fn into_action(self) -> SyncAction {
        SyncAction {
            id: SyncId::from_i64(self.id),
            model: self.model,
            model_id: self.model_id,
            action: self.action.trim_end().to_owned(),
            data: compact_json(self.data.0),
            group_id: self.group_id,
            client_id: self.client_id,
            client_tx_id: self.client_tx_id,
            created_at: self.created_at,
        }
    }
}

/// `json` without whitespace between tokens. PostgreSQL prints `jsonb` as
/// `{"a": 1, "b": 2}`; deltas carry it as `{"a":1,"b":2}`, the same bytes
/// as on SQLite and in live frames.
fn compact_json(json: Box<RawValue>) -> Box<RawValue> {
    let text = json.get();
    if !text.bytes().any(|b| b.is_ascii_whitespace()) {
        return json;
    }
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    RawValue::from_string(out).unwrap_or(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonb_text_is_compacted_outside_strings() {
        let raw = RawValue::from_string(r#"{"id": "a b", "t": "x\" y", "n": [1, 2]}"#.to_owned())
            .expect("valid JSON");
        assert_eq!(
            compact_json(raw).get(),
            r#"{"id":"a b","t":"x\" y","n":[1,2]}"#
        );
    }
}
