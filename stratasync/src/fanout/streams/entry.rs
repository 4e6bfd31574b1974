//! A stream entry: one whole action, its log id as the entry id, and what a
//! consumer needs to tell whether it missed something before it.
//!
//! Fields: `p`, the previous action of the same shard that the leader knows
//! of (no action of the shard lies between `p` and this one), `e`, the epoch
//! (the log position where the publishing leader's unbroken run of entries
//! began: below it the streams may lack actions), and the action itself
//! (`m` model, `k` model id, `a` action letter, `d` data, `g` group, `c`
//! client id, `t` client transaction id, `at` creation time in
//! microseconds). Absent optional fields are null.

use chrono::DateTime;
use redis::Value;
use serde_json::value::RawValue;
use stratasync_core::{SyncAction, SyncId};

/// An action as a stream carries it.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// The action.
    pub(super) action: SyncAction,
    /// No action of its shard lies between this id and the action's.
    pub(super) prev: SyncId,
    /// Where the leader's unbroken run of entries began.
    pub(super) epoch: SyncId,
}

/// The entry id of log id `id`.
pub(super) fn entry_id(id: SyncId) -> String {
    format!("{}-0", id.get())
}

/// The log id of an entry id (`<id>-<seq>`).
fn log_id(entry_id: &[u8]) -> Option<SyncId> {
    let text = std::str::from_utf8(entry_id).ok()?;
    let ms = text.split('-').next()?;
    ms.parse().ok().map(SyncId::new)
}

/// The fields of `action`'s entry (for `XADD`).
pub(super) fn fields(
    action: &SyncAction,
    prev: SyncId,
    epoch: SyncId,
) -> Vec<(&'static str, Vec<u8>)> {
    let mut fields = vec![
        ("p", prev.get().to_string().into_bytes()),
        ("e", epoch.get().to_string().into_bytes()),
        ("m", action.model.clone().into_bytes()),
        ("k", action.model_id.clone().into_bytes()),
        ("a", action.action.clone().into_bytes()),
        ("d", action.data.get().as_bytes().to_vec()),
        (
            "at",
            action
                .created_at
                .timestamp_micros()
                .to_string()
                .into_bytes(),
        ),
    ];
    for (name, value) in [
        ("g", &action.group_id),
        ("c", &action.client_id),
        ("t", &action.client_tx_id),
    ] {
        if let Some(value) = value {
            fields.push((name, value.clone().into_bytes()));
        }
    }
    fields
}

/// Reads an entry (`[id, [field, value, ...]]`); `None` when malformed.
pub(super) fn parse(value: &Value) -> Option<Entry> {
    let Value::Array(parts) = value else {
        return None;
    };
    let [Value::BulkString(id), Value::Array(pairs)] = parts.as_slice() else {
        return None;
    };
    let id = log_id(id)?;
    let get = |name: &str| -> Option<String> {
        pairs.chunks(2).find_map(|pair| match pair {
            [Value::BulkString(key), Value::BulkString(value)] if key == name.as_bytes() => {
                String::from_utf8(value.clone()).ok()
            }
            _ => None,
        })
    };
    let number = |text: Option<String>| text.and_then(|t| t.parse::<u64>().ok());
    let prev = number(get("p"))?;
    let epoch = number(get("e"))?;
    let created_at = DateTime::from_timestamp_micros(get("at")?.parse().ok()?)?;
    let action = SyncAction {
        id,
        model: get("m")?,
        model_id: get("k")?,
        action: get("a")?,
        data: RawValue::from_string(get("d")?).ok()?,
        group_id: get("g"),
        client_id: get("c"),
        client_tx_id: get("t"),
        created_at,
    };
    Some(Entry {
        action,
        prev: SyncId::new(prev),
        epoch: SyncId::new(epoch),
    })
}

/// The streams of an `XREAD` reply: each key with its entries (RESP2
/// arrays or RESP3 maps). Malformed entries are left out.
pub(super) fn parse_read(value: &Value) -> Vec<(Vec<u8>, Vec<Entry>)> {
    let streams: Vec<(&Value, &Value)> = match value {
        Value::Array(streams) => streams
            .iter()
            .filter_map(|stream| match stream {
                Value::Array(pair) if pair.len() == 2 => Some((&pair[0], &pair[1])),
                _ => None,
            })
            .collect(),
        Value::Map(streams) => streams.iter().map(|(k, v)| (k, v)).collect(),
        _ => Vec::new(),
    };
    streams
        .into_iter()
        .filter_map(|(key, entries)| {
            let Value::BulkString(key) = key else {
                return None;
            };
            let Value::Array(entries) = entries else {
                return None;
            };
            Some((key.clone(), entries.iter().filter_map(parse).collect()))
        })
        .collect()
}

/// The log id of the newest entry in an `XREVRANGE ... COUNT 1` reply, and
/// its epoch.
pub(super) fn parse_top(value: &Value) -> Option<(SyncId, SyncId)> {
    let Value::Array(entries) = value else {
        return None;
    };
    let entry = parse(entries.first()?)?;
    Some((entry.action.id, entry.epoch))
}

#[cfg(test)]
mod tests {
    use stratasync_core::ActionKind;

    use super::*;

    #[test]
    fn an_entry_reads_back_as_the_action() {
        let action = SyncAction {
            id: SyncId::new(42),
            model: "Task".into(),
            model_id: "m1".into(),
            action: ActionKind::Update.letter().into(),
            data: RawValue::from_string(r#"{"title":"x"}"#.into()).expect("raw"),
            group_id: Some("w1".into()),
            client_id: None,
            client_tx_id: Some("tx".into()),
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("time"),
        };
        let pairs = fields(&action, SyncId::new(40), SyncId::new(7))
            .into_iter()
            .flat_map(|(k, v)| [Value::BulkString(k.into()), Value::BulkString(v)])
            .collect();
        let value = Value::Array(vec![
            Value::BulkString(entry_id(action.id).into_bytes()),
            Value::Array(pairs),
        ]);
        let entry = parse(&value).expect("parses");
        assert_eq!(entry.prev, SyncId::new(40));
        assert_eq!(entry.epoch, SyncId::new(7));
        assert_eq!(
            entry.action.to_json_string(false),
            action.to_json_string(false)
        );
        assert_eq!(entry.action.created_at, action.created_at);
        assert!(parse(&Value::Nil).is_none());
    }
}
