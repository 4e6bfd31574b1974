//! A JSON body, read key by key: the field rules of request decoding,
//! each written once.

use serde_json::{Map, Value};
use stratasync_core::{SyncId, text_contains_nul};

use super::issues::Issues;
use crate::error::{ApiError, RequestPart};

/// Parses a JSON body that must be an object.
pub(super) fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid(
            RequestPart::Body,
            "body",
            "must be a JSON object",
        )),
        Err(error) => Err(ApiError::invalid(
            RequestPart::Body,
            "body",
            format!("is not valid JSON: {error}"),
        )),
    }
}

/// One JSON object of a request, read key by key: each rule records an
/// issue at the key's path (`transactions[2].modelId`) and yields `None`
/// when the field is invalid.
pub(super) struct Fields<'a> {
    object: &'a Map<String, Value>,
    /// What the keys' paths start with: empty for the body itself,
    /// `transactions[2].` for an item.
    prefix: String,
    issues: &'a mut Issues,
}

impl<'a> Fields<'a> {
    /// The body's own fields.
    pub(super) fn body(object: &'a Map<String, Value>, issues: &'a mut Issues) -> Self {
        Fields {
            object,
            prefix: String::new(),
            issues,
        }
    }

    /// The path of `key`.
    fn path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Records that `key` is invalid, with `message`.
    pub(super) fn invalid(&mut self, key: &str, message: impl Into<String>) {
        let path = self.path(key);
        self.issues.push(path, message);
    }

    /// Records that `key` is invalid, with its path and `problem` as the
    /// message (`transactions[2].modelId is required`).
    pub(super) fn problem(&mut self, key: &str, problem: &str) {
        let path = self.path(key);
        self.issues.push(&path, format!("{path} {problem}"));
    }

    /// Whether the object holds `key` (even as `null`).
    pub(super) fn has(&self, key: &str) -> bool {
        self.object.contains_key(key)
    }

    /// A required non-empty string without NUL characters.
    pub(super) fn required_string(&mut self, key: &str) -> Option<String> {
        let problem = match self.object.get(key) {
            Some(Value::String(s)) if text_contains_nul(s) => "must not contain NUL characters",
            Some(Value::String(s)) if !s.is_empty() => return Some(s.clone()),
            Some(Value::String(_)) => "must not be empty",
            None | Some(Value::Null) => "is required",
            Some(_) => "must be a string",
        };
        self.problem(key, problem);
        None
    }

    /// An optional string: absent, `null` or any string.
    pub(super) fn optional_string(&mut self, key: &str) -> Option<Option<&'a str>> {
        match self.object.get(key) {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(s)) => Some(Some(s)),
            Some(_) => {
                self.problem(key, "must be a string");
                None
            }
        }
    }

    /// An optional sync id, as a string of digits.
    pub(super) fn optional_sync_id(&mut self, key: &str) -> Option<Option<SyncId>> {
        match self.object.get(key) {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(text)) => {
                let path = self.path(key);
                self.issues.sync_id(&path, text).map(Some)
            }
            Some(_) => {
                self.problem(key, "must be a string of digits");
                None
            }
        }
    }

    /// A string without NUL characters (empty allowed), or a number in its
    /// decimal form.
    pub(super) fn string_or_number(&mut self, key: &str) -> Option<String> {
        match self.object.get(key) {
            Some(Value::String(s)) if !text_contains_nul(s) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => {
                self.problem(key, "must be a string without NUL characters");
                None
            }
        }
    }

    /// An object; absent or `null` is the empty object.
    pub(super) fn object_or_empty(&mut self, key: &str) -> Option<Map<String, Value>> {
        match self.object.get(key) {
            None | Some(Value::Null) => Some(Map::new()),
            Some(Value::Object(object)) => Some(object.clone()),
            Some(_) => {
                self.problem(key, "must be an object");
                None
            }
        }
    }

    /// An array of between 1 and `max` objects, each read by `item`; an
    /// item that is not an object, or that `item` finds invalid, is left
    /// out (its issues are recorded).
    pub(super) fn items<T>(
        &mut self,
        key: &str,
        max: usize,
        mut item: impl FnMut(&mut Fields<'_>) -> Option<T>,
    ) -> Vec<T> {
        let values = match self.object.get(key) {
            Some(Value::Array(values)) if (1..=max).contains(&values.len()) => values,
            Some(Value::Array(_)) => {
                self.problem(key, &format!("must hold between 1 and {max} items"));
                return Vec::new();
            }
            None | Some(Value::Null) => {
                self.problem(key, "is required");
                return Vec::new();
            }
            Some(_) => {
                self.problem(key, "must be an array");
                return Vec::new();
            }
        };
        let path = self.path(key);
        let mut decoded = Vec::with_capacity(values.len());
        for (i, value) in values.iter().enumerate() {
            let path = format!("{path}[{i}]");
            let Some(object) = value.as_object() else {
                self.issues.push(&path, format!("{path} must be an object"));
                continue;
            };
            let mut fields = Fields {
                object,
                prefix: format!("{path}."),
                issues: self.issues,
            };
            decoded.extend(item(&mut fields));
        }
        decoded
    }
}

#[cfg(test)]
mod tests {
    use super::super::issues::details;
    use super::*;

    fn read(body: &Value, rule: impl FnOnce(&mut Fields<'_>)) -> Vec<(String, String)> {
        let mut issues = Issues::new(RequestPart::Body);
        let object = body.as_object().expect("an object");
        rule(&mut Fields::body(object, &mut issues));
        details(issues.finish(())).1
    }

    fn issue(field: &str, message: &str) -> Vec<(String, String)> {
        vec![(field.to_owned(), message.to_owned())]
    }

    #[test]
    fn required_string() {
        let body = serde_json::json!({ "a": "x", "b": "", "c": "x\u{0}y", "d": 1, "e": null });
        let mut issues = Issues::new(RequestPart::Body);
        let mut fields = Fields::body(body.as_object().expect("object"), &mut issues);
        assert_eq!(fields.required_string("a").as_deref(), Some("x"));
        assert!(issues.finish(()).is_ok());
        for (key, message) in [
            ("b", "b must not be empty"),
            ("c", "c must not contain NUL characters"),
            ("d", "d must be a string"),
            ("e", "e is required"),
            ("f", "f is required"),
        ] {
            assert_eq!(
                read(&body, |f| assert!(f.required_string(key).is_none())),
                issue(key, message)
            );
        }
    }

    #[test]
    fn optional_fields() {
        let body = serde_json::json!({ "s": "x", "n": null, "i": 3, "id": "12", "bad": "1x", "o": {"k": 1} });
        let mut issues = Issues::new(RequestPart::Body);
        let mut fields = Fields::body(body.as_object().expect("object"), &mut issues);
        assert_eq!(fields.optional_string("s"), Some(Some("x")));
        assert_eq!(fields.optional_string("n"), Some(None));
        assert_eq!(fields.optional_string("absent"), Some(None));
        assert_eq!(fields.optional_sync_id("id"), Some(Some(SyncId::new(12))));
        assert_eq!(fields.optional_sync_id("n"), Some(None));
        assert_eq!(fields.object_or_empty("absent"), Some(Map::new()));
        assert_eq!(fields.object_or_empty("o").map(|o| o.len()), Some(1));
        assert_eq!(fields.string_or_number("s").as_deref(), Some("x"));
        assert_eq!(fields.string_or_number("i").as_deref(), Some("3"));
        assert!(issues.finish(()).is_ok());

        assert_eq!(
            read(&body, |f| assert!(f.optional_string("i").is_none())),
            issue("i", "i must be a string")
        );
        assert_eq!(
            read(&body, |f| assert!(f.optional_sync_id("i").is_none())),
            issue("i", "i must be a string of digits")
        );
        assert_eq!(
            read(&body, |f| assert!(f.optional_sync_id("bad").is_none())),
            issue("bad", "bad must be a string of decimal digits")
        );
        assert_eq!(
            read(&body, |f| assert!(f.object_or_empty("s").is_none())),
            issue("s", "s must be an object")
        );
        for key in ["n", "o", "absent"] {
            assert_eq!(
                read(&body, |f| assert!(f.string_or_number(key).is_none())),
                issue(
                    key,
                    &format!("{key} must be a string without NUL characters")
                )
            );
        }
    }

    #[test]
    fn items_are_bounded_objects_read_at_their_path() {
        let ok = serde_json::json!({ "xs": [{ "k": "a" }, { "k": "b" }] });
        let mut issues = Issues::new(RequestPart::Body);
        let mut fields = Fields::body(ok.as_object().expect("object"), &mut issues);
        let read_k = |item: &mut Fields<'_>| item.required_string("k");
        assert_eq!(fields.items("xs", 2, read_k), ["a", "b"]);
        assert!(issues.finish(()).is_ok());

        for (body, message) in [
            (serde_json::json!({}), "xs is required"),
            (serde_json::json!({ "xs": null }), "xs is required"),
            (serde_json::json!({ "xs": {} }), "xs must be an array"),
            (
                serde_json::json!({ "xs": [] }),
                "xs must hold between 1 and 2 items",
            ),
            (
                serde_json::json!({ "xs": [{}, {}, {}] }),
                "xs must hold between 1 and 2 items",
            ),
        ] {
            assert_eq!(
                read(&body, |f| assert!(f.items("xs", 2, read_k).is_empty())),
                issue("xs", message)
            );
        }
        let mixed = serde_json::json!({ "xs": [1, { "k": "" }, { "k": "c" }] });
        assert_eq!(
            read(&mixed, |f| assert_eq!(f.items("xs", 3, read_k), ["c"])),
            [
                ("xs[0]".to_owned(), "xs[0] must be an object".to_owned()),
                ("xs[1].k".to_owned(), "xs[1].k must not be empty".to_owned()),
            ]
        );
    }

    #[test]
    fn json_bodies_must_be_objects() {
        assert!(json_object(b"{}").is_ok());
        assert_eq!(
            details(json_object(b"[]")),
            (RequestPart::Body, issue("body", "must be a JSON object"))
        );
        let (_, issues) = details(json_object(b"{"));
        assert_eq!(issues[0].0, "body");
        assert!(issues[0].1.starts_with("is not valid JSON: "), "{issues:?}");
    }
}
