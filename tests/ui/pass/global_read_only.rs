//! A global, read-only model: no group, no actions.
use diesel::{Queryable, Selectable};
use stratasync::{GroupKey, SyncModel};

diesel::table! {
    countries (id) {
        id -> Text,
        name -> Text,
        population -> BigInt,
    }
}

#[derive(Queryable, Selectable, SyncModel)]
#[diesel(table_name = countries)]
#[sync(global)]
pub struct Country {
    pub id: String,
    pub name: String,
    pub population: i64,
}

fn main() {
    let _ = stratasync::Registry::new().model::<Country>();
    assert_eq!(Country::META.group, GroupKey::Global);
    assert_eq!(Country::META.actions, stratasync::ActionSet::EMPTY);
    let country = Country {
        id: "fr".to_owned(),
        name: "France".to_owned(),
        population: 68_000_000,
    };
    assert_eq!(country.group_id(), None);
}
