//! How the streams are laid out: the shards groups hash to, their keys,
//! trimming, and the advisory-lock key of the cluster's leader.

use std::time::Duration;

/// The default number of shard streams.
pub const DEFAULT_STREAM_SHARDS: u32 = 16;
/// The default length each stream is trimmed to (about).
pub const DEFAULT_STREAM_MAX_LEN: u64 = 10_000;

/// How the streams are laid out and trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamsConfig {
    /// Shard streams the groups are spread over.
    pub(crate) shards: u32,
    /// The prefix of the stream keys (`<prefix>:<shard>`, `<prefix>:global`);
    /// empty: the Redis channel followed by `:log`.
    pub(crate) prefix: String,
    /// Entries each stream keeps (about: `MAXLEN ~`).
    pub(crate) max_len: u64,
    /// Entries older than this are trimmed too (`MINID ~`), if set.
    pub(crate) max_age: Option<Duration>,
}

impl Default for StreamsConfig {
    fn default() -> Self {
        StreamsConfig {
            shards: DEFAULT_STREAM_SHARDS,
            prefix: "stratasync:log".to_owned(),
            max_len: DEFAULT_STREAM_MAX_LEN,
            max_age: None,
        }
    }
}

/// A stream: one of the group shards, or the stream of global actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Shard {
    /// Actions of the groups that hash to this shard.
    Group(u32),
    /// Actions of no group (visible to every socket).
    Global,
}

impl StreamsConfig {
    /// The shard of `group` (`None`: global).
    pub(crate) fn shard_of(&self, group: Option<&str>) -> Shard {
        match group {
            None => Shard::Global,
            Some(group) => {
                // FNV-1a: stable across processes and versions.
                let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
                for byte in group.as_bytes() {
                    hash ^= u64::from(*byte);
                    hash = hash.wrapping_mul(0x0100_0000_01b3);
                }
                let shards = u64::from(self.shards.max(1));
                Shard::Group(u32::try_from(hash % shards).unwrap_or(0))
            }
        }
    }

    /// Every stream.
    pub(crate) fn all(&self) -> impl Iterator<Item = Shard> {
        (0..self.shards.max(1))
            .map(Shard::Group)
            .chain(std::iter::once(Shard::Global))
    }

    /// The Redis key of `shard`.
    pub(crate) fn key(&self, shard: Shard) -> String {
        match shard {
            Shard::Group(n) => format!("{}:{n}", self.prefix),
            Shard::Global => format!("{}:global", self.prefix),
        }
    }

    /// The advisory-lock key of the leader of this prefix's cluster.
    pub(crate) fn lock_key(&self) -> i64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in b"stratasync-streams-leader:"
            .iter()
            .chain(self.prefix.as_bytes())
        {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        i64::from_ne_bytes(hash.to_ne_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_spread_over_the_shards_stably() {
        let config = StreamsConfig {
            shards: 4,
            ..StreamsConfig::default()
        };
        assert_eq!(config.shard_of(None), Shard::Global);
        assert_eq!(config.shard_of(Some("w1")), config.shard_of(Some("w1")));
        let used: std::collections::HashSet<Shard> = (0..64)
            .map(|i| config.shard_of(Some(&format!("w{i}"))))
            .collect();
        assert_eq!(used.len(), 4, "64 groups use every shard");
        assert_eq!(config.key(Shard::Group(3)), "stratasync:log:3");
        assert_eq!(config.key(Shard::Global), "stratasync:log:global");
        assert_eq!(config.all().count(), 5);
        let other = StreamsConfig {
            prefix: "other".into(),
            ..StreamsConfig::default()
        };
        assert_ne!(config.lock_key(), other.lock_key(), "one leader per prefix");
    }
}
