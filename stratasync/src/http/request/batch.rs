//! The body of `POST /sync/batch` (PROTOCOL §5).

use super::fields::{Fields, json_object};
use super::issues::Issues;
use super::models::Models;
use crate::error::{ApiError, RequestPart};

/// Loads one batch may carry.
const MAX_LOADS: usize = 100;

/// A decoded batch body.
#[derive(Debug)]
pub(crate) struct BatchRequest {
    /// The loads, in request order.
    pub(crate) loads: Vec<Load>,
}

/// One item of `requests`: rows of a registered model.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Load {
    /// The model's wire name.
    pub(crate) model: String,
    /// Which of its rows.
    pub(crate) rows: Rows,
}

/// Which rows a load selects.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Rows {
    /// The rows of one group (`groupId`).
    Group(String),
    /// The rows whose indexed field `key` holds `value` (`indexedKey`,
    /// `keyValue`).
    Indexed {
        /// An indexed field of the model.
        key: String,
        /// The value, as text.
        value: String,
    },
}

impl BatchRequest {
    /// Decodes a batch body against the registered `models`, reporting every
    /// invalid field.
    pub(crate) fn decode(body: &[u8], models: &dyn Models) -> Result<Self, ApiError> {
        let body = json_object(body)?;
        let mut issues = Issues::new(RequestPart::Body);
        let mut fields = Fields::body(&body, &mut issues);
        // Checked for the client's sake; a batch reads current rows.
        let _ = fields.optional_sync_id("firstSyncId");
        let loads = fields.items("requests", MAX_LOADS, |item| load(item, models));
        issues.finish(BatchRequest { loads })
    }
}

/// One load; `None` when a field is invalid. The other fields of an item
/// whose model is missing or unknown are not read.
fn load(fields: &mut Fields<'_>, models: &dyn Models) -> Option<Load> {
    let model = fields.required_string("modelName")?;
    if !models.knows(&model) {
        fields.invalid("modelName", format!("unknown model \"{model}\""));
        return None;
    }
    let rows = if fields.has("indexedKey") {
        let key = fields.required_string("indexedKey");
        let value = fields.string_or_number("keyValue");
        let (key, value) = (key?, value?);
        if !models.is_indexed(&model, &key) {
            fields.invalid(
                "indexedKey",
                format!("\"{key}\" is not an indexed key of {model}"),
            );
            return None;
        }
        Rows::Indexed { key, value }
    } else {
        Rows::Group(fields.required_string("groupId")?)
    };
    Some(Load { model, rows })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::issues::details;
    use super::super::models::TaskAndProject;
    use super::*;

    fn decode(body: &Value) -> Result<BatchRequest, ApiError> {
        BatchRequest::decode(body.to_string().as_bytes(), &TaskAndProject)
    }

    /// The issues of a body of the one load `request`.
    fn issues_of(request: Value) -> Vec<(String, String)> {
        let (part, issues) = details(decode(&json!({ "requests": [request] })));
        assert_eq!(part, RequestPart::Body);
        issues
    }

    fn issue(field: &str, message: &str) -> Vec<(String, String)> {
        vec![(field.to_owned(), message.to_owned())]
    }

    #[test]
    fn a_valid_body_decodes() {
        let body = json!({
            "firstSyncId": "42",
            "requests": [
                { "modelName": "Project", "groupId": "w1" },
                { "modelName": "Task", "indexedKey": "projectId", "keyValue": "p1" },
                { "modelName": "Task", "indexedKey": "projectId", "keyValue": 7 },
                { "modelName": "Task", "indexedKey": "projectId", "keyValue": "" },
            ],
        });
        let indexed = |value: &str| Load {
            model: "Task".into(),
            rows: Rows::Indexed {
                key: "projectId".into(),
                value: value.into(),
            },
        };
        assert_eq!(
            decode(&body).expect("valid").loads,
            [
                Load {
                    model: "Project".into(),
                    rows: Rows::Group("w1".into()),
                },
                indexed("p1"),
                indexed("7"),
                indexed(""),
            ]
        );
        let no_cursor =
            json!({ "firstSyncId": null, "requests": [{ "modelName": "Task", "groupId": "w1" }] });
        assert!(decode(&no_cursor).is_ok());
    }

    #[test]
    fn each_invalid_field_is_named() {
        let load = json!({ "modelName": "Task", "groupId": "w1" });
        assert_eq!(
            details(decode(&json!({ "firstSyncId": 4, "requests": [load] }))).1,
            issue("firstSyncId", "firstSyncId must be a string of digits")
        );
        assert_eq!(
            details(decode(&json!({ "firstSyncId": "-4", "requests": [load] }))).1,
            issue(
                "firstSyncId",
                "firstSyncId must be a string of decimal digits"
            )
        );
        assert_eq!(
            details(decode(&json!({}))).1,
            issue("requests", "requests is required")
        );
        let too_many: Vec<Value> = (0..=MAX_LOADS).map(|_| load.clone()).collect();
        assert_eq!(
            details(decode(&json!({ "requests": too_many }))).1,
            issue("requests", "requests must hold between 1 and 100 items")
        );
        assert_eq!(
            issues_of(json!("Task")),
            issue("requests[0]", "requests[0] must be an object")
        );
        assert_eq!(
            issues_of(json!({ "groupId": "w1" })),
            issue("requests[0].modelName", "requests[0].modelName is required")
        );
        assert_eq!(
            issues_of(json!({ "modelName": "Label", "groupId": 1 })),
            issue("requests[0].modelName", "unknown model \"Label\"")
        );
        assert_eq!(
            issues_of(json!({ "modelName": "Task", "groupId": "" })),
            issue(
                "requests[0].groupId",
                "requests[0].groupId must not be empty"
            )
        );
        assert_eq!(
            issues_of(json!({ "modelName": "Task", "indexedKey": "title", "keyValue": "x" })),
            issue(
                "requests[0].indexedKey",
                "\"title\" is not an indexed key of Task"
            )
        );
        assert_eq!(
            issues_of(json!({ "modelName": "Task", "indexedKey": null, "keyValue": true })),
            [
                (
                    "requests[0].indexedKey".to_owned(),
                    "requests[0].indexedKey is required".to_owned()
                ),
                (
                    "requests[0].keyValue".to_owned(),
                    "requests[0].keyValue must be a string without NUL characters".to_owned()
                ),
            ]
        );
        assert_eq!(
            issues_of(
                json!({ "modelName": "Task", "indexedKey": "projectId", "keyValue": "p\u{0}" })
            ),
            issue(
                "requests[0].keyValue",
                "requests[0].keyValue must be a string without NUL characters"
            )
        );
    }

    #[test]
    fn every_invalid_load_is_reported_together() {
        let body = json!({
            "requests": [
                { "modelName": "Nope" },
                { "modelName": "Task", "groupId": "w1" },
                { "modelName": "Task" },
                5,
            ],
        });
        let fields: Vec<String> = details(decode(&body))
            .1
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(
            fields,
            [
                "requests[0].modelName",
                "requests[2].groupId",
                "requests[3]"
            ]
        );
    }
}
