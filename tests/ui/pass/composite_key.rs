//! A join table identified by three key columns of different types.
use chrono::{DateTime, Utc};
use diesel::{Queryable, Selectable};
use stratasync::SyncModel;
use uuid::Uuid;

diesel::table! {
    use diesel::sql_types::*;
    use stratasync::sql_types::*;

    grants (user_id, project_id, role) {
        user_id -> PortableUuid,
        project_id -> BigInt,
        role -> Text,
        org_id -> Text,
        granted_at -> Instant,
        note -> Nullable<Text>,
    }
}

#[derive(Queryable, Selectable, SyncModel)]
#[diesel(table_name = grants)]
#[sync(
    composite(user_id, project_id, role),
    group = "org_id",
    actions(insert, delete),
    insert(org_id, granted_at = now),
    indexed(user_id)
)]
pub struct Grant {
    pub user_id: Uuid,
    pub project_id: i64,
    pub role: String,
    pub org_id: String,
    pub granted_at: DateTime<Utc>,
    pub note: Option<String>,
}

fn main() {
    let _ = stratasync::Registry::new().model::<Grant>();
    assert!(Grant::META.composite);
    let key: <Grant as SyncModel>::Key = (Uuid::nil(), 7, "admin".to_owned());
    assert_eq!(
        Grant::model_id(&key),
        stratasync::composite_id(
            "Grant",
            &[Uuid::nil().to_string(), "7".to_owned(), "admin".to_owned()]
        )
    );
}
