//! The one rule on text the store keeps: no NUL character, which no text or
//! JSON column of PostgreSQL can hold. Every decoder that accepts text a
//! client sent (request fields, field codecs, payloads stored verbatim)
//! asks here.

use serde_json::{Map, Value};

/// Whether `text` holds a NUL character.
pub fn text_contains_nul(text: &str) -> bool {
    text.contains('\0')
}

/// Whether any string or key in `value` holds a NUL character.
pub fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text_contains_nul(text),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map_contains_nul(map),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Whether any key or value of `map` holds a NUL character.
pub fn map_contains_nul(map: &Map<String, Value>) -> bool {
    map.iter()
        .any(|(key, value)| text_contains_nul(key) || contains_nul(value))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nul_is_found_in_text_keys_and_nested_values() {
        assert!(text_contains_nul("a\0b"));
        assert!(!text_contains_nul("ab"));
        assert!(contains_nul(&json!({ "a": [1, { "b": "x\0" }] })));
        assert!(contains_nul(&json!({ "k\0": 1 })));
        assert!(!contains_nul(&json!({ "a": [1, { "b": "x" }], "c": null })));
    }
}
