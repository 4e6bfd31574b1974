//! The invalid fields of one request, collected to be reported together.

use stratasync_core::SyncId;

use crate::error::{ApiError, FieldIssue, RequestPart};

/// Collects every invalid field of one request, to report them together.
#[derive(Debug)]
pub(super) struct Issues {
    part: RequestPart,
    issues: Vec<FieldIssue>,
}

impl Issues {
    /// No issue yet, in the query string or the body.
    pub(super) fn new(part: RequestPart) -> Self {
        Issues {
            part,
            issues: Vec::new(),
        }
    }

    /// Records that `field` is invalid.
    pub(super) fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.issues.push(FieldIssue {
            field: field.into(),
            message: message.into(),
        });
    }

    /// `Ok(value)` when nothing was invalid, else the validation error.
    pub(super) fn finish<T>(self, value: T) -> Result<T, ApiError> {
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
    pub(super) fn sync_id(&mut self, field: &str, text: &str) -> Option<SyncId> {
        match text.parse::<SyncId>() {
            Ok(id) => Some(id),
            Err(error) => {
                self.push(field, format!("{field} {error}"));
                None
            }
        }
    }
}

/// The part and the `(field, message)` pairs of a validation failure, in
/// order.
#[cfg(test)]
pub(super) fn details<T: std::fmt::Debug>(
    result: Result<T, ApiError>,
) -> (RequestPart, Vec<(String, String)>) {
    match result {
        Err(ApiError::Validation { part, issues }) => (
            part,
            issues
                .into_iter()
                .map(|issue| (issue.field, issue.message))
                .collect(),
        ),
        other => panic!("expected a validation failure, got {other:?}"),
    }
}
