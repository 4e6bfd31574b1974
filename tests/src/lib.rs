//! Shared helpers of the integration suites.
pub mod harness;
pub mod live;
pub mod models;
pub mod protocol;
pub mod tally;
