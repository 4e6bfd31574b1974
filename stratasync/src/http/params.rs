//! Reading and validating query strings and JSON bodies into typed requests.

use serde_json::Value;
use stratasync_core::{SyncId, text_contains_nul};

use crate::error::{ApiError, FieldIssue, RequestPart};

/// Collects every invalid field of one request, to report them together.
#[derive(Debug)]
pub(crate) struct Issues {
    part: RequestPart,
    issues: Vec<FieldIssue>,
}

impl Issues {
    pub(crate) fn new(part: RequestPart) -> Self {
        Issues {
            part,
            issues: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.issues.push(FieldIssue {
            field: field.into(),
            message: message.into(),
        });
    }

    /// `Ok(value)` when nothing was invalid, else the validation error.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, ApiError> {
        if self.issues.is_empty() {
            Ok(value)
        } else {
            Err(ApiError::Validation {
                part: self.part,
                issues: self.issues,
            })
        }
    }

    /// A sync id from its wire string; records an issue when it is not one.
    pub(crate) fn sync_id(&mut self, field: &str, text: &str) -> Option<SyncId> {
        match text.parse::<SyncId>() {
            Ok(id) => Some(id),
            Err(error) => {
                self.push(field, format!("{field} {error}"));
                None
            }
        }
    }
}

/// A parsed query string.
#[derive(Debug, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        Query(
            form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The last value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A comma-separated list (empty items dropped); `None` when absent.
    pub(crate) fn list(&self, name: &str) -> Option<Vec<String>> {
        self.get(name).map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
    }
}

/// Parses a JSON body that must be an object.
pub(crate) fn json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
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

/// A required non-empty string field of `object`; records an issue otherwise.
pub(crate) fn required_string(
    object: &serde_json::Map<String, Value>,
    key: &str,
    path: &str,
    issues: &mut Issues,
) -> Option<String> {
    match object.get(key) {
        Some(Value::String(s)) if text_contains_nul(s) => {
            issues.push(path, format!("{path} must not contain NUL characters"));
            None
        }
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::String(_)) => {
            issues.push(path, format!("{path} must not be empty"));
            None
        }
        None | Some(Value::Null) => {
            issues.push(path, format!("{path} is required"));
            None
        }
        Some(_) => {
            issues.push(path, format!("{path} must be a string"));
            None
        }
    }
}

/// An array field of `object` with between 1 and `max` items.
pub(crate) fn bounded_array<'a>(
    object: &'a serde_json::Map<String, Value>,
    key: &str,
    max: usize,
    issues: &mut Issues,
) -> Option<&'a Vec<Value>> {
    match object.get(key) {
        Some(Value::Array(items)) if (1..=max).contains(&items.len()) => Some(items),
        Some(Value::Array(_)) => {
            issues.push(key, format!("{key} must hold between 1 and {max} items"));
            None
        }
        None | Some(Value::Null) => {
            issues.push(key, format!("{key} is required"));
            None
        }
        Some(_) => {
            issues.push(key, format!("{key} must be an array"));
            None
        }
    }
}
