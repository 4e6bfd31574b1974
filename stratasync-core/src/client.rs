//! The vocabulary of the TypeScript client's schema (`@stratasync/core`):
//! the type it declares each field with and when it loads a model.

use std::fmt;

/// How the TypeScript client declares a field: the `type` of a field in its
/// schema. Every [`FieldCodec`](crate::FieldCodec) names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientType {
    /// `"string"`: strings and UUIDs.
    String,
    /// `"number"`: integers and floats.
    Number,
    /// `"boolean"`.
    Boolean,
    /// `"date"`: an instant, as epoch milliseconds.
    Date,
    /// `"dateOnly"`: a calendar day, as the epoch milliseconds of its UTC midnight.
    DateOnly,
    /// `"json"`: any JSON value.
    Json,
}

impl ClientType {
    /// The name the client's schema uses (`"dateOnly"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ClientType::String => "string",
            ClientType::Number => "number",
            ClientType::Boolean => "boolean",
            ClientType::Date => "date",
            ClientType::DateOnly => "dateOnly",
            ClientType::Json => "json",
        }
    }

    /// The TypeScript type of a value on the wire (instants and days are
    /// epoch milliseconds).
    pub const fn typescript(self) -> &'static str {
        match self {
            ClientType::String => "string",
            ClientType::Number | ClientType::Date | ClientType::DateOnly => "number",
            ClientType::Boolean => "boolean",
            ClientType::Json => "unknown",
        }
    }
}

impl fmt::Display for ClientType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When the client loads a model's rows: the model's `loadStrategy`, set
/// with `#[sync(load_strategy = "...")]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LoadStrategy {
    /// `"instant"` (the default): loaded by the bootstrap, always available.
    #[default]
    Instant,
    /// `"lazy"`: loaded on first access, cached thereafter.
    Lazy,
    /// `"partial"`: loaded on demand, partially hydrated.
    Partial,
    /// `"explicitlyRequested"`: never loaded unless the application asks.
    ExplicitlyRequested,
}

impl LoadStrategy {
    /// The name the client's schema uses (`"explicitlyRequested"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            LoadStrategy::Instant => "instant",
            LoadStrategy::Lazy => "lazy",
            LoadStrategy::Partial => "partial",
            LoadStrategy::ExplicitlyRequested => "explicitlyRequested",
        }
    }
}

impl fmt::Display for LoadStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
