//! The body of `POST /sync/mutate` (PROTOCOL §7).

use stratasync_core::ActionKind;
use stratasync_diesel::Mutation;

use super::fields::{Fields, json_object};
use super::issues::Issues;
use crate::error::{ApiError, RequestPart};

/// Transactions one request may carry.
const MAX_TRANSACTIONS: usize = 100;

/// A decoded mutate body.
#[derive(Debug)]
pub(crate) struct MutateRequest {
    /// The transactions, in request order.
    pub(crate) transactions: Vec<Mutation>,
}

impl MutateRequest {
    /// Decodes a mutate body, reporting every invalid field.
    pub(crate) fn decode(body: &[u8]) -> Result<Self, ApiError> {
        let body = json_object(body)?;
        let mut issues = Issues::new(RequestPart::Body);
        let mut fields = Fields::body(&body, &mut issues);
        // Any string or none; the server does not use it.
        let _ = fields.optional_string("batchId");
        let transactions = fields.items("transactions", MAX_TRANSACTIONS, transaction);
        issues.finish(MutateRequest { transactions })
    }
}

/// One transaction; `None` when any of its fields is invalid.
fn transaction(fields: &mut Fields<'_>) -> Option<Mutation> {
    let client_tx_id = fields.required_string("clientTxId");
    let client_id = fields.required_string("clientId");
    let model = fields.required_string("modelName");
    let model_id = fields.required_string("modelId");
    let action = fields
        .required_string("action")
        .and_then(|name| action(fields, &name));
    let payload = fields.object_or_empty("payload");
    Some(Mutation {
        client_id: client_id?,
        client_tx_id: client_tx_id?,
        model: model?,
        model_id: model_id?,
        action: action?,
        payload: payload?,
    })
}

/// A mutation's action from its name (`INSERT`, ...).
fn action(fields: &mut Fields<'_>, name: &str) -> Option<ActionKind> {
    let kind = ActionKind::from_mutation_name(name);
    if kind.is_none() {
        fields.problem(
            "action",
            "must be one of INSERT, UPDATE, DELETE, ARCHIVE, UNARCHIVE",
        );
    }
    kind
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::issues::details;
    use super::*;

    fn decode(body: &Value) -> Result<MutateRequest, ApiError> {
        MutateRequest::decode(body.to_string().as_bytes())
    }

    fn transaction() -> Value {
        json!({
            "clientTxId": "tx1",
            "clientId": "c1",
            "modelName": "Task",
            "modelId": "t1",
            "action": "UPDATE",
            "payload": { "title": "x" },
        })
    }

    /// The issues of a one-transaction body whose transaction has `key` set
    /// to `value` (removed when `None`).
    fn with(key: &str, value: Option<Value>) -> Vec<(String, String)> {
        let mut tx = transaction();
        match value {
            Some(value) => tx[key] = value,
            None => drop(tx.as_object_mut().and_then(|o| o.remove(key))),
        }
        let (part, issues) = details(decode(&json!({ "transactions": [tx] })));
        assert_eq!(part, RequestPart::Body);
        issues
    }

    fn issue(field: &str, message: &str) -> Vec<(String, String)> {
        vec![(field.to_owned(), message.to_owned())]
    }

    #[test]
    fn a_valid_body_decodes() {
        let mut second = transaction();
        second["action"] = json!("INSERT");
        second["payload"] = Value::Null;
        let body = json!({ "batchId": "b1", "transactions": [transaction(), second] });
        let request = decode(&body).expect("valid");
        let [first, second] = request.transactions.as_slice() else {
            panic!("two transactions: {request:?}");
        };
        assert_eq!(
            (
                first.client_tx_id.as_str(),
                first.client_id.as_str(),
                first.model.as_str(),
                first.model_id.as_str(),
                first.action,
            ),
            ("tx1", "c1", "Task", "t1", ActionKind::Update)
        );
        assert_eq!(first.payload["title"], "x");
        assert_eq!(second.action, ActionKind::Insert);
        assert!(second.payload.is_empty());
        assert!(decode(&json!({ "batchId": null, "transactions": [transaction()] })).is_ok());
    }

    #[test]
    fn each_invalid_field_is_named() {
        assert_eq!(
            details(decode(
                &json!({ "batchId": 1, "transactions": [transaction()] })
            ))
            .1,
            issue("batchId", "batchId must be a string")
        );
        assert_eq!(
            details(decode(&json!({}))).1,
            issue("transactions", "transactions is required")
        );
        assert_eq!(
            details(decode(&json!({ "transactions": {} }))).1,
            issue("transactions", "transactions must be an array")
        );
        let too_many: Vec<Value> = (0..=MAX_TRANSACTIONS).map(|_| transaction()).collect();
        for transactions in [vec![], too_many] {
            assert_eq!(
                details(decode(&json!({ "transactions": transactions }))).1,
                issue(
                    "transactions",
                    "transactions must hold between 1 and 100 items"
                )
            );
        }
        assert_eq!(
            details(decode(&json!({ "transactions": ["tx"] }))).1,
            issue("transactions[0]", "transactions[0] must be an object")
        );
        for key in ["clientTxId", "clientId", "modelName", "modelId", "action"] {
            let field = format!("transactions[0].{key}");
            assert_eq!(
                with(key, None),
                issue(&field, &format!("{field} is required"))
            );
            assert_eq!(
                with(key, Some(json!(""))),
                issue(&field, &format!("{field} must not be empty"))
            );
            assert_eq!(
                with(key, Some(json!("a\u{0}"))),
                issue(&field, &format!("{field} must not contain NUL characters"))
            );
            assert_eq!(
                with(key, Some(json!(7))),
                issue(&field, &format!("{field} must be a string"))
            );
        }
        assert_eq!(
            with("action", Some(json!("insert"))),
            issue(
                "transactions[0].action",
                "transactions[0].action must be one of INSERT, UPDATE, DELETE, ARCHIVE, UNARCHIVE"
            )
        );
        assert_eq!(
            with("payload", Some(json!([]))),
            issue(
                "transactions[0].payload",
                "transactions[0].payload must be an object"
            )
        );
    }

    #[test]
    fn every_invalid_field_is_reported_together() {
        let body = json!({
            "batchId": false,
            "transactions": [
                transaction(),
                { "clientTxId": 1, "clientId": "", "modelId": "m", "action": "MOVE", "payload": 2 },
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
                "batchId",
                "transactions[1].clientTxId",
                "transactions[1].clientId",
                "transactions[1].modelName",
                "transactions[1].action",
                "transactions[1].payload",
            ]
        );
    }
}
