//! The protocol suites: PROTOCOL's routes, answers and rules, one module per
//! concern, linked as one test binary. Each case runs once per backend
//! (`<module>::<case>::sqlite`, `<module>::<case>::postgres`).
//!
//! `tests/tests/protocol_memory.rs` stays a binary of its own: it measures
//! the memory of its process, which other cases running beside it would
//! disturb.
#![allow(clippy::unwrap_used)] // a test's unwrap is an assertion

mod auth;
mod batch;
mod bootstrap;
mod concurrency;
mod deltas;
mod hooks;
mod memberships;
mod moves;
mod mutate;
mod mutate_moot;
mod schema_hash;
mod scope;
