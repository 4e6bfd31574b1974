//! Models with a field of every codec type, plain and optional. (Two
//! tables: diesel is built without 32-column tables.)
use chrono::{DateTime, NaiveDate, Utc};
use diesel::{Queryable, Selectable};
use stratasync::SyncModel;
use uuid::Uuid;

diesel::table! {
    use diesel::sql_types::*;
    use stratasync::sql_types::*;

    samples (id) {
        id -> PortableUuid,
        text -> Text,
        other_id -> PortableUuid,
        flag -> Bool,
        small -> SmallInt,
        medium -> Integer,
        large -> BigInt,
        ratio -> Float,
        amount -> Double,
        at -> Instant,
        day -> Date,
        doc -> Json,
        scope -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use stratasync::sql_types::*;

    maybe_samples (id) {
        id -> PortableUuid,
        text -> Nullable<Text>,
        other_id -> Nullable<PortableUuid>,
        flag -> Nullable<Bool>,
        small -> Nullable<SmallInt>,
        medium -> Nullable<Integer>,
        large -> Nullable<BigInt>,
        ratio -> Nullable<Float>,
        amount -> Nullable<Double>,
        at -> Nullable<Instant>,
        day -> Nullable<Date>,
        doc -> Nullable<Json>,
        scope -> Text,
    }
}

#[derive(Queryable, Selectable, SyncModel)]
#[diesel(table_name = samples)]
#[sync(
    group = "scope",
    actions(insert, update),
    insert(text, other_id, flag = default, small, medium, large, ratio, amount, at = now, day, doc, scope),
    update(text, other_id, flag, small, medium, large, ratio, amount, at, day, doc)
)]
pub struct Sample {
    pub id: Uuid,
    pub text: String,
    pub other_id: Uuid,
    pub flag: bool,
    pub small: i16,
    pub medium: i32,
    pub large: i64,
    pub ratio: f32,
    pub amount: f64,
    pub at: DateTime<Utc>,
    pub day: NaiveDate,
    pub doc: serde_json::Value,
    pub scope: String,
}

#[derive(Queryable, Selectable, SyncModel)]
#[diesel(table_name = maybe_samples)]
#[sync(
    group = "scope",
    actions(insert, update),
    insert(scope, at = now),
    update(text, other_id, flag, small, medium, large, ratio, amount, at, day, doc)
)]
pub struct MaybeSample {
    pub id: Uuid,
    pub text: Option<String>,
    pub other_id: Option<Uuid>,
    pub flag: Option<bool>,
    pub small: Option<i16>,
    pub medium: Option<i32>,
    pub large: Option<i64>,
    pub ratio: Option<f32>,
    pub amount: Option<f64>,
    pub at: Option<DateTime<Utc>>,
    pub day: Option<NaiveDate>,
    pub doc: Option<serde_json::Value>,
    pub scope: String,
}

fn main() {
    let _ = stratasync::Registry::new().model::<Sample>().model::<MaybeSample>();
    let payload = serde_json::json!({
        "text": "t", "otherId": Uuid::nil().to_string(), "small": 1, "medium": 2, "large": 3,
        "ratio": 0.5, "amount": 1.25, "day": 0, "doc": {"a": [1]}, "scope": "s",
    });
    let serde_json::Value::Object(payload) = payload else { unreachable!() };
    let sample = Sample::from_insert(Uuid::nil(), &payload, Utc::now()).expect("decodes");
    assert_eq!(sample.doc, serde_json::json!({"a": [1]}));
    let mut row = Vec::new();
    sample.write_row(&mut row);
    assert!(row.starts_with(br#"{"__class":"Sample","id":"00000000-0000-0000-0000-000000000000","text":"t""#));

    let maybe = MaybeSample::from_insert(Uuid::nil(), &payload, Utc::now()).expect("decodes");
    assert_eq!(maybe.text, None, "not an insert field");
    assert!(maybe.at.is_some());
}
