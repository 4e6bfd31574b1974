//! The TypeScript client's view of the server's models, and its schema hash.
//!
//! The client (`@stratasync/core`) describes its models with a schema object
//! and sends `computeSchemaHash(schema)` as `schemaHash` with each bootstrap.
//! [`ClientSchema`] is that schema built from the server's [`ModelMeta`]s, so
//! that the server knows the hash a correctly generated client sends:
//! [`ClientSchema::hash`] is the client's algorithm, a 64-bit FNV-1a over the
//! canonical JSON of the models, reproduced here.

use crate::{ClientType, GroupKey, LoadStrategy, ModelMeta, write_json_string};

/// One field as the client declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientField {
    /// Wire name (`dueOn`).
    pub name: &'static str,
    /// Its client type.
    pub client_type: ClientType,
    /// Whether it may be `null`.
    pub nullable: bool,
    /// Whether the client indexes it: declared `indexed(...)`, the group
    /// column, or a column of a composite key.
    pub indexed: bool,
}

/// One model as the client declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientModel {
    /// Wire name (`Todo`).
    pub name: &'static str,
    /// Fields sorted by wire name, the row's `id` included.
    pub fields: Vec<ClientField>,
    /// The field holding the row's sync group (`None`: a global model).
    pub group_key: Option<&'static str>,
    /// When the client loads the rows.
    pub load_strategy: LoadStrategy,
}

/// The client schema of a set of models, sorted by wire name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSchema {
    /// The models, sorted by wire name.
    pub models: Vec<ClientModel>,
}

/// The order of the client's `Array.prototype.toSorted()`: UTF-16 code units.
fn js_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

impl ClientModel {
    /// The client's view of `meta`.
    pub fn new(meta: &ModelMeta) -> Self {
        let group_key = match meta.group {
            GroupKey::Column { field, .. } => Some(field),
            GroupKey::ModelId => Some("id"),
            GroupKey::Global => None,
        };
        let mut fields: Vec<ClientField> = meta
            .fields
            .iter()
            .map(|field| ClientField {
                name: field.wire,
                client_type: field.client_type,
                nullable: field.nullable,
                indexed: meta.is_indexed(field.wire)
                    || (group_key == Some(field.wire) && field.wire != "id")
                    || (meta.composite && field.key),
            })
            .collect();
        if meta.composite {
            // A join table's rows carry their composite id as `id`.
            fields.push(ClientField {
                name: "id",
                client_type: ClientType::String,
                nullable: false,
                indexed: false,
            });
        }
        fields.sort_by(|a, b| js_order(a.name, b.name));
        ClientModel {
            name: meta.name,
            fields,
            group_key,
            load_strategy: meta.load_strategy,
        }
    }
}

impl ClientSchema {
    /// The client schema of `models`.
    pub fn new<'a>(models: impl IntoIterator<Item = &'a ModelMeta>) -> Self {
        let mut models: Vec<ClientModel> = models.into_iter().map(ClientModel::new).collect();
        models.sort_by(|a, b| js_order(a.name, b.name));
        ClientSchema { models }
    }

    /// What `computeSchemaHash` of `@stratasync/core` returns for this schema
    /// as [`typescript`](crate::typescript) renders it: 16 lowercase hex digits.
    pub fn hash(&self) -> String {
        format!("{:016x}", fnv1a_64(&self.canonical_json()))
    }

    /// The canonical JSON the client hashes: models and their properties
    /// sorted, each property reduced to the keys that are set (`indexed` and
    /// `nullable` only when true, the kind `property`), each model's meta to
    /// `groupKey`, `loadStrategy` and `name`.
    pub fn canonical_json(&self) -> String {
        let mut out = Vec::new();
        out.extend_from_slice(b"{\"models\":{");
        for (i, model) in self.models.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json_string(&mut out, model.name);
            out.extend_from_slice(b":{\"meta\":{");
            if let Some(group_key) = model.group_key {
                out.extend_from_slice(b"\"groupKey\":");
                write_json_string(&mut out, group_key);
                out.push(b',');
            }
            out.extend_from_slice(b"\"loadStrategy\":");
            write_json_string(&mut out, model.load_strategy.as_str());
            out.extend_from_slice(b",\"name\":");
            write_json_string(&mut out, model.name);
            out.extend_from_slice(b"},\"properties\":{");
            for (j, field) in model.fields.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                write_json_string(&mut out, field.name);
                out.extend_from_slice(b":{");
                if field.indexed {
                    out.extend_from_slice(b"\"indexed\":true,");
                }
                if field.nullable {
                    out.extend_from_slice(b"\"nullable\":true,");
                }
                out.extend_from_slice(b"\"type\":\"property\"}");
            }
            out.extend_from_slice(b"}}");
        }
        out.extend_from_slice(b"}}");
        // Only JSON strings and ASCII punctuation were written.
        String::from_utf8(out).unwrap_or_default()
    }
}

/// 64-bit FNV-1a over the Unicode code points of `text`, as the client
/// computes it (each code point XORed in whole, not byte by byte).
fn fnv1a_64(text: &str) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    text.chars().fold(OFFSET_BASIS, |hash, c| {
        (hash ^ u64::from(u32::from(c))).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ActionSet, FieldMeta};

    const fn field(wire: &'static str, client_type: ClientType, nullable: bool) -> FieldMeta {
        FieldMeta {
            wire,
            column: wire,
            client_type,
            nullable,
            key: false,
        }
    }

    const TASK: ModelMeta = ModelMeta {
        name: "Task",
        fields: &[
            FieldMeta {
                key: true,
                ..field("id", ClientType::String, false)
            },
            field("title", ClientType::String, false),
            field("dueOn", ClientType::DateOnly, true),
            field("projectId", ClientType::String, false),
        ],
        group: GroupKey::Column {
            field: "projectId",
            updatable: false,
        },
        composite: false,
        actions: ActionSet::EMPTY,
        indexed: &[],
        load_strategy: LoadStrategy::Instant,
    };

    #[test]
    fn fields_are_sorted_and_the_group_column_indexed() {
        let model = ClientModel::new(&TASK);
        let names: Vec<_> = model.fields.iter().map(|f| f.name).collect();
        assert_eq!(names, ["dueOn", "id", "projectId", "title"]);
        assert!(model.fields[2].indexed);
        assert!(!model.fields[1].indexed);
        assert!(model.fields[0].nullable);
        assert_eq!(model.group_key, Some("projectId"));
    }

    #[test]
    fn canonical_json_is_the_clients() {
        let schema = ClientSchema::new([&TASK]);
        assert_eq!(
            schema.canonical_json(),
            r#"{"models":{"Task":{"meta":{"groupKey":"projectId","loadStrategy":"instant","name":"Task"},"properties":{"dueOn":{"nullable":true,"type":"property"},"id":{"type":"property"},"projectId":{"indexed":true,"type":"property"},"title":{"type":"property"}}}}}"#
        );
    }

    #[test]
    fn fnv1a_64_matches_the_reference_vectors() {
        // The published FNV-1a 64 test vectors.
        assert_eq!(fnv1a_64(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64("foobar"), 0x8594_4171_f739_67e8);
    }
}
