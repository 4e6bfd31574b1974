//! Requests decoded into typed structs, before any handler runs its
//! service: one module per route, over the field rules written once in
//! `fields` (a JSON body) and `query` (a query string).
//!
//! Every invalid field of a request is reported together, in one
//! `400 Validation failed` body whose `details` name each field by its path
//! (`transactions[2].modelId`) in the order the fields are read.

mod batch;
mod bootstrap;
mod deltas;
mod fields;
mod issues;
mod models;
mod mutate;
mod query;

pub(crate) use batch::{BatchRequest, Load, Rows};
pub(crate) use bootstrap::BootstrapRequest;
pub(crate) use deltas::DeltasRequest;
pub(crate) use mutate::MutateRequest;
