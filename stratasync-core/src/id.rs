use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A position in the sync log: an unsigned 64-bit id, sent on the wire as a
/// string of decimal digits (`"0"`, `"12345"`).
///
/// ```
/// use stratasync_core::SyncId;
/// let id: SyncId = "42".parse().unwrap();
/// assert_eq!(id.get(), 42);
/// assert!("-1".parse::<SyncId>().is_err());
/// assert!("1e3".parse::<SyncId>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SyncId(u64);

impl SyncId {
    /// The id before every action: a client that has seen nothing.
    pub const ZERO: SyncId = SyncId(0);

    /// Wraps a raw id.
    pub const fn new(id: u64) -> Self {
        SyncId(id)
    }

    /// The raw id.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The id as the signed integer the databases store.
    pub fn as_i64(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }

    /// An id read from a database column (ids are never negative).
    pub fn from_i64(id: i64) -> Self {
        SyncId(u64::try_from(id).unwrap_or(0))
    }
}

/// Why a string is not a sync id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncIdError {
    /// Empty, or contains something other than ASCII digits.
    #[error("must be a string of decimal digits")]
    NotDigits,
    /// Digits, but more than fits in 64 bits.
    #[error("must fit in an unsigned 64-bit integer")]
    TooLarge,
}

impl FromStr for SyncId {
    type Err = SyncIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SyncIdError::NotDigits);
        }
        s.parse::<u64>()
            .map(SyncId)
            .map_err(|_| SyncIdError::TooLarge)
    }
}

impl fmt::Display for SyncId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for SyncId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SyncId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_plain_digits() {
        assert_eq!("0".parse::<SyncId>(), Ok(SyncId(0)));
        assert_eq!(
            "18446744073709551615".parse::<SyncId>(),
            Ok(SyncId(u64::MAX))
        );
        for bad in ["", " 1", "+1", "-1", "1.0", "0x10", "１"] {
            assert_eq!(
                bad.parse::<SyncId>(),
                Err(SyncIdError::NotDigits),
                "{bad:?}"
            );
        }
        assert_eq!(
            "18446744073709551616".parse::<SyncId>(),
            Err(SyncIdError::TooLarge)
        );
    }

    #[test]
    fn travels_as_a_string() {
        assert_eq!(serde_json::to_string(&SyncId(7)).unwrap(), r#""7""#);
        assert_eq!(serde_json::from_str::<SyncId>(r#""9""#).unwrap(), SyncId(9));
        assert!(serde_json::from_str::<SyncId>("9").is_err());
    }
}
