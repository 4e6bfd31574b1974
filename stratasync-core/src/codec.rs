//! Field codecs: how each Rust field type travels on the wire.
//!
//! Instants (`DateTime<Utc>`) travel as epoch milliseconds, date-only values
//! (`NaiveDate`) as the epoch milliseconds of their UTC midnight, `Option<T>`
//! as `null` when absent. Decoding checks every value against the field's
//! Rust type and names the field when it does not fit.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::ClientType;
use crate::nul_char::{contains_nul, text_contains_nul};

const DAY_MS: i64 = 86_400_000;

/// The first year a date or instant may fall in. PostgreSQL stores from
/// 4713 BC and SQLite (RFC 3339 text) from year 0; every backend stores
/// years 1 to 9999.
pub const MIN_YEAR: i32 = 1;

/// The last year a date or instant may fall in (see [`MIN_YEAR`]).
pub const MAX_YEAR: i32 = 9999;

/// `at` when its year is one every backend stores, else the range error.
fn in_range(at: DateTime<Utc>, field: &'static str) -> Result<DateTime<Utc>, FieldError> {
    use chrono::Datelike;
    if (MIN_YEAR..=MAX_YEAR).contains(&at.year()) {
        Ok(at)
    } else {
        Err(out_of_range(field))
    }
}

/// The error of a date or instant outside the storable years.
fn out_of_range(field: &'static str) -> FieldError {
    FieldError {
        field,
        problem: FieldProblem::OutOfRange,
    }
}

/// A payload value that does not fit its field; the message names the wire field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Wire name of the field (`completedAt`).
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: FieldProblem,
}

/// What is wrong with a field value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldProblem {
    /// Absent or null where a value is required.
    Required,
    /// Present with the wrong JSON type or an unparsable value.
    Expected(&'static str),
    /// Not an epoch-milliseconds number.
    InvalidInstant,
    /// Not an epoch-milliseconds number of a UTC day.
    InvalidDateOnly,
    /// A date or instant outside the years every backend stores
    /// (the years 1 to 9999).
    OutOfRange,
    /// The group column of an insert is absent or empty.
    MissingGroup,
}

impl FieldError {
    /// A field that must be present is absent or null.
    pub fn required(field: &'static str) -> Self {
        FieldError {
            field,
            problem: FieldProblem::Required,
        }
    }

    /// The group column of an insert is absent or empty.
    pub fn missing_group(field: &'static str) -> Self {
        FieldError {
            field,
            problem: FieldProblem::MissingGroup,
        }
    }

    /// A field whose value is not of the `expected` form.
    pub fn expected(field: &'static str, expected: &'static str) -> Self {
        FieldError {
            field,
            problem: FieldProblem::Expected(expected),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problem {
            FieldProblem::Required => write!(f, "{} is required", self.field),
            FieldProblem::Expected(what) => {
                write!(f, "Invalid value for {}: expected {what}", self.field)
            }
            FieldProblem::InvalidInstant => write!(f, "Invalid instant value for {}", self.field),
            FieldProblem::InvalidDateOnly => write!(f, "Invalid dateOnly value for {}", self.field),
            FieldProblem::OutOfRange => write!(
                f,
                "Invalid value for {}: dates must fall in the years {MIN_YEAR} to {MAX_YEAR}",
                self.field
            ),
            FieldProblem::MissingGroup => {
                f.write_str("Invalid mutation: missing required group identifier")
            }
        }
    }
}

impl std::error::Error for FieldError {}

/// How a field type is written to and read from the wire.
///
/// Implemented for the types a synced column can have; `#[derive(SyncModel)]`
/// picks the codec from each field's type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a synced field",
    label = "this field's type has no sync codec",
    note = "synced fields may be String, Uuid, bool, i16, i32, i64, f32, f64, DateTime<Utc>, NaiveDate, serde_json::Value, or Option of one of these",
    note = "to keep a column out of sync, leave the field out of the struct the derive is on"
)]
pub trait FieldCodec: Sized {
    /// How the TypeScript client declares a field of this type.
    const CLIENT_TYPE: ClientType;

    /// Whether the field may be `null` on the wire.
    const NULLABLE: bool = false;

    /// Appends the wire form of the value as JSON.
    fn encode(&self, out: &mut Vec<u8>);

    /// The wire form as a JSON value (for sync-action data).
    fn to_json(&self) -> Value;

    /// Reads a payload value; `field` names the field in errors.
    fn decode(value: &Value, field: &'static str) -> Result<Self, FieldError>;

    /// The value an insert uses when the payload leaves the field out
    /// (`None`: the field is required).
    fn when_absent() -> Option<Self> {
        None
    }

    /// Reads the field from a payload object, applying [`FieldCodec::when_absent`].
    fn decode_field(payload: &crate::JsonMap, field: &'static str) -> Result<Self, FieldError> {
        match payload.get(field) {
            Some(value) if !value.is_null() => Self::decode(value, field),
            _ => Self::when_absent().ok_or(FieldError::required(field)),
        }
    }
}

/// Writes `s` as a JSON string literal.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail, and a str always serializes.
    let _ = serde_json::to_writer(out, s);
}

/// Appends the decimal digits of `n` without a temporary `String` (every
/// integer, instant and date of a bootstrap row goes through here).
fn write_integer(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

impl FieldCodec for String {
    const CLIENT_TYPE: ClientType = ClientType::String;
    fn encode(&self, out: &mut Vec<u8>) {
        write_json_string(out, self);
    }
    fn to_json(&self) -> Value {
        Value::String(self.clone())
    }
    fn decode(value: &Value, field: &'static str) -> Result<Self, FieldError> {
        let text = value
            .as_str()
            .ok_or(FieldError::expected(field, "a string"))?;
        if text_contains_nul(text) {
            return Err(FieldError::expected(
                field,
                "a string without NUL characters",
            ));
        }
        Ok(text.to_owned())
    }
}

impl FieldCodec for Uuid {
    const CLIENT_TYPE: ClientType = ClientType::String;
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(b'"');
        out.extend_from_slice(
            self.hyphenated()
                .encode_lower(&mut Uuid::encode_buffer())
                .as_bytes(),
        );
        out.push(b'"');
    }
    fn to_json(&self) -> Value {
        Value::String(self.to_string())
    }
    fn decode(value: &Value, field: &'static str) -> Result<Self, FieldError> {
        value
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or(FieldError::expected(field, "a UUID string"))
    }
}

impl FieldCodec for bool {
    const CLIENT_TYPE: ClientType = ClientType::Boolean;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(if *self { b"true" } else { b"false" });
    }
    fn to_json(&self) -> Value {
        Value::Bool(*self)
    }
    fn decode(value: &Value, field: &'static str) -> Result<Self, FieldError> {
        value
            .as_bool()
            .ok_or(FieldError::expected(field, "a boolean"))
    }
    /// Absent is `false`, as absent numbers are 0 (a flag a client leaves
    /// out is not set).
    fn when_absent() -> Option<Self> {
        Some(false)
    }
}

macro_rules! integer_codec {
    ($($ty:ty),*) => {$(
        impl FieldCodec for $ty {
            const CLIENT_TYPE: ClientType = ClientType::Number;
            fn encode(&self, out: &mut Vec<u8>) {
                write_integer(out, *self);
            }
            fn to_json(&self) -> Value {
                Value::from(*self)
            }
            fn decode(value: &Value, field: &'static str) -> Result<Self, FieldError> {
                value
                    .as_i64()
                    .and_then(|n| <$ty>::try_from(n).ok())
                    .ok_or(FieldError::expected(field, concat!("an integer that fits ", stringify!($ty))))
            }
            fn when_absent() -> Option<Self> {
                Some(0)
            }
        }
    )*};
}
integer_codec!(i16, i32, i64);

macro_rules! float_codec {
    ($($ty:ty),*) => {$(
        impl FieldCodec for $ty {
            const CLIENT_TYPE: ClientType = ClientType::Number;
            fn encode(&self, out: &mut Vec<u8>) {
                let _ = serde_json::to_writer(out, self);
            }
            fn to_json(&self) -> Value {
                serde_json::json!(self)
            }
            fn decode(value: &Value, field: &'static str) -> Result<Self, FieldError> {
                // Narrowing to f32 is the column's precision, not an error.
                #[allow(clippy::cast_possible_truncation)]
                value.as_f64().map(|n| n as $ty).ok_or(FieldError::expected(field, "a number"))
            }
            fn when_absent() -> Option<Self> {
                Some(0.0)
            }
        }
    )*};
}
float_codec!(f32, f64);

impl FieldCodec for Value {
    const CLIENT_TYPE: ClientType = ClientType::Json;
    fn encode(&self, out: &mut Vec<u8>) {
        let _ = serde_json::to_writer(out, self);
    }
    fn to_json(&self) -> Value {
        self.clone()
    }
    fn decode(value: &Value, field: &'static str) -> Result<Self, FieldError> {
        if contains_nul(value) {
            return Err(FieldError::expected(field, "JSON without NUL characters"));
        }
        Ok(value.clone())
    }
}

/// Epoch milliseconds of a JSON number, truncating any fraction.
fn epoch_millis(value: &Value) -> Option<i64> {
    if let Some(n) = value.as_i64() {
        return Some(n);
    }
    #[allow(clippy::cast_possible_truncation)]
    value
        .as_f64()
        .filter(|n| n.is_finite())
        .map(|n| n.floor() as i64)
}

impl FieldCodec for DateTime<Utc> {
    const CLIENT_TYPE: ClientType = ClientType::Date;
    fn encode(&self, out: &mut Vec<u8>) {
        write_integer(out, self.timestamp_millis());
    }
    fn to_json(&self) -> Value {
        Value::from(self.timestamp_millis())
    }
    fn decode(value: &Value, field: &'static str) -> Result<Self, FieldError> {
        let ms = epoch_millis(value).ok_or(FieldError {
            field,
            problem: FieldProblem::InvalidInstant,
        })?;
        let at = DateTime::from_timestamp_millis(ms).ok_or_else(|| out_of_range(field))?;
        in_range(at, field)
    }
}

/// Epoch milliseconds of a date's UTC midnight.
fn date_millis(date: NaiveDate) -> i64 {
    date.and_time(NaiveTime::MIN).and_utc().timestamp_millis()
}

impl FieldCodec for NaiveDate {
    const CLIENT_TYPE: ClientType = ClientType::DateOnly;
    fn encode(&self, out: &mut Vec<u8>) {
        write_integer(out, date_millis(*self));
    }
    fn to_json(&self) -> Value {
        Value::from(date_millis(*self))
    }
    fn decode(value: &Value, field: &'static str) -> Result<Self, FieldError> {
        let ms = epoch_millis(value).ok_or(FieldError {
            field,
            problem: FieldProblem::InvalidDateOnly,
        })?;
        let midnight = ms.div_euclid(DAY_MS) * DAY_MS;
        let at = DateTime::from_timestamp_millis(midnight).ok_or_else(|| out_of_range(field))?;
        Ok(in_range(at, field)?.date_naive())
    }
}

impl<T: FieldCodec> FieldCodec for Option<T> {
    const CLIENT_TYPE: ClientType = T::CLIENT_TYPE;
    const NULLABLE: bool = true;
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Some(value) => value.encode(out),
            None => out.extend_from_slice(b"null"),
        }
    }
    fn to_json(&self) -> Value {
        self.as_ref().map_or(Value::Null, T::to_json)
    }
    fn decode(value: &Value, field: &'static str) -> Result<Self, FieldError> {
        match value {
            Value::Null => Ok(None),
            value => T::decode(value, field).map(Some),
        }
    }
    fn when_absent() -> Option<Self> {
        Some(None)
    }
}

/// A value that can name a sync group, a model id, a composite key part or an
/// indexed key: it has one canonical string form.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot serve as an id, group or key value",
    label = "ids, groups, composite keys and indexed keys must have a canonical string form",
    note = "supported types: String, Uuid, i32, i64"
)]
pub trait GroupValue: Sized {
    /// The canonical string form.
    fn to_id_string(&self) -> String;
    /// Parses the canonical string form (`None` when it does not parse).
    fn from_id_str(s: &str) -> Option<Self>;
}

impl GroupValue for String {
    fn to_id_string(&self) -> String {
        self.clone()
    }
    fn from_id_str(s: &str) -> Option<Self> {
        Some(s.to_owned())
    }
}

impl GroupValue for Uuid {
    fn to_id_string(&self) -> String {
        self.to_string()
    }
    fn from_id_str(s: &str) -> Option<Self> {
        Uuid::parse_str(s).ok()
    }
}

macro_rules! integer_group_value {
    ($($ty:ty),*) => {$(
        impl GroupValue for $ty {
            fn to_id_string(&self) -> String {
                self.to_string()
            }
            fn from_id_str(s: &str) -> Option<Self> {
                s.parse().ok()
            }
        }
    )*};
}
integer_group_value!(i32, i64);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn encoded<T: FieldCodec>(value: &T) -> String {
        let mut out = Vec::new();
        value.encode(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn instants_are_epoch_millis_truncated() {
        let at = DateTime::parse_from_rfc3339("2026-11-25T18:43:00.123999Z")
            .unwrap()
            .to_utc();
        assert_eq!(encoded(&at), "1795632180123");
        let back = DateTime::<Utc>::decode(&json!(1795632180123_i64), "at").unwrap();
        assert_eq!(back.timestamp_millis(), 1795632180123);
        assert_eq!(
            DateTime::<Utc>::decode(&json!("2026-11-25"), "completedAt")
                .unwrap_err()
                .to_string(),
            "Invalid instant value for completedAt"
        );
    }

    #[test]
    fn dates_are_utc_midnights() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let ms = encoded(&day).parse::<i64>().unwrap();
        assert_eq!(ms % DAY_MS, 0);
        assert_eq!(NaiveDate::decode(&json!(ms + 5), "dueOn").unwrap(), day);
        assert_eq!(
            NaiveDate::decode(&json!(true), "dueOn")
                .unwrap_err()
                .to_string(),
            "Invalid dateOnly value for dueOn"
        );
    }

    #[test]
    fn dates_outside_the_storable_years_name_the_field() {
        let message = "dates must fall in the years 1 to 9999";
        // PostgreSQL cannot store year -29719; chrono cannot represent 287,000.
        for ms in [
            -1_000_000_000_000_000_i64,
            9_000_000_000_000_000,
            253_402_300_800_000,
        ] {
            let instant = DateTime::<Utc>::decode(&json!(ms), "completedAt").unwrap_err();
            assert_eq!(
                instant.to_string(),
                format!("Invalid value for completedAt: {message}")
            );
            let date = NaiveDate::decode(&json!(ms), "dueOn").unwrap_err();
            assert_eq!(
                date.to_string(),
                format!("Invalid value for dueOn: {message}")
            );
        }
        // The first and last storable milliseconds.
        for ms in [-62_135_596_800_000_i64, 253_402_300_799_999] {
            assert!(DateTime::<Utc>::decode(&json!(ms), "completedAt").is_ok());
            assert!(NaiveDate::decode(&json!(ms), "dueOn").is_ok());
        }
    }

    #[test]
    fn wrong_json_types_name_the_field() {
        assert_eq!(
            i32::decode(&json!("3"), "priority")
                .unwrap_err()
                .to_string(),
            "Invalid value for priority: expected an integer that fits i32"
        );
        assert_eq!(
            String::decode(&json!(3), "title").unwrap_err().to_string(),
            "Invalid value for title: expected a string"
        );
        assert!(i16::decode(&json!(70000), "n").is_err());
    }

    #[test]
    fn absent_fields_use_the_codec_default_or_are_required() {
        let payload = crate::JsonMap::new();
        assert_eq!(i32::decode_field(&payload, "priority"), Ok(0));
        assert_eq!(Option::<String>::decode_field(&payload, "notes"), Ok(None));
        assert_eq!(
            String::decode_field(&payload, "title"),
            Err(FieldError::required("title"))
        );
    }

    #[test]
    fn options_are_null_when_absent() {
        assert_eq!(encoded(&None::<i32>), "null");
        assert_eq!(Option::<i32>::decode(&Value::Null, "n"), Ok(None));
        assert_eq!(encoded(&Some("a\"b".to_owned())), r#""a\"b""#);
    }
}
