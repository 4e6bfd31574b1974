//! Shared helpers of the integration suites.
pub mod handwritten;
pub mod harness;
pub mod live;
pub mod protocol;
pub mod tally;
