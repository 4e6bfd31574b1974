//! The frames of `/sync/ws` (PROTOCOL §8), in the original's key order.

use axum::extract::ws::Utf8Bytes;
use serde_json::{Map, Value};
use stratasync_core::{SyncAction, SyncId, write_json_string};

use crate::error::ErrorCode;

/// The close codes of `/sync/ws` (PROTOCOL §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseCode {
    /// 1001: the node is shutting down; the client resumes on another.
    GoingAway,
    /// 1011: a heartbeat timeout, or groups or the log could not be read.
    ServerError,
    /// 4008: the socket fell too far behind (`BUFFER_OVERFLOW`,
    /// `SLOW_CONSUMER`).
    Overflow,
    /// 1009: a client message over the size limit.
    TooBig,
    /// 4001: no subscribe frame within the subscribe deadline.
    SubscribeTimeout,
}

impl CloseCode {
    /// The code on the wire.
    pub(crate) fn code(self) -> u16 {
        use axum::extract::ws::close_code::{AWAY, ERROR, SIZE};
        match self {
            CloseCode::GoingAway => AWAY,
            CloseCode::ServerError => ERROR,
            CloseCode::Overflow => 4008,
            CloseCode::TooBig => SIZE,
            CloseCode::SubscribeTimeout => 4001,
        }
    }
}

/// `{"packet":{"actions":[<action>],"lastSyncId":"<id>"},"type":"delta"}`,
/// every key of the action present.
pub(crate) fn delta(action: &SyncAction) -> Utf8Bytes {
    let mut out = Vec::with_capacity(320);
    out.extend_from_slice(b"{\"packet\":{\"actions\":[");
    action.write_json(&mut out, false);
    out.extend_from_slice(b"],\"lastSyncId\":\"");
    out.extend_from_slice(action.id.to_string().as_bytes());
    out.extend_from_slice(b"\"},\"type\":\"delta\"}");
    // The writer emits only valid UTF-8.
    String::from_utf8(out).unwrap_or_default().into()
}

/// `{"afterSyncId":"<cursor>","groups":[...],"type":"subscribed"}`.
pub(crate) fn subscribed(cursor: SyncId, groups: &[String]) -> Utf8Bytes {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"{\"afterSyncId\":\"");
    out.extend_from_slice(cursor.to_string().as_bytes());
    out.extend_from_slice(b"\",\"groups\":[");
    for (i, group) in groups.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_string(&mut out, group);
    }
    out.extend_from_slice(b"],\"type\":\"subscribed\"}");
    String::from_utf8(out).unwrap_or_default().into()
}

/// `{"code":"<code>"?,"message":"<message>","type":"error"}`.
pub(crate) fn error(message: &str, code: Option<ErrorCode>) -> Utf8Bytes {
    let mut out = Vec::with_capacity(96);
    out.push(b'{');
    if let Some(code) = code {
        out.extend_from_slice(b"\"code\":");
        write_json_string(&mut out, code.as_str());
        out.push(b',');
    }
    out.extend_from_slice(b"\"message\":");
    write_json_string(&mut out, message);
    out.extend_from_slice(b",\"type\":\"error\"}");
    String::from_utf8(out).unwrap_or_default().into()
}

/// A decoded client frame.
#[derive(Debug)]
pub(crate) enum ClientFrame {
    /// A well-formed subscribe.
    Subscribe(Subscribe),
    /// `"type":"subscribe"` with a bad shape.
    BadSubscribe,
    /// Any other JSON object: the application's.
    Other(Map<String, Value>),
}

/// `{"type":"subscribe","token":...,"afterSyncId":...,"groups":[...]?}`.
#[derive(Debug, Clone)]
pub(crate) struct Subscribe {
    /// The token to authorize.
    pub(crate) token: String,
    /// Deliver actions after this id (absent: 0).
    pub(crate) after: SyncId,
    /// Groups to narrow to; `None` when absent.
    pub(crate) groups: Option<Vec<String>>,
}

/// Decodes a text frame; `None` for what is not a JSON object (ignored).
pub(crate) fn decode(text: &str) -> Option<ClientFrame> {
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    if object.get("type").and_then(Value::as_str) != Some("subscribe") {
        return Some(ClientFrame::Other(object));
    }
    Some(match subscribe(&object) {
        Some(subscribe) => ClientFrame::Subscribe(subscribe),
        None => ClientFrame::BadSubscribe,
    })
}

fn subscribe(object: &Map<String, Value>) -> Option<Subscribe> {
    let token = object.get("token")?.as_str()?.to_owned();
    let after = match object.get("afterSyncId") {
        None => SyncId::ZERO,
        Some(Value::String(id)) => id.parse().ok()?,
        Some(_) => return None,
    };
    let groups = match object.get("groups") {
        None => None,
        Some(Value::Array(groups)) => Some(
            groups
                .iter()
                .map(|g| g.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()?,
        ),
        Some(_) => return None,
    };
    Some(Subscribe {
        token,
        after,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_shapes() {
        let ok = decode(r#"{"type":"subscribe","token":"t","afterSyncId":"12","groups":["w1"]}"#);
        assert!(
            matches!(ok, Some(ClientFrame::Subscribe(Subscribe { after, .. })) if after == SyncId::new(12))
        );
        assert!(matches!(
            decode(r#"{"type":"subscribe","token":"t"}"#),
            Some(ClientFrame::Subscribe(_))
        ));
        for bad in [
            r#"{"type":"subscribe"}"#,
            r#"{"type":"subscribe","token":1}"#,
            r#"{"type":"subscribe","token":"t","afterSyncId":12}"#,
            r#"{"type":"subscribe","token":"t","afterSyncId":"-1"}"#,
            r#"{"type":"subscribe","token":"t","groups":[1]}"#,
        ] {
            assert!(
                matches!(decode(bad), Some(ClientFrame::BadSubscribe)),
                "{bad}"
            );
        }
        assert!(decode("[1]").is_none());
        assert!(decode("nope").is_none());
        assert!(matches!(
            decode(r#"{"type":"yjs_update"}"#),
            Some(ClientFrame::Other(_))
        ));
    }

    #[test]
    fn close_codes() {
        let codes = [
            CloseCode::GoingAway,
            CloseCode::ServerError,
            CloseCode::Overflow,
            CloseCode::TooBig,
            CloseCode::SubscribeTimeout,
        ]
        .map(CloseCode::code);
        assert_eq!(codes, [1001, 1011, 4008, 1009, 4001]);
    }

    #[test]
    fn frame_shapes() {
        assert_eq!(
            subscribed(SyncId::new(3), &["w1".into(), "u1".into()]).as_str(),
            r#"{"afterSyncId":"3","groups":["w1","u1"],"type":"subscribed"}"#
        );
        assert_eq!(
            error(
                "Replay buffer limit exceeded",
                Some(ErrorCode::BufferOverflow)
            )
            .as_str(),
            r#"{"code":"BUFFER_OVERFLOW","message":"Replay buffer limit exceeded","type":"error"}"#
        );
        assert_eq!(
            error("Invalid token", None).as_str(),
            r#"{"message":"Invalid token","type":"error"}"#
        );
    }
}
