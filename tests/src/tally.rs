//! The tally of which cases ran and which were skipped for a missing
//! service, per backend, so a run can say what it exercised.
//!
//! When `STRATASYNC_TEST_TALLY` names a file, every case of the harness
//! appends one line to it per backend it needs:
//!
//! ```text
//! <backend> <ran|skipped> <test binary> <test name>
//! ```
//!
//! with `<backend>` one of `sqlite`, `postgres`, `redis`. `scripts/test`
//! sets the variable and prints the counts; a plain `cargo test` leaves it
//! unset and writes nothing.

use std::io::Write as _;

/// The environment variable naming the tally file.
pub const TALLY_VAR: &str = "STRATASYNC_TEST_TALLY";

/// A service or database a case needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Bundled SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// Redis.
    Redis,
}

impl Service {
    /// The name written to the tally.
    pub fn name(self) -> &'static str {
        match self {
            Service::Sqlite => "sqlite",
            Service::Postgres => "postgres",
            Service::Redis => "redis",
        }
    }
}

/// Records that the current case ran on `service`.
pub fn ran(service: Service) {
    record(service, "ran");
}

/// Records that the current case was skipped because `service` is missing.
pub fn skipped(service: Service) {
    record(service, "skipped");
}

fn record(service: Service, outcome: &str) {
    let Some(path) = std::env::var_os(TALLY_VAR) else {
        return;
    };
    let binary = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| match stem.rsplit_once('-') {
            Some((name, _hash)) => name.to_owned(),
            None => stem,
        })
        .unwrap_or_else(|| "?".to_owned());
    let thread = std::thread::current();
    let case = thread.name().unwrap_or("?");
    let line = format!("{} {outcome} {binary} {case}\n", service.name());
    // One write of a short line to a file opened for appending: lines of
    // concurrent tests and test binaries do not interleave.
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(error) = written {
        panic!(
            "cannot append to the tally {}: {error}",
            path.to_string_lossy()
        );
    }
}
