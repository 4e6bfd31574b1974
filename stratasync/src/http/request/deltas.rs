//! The query of `GET /sync/deltas` (PROTOCOL §6).

use stratasync_core::SyncId;

use super::issues::Issues;
use super::query::Query;
use crate::error::{ApiError, RequestPart};

/// Actions a page holds when `limit` is absent or 0.
const DEFAULT_LIMIT: usize = 1000;
/// The most actions a page holds, whatever `limit` asks.
const MAX_LIMIT: usize = 5000;

/// A decoded deltas query.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DeltasRequest {
    /// Actions after this id (`after`; absent: 0).
    pub(crate) after: SyncId,
    /// The most actions of the page (`limit`, capped).
    pub(crate) limit: usize,
    /// The groups to narrow to (`syncGroups`); `None` when absent.
    pub(crate) sync_groups: Option<Vec<String>>,
}

impl DeltasRequest {
    /// Decodes a deltas query, reporting every invalid parameter.
    pub(crate) fn decode(raw: Option<&str>) -> Result<Self, ApiError> {
        let query = Query::parse(raw);
        let mut issues = Issues::new(RequestPart::Query);
        let after = query
            .get("after")
            .and_then(|text| issues.sync_id("after", text))
            .unwrap_or_default();
        let limit = match query
            .get("limit")
            .and_then(|text| issues.sync_id("limit", text))
            .map(SyncId::get)
        {
            None | Some(0) => DEFAULT_LIMIT,
            Some(n) => usize::try_from(n).map_or(MAX_LIMIT, |n| n.min(MAX_LIMIT)),
        };
        issues.finish(DeltasRequest {
            after,
            limit,
            sync_groups: query.list("syncGroups"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::issues::details;
    use super::*;

    fn decode(query: &str) -> Result<DeltasRequest, ApiError> {
        DeltasRequest::decode(Some(query))
    }

    #[test]
    fn a_valid_query_decodes() {
        assert_eq!(
            DeltasRequest::decode(None).expect("valid"),
            DeltasRequest {
                after: SyncId::ZERO,
                limit: DEFAULT_LIMIT,
                sync_groups: None,
            }
        );
        assert_eq!(
            decode("after=17&limit=20&syncGroups=w1").expect("valid"),
            DeltasRequest {
                after: SyncId::new(17),
                limit: 20,
                sync_groups: Some(vec!["w1".into()]),
            }
        );
        assert_eq!(decode("limit=0").expect("valid").limit, DEFAULT_LIMIT);
        assert_eq!(decode("limit=99999").expect("valid").limit, MAX_LIMIT);
    }

    #[test]
    fn every_invalid_parameter_is_named_together() {
        assert_eq!(
            details(decode("after=-1&limit=99999999999999999999999")),
            (
                RequestPart::Query,
                vec![
                    (
                        "after".to_owned(),
                        "after must be a string of decimal digits".to_owned()
                    ),
                    (
                        "limit".to_owned(),
                        "limit must fit in an unsigned 64-bit integer".to_owned()
                    ),
                ]
            )
        );
    }
}
