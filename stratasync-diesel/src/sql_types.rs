//! Portable SQL types: one `table!` schema that works on PostgreSQL and SQLite.
//!
//! Diesel's `Timestamptz`, `Uuid` and `Jsonb` exist on PostgreSQL only. Declare
//! such columns with these types instead and the same model struct runs on
//! both backends:
//!
//! | type | PostgreSQL column | SQLite column | Rust type |
//! |---|---|---|---|
//! | [`Instant`] | `timestamptz` | `TEXT` (RFC 3339) | `chrono::DateTime<Utc>` |
//! | [`PortableUuid`] | `uuid` | `TEXT` (hyphenated) | `uuid::Uuid` |
//! | [`PortableJson`] | `jsonb` | `TEXT` | `serde_json::Value` |
//!
//! Diesel cannot let a foreign type such as `Uuid` bind to a foreign SQL type
//! outside diesel itself, so queries against these columns bind values with
//! [`Bind`](crate::Bind); the code `#[derive(SyncModel)]` generates does.
//!
//! ```
//! diesel::table! {
//!     use diesel::sql_types::*;
//!     use stratasync_diesel::sql_types::*;
//!
//!     tasks (id) {
//!         id -> PortableUuid,
//!         title -> Text,
//!         created_at -> Instant,
//!     }
//! }
//! ```

use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, ToSql};
use diesel::sql_types::SqlType;

/// An instant in time: `timestamptz` on PostgreSQL, RFC 3339 text on SQLite.
#[derive(Debug, Clone, Copy, Default, SqlType, diesel::query_builder::QueryId)]
#[cfg_attr(feature = "postgres", diesel(postgres_type(name = "timestamptz")))]
#[cfg_attr(feature = "sqlite", diesel(sqlite_type(name = "Text")))]
pub struct Instant;

/// A UUID: `uuid` on PostgreSQL, hyphenated text on SQLite.
#[derive(Debug, Clone, Copy, Default, SqlType, diesel::query_builder::QueryId)]
#[cfg_attr(feature = "postgres", diesel(postgres_type(name = "uuid")))]
#[cfg_attr(feature = "sqlite", diesel(sqlite_type(name = "Text")))]
pub struct PortableUuid;

/// A JSON document: `jsonb` on PostgreSQL, text on SQLite.
#[derive(Debug, Clone, Copy, Default, SqlType, diesel::query_builder::QueryId)]
#[cfg_attr(feature = "postgres", diesel(postgres_type(name = "jsonb")))]
#[cfg_attr(feature = "sqlite", diesel(sqlite_type(name = "Text")))]
pub struct PortableJson;

/// JSON read back as the text it is, without building a tree (sync-action data).
#[derive(Debug, Clone, diesel::deserialize::FromSqlRow)]
pub struct RawJson(pub Box<serde_json::value::RawValue>);

#[cfg(feature = "postgres")]
mod pg {
    use chrono::{DateTime, Utc};
    use diesel::pg::{Pg, PgValue};
    use diesel::sql_types::{Jsonb, Timestamptz, Uuid as PgUuid};

    use super::*;

    impl FromSql<Instant, Pg> for DateTime<Utc> {
        fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
            <Self as FromSql<Timestamptz, Pg>>::from_sql(bytes)
        }
    }

    impl ToSql<Instant, Pg> for DateTime<Utc> {
        fn to_sql<'b>(&'b self, out: &mut serialize::Output<'b, '_, Pg>) -> serialize::Result {
            <Self as ToSql<Timestamptz, Pg>>::to_sql(self, out)
        }
    }

    impl FromSql<PortableUuid, Pg> for uuid::Uuid {
        fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
            <Self as FromSql<PgUuid, Pg>>::from_sql(bytes)
        }
    }

    impl ToSql<PortableUuid, Pg> for uuid::Uuid {
        fn to_sql<'b>(&'b self, out: &mut serialize::Output<'b, '_, Pg>) -> serialize::Result {
            <Self as ToSql<PgUuid, Pg>>::to_sql(self, out)
        }
    }

    impl FromSql<PortableJson, Pg> for serde_json::Value {
        fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
            <Self as FromSql<Jsonb, Pg>>::from_sql(bytes)
        }
    }

    impl FromSql<PortableJson, Pg> for RawJson {
        fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
            // jsonb's binary form is a version byte (1) followed by the text.
            let text = match bytes.as_bytes() {
                [1, rest @ ..] => std::str::from_utf8(rest)?,
                _ => return Err("unsupported jsonb version".into()),
            };
            Ok(RawJson(serde_json::value::RawValue::from_string(
                text.to_owned(),
            )?))
        }
    }

    impl ToSql<PortableJson, Pg> for serde_json::Value {
        fn to_sql<'b>(&'b self, out: &mut serialize::Output<'b, '_, Pg>) -> serialize::Result {
            <Self as ToSql<Jsonb, Pg>>::to_sql(self, out)
        }
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use chrono::{DateTime, Utc};
    use diesel::sql_types::{Text, TimestamptzSqlite};
    use diesel::sqlite::{Sqlite, SqliteValue};

    use super::*;

    impl FromSql<Instant, Sqlite> for DateTime<Utc> {
        fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
            <Self as FromSql<TimestamptzSqlite, Sqlite>>::from_sql(value)
        }
    }

    impl ToSql<Instant, Sqlite> for DateTime<Utc> {
        fn to_sql<'b>(&'b self, out: &mut serialize::Output<'b, '_, Sqlite>) -> serialize::Result {
            <Self as ToSql<TimestamptzSqlite, Sqlite>>::to_sql(self, out)
        }
    }

    impl FromSql<PortableUuid, Sqlite> for uuid::Uuid {
        fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
            let text = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
            Ok(uuid::Uuid::parse_str(&text)?)
        }
    }

    impl ToSql<PortableUuid, Sqlite> for uuid::Uuid {
        fn to_sql<'b>(&'b self, out: &mut serialize::Output<'b, '_, Sqlite>) -> serialize::Result {
            out.set_value(self.hyphenated().to_string());
            Ok(serialize::IsNull::No)
        }
    }

    impl FromSql<PortableJson, Sqlite> for serde_json::Value {
        fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
            let text = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
            Ok(serde_json::from_str(&text)?)
        }
    }

    impl FromSql<PortableJson, Sqlite> for RawJson {
        fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
            let text = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
            Ok(RawJson(serde_json::value::RawValue::from_string(text)?))
        }
    }

    impl ToSql<PortableJson, Sqlite> for serde_json::Value {
        fn to_sql<'b>(&'b self, out: &mut serialize::Output<'b, '_, Sqlite>) -> serialize::Result {
            out.set_value(self.to_string());
            Ok(serialize::IsNull::No)
        }
    }
}
