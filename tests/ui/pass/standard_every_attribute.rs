//! A standard model using every container and field attribute.
use chrono::{DateTime, NaiveDate, Utc};
use diesel::{Queryable, Selectable};
use stratasync::{ActionKind, ClientType, LoadStrategy, SyncModel};
use uuid::Uuid;

diesel::table! {
    use diesel::sql_types::*;
    use stratasync::sql_types::*;

    issues (id) {
        id -> PortableUuid,
        title -> Text,
        due_on -> Nullable<Date>,
        priority -> Integer,
        estimate -> Integer,
        team_id -> Text,
        created_at -> Instant,
        updated_at -> Nullable<Instant>,
        archived_at -> Nullable<Instant>,
        body_text -> Nullable<Text>,
    }
}

#[derive(Queryable, Selectable, SyncModel)]
#[diesel(table_name = issues)]
#[sync(
    name = "Issue",
    group = "team_id",
    cursor = "created_at",
    actions(insert, update, delete, archive, unarchive),
    insert(title, due_on, team_id, priority = default, estimate, created_at = now, updated_at = now),
    update(title, due_on, priority, estimate),
    indexed(team_id, id),
    load_strategy = "lazy"
)]
pub struct IssueRow {
    pub id: Uuid,
    pub title: String,
    #[sync(rename = "dueDate", date_only)]
    pub due_on: Option<NaiveDate>,
    pub priority: i32,
    pub estimate: i32,
    pub team_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    pub archived_at: Option<DateTime<Utc>>,
    #[diesel(column_name = body_text)]
    #[sync(rename = "body")]
    pub description: Option<String>,
}

fn main() {
    let _ = stratasync::Registry::new().model::<IssueRow>();
    assert_eq!(IssueRow::META.name, "Issue");
    assert!(IssueRow::META.actions.contains(ActionKind::Archive));
    assert_eq!(IssueRow::META.fields[2].wire, "dueDate");
    assert_eq!(IssueRow::META.fields[9].wire, "body");
    assert_eq!(IssueRow::META.fields[9].column, "body_text");
    assert_eq!(IssueRow::META.indexed, &["teamId", "id"]);
    assert_eq!(IssueRow::META.load_strategy, LoadStrategy::Lazy);
    assert_eq!(IssueRow::META.fields[2].client_type, ClientType::DateOnly);
    assert!(IssueRow::META.fields[2].nullable);
    assert_eq!(IssueRow::META.fields[0].client_type, ClientType::String);
    assert!(IssueRow::META.fields[0].key && !IssueRow::META.fields[1].key);
}
