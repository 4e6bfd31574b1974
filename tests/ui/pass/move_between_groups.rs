//! An updatable group column, opted into with `move_between_groups`.
use diesel::{Queryable, Selectable};
use stratasync::{GroupKey, SyncModel};

diesel::table! {
    documents (id) {
        id -> Integer,
        title -> Text,
        folder_id -> Integer,
    }
}

#[derive(Queryable, Selectable, SyncModel)]
#[diesel(table_name = documents)]
#[sync(
    group = "folder_id",
    move_between_groups,
    actions(insert, update, delete),
    insert(title, folder_id),
    update(title, folder_id)
)]
pub struct Document {
    pub id: i32,
    pub title: String,
    pub folder_id: i32,
}

fn main() {
    let _ = stratasync::Registry::new().model::<Document>();
    assert_eq!(
        Document::META.group,
        GroupKey::Column { field: "folderId", updatable: true }
    );
    let serde_json::Value::Object(payload) = serde_json::json!({"folderId": 9}) else {
        unreachable!()
    };
    let Ok((changes, _)) = Document::decode_changes(&payload) else { unreachable!() };
    assert_eq!(Document::changed_group(&changes).as_deref(), Some("9"));
}
