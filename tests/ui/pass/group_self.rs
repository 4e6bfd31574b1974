//! A model whose rows are their own groups (a workspace), with integer ids.
use diesel::{Queryable, Selectable};
use stratasync::{GroupKey, SyncModel};

diesel::table! {
    workspaces (id) {
        id -> BigInt,
        name -> Text,
    }
}

#[derive(Queryable, Selectable, SyncModel)]
#[diesel(table_name = workspaces)]
#[sync(group = self, actions(insert, update), insert(name), update(name))]
pub struct Workspace {
    pub id: i64,
    pub name: String,
}

fn main() {
    let _ = stratasync::Registry::new().model::<Workspace>();
    assert_eq!(Workspace::META.group, GroupKey::ModelId);
    let workspace = Workspace {
        id: 42,
        name: "w".to_owned(),
    };
    assert_eq!(workspace.group_id().as_deref(), Some("42"));
    assert_eq!(Workspace::key_from_request("42", &Default::default()), Ok(42));
}
