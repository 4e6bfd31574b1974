//! The query of `GET /sync/bootstrap` (PROTOCOL §4).

use super::issues::Issues;
use super::models::Models;
use super::query::Query;
use crate::error::{ApiError, RequestPart};

/// A decoded bootstrap query.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BootstrapRequest {
    /// The models to send (`onlyModels`); `None` for every registered one.
    pub(crate) only_models: Option<Vec<String>>,
    /// The groups to narrow to (`syncGroups`); `None` when absent.
    pub(crate) sync_groups: Option<Vec<String>>,
    /// The hash of the client's schema (`schemaHash`); empty when absent.
    pub(crate) schema_hash: String,
}

impl BootstrapRequest {
    /// Decodes a bootstrap query against the registered `models`, reporting
    /// every invalid parameter.
    ///
    /// A partial bootstrap (`type=partial`, from `firstSyncId`) is answered
    /// with the same snapshot as a full one, so its parameters are checked
    /// but not kept; neither is `noSyncPackets`.
    pub(crate) fn decode(raw: Option<&str>, models: &dyn Models) -> Result<Self, ApiError> {
        let query = Query::parse(raw);
        let mut issues = Issues::new(RequestPart::Query);
        let partial = query.choice("type", ["full", "partial"], &mut issues) == Some("partial");
        match query.get("firstSyncId") {
            Some(text) => drop(issues.sync_id("firstSyncId", text)),
            None if partial => issues.push(
                "firstSyncId",
                "firstSyncId is required for a partial bootstrap",
            ),
            None => {}
        }
        query.choice("noSyncPackets", ["true", "false"], &mut issues);
        let only_models = query.list("onlyModels").filter(|names| !names.is_empty());
        for name in only_models.iter().flatten() {
            if !models.knows(name) {
                issues.push("onlyModels", format!("unknown model \"{name}\""));
            }
        }
        issues.finish(BootstrapRequest {
            only_models,
            sync_groups: query.list("syncGroups"),
            schema_hash: query.get("schemaHash").unwrap_or_default().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::issues::details;
    use super::super::models::TaskAndProject;
    use super::*;

    fn decode(query: &str) -> Result<BootstrapRequest, ApiError> {
        BootstrapRequest::decode(Some(query), &TaskAndProject)
    }

    /// The issues of `query`, which must be the query string's.
    fn issues_of(query: &str) -> Vec<(String, String)> {
        let (part, issues) = details(decode(query));
        assert_eq!(part, RequestPart::Query);
        issues
    }

    fn issue(field: &str, message: &str) -> Vec<(String, String)> {
        vec![(field.to_owned(), message.to_owned())]
    }

    #[test]
    fn a_valid_query_decodes() {
        assert_eq!(
            BootstrapRequest::decode(None, &TaskAndProject).expect("valid"),
            BootstrapRequest {
                only_models: None,
                sync_groups: None,
                schema_hash: String::new(),
            }
        );
        assert_eq!(
            decode(
                "type=partial&firstSyncId=9&noSyncPackets=true&onlyModels=Task,Project\
                 &syncGroups=w1,w2&schemaHash=abc"
            )
            .expect("valid"),
            BootstrapRequest {
                only_models: Some(vec!["Task".into(), "Project".into()]),
                sync_groups: Some(vec!["w1".into(), "w2".into()]),
                schema_hash: "abc".into(),
            }
        );
        assert_eq!(
            decode("type=full&onlyModels=").expect("valid").only_models,
            None
        );
    }

    #[test]
    fn each_invalid_parameter_is_named() {
        assert_eq!(
            issues_of("type=delta"),
            issue("type", "type must be \"full\" or \"partial\"")
        );
        assert_eq!(
            issues_of("type=partial"),
            issue(
                "firstSyncId",
                "firstSyncId is required for a partial bootstrap"
            )
        );
        assert_eq!(
            issues_of("firstSyncId=x"),
            issue(
                "firstSyncId",
                "firstSyncId must be a string of decimal digits"
            )
        );
        assert_eq!(
            issues_of("noSyncPackets=1"),
            issue(
                "noSyncPackets",
                "noSyncPackets must be \"true\" or \"false\""
            )
        );
        assert_eq!(
            issues_of("onlyModels=Task,Label"),
            issue("onlyModels", "unknown model \"Label\"")
        );
    }

    #[test]
    fn every_invalid_parameter_is_reported_together() {
        let fields: Vec<String> = issues_of("onlyModels=A,B&noSyncPackets=no&type=x")
            .into_iter()
            .map(|(field, _)| field)
            .collect();
        assert_eq!(
            fields,
            ["type", "noSyncPackets", "onlyModels", "onlyModels"]
        );
    }
}
