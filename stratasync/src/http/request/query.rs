//! A query string, read by parameter name.

use super::issues::Issues;

/// A parsed query string.
#[derive(Debug, Default)]
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    /// The pairs of `raw` (none when there is no query string).
    pub(super) fn parse(raw: Option<&str>) -> Self {
        Query(
            form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The last value of `name`.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A comma-separated list (empty items dropped); `None` when absent.
    pub(super) fn list(&self, name: &str) -> Option<Vec<String>> {
        self.get(name).map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
    }

    /// The value of `name` when it is one of `choices` (`None` when absent);
    /// records an issue for any other value.
    pub(super) fn choice(
        &self,
        name: &str,
        choices: [&'static str; 2],
        issues: &mut Issues,
    ) -> Option<&'static str> {
        let value = self.get(name)?;
        let choice = choices.into_iter().find(|choice| *choice == value);
        if choice.is_none() {
            let [first, second] = choices;
            issues.push(name, format!("{name} must be \"{first}\" or \"{second}\""));
        }
        choice
    }
}

#[cfg(test)]
mod tests {
    use super::super::issues::details;
    use super::*;
    use crate::error::RequestPart;

    fn issue(field: &str, message: &str) -> Vec<(String, String)> {
        vec![(field.to_owned(), message.to_owned())]
    }

    #[test]
    fn query_values_lists_and_choices() {
        let query = Query::parse(Some("a=1&a=2&l=x,%20y,,z&c=full&d=maybe"));
        assert_eq!(query.get("a"), Some("2"));
        assert_eq!(
            query.list("l"),
            Some(vec!["x".into(), "y".into(), "z".into()])
        );
        assert_eq!(query.list("absent"), None);
        let mut issues = Issues::new(RequestPart::Query);
        assert_eq!(
            query.choice("c", ["full", "partial"], &mut issues),
            Some("full")
        );
        assert_eq!(
            query.choice("absent", ["full", "partial"], &mut issues),
            None
        );
        assert!(issues.finish(()).is_ok());
        let mut issues = Issues::new(RequestPart::Query);
        assert_eq!(query.choice("d", ["true", "false"], &mut issues), None);
        assert_eq!(
            details(issues.finish(())),
            (
                RequestPart::Query,
                issue("d", "d must be \"true\" or \"false\"")
            )
        );
        assert!(Query::parse(None).get("a").is_none());
    }
}
