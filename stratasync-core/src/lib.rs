//! Model, codec and wire types shared by the stratasync crates.
//!
//! This crate is the vocabulary of the sync protocol: what a synced model
//! declares about itself ([`SyncModel`], [`ModelMeta`]), how each field travels
//! on the wire ([`FieldCodec`]), sync ids ([`SyncId`]), sync actions
//! ([`SyncAction`]) and the errors a mutation can report ([`FieldError`]).
//! It knows nothing of HTTP or SQL; users normally reach it through the
//! `stratasync` crate.

mod action;
mod client;
mod client_schema;
mod codec;
mod composite;
mod id;
mod model;
mod nul_char;
mod scope;
mod typescript;

pub use action::{ActionKind, SyncAction, write_iso_millis};
pub use client::{ClientType, LoadStrategy};
pub use client_schema::{ClientField, ClientModel, ClientSchema};
pub use codec::{FieldCodec, FieldError, FieldProblem, GroupValue, write_json_string};
pub use composite::composite_id;
pub use id::{SyncId, SyncIdError};
pub use model::{ActionSet, FieldMeta, GroupKey, ModelMeta, SyncModel};
pub use nul_char::{contains_nul, map_contains_nul, text_contains_nul};
pub use scope::FilterContext;
pub use typescript::typescript;

/// A JSON object, as payloads and action data are.
pub type JsonMap = serde_json::Map<String, serde_json::Value>;
