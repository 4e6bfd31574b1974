//! Runtime behaviour of the code `#[derive(SyncModel)]` generates, on the
//! reference models of `stratasync_tests::models`.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};
use stratasync::{ActionKind, FieldError, GroupKey, JsonMap, SyncModel, composite_id};
use stratasync_tests::models::{Task, TaskLabel};
use uuid::Uuid;

fn map(value: Value) -> JsonMap {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

fn task() -> Task {
    Task {
        id: Uuid::parse_str("5f0e4a1c-7f3b-4c2e-9a51-1d2b3c4d5e6f").unwrap(),
        title: "Write \"docs\"".to_owned(),
        completed_at: Some(at(1_795_632_180_123)),
        due_on: NaiveDate::from_ymd_opt(2026, 11, 25),
        priority: 2,
        workspace_id: "w1".to_owned(),
        created_at: at(1_795_600_000_000),
        archived_at: None,
    }
}

fn label() -> TaskLabel {
    TaskLabel {
        task_id: Uuid::parse_str("5f0e4a1c-7f3b-4c2e-9a51-1d2b3c4d5e6f").unwrap(),
        label_id: Uuid::parse_str("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d").unwrap(),
        workspace_id: "w1".to_owned(),
        created_at: at(1_795_600_000_000),
    }
}

fn row(model: &impl SyncModel) -> String {
    let mut out = Vec::new();
    model.write_row(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn task_meta_describes_the_model() {
    let meta = Task::META;
    assert_eq!(meta.name, "Task");
    let wires: Vec<_> = meta.fields.iter().map(|f| f.wire).collect();
    assert_eq!(
        wires,
        [
            "id",
            "title",
            "completedAt",
            "dueOn",
            "priority",
            "workspaceId",
            "createdAt",
            "archivedAt"
        ]
    );
    assert_eq!(meta.fields[2].column, "completed_at");
    assert_eq!(
        meta.group,
        GroupKey::Column {
            field: "workspaceId",
            updatable: false
        }
    );
    assert!(!meta.composite);
    for kind in [
        ActionKind::Insert,
        ActionKind::Update,
        ActionKind::Delete,
        ActionKind::Archive,
        ActionKind::Unarchive,
    ] {
        assert!(meta.actions.contains(kind));
    }
    assert!(meta.is_indexed("workspaceId"));
    assert!(!meta.is_indexed("title"));
}

#[test]
fn task_row_is_the_bootstrap_line() {
    assert_eq!(
        row(&task()),
        r#"{"__class":"Task","id":"5f0e4a1c-7f3b-4c2e-9a51-1d2b3c4d5e6f","title":"Write \"docs\"","completedAt":1795632180123,"dueOn":1795564800000,"priority":2,"workspaceId":"w1","createdAt":1795600000000,"archivedAt":null}"#
    );
}

#[test]
fn task_keys_groups_and_ids() {
    let task = task();
    assert_eq!(task.key(), task.id);
    assert_eq!(task.cursor(), task.id);
    assert_eq!(
        Task::model_id(&task.id),
        "5f0e4a1c-7f3b-4c2e-9a51-1d2b3c4d5e6f"
    );
    assert_eq!(task.group_id().as_deref(), Some("w1"));
    let key = Task::key_from_request("5f0e4a1c-7f3b-4c2e-9a51-1d2b3c4d5e6f", &JsonMap::new());
    assert_eq!(key, Ok(task.id));
    assert_eq!(
        Task::key_from_request("nope", &JsonMap::new())
            .unwrap_err()
            .to_string(),
        "Invalid value for id: expected a UUID string"
    );
}

#[test]
fn task_insert_reads_the_payload() {
    let now = at(1_800_000_000_000);
    let id = Uuid::new_v4();
    let payload = map(json!({
        "title": "t",
        "completedAt": null,
        "dueOn": 1_795_564_800_005_i64,
        "workspaceId": "w9",
        "createdAt": 5,
        "archivedAt": 7,
    }));
    let task = Task::from_insert(id, &payload, now).unwrap();
    assert_eq!(task.id, id);
    assert_eq!(task.title, "t");
    assert_eq!(task.completed_at, None);
    assert_eq!(task.due_on, NaiveDate::from_ymd_opt(2026, 11, 25));
    assert_eq!(task.priority, 0, "an absent integer is 0");
    assert_eq!(task.workspace_id, "w9");
    assert_eq!(
        task.created_at,
        at(5),
        "`= now` keeps a value the client sends"
    );
    assert_eq!(task.archived_at, None, "not an insert field");

    let data = task.insert_data();
    assert_eq!(
        Value::Object(data),
        json!({
            "id": id.to_string(),
            "title": "t",
            "completedAt": null,
            "dueOn": 1_795_564_800_000_i64,
            "priority": 0,
            "workspaceId": "w9",
            "createdAt": 5,
        })
    );

    let without_created_at = map(json!({ "title": "t", "workspaceId": "w9", "createdAt": null }));
    let task = Task::from_insert(id, &without_created_at, now).unwrap();
    assert_eq!(
        task.created_at, now,
        "`= now` fills in the server's clock when the client sends none"
    );
    let wrong = map(json!({ "title": "t", "workspaceId": "w9", "createdAt": "yesterday" }));
    assert_eq!(
        Task::from_insert(id, &wrong, now).unwrap_err().to_string(),
        "Invalid instant value for createdAt"
    );
}

#[test]
fn insert_errors_name_the_wire_field() {
    let now = Utc::now();
    let insert = |payload: Value| Task::from_insert(Uuid::nil(), &map(payload), now).unwrap_err();
    assert_eq!(
        insert(json!({"title": "t", "workspaceId": "w", "priority": "high"})).to_string(),
        "Invalid value for priority: expected an integer that fits i32"
    );
    assert_eq!(
        insert(json!({"workspaceId": "w"})),
        FieldError::required("title")
    );
    assert_eq!(
        insert(json!({"title": "t", "workspaceId": "w", "completedAt": "2026-01-01"})).to_string(),
        "Invalid instant value for completedAt"
    );
    assert_eq!(
        insert(json!({"title": "t", "workspaceId": "w", "dueOn": true})).to_string(),
        "Invalid dateOnly value for dueOn"
    );
    for group in [
        json!({"title": "t"}),
        json!({"title": "t", "workspaceId": ""}),
        json!({"title": "t", "workspaceId": null}),
    ] {
        assert_eq!(insert(group), FieldError::missing_group("workspaceId"));
    }
    assert_eq!(
        insert(json!({"title": "t", "workspaceId": 3})).to_string(),
        "Invalid value for workspaceId: expected a string"
    );
}

#[test]
fn task_changes_decode_the_update_fields_only() {
    let payload = map(json!({
        "title": "new",
        "completedAt": null,
        "workspaceId": "elsewhere",
        "createdAt": 1,
        "unknown": true,
    }));
    let (changes, data) = Task::decode_changes(&payload).unwrap();
    assert!(!Task::changes_nothing(&changes));
    assert_eq!(Task::changed_group(&changes), None);
    assert_eq!(
        Value::Object(data),
        json!({"title": "new", "completedAt": null})
    );

    let (changes, data) = Task::decode_changes(&map(json!({"workspaceId": "w2"}))).unwrap();
    assert!(Task::changes_nothing(&changes));
    assert!(data.is_empty());

    let err = Task::decode_changes(&map(json!({"priority": 1.5})))
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "Invalid value for priority: expected an integer that fits i32"
    );
    let err = Task::decode_changes(&map(json!({"title": null})))
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "Invalid value for title: expected a string"
    );
}

#[test]
fn task_label_is_composite() {
    let meta = TaskLabel::META;
    assert_eq!(meta.name, "TaskLabel");
    assert!(meta.composite);
    assert!(meta.actions.contains(ActionKind::Insert));
    assert!(meta.actions.contains(ActionKind::Delete));
    assert!(!meta.actions.contains(ActionKind::Update));
    assert!(!meta.actions.contains(ActionKind::Archive));

    let label = label();
    let key = label.key();
    assert_eq!(key, (label.task_id, label.label_id));
    assert_eq!(label.cursor(), key);
    let id = TaskLabel::model_id(&key);
    assert_eq!(
        id,
        composite_id(
            "TaskLabel",
            &[label.task_id.to_string(), label.label_id.to_string()]
        )
    );
    assert_eq!(label.group_id().as_deref(), Some("w1"));
    assert_eq!(
        row(&label),
        format!(
            r#"{{"__class":"TaskLabel","taskId":"{}","labelId":"{}","workspaceId":"w1","createdAt":1795600000000,"id":"{id}"}}"#,
            label.task_id, label.label_id
        )
    );
}

#[test]
fn task_label_keys_come_from_the_payload() {
    let label = label();
    let payload = map(json!({
        "taskId": label.task_id.to_string(),
        "labelId": label.label_id.to_string(),
        "workspaceId": "w1",
    }));
    let key = TaskLabel::key_from_request("ignored", &payload).unwrap();
    assert_eq!(key, (label.task_id, label.label_id));
    assert_eq!(
        TaskLabel::key_from_request("x", &map(json!({"taskId": label.task_id.to_string()}))),
        Err(FieldError::required("labelId"))
    );
    assert_eq!(
        TaskLabel::key_from_request("x", &map(json!({"taskId": "no", "labelId": "no"})))
            .unwrap_err()
            .to_string(),
        "Invalid value for taskId: expected a UUID string"
    );

    let now = at(1_795_600_000_000);
    let inserted = TaskLabel::from_insert(key, &payload, now).unwrap();
    assert_eq!(inserted, label);
    assert_eq!(
        Value::Object(inserted.insert_data()),
        json!({
            "taskId": label.task_id.to_string(),
            "labelId": label.label_id.to_string(),
            "workspaceId": "w1",
            "createdAt": 1_795_600_000_000_i64,
        }),
        "a composite insert carries no id"
    );

    let (changes, data) = TaskLabel::decode_changes(&payload).unwrap();
    assert!(TaskLabel::changes_nothing(&changes));
    assert!(data.is_empty());
}
