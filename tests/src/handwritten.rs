//! SPEC FIXTURE: what `#[derive(SyncModel)]` must expand to for the models
//! below. Replaced by the derive once it lands.
#![allow(missing_docs)]

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

pub mod schema {
    diesel::table! {
        use diesel::sql_types::*;
        use stratasync::sql_types::*;

        tasks (id) {
            id -> PortableUuid,
            title -> Text,
            completed_at -> Nullable<Instant>,
            due_on -> Nullable<Date>,
            priority -> Integer,
            workspace_id -> Text,
            created_at -> Instant,
            archived_at -> Nullable<Instant>,
        }
    }

    diesel::table! {
        use diesel::sql_types::*;
        use stratasync::sql_types::*;

        task_labels (task_id, label_id) {
            task_id -> PortableUuid,
            label_id -> PortableUuid,
            workspace_id -> Text,
            created_at -> Instant,
        }
    }
}

use schema::{task_labels, tasks};

// The user writes:
//
// #[derive(Debug, Clone, Queryable, Selectable, SyncModel)]
// #[diesel(table_name = tasks)]
// #[sync(group = "workspace_id", cursor = "id",
//        actions(insert, update, delete, archive, unarchive),
//        insert(title, completed_at, due_on, priority, workspace_id, created_at = now),
//        update(title, completed_at, due_on, priority),
//        indexed(workspace_id))]
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable)]
#[diesel(table_name = tasks)]
pub struct Task {
    pub id: Uuid,
    pub title: String,
    pub completed_at: Option<DateTime<Utc>>,
    pub due_on: Option<NaiveDate>,
    pub priority: i32,
    pub workspace_id: String,
    pub created_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
}

// #[derive(Debug, Clone, Queryable, Selectable, SyncModel)]
// #[diesel(table_name = task_labels)]
// #[sync(composite(task_id, label_id), group = "workspace_id", actions(insert, delete),
//        insert(task_id, label_id, workspace_id, created_at = now))]
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable)]
#[diesel(table_name = task_labels)]
pub struct TaskLabel {
    pub task_id: Uuid,
    pub label_id: Uuid,
    pub workspace_id: String,
    pub created_at: DateTime<Utc>,
}

// ---------------------------------------------------------------- expansion of Task
#[doc(hidden)]
pub struct __TaskChanges {
    title: ::core::option::Option<String>,
    completed_at: ::core::option::Option<Option<DateTime<Utc>>>,
    due_on: ::core::option::Option<Option<NaiveDate>>,
    priority: ::core::option::Option<i32>,
}

const _: () = {
    use ::stratasync::__private as sp;
    use sp::FieldCodec as _;

    #[automatically_derived]
    impl sp::SyncModel for Task {
        const META: sp::ModelMeta = sp::ModelMeta {
            name: "Task",
            fields: &[
                sp::FieldMeta {
                    wire: "id",
                    column: "id",
                },
                sp::FieldMeta {
                    wire: "title",
                    column: "title",
                },
                sp::FieldMeta {
                    wire: "completedAt",
                    column: "completed_at",
                },
                sp::FieldMeta {
                    wire: "dueOn",
                    column: "due_on",
                },
                sp::FieldMeta {
                    wire: "priority",
                    column: "priority",
                },
                sp::FieldMeta {
                    wire: "workspaceId",
                    column: "workspace_id",
                },
                sp::FieldMeta {
                    wire: "createdAt",
                    column: "created_at",
                },
                sp::FieldMeta {
                    wire: "archivedAt",
                    column: "archived_at",
                },
            ],
            group: sp::GroupKey::Column {
                field: "workspaceId",
                updatable: false,
            },
            composite: false,
            actions: sp::ActionSet::EMPTY
                .with(sp::ActionKind::Insert)
                .with(sp::ActionKind::Update)
                .with(sp::ActionKind::Delete)
                .with(sp::ActionKind::Archive)
                .with(sp::ActionKind::Unarchive),
            indexed: &["workspaceId"],
        };
        type Key = Uuid;
        type Cursor = Uuid;
        type Changes = __TaskChanges;

        fn key(&self) -> Uuid {
            self.id.clone()
        }
        fn cursor(&self) -> Uuid {
            self.id.clone()
        }
        fn model_id(key: &Uuid) -> String {
            <Uuid as sp::GroupValue>::to_id_string(key)
        }
        fn key_from_request(
            model_id: &str,
            _payload: &sp::JsonMap,
        ) -> Result<Uuid, sp::FieldError> {
            <Uuid as sp::GroupValue>::from_id_str(model_id)
                .ok_or(sp::FieldError::expected("id", "a UUID string"))
        }
        fn group_id(&self) -> Option<String> {
            Some(<String as sp::GroupValue>::to_id_string(&self.workspace_id))
        }
        fn write_row(&self, out: &mut Vec<u8>) {
            // Fields in declaration order; `id` keeps its place when declared,
            // else comes last (composite: the synthetic id last).
            out.extend_from_slice(b"{\"__class\":\"Task\",\"id\":");
            self.id.encode(out);
            out.extend_from_slice(b",\"title\":");
            self.title.encode(out);
            out.extend_from_slice(b",\"completedAt\":");
            self.completed_at.encode(out);
            out.extend_from_slice(b",\"dueOn\":");
            self.due_on.encode(out);
            out.extend_from_slice(b",\"priority\":");
            self.priority.encode(out);
            out.extend_from_slice(b",\"workspaceId\":");
            self.workspace_id.encode(out);
            out.extend_from_slice(b",\"createdAt\":");
            self.created_at.encode(out);
            out.extend_from_slice(b",\"archivedAt\":");
            self.archived_at.encode(out);
            out.push(b'}');
        }
        fn from_insert(
            key: Uuid,
            payload: &sp::JsonMap,
            now: sp::chrono::DateTime<sp::chrono::Utc>,
        ) -> Result<Self, sp::FieldError> {
            Ok(Task {
                id: key,
                title: sp::FieldCodec::decode_field(payload, "title")?,
                completed_at: sp::FieldCodec::decode_field(payload, "completedAt")?,
                due_on: sp::FieldCodec::decode_field(payload, "dueOn")?,
                priority: sp::FieldCodec::decode_field(payload, "priority")?,
                // The group column: absent or empty is "missing required group identifier".
                workspace_id: match payload.get("workspaceId") {
                    Some(value) if !value.is_null() && value.as_str() != Some("") => {
                        sp::FieldCodec::decode(value, "workspaceId")?
                    }
                    _ => return Err(sp::FieldError::missing_group("workspaceId")),
                },
                // `= now`
                created_at: now,
                // Not in insert(...): Option → None (a non-Option field must be in insert or have a default).
                archived_at: None,
            })
        }
        fn insert_data(&self) -> sp::JsonMap {
            let mut data = sp::JsonMap::new();
            data.insert("id".into(), self.id.to_json());
            data.insert("title".into(), self.title.to_json());
            data.insert("completedAt".into(), self.completed_at.to_json());
            data.insert("dueOn".into(), self.due_on.to_json());
            data.insert("priority".into(), self.priority.to_json());
            data.insert("workspaceId".into(), self.workspace_id.to_json());
            data.insert("createdAt".into(), self.created_at.to_json());
            data
        }
        fn decode_changes(
            payload: &sp::JsonMap,
        ) -> Result<(__TaskChanges, sp::JsonMap), sp::FieldError> {
            let mut data = sp::JsonMap::new();
            let mut changes = __TaskChanges {
                title: None,
                completed_at: None,
                due_on: None,
                priority: None,
            };
            if let Some(value) = payload.get("title") {
                let v: String = sp::FieldCodec::decode(value, "title")?;
                data.insert("title".into(), v.to_json());
                changes.title = Some(v);
            }
            if let Some(value) = payload.get("completedAt") {
                let v: Option<DateTime<Utc>> = sp::FieldCodec::decode(value, "completedAt")?;
                data.insert("completedAt".into(), v.to_json());
                changes.completed_at = Some(v);
            }
            if let Some(value) = payload.get("dueOn") {
                let v: Option<NaiveDate> = sp::FieldCodec::decode(value, "dueOn")?;
                data.insert("dueOn".into(), v.to_json());
                changes.due_on = Some(v);
            }
            if let Some(value) = payload.get("priority") {
                let v: i32 = sp::FieldCodec::decode(value, "priority")?;
                data.insert("priority".into(), v.to_json());
                changes.priority = Some(v);
            }
            Ok((changes, data))
        }
        fn changed_group(_changes: &__TaskChanges) -> Option<String> {
            // With update(workspace_id) and the group opt-in:
            // changes.workspace_id.as_ref().map(GroupValue::to_id_string)
            None
        }
        fn changes_nothing(changes: &__TaskChanges) -> bool {
            changes.title.is_none()
                && changes.completed_at.is_none()
                && changes.due_on.is_none()
                && changes.priority.is_none()
        }
    }

    macro_rules! __stratasync_backend {
        ($conn:ty, $backend:ty) => {
            const _: () = {
                /// The rows in `scope`; `None` when the scope cannot match a row.
                fn __scoped(scope: &sp::RowScope) -> Option<tasks::BoxedQuery<'static, $backend>> {
                    use sp::diesel::prelude::*;
                    let mut query = tasks::table.into_boxed::<$backend>();
                    let groups: Vec<sp::Bind<String>> = scope
                        .groups
                        .iter()
                        .filter_map(|g| <String as sp::GroupValue>::from_id_str(g))
                        .map(sp::Bind)
                        .collect();
                    query = query.filter(tasks::workspace_id.eq_any(groups));
                    if let Some((key, value)) = &scope.index {
                        match key.as_str() {
                            "workspaceId" => {
                                let value = <String as sp::GroupValue>::from_id_str(value)?;
                                query = query.filter(tasks::workspace_id.eq(sp::Bind(value)));
                            }
                            _ => return None,
                        }
                    }
                    Some(query)
                }

                #[automatically_derived]
                impl sp::DieselModel<$conn> for Task {
                    fn load_page<'a>(
                        conn: &'a mut $conn,
                        scope: &'a sp::RowScope,
                        after: Option<&'a Uuid>,
                        limit: i64,
                    ) -> sp::BoxFuture<'a, sp::diesel::QueryResult<Vec<Self>>> {
                        use sp::diesel::prelude::*;
                        use sp::diesel_async::RunQueryDsl;
                        ::std::boxed::Box::pin(async move {
                            let Some(mut query) = __scoped(scope) else {
                                return Ok(Vec::new());
                            };
                            if let Some(after) = after {
                                query = query.filter(tasks::id.gt(sp::Bind(after)));
                            }
                            query
                                .order(tasks::id.asc())
                                .limit(limit)
                                .select(
                                    <Task as sp::diesel::SelectableHelper<$backend>>::as_select(),
                                )
                                .load::<Task>(conn)
                                .await
                        })
                    }
                    fn count<'a>(
                        conn: &'a mut $conn,
                        scope: &'a sp::RowScope,
                    ) -> sp::BoxFuture<'a, sp::diesel::QueryResult<i64>> {
                        use sp::diesel::prelude::*;
                        use sp::diesel_async::RunQueryDsl;
                        ::std::boxed::Box::pin(async move {
                            let Some(query) = __scoped(scope) else {
                                return Ok(0);
                            };
                            query.count().get_result::<i64>(conn).await
                        })
                    }
                    fn find_group<'a>(
                        conn: &'a mut $conn,
                        key: &'a Uuid,
                    ) -> sp::BoxFuture<'a, sp::diesel::QueryResult<Option<Option<String>>>>
                    {
                        use sp::diesel::prelude::*;
                        use sp::diesel_async::RunQueryDsl;
                        ::std::boxed::Box::pin(async move {
                            let group = tasks::table
                                .filter(tasks::id.eq(sp::Bind(key)))
                                .select(tasks::workspace_id)
                                .first::<String>(conn)
                                .await
                                .optional()?;
                            Ok(group.map(|g| Some(<String as sp::GroupValue>::to_id_string(&g))))
                        })
                    }
                    fn insert<'a>(
                        conn: &'a mut $conn,
                        row: &'a Self,
                    ) -> sp::BoxFuture<'a, sp::diesel::QueryResult<usize>> {
                        use sp::diesel::prelude::*;
                        use sp::diesel_async::RunQueryDsl;
                        ::std::boxed::Box::pin(async move {
                            sp::diesel::insert_into(tasks::table)
                                .values((
                                    tasks::id.eq(sp::Bind(&row.id)),
                                    tasks::title.eq(sp::Bind(&row.title)),
                                    tasks::completed_at.eq(sp::Bind(&row.completed_at)),
                                    tasks::due_on.eq(sp::Bind(&row.due_on)),
                                    tasks::priority.eq(sp::Bind(&row.priority)),
                                    tasks::workspace_id.eq(sp::Bind(&row.workspace_id)),
                                    tasks::created_at.eq(sp::Bind(&row.created_at)),
                                    tasks::archived_at.eq(sp::Bind(&row.archived_at)),
                                ))
                                .execute(conn)
                                .await
                        })
                    }
                    fn update<'a>(
                        conn: &'a mut $conn,
                        key: &'a Uuid,
                        changes: __TaskChanges,
                    ) -> sp::BoxFuture<'a, sp::diesel::QueryResult<usize>> {
                        use sp::diesel::prelude::*;
                        use sp::diesel_async::RunQueryDsl;
                        ::std::boxed::Box::pin(async move {
                            sp::diesel::update(tasks::table.filter(tasks::id.eq(sp::Bind(key))))
                                .set((
                                    changes.title.map(|v| tasks::title.eq(sp::Bind(v))),
                                    changes
                                        .completed_at
                                        .map(|v| tasks::completed_at.eq(sp::Bind(v))),
                                    changes.due_on.map(|v| tasks::due_on.eq(sp::Bind(v))),
                                    changes.priority.map(|v| tasks::priority.eq(sp::Bind(v))),
                                ))
                                .execute(conn)
                                .await
                        })
                    }
                    fn delete<'a>(
                        conn: &'a mut $conn,
                        key: &'a Uuid,
                    ) -> sp::BoxFuture<'a, sp::diesel::QueryResult<usize>> {
                        use sp::diesel::prelude::*;
                        use sp::diesel_async::RunQueryDsl;
                        ::std::boxed::Box::pin(async move {
                            sp::diesel::delete(tasks::table.filter(tasks::id.eq(sp::Bind(key))))
                                .execute(conn)
                                .await
                        })
                    }
                    fn set_archived<'a>(
                        conn: &'a mut $conn,
                        key: &'a Uuid,
                        at: Option<sp::chrono::DateTime<sp::chrono::Utc>>,
                    ) -> sp::BoxFuture<'a, sp::diesel::QueryResult<usize>> {
                        use sp::diesel::prelude::*;
                        use sp::diesel_async::RunQueryDsl;
                        ::std::boxed::Box::pin(async move {
                            sp::diesel::update(tasks::table.filter(tasks::id.eq(sp::Bind(key))))
                                .set(tasks::archived_at.eq(sp::Bind(at)))
                                .execute(conn)
                                .await
                        })
                    }
                }
            };
        };
    }

    sp::for_each_backend!(__stratasync_backend);
};
