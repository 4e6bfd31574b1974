//! Clients whose schema differs from the server's.
//!
//! A client sends `computeSchemaHash(schema)` as the bootstrap's
//! `schemaHash`; a client generated from the server's models sends
//! [`Registry::schema_hash`](crate::Registry::schema_hash). A different hash
//! means a client built from other models (an old deploy, a hand-edited
//! schema). By default the server serves it and logs a warning and counts it,
//! once per user and hash; with
//! [`SyncServerBuilder::refuse_schema_mismatch`](crate::SyncServerBuilder::refuse_schema_mismatch)
//! it refuses the bootstrap with `409 SCHEMA_MISMATCH`, naming both hashes.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::ApiError;
use crate::limits::Clipped;

/// How many (user, hash) pairs are remembered for "once per client"; past
/// it, further mismatching clients are still counted and logged but a repeat
/// may be logged again.
const REMEMBERED_CLIENTS: usize = 10_000;

/// The server's schema hash and what it has seen of clients that differ.
pub(crate) struct SchemaCheck {
    expected: String,
    refuse: bool,
    seen: Mutex<HashSet<(String, String)>>,
    mismatched: AtomicU64,
}

impl SchemaCheck {
    /// Checks against `expected`; `refuse` turns a mismatch into an error.
    pub(crate) fn new(expected: String, refuse: bool) -> Self {
        SchemaCheck {
            expected,
            refuse,
            seen: Mutex::new(HashSet::new()),
            mismatched: AtomicU64::new(0),
        }
    }

    /// The server's hash.
    pub(crate) fn expected(&self) -> &str {
        &self.expected
    }

    /// How many clients (distinct user and hash) sent another hash.
    pub(crate) fn mismatched_clients(&self) -> u64 {
        self.mismatched.load(Ordering::Relaxed)
    }

    /// Checks the `schemaHash` of `user`'s bootstrap. An empty hash (a
    /// request that is not from the TypeScript client) is not checked.
    pub(crate) fn check(&self, user: &str, client_hash: &str) -> Result<(), ApiError> {
        if client_hash.is_empty() || client_hash == self.expected {
            return Ok(());
        }
        let first = {
            let mut seen = self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let key = (user.to_owned(), client_hash.to_owned());
            if seen.contains(&key) {
                false
            } else {
                if seen.len() >= REMEMBERED_CLIENTS {
                    seen.clear();
                }
                seen.insert(key)
            }
        };
        if first {
            self.mismatched.fetch_add(1, Ordering::Relaxed);
            crate::metrics::schema_mismatch();
            tracing::warn!(
                user = %Clipped(user),
                client_schema_hash = %Clipped(client_hash),
                server_schema_hash = %self.expected,
                refused = self.refuse,
                "a client's schema differs from the server's models: regenerate the client schema"
            );
        }
        if self.refuse {
            return Err(ApiError::SchemaMismatch {
                client: client_hash.to_owned(),
                server: self.expected.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_user_and_hash_once() {
        let check = SchemaCheck::new("aaaa".into(), false);
        assert!(check.check("alice", "aaaa").is_ok());
        assert!(check.check("alice", "").is_ok());
        assert_eq!(check.mismatched_clients(), 0);
        for _ in 0..3 {
            assert!(check.check("alice", "bbbb").is_ok());
        }
        assert_eq!(check.mismatched_clients(), 1);
        assert!(check.check("bob", "bbbb").is_ok());
        assert!(check.check("alice", "cccc").is_ok());
        assert_eq!(check.mismatched_clients(), 3);
    }

    #[test]
    fn refusing_names_both_hashes() {
        let check = SchemaCheck::new("aaaa".into(), true);
        assert!(check.check("alice", "aaaa").is_ok());
        match check.check("alice", "bbbb") {
            Err(ApiError::SchemaMismatch { client, server }) => {
                assert_eq!((client.as_str(), server.as_str()), ("bbbb", "aaaa"));
            }
            other => panic!("expected a schema mismatch, got {other:?}"),
        }
    }
}
