use std::fmt::Write as _;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;

use crate::SyncId;
use crate::codec::write_json_string;

/// What a sync action did, with its one-letter wire code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionKind {
    /// `I`: a row was inserted.
    Insert,
    /// `U`: fields of a row changed.
    Update,
    /// `D`: a row was deleted.
    Delete,
    /// `A`: a row was archived.
    Archive,
    /// `V`: a row was unarchived.
    Unarchive,
    /// `G`: the user's sync groups changed.
    GroupsChanged,
}

impl ActionKind {
    /// The one-letter code stored in `sync_actions.action`.
    pub const fn letter(self) -> &'static str {
        match self {
            ActionKind::Insert => "I",
            ActionKind::Update => "U",
            ActionKind::Delete => "D",
            ActionKind::Archive => "A",
            ActionKind::Unarchive => "V",
            ActionKind::GroupsChanged => "G",
        }
    }

    /// Parses a mutation's action name (`INSERT`, `UPDATE`, `DELETE`, `ARCHIVE`, `UNARCHIVE`).
    pub fn from_mutation_name(name: &str) -> Option<Self> {
        match name {
            "INSERT" => Some(ActionKind::Insert),
            "UPDATE" => Some(ActionKind::Update),
            "DELETE" => Some(ActionKind::Delete),
            "ARCHIVE" => Some(ActionKind::Archive),
            "UNARCHIVE" => Some(ActionKind::Unarchive),
            _ => None,
        }
    }
}

impl FromStr for ActionKind {
    type Err = ();

    fn from_str(letter: &str) -> Result<Self, ()> {
        match letter {
            "I" => Ok(ActionKind::Insert),
            "U" => Ok(ActionKind::Update),
            "D" => Ok(ActionKind::Delete),
            "A" => Ok(ActionKind::Archive),
            "V" => Ok(ActionKind::Unarchive),
            "G" => Ok(ActionKind::GroupsChanged),
            _ => Err(()),
        }
    }
}

/// One entry of the sync log, as deltas and live frames carry it.
#[derive(Debug, Clone)]
pub struct SyncAction {
    /// Position in the log.
    pub id: SyncId,
    /// Wire name of the model (`Task`).
    pub model: String,
    /// Id of the row (the composite id for join tables).
    pub model_id: String,
    /// One-letter action code (`I`, `U`, ...), kept as stored.
    pub action: String,
    /// Action data, as stored JSON.
    pub data: Box<RawValue>,
    /// The group the action belongs to; `None` is visible to everyone.
    pub group_id: Option<String>,
    /// The client that wrote it.
    pub client_id: Option<String>,
    /// The client's transaction id.
    pub client_tx_id: Option<String>,
    /// When it was appended.
    pub created_at: DateTime<Utc>,
}

impl SyncAction {
    /// Appends the action's wire JSON. With `omit_nulls` the null
    /// `clientId`, `clientTxId` and `groupId` keys are left out (deltas);
    /// without, every key is present (live frames).
    pub fn write_json(&self, out: &mut Vec<u8>, omit_nulls: bool) {
        let optional = |out: &mut Vec<u8>, key: &str, value: &Option<String>| match value {
            Some(v) => {
                out.extend_from_slice(key.as_bytes());
                write_json_string(out, v);
                out.push(b',');
            }
            None if omit_nulls => {}
            None => {
                out.extend_from_slice(key.as_bytes());
                out.extend_from_slice(b"null,");
            }
        };
        out.extend_from_slice(b"{\"action\":");
        write_json_string(out, &self.action);
        out.push(b',');
        optional(out, "\"clientId\":", &self.client_id);
        optional(out, "\"clientTxId\":", &self.client_tx_id);
        out.extend_from_slice(b"\"createdAt\":\"");
        write_iso_millis(out, self.created_at);
        out.extend_from_slice(b"\",\"data\":");
        out.extend_from_slice(self.data.get().as_bytes());
        out.push(b',');
        optional(out, "\"groupId\":", &self.group_id);
        out.extend_from_slice(b"\"modelId\":");
        write_json_string(out, &self.model_id);
        out.extend_from_slice(b",\"modelName\":");
        write_json_string(out, &self.model);
        out.extend_from_slice(b",\"syncId\":\"");
        out.extend_from_slice(self.id.to_string().as_bytes());
        out.extend_from_slice(b"\"}");
    }

    /// The action's wire JSON as a string (see [`SyncAction::write_json`]).
    pub fn to_json_string(&self, omit_nulls: bool) -> String {
        let mut out = Vec::with_capacity(256);
        self.write_json(&mut out, omit_nulls);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Appends `at` as ISO-8601 UTC with milliseconds (`2026-11-25T18:43:00.123Z`).
pub fn write_iso_millis(out: &mut Vec<u8>, at: DateTime<Utc>) {
    let mut text = String::with_capacity(24);
    let _ = write!(text, "{}", at.format("%Y-%m-%dT%H:%M:%S%.3fZ"));
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(group: Option<&str>) -> SyncAction {
        SyncAction {
            id: SyncId::new(42),
            model: "Task".into(),
            model_id: "m1".into(),
            action: "U".into(),
            data: RawValue::from_string(r#"{"title":"x"}"#.into()).unwrap(),
            group_id: group.map(Into::into),
            client_id: Some("c1".into()),
            client_tx_id: None,
            created_at: DateTime::parse_from_rfc3339("2026-11-25T18:43:00.123456Z")
                .unwrap()
                .to_utc(),
        }
    }

    #[test]
    fn delta_shape_omits_null_keys_in_protocol_order() {
        assert_eq!(
            action(Some("w1")).to_json_string(true),
            r#"{"action":"U","clientId":"c1","createdAt":"2026-11-25T18:43:00.123Z","data":{"title":"x"},"groupId":"w1","modelId":"m1","modelName":"Task","syncId":"42"}"#
        );
    }

    #[test]
    fn live_shape_keeps_every_key() {
        assert_eq!(
            action(None).to_json_string(false),
            r#"{"action":"U","clientId":"c1","clientTxId":null,"createdAt":"2026-11-25T18:43:00.123Z","data":{"title":"x"},"groupId":null,"modelId":"m1","modelName":"Task","syncId":"42"}"#
        );
    }
}
