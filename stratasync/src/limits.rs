//! The limits that keep one client from taking a node down: connections,
//! memory and time, each with a default, a field of [`Limits`] (set through
//! [`SyncServerBuilder::limits`](crate::SyncServerBuilder::limits)) and a
//! `STRATASYNC_*` environment variable ([`Limits::from_lookup`]).
//!
//! README's "Limits" table says what a client sees when each is hit.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use stratasync::Limits;
//!
//! let mut limits = Limits::default();
//! limits.sockets_per_user = 16;
//! assert_eq!(limits.subscribe_timeout, Duration::from_secs(10));
//!
//! let from_env = Limits::from_lookup(|name| {
//!     (name == "STRATASYNC_WS_MESSAGE_BYTES").then(|| "256KiB".to_owned())
//! })
//! .unwrap();
//! assert_eq!(from_env.ws_message_bytes, 256 * 1024);
//!
//! let error = Limits::from_lookup(|name| {
//!     (name == "STRATASYNC_POOL_SIZE").then(|| "lots".to_owned())
//! })
//! .unwrap_err();
//! assert!(error.to_string().starts_with("STRATASYNC_POOL_SIZE"));
//! ```

use std::time::Duration;

use stratasync_diesel::PoolOptions;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Every limit of a node. Build one with [`Limits::default`] and set fields,
/// or read it from the environment with [`Limits::from_lookup`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Limits {
    /// Database connections the pool keeps open at most (default 16;
    /// `STRATASYNC_POOL_SIZE`).
    pub pool_size: usize,
    /// How long a request waits for a database connection before a `503`
    /// (default 5 s; `STRATASYNC_POOL_WAIT_TIMEOUT`).
    pub pool_wait_timeout: Duration,
    /// The share of the pool bootstrap and batch snapshots may hold at once,
    /// in `(0, 1]` (default 0.5; `STRATASYNC_SNAPSHOT_SHARE`). The rest is
    /// kept for authentication, mutations and short reads.
    pub snapshot_share: f64,
    /// How long a snapshot waits for a slot of its share before a `503`
    /// (default 5 s; `STRATASYNC_SNAPSHOT_WAIT`).
    pub snapshot_wait: Duration,
    /// A snapshot whose reader takes nothing for this long is cut off and
    /// its connection returned (default 30 s; `STRATASYNC_SNAPSHOT_STALL_TIMEOUT`).
    pub snapshot_stall_timeout: Duration,
    /// The largest WebSocket message a client may send; a larger one closes
    /// the socket with 1009 (default 1 MiB; `STRATASYNC_WS_MESSAGE_BYTES`).
    pub ws_message_bytes: usize,
    /// Bytes a socket's outgoing queue may hold (default 8 MiB;
    /// `STRATASYNC_OUTGOING_QUEUE_BYTES`).
    pub outgoing_queue_bytes: usize,
    /// Frames a socket's outgoing queue may hold (default 1024;
    /// `STRATASYNC_OUTGOING_QUEUE_FRAMES`).
    pub outgoing_queue_frames: usize,
    /// How long a socket's queue may stay full, or its oldest frame wait,
    /// before the socket is closed with 4008 `SLOW_CONSUMER` (default 10 s;
    /// `STRATASYNC_SLOW_CONSUMER_TIMEOUT`).
    pub slow_consumer_timeout: Duration,
    /// About how many bytes of actions one `/sync/deltas` page or one replay
    /// read holds (default 4 MiB; `STRATASYNC_DELTA_PAGE_BYTES`); a page
    /// always holds at least one action, and `hasMore` tells the rest.
    pub delta_page_bytes: usize,
    /// About how many bytes of rows one bootstrap or batch page holds
    /// (default 1 MiB; `STRATASYNC_SNAPSHOT_PAGE_BYTES`).
    pub snapshot_page_bytes: usize,
    /// The largest request body; larger is a `413` (default 2 MiB;
    /// `STRATASYNC_REQUEST_BODY_BYTES`).
    pub request_body_bytes: usize,
    /// How long [`serve`](crate::serve) waits for a request's headers,
    /// counted from when it starts waiting for them, so an idle keep-alive
    /// connection is closed after this long too (default 10 s;
    /// `STRATASYNC_HEADER_READ_TIMEOUT`).
    pub header_read_timeout: Duration,
    /// A connection of [`serve`](crate::serve) that moves no byte either way
    /// for this long is closed: slow bodies, responses nobody reads, dead
    /// peers (default 60 s; `STRATASYNC_IDLE_TIMEOUT`). Keep it above the
    /// heartbeat interval, which keeps live sockets moving.
    pub idle_timeout: Duration,
    /// How long a WebSocket may stay open without a subscribe; then it is
    /// closed with 4001 (default 10 s; `STRATASYNC_SUBSCRIBE_TIMEOUT`).
    pub subscribe_timeout: Duration,
    /// Connections [`serve`](crate::serve) holds at once; past it a new one
    /// is answered `503` and closed (default 4096;
    /// `STRATASYNC_MAX_CONNECTIONS`). Keep it below the process's file
    /// descriptor limit.
    pub max_connections: usize,
    /// Bootstraps one user may run at once; past it a `429` (default 4;
    /// `STRATASYNC_BOOTSTRAPS_PER_USER`).
    pub bootstraps_per_user: usize,
    /// WebSockets one user may hold open at once; past it the upgrade is
    /// refused with a `429` (default 64; `STRATASYNC_SOCKETS_PER_USER`).
    pub sockets_per_user: usize,
    /// Users whose groups the node keeps between requests; past it the
    /// oldest goes (default 10,000; `STRATASYNC_GROUP_CACHE_ENTRIES`).
    pub group_cache_entries: usize,
    /// How long the node answers a user's requests with the groups it
    /// resolved for them: what the application's `resolve_groups` says, and
    /// memberships changed without a `G` action (SQL), take effect within
    /// this; a membership changed by the server or the CLI takes effect when
    /// its `G` action reaches the node (default 5 s;
    /// `STRATASYNC_GROUP_CACHE_TTL`; see `group_cache`).
    pub group_cache_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        let pool = PoolOptions::default();
        Limits {
            pool_size: pool.size,
            pool_wait_timeout: pool.wait_timeout,
            snapshot_share: pool.snapshot_share,
            snapshot_wait: pool.snapshot_wait,
            snapshot_stall_timeout: pool.snapshot_stall_timeout,
            ws_message_bytes: MIB,
            outgoing_queue_bytes: 8 * MIB,
            outgoing_queue_frames: 1024,
            slow_consumer_timeout: Duration::from_secs(10),
            delta_page_bytes: 4 * MIB,
            snapshot_page_bytes: stratasync_diesel::DEFAULT_SNAPSHOT_PAGE_BYTES,
            request_body_bytes: 2 * MIB,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            subscribe_timeout: Duration::from_secs(10),
            max_connections: 4096,
            bootstraps_per_user: 4,
            sockets_per_user: 64,
            group_cache_entries: 10_000,
            group_cache_ttl: Duration::from_secs(5),
        }
    }
}

/// A `STRATASYNC_*` variable (or a field) with a value that is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}={value:?}: {expected}")]
pub struct LimitsError {
    /// The variable, or the field when the value came from code.
    pub variable: String,
    /// The value given.
    pub value: String,
    /// What would have been accepted.
    pub expected: &'static str,
}

/// How a variable's text becomes a field's value.
trait Parse: Sized {
    const EXPECTED: &'static str;
    fn parse(text: &str) -> Option<Self>;
    fn allowed(&self) -> bool;
}

impl Parse for usize {
    const EXPECTED: &'static str = "expected a whole number above 0";
    fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }
    fn allowed(&self) -> bool {
        *self > 0
    }
}

/// Sizes: bytes, or a number with `KiB`, `MiB` or `GiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ByteSize(usize);

impl Parse for ByteSize {
    const EXPECTED: &'static str =
        "expected a size above 0: bytes, or a whole number with KiB, MiB or GiB (\"512KiB\")";
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let scale = match unit.trim() {
            "" | "B" => 1,
            "KiB" => KIB,
            "MiB" => MIB,
            "GiB" => 1024 * MIB,
            _ => return None,
        };
        digits
            .parse::<usize>()
            .ok()?
            .checked_mul(scale)
            .map(ByteSize)
    }
    fn allowed(&self) -> bool {
        self.0 > 0
    }
}

impl Parse for Duration {
    const EXPECTED: &'static str =
        "expected a duration above 0: seconds, or a whole number with ms, s or m (\"500ms\")";
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let n: u64 = digits.parse().ok()?;
        match unit.trim() {
            "" | "s" => Some(Duration::from_secs(n)),
            "ms" => Some(Duration::from_millis(n)),
            "m" => n.checked_mul(60).map(Duration::from_secs),
            _ => None,
        }
    }
    fn allowed(&self) -> bool {
        !self.is_zero()
    }
}

/// A share of the pool.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Share(f64);

impl Parse for Share {
    const EXPECTED: &'static str = "expected a share above 0 and at most 1 (\"0.5\")";
    fn parse(text: &str) -> Option<Self> {
        text.trim().parse().ok().map(Share)
    }
    fn allowed(&self) -> bool {
        self.0 > 0.0 && self.0 <= 1.0
    }
}

/// Reads the variable `$var` into `$limits.$field` through `$kind`, and
/// checks a field the same way.
macro_rules! limit_fields {
    ($($field:ident: $kind:ident = $var:literal,)*) => {
        /// Every variable [`Limits::from_lookup`] reads.
        pub const VARIABLES: &[&str] = &[$($var),*];

        impl Limits {
            fn read(
                &mut self,
                lookup: &dyn Fn(&str) -> Option<String>,
            ) -> Result<(), LimitsError> {
                $(
                    if let Some(text) = lookup($var).filter(|text| !text.trim().is_empty()) {
                        let value = <$kind as Parse>::parse(&text)
                            .filter(Parse::allowed)
                            .ok_or_else(|| LimitsError {
                                variable: $var.to_owned(),
                                value: text.clone(),
                                expected: <$kind as Parse>::EXPECTED,
                            })?;
                        self.$field = limit_fields!(@into $kind value);
                    }
                )*
                Ok(())
            }

            /// Checks every field; the error names the first bad one.
            pub fn validate(&self) -> Result<(), LimitsError> {
                $(
                    let value = limit_fields!(@from $kind self.$field);
                    if !Parse::allowed(&value) {
                        return Err(LimitsError {
                            variable: stringify!($field).to_owned(),
                            value: format!("{:?}", self.$field),
                            expected: <$kind as Parse>::EXPECTED,
                        });
                    }
                )*
                Ok(())
            }
        }
    };
    (@into ByteSize $value:ident) => { $value.0 };
    (@into Share $value:ident) => { $value.0 };
    (@into $kind:ident $value:ident) => { $value };
    (@from ByteSize $value:expr) => { ByteSize($value) };
    (@from Share $value:expr) => { Share($value) };
    (@from $kind:ident $value:expr) => { $value };
}

limit_fields! {
    pool_size: usize = "STRATASYNC_POOL_SIZE",
    pool_wait_timeout: Duration = "STRATASYNC_POOL_WAIT_TIMEOUT",
    snapshot_share: Share = "STRATASYNC_SNAPSHOT_SHARE",
    snapshot_wait: Duration = "STRATASYNC_SNAPSHOT_WAIT",
    snapshot_stall_timeout: Duration = "STRATASYNC_SNAPSHOT_STALL_TIMEOUT",
    ws_message_bytes: ByteSize = "STRATASYNC_WS_MESSAGE_BYTES",
    outgoing_queue_bytes: ByteSize = "STRATASYNC_OUTGOING_QUEUE_BYTES",
    outgoing_queue_frames: usize = "STRATASYNC_OUTGOING_QUEUE_FRAMES",
    slow_consumer_timeout: Duration = "STRATASYNC_SLOW_CONSUMER_TIMEOUT",
    delta_page_bytes: ByteSize = "STRATASYNC_DELTA_PAGE_BYTES",
    snapshot_page_bytes: ByteSize = "STRATASYNC_SNAPSHOT_PAGE_BYTES",
    request_body_bytes: ByteSize = "STRATASYNC_REQUEST_BODY_BYTES",
    header_read_timeout: Duration = "STRATASYNC_HEADER_READ_TIMEOUT",
    idle_timeout: Duration = "STRATASYNC_IDLE_TIMEOUT",
    subscribe_timeout: Duration = "STRATASYNC_SUBSCRIBE_TIMEOUT",
    max_connections: usize = "STRATASYNC_MAX_CONNECTIONS",
    bootstraps_per_user: usize = "STRATASYNC_BOOTSTRAPS_PER_USER",
    sockets_per_user: usize = "STRATASYNC_SOCKETS_PER_USER",
    group_cache_entries: usize = "STRATASYNC_GROUP_CACHE_ENTRIES",
    group_cache_ttl: Duration = "STRATASYNC_GROUP_CACHE_TTL",
}

impl Limits {
    /// The defaults, overridden by the `STRATASYNC_*` variables `lookup`
    /// gives (see [`VARIABLES`]); an empty variable counts as unset. A value
    /// that does not parse, or is out of range, is an error naming the
    /// variable and what it accepts.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Limits, LimitsError> {
        let mut limits = Limits::default();
        limits.read(&lookup)?;
        Ok(limits)
    }

    /// [`Limits::from_lookup`] over the process environment.
    pub fn from_env() -> Result<Limits, LimitsError> {
        Limits::from_lookup(|name| std::env::var(name).ok())
    }

    /// The database pool these limits ask for.
    pub fn pool_options(&self) -> PoolOptions {
        let mut options = PoolOptions::default();
        options.size = self.pool_size;
        options.wait_timeout = self.pool_wait_timeout;
        options.snapshot_share = self.snapshot_share;
        options.snapshot_wait = self.snapshot_wait;
        options.snapshot_stall_timeout = self.snapshot_stall_timeout;
        options
    }
}

/// How many bytes of a client-supplied string a log line keeps.
pub(crate) const LOGGED_BYTES: usize = 200;

/// A client-supplied string as a log field: at most [`LOGGED_BYTES`] of it,
/// and its full length when it was cut, so a client cannot flood the logs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clipped<'a>(pub(crate) &'a str);

impl std::fmt::Display for Clipped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.len() <= LOGGED_BYTES {
            return f.write_str(self.0);
        }
        let mut end = LOGGED_BYTES;
        while !self.0.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "{}… ({} bytes)", &self.0[..end], self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &'static str, value: &'static str) -> impl Fn(&str) -> Option<String> {
        move |asked| (asked == name).then(|| value.to_owned())
    }

    #[test]
    fn every_variable_is_read() {
        // 3 (bytes, seconds, count) for every variable; a share is at most 1.
        let all = |name: &str| {
            Some(
                if name == "STRATASYNC_SNAPSHOT_SHARE" {
                    "1"
                } else {
                    "3"
                }
                .to_owned(),
            )
        };
        let limits = Limits::from_lookup(all).expect("valid for every kind");
        assert!((limits.snapshot_share - 1.0).abs() < f64::EPSILON);
        assert_eq!(limits.pool_size, 3);
        assert_eq!(limits.subscribe_timeout, Duration::from_secs(3));
        assert_eq!(limits.ws_message_bytes, 3);
        assert_eq!(VARIABLES.len(), 20);
    }

    #[test]
    fn units_parse() {
        let limits =
            Limits::from_lookup(one("STRATASYNC_OUTGOING_QUEUE_BYTES", "2MiB")).expect("valid");
        assert_eq!(limits.outgoing_queue_bytes, 2 * MIB);
        let limits = Limits::from_lookup(one("STRATASYNC_IDLE_TIMEOUT", "1500ms")).expect("valid");
        assert_eq!(limits.idle_timeout, Duration::from_millis(1500));
        let limits = Limits::from_lookup(one("STRATASYNC_SNAPSHOT_SHARE", "0.25")).expect("valid");
        assert!((limits.snapshot_share - 0.25).abs() < f64::EPSILON);
        let limits = Limits::from_lookup(one("STRATASYNC_POOL_SIZE", "")).expect("unset");
        assert_eq!(limits, Limits::default());
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("STRATASYNC_POOL_SIZE", "0"),
            ("STRATASYNC_SNAPSHOT_SHARE", "1.5"),
            ("STRATASYNC_SUBSCRIBE_TIMEOUT", "10 parsecs"),
            ("STRATASYNC_WS_MESSAGE_BYTES", "1MB"),
        ] {
            let error = Limits::from_lookup(one(name, value)).expect_err(name);
            assert_eq!(error.variable, name);
            assert!(error.to_string().starts_with(name), "{error}");
        }
    }

    #[test]
    fn validate_names_the_field() {
        let limits = Limits {
            sockets_per_user: 0,
            ..Limits::default()
        };
        let error = limits.validate().expect_err("0 sockets");
        assert_eq!(error.variable, "sockets_per_user");
    }

    #[test]
    fn clipped_keeps_a_prefix_and_the_length() {
        let long = "é".repeat(300);
        let shown = Clipped(&long).to_string();
        assert!(shown.len() < LOGGED_BYTES + 20, "{shown}");
        assert!(shown.ends_with("(600 bytes)"), "{shown}");
        assert_eq!(Clipped("short").to_string(), "short");
    }
}
