//! Showing connection URLs without their secrets.

use std::fmt;

/// Displays a connection URL with its password replaced by `***`: the one
/// of `scheme://user:password@host/...` and a `password=` query parameter.
/// Use it wherever a URL reaches a log, an error or the terminal.
///
/// ```
/// use stratasync_diesel::Redacted;
/// let url = "postgres://app:s3cret@db.example.com/app?sslmode=require";
/// assert_eq!(
///     Redacted(url).to_string(),
///     "postgres://app:***@db.example.com/app?sslmode=require"
/// );
/// assert_eq!(Redacted("sqlite://todo.sqlite3").to_string(), "sqlite://todo.sqlite3");
/// ```
#[derive(Clone, Copy)]
pub struct Redacted<'a>(pub &'a str);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.0;
        let (head, query) = match url.split_once('?') {
            Some((head, query)) => (head, Some(query)),
            None => (url, None),
        };
        match head.split_once("://") {
            Some((scheme, rest)) => {
                write!(f, "{scheme}://")?;
                match rest.rsplit_once('@') {
                    Some((userinfo, host)) => {
                        match userinfo.split_once(':') {
                            Some((user, _)) => write!(f, "{user}:***@")?,
                            None => write!(f, "{userinfo}@")?,
                        }
                        f.write_str(host)?;
                    }
                    None => f.write_str(rest)?,
                }
            }
            None => f.write_str(head)?,
        }
        if let Some(query) = query {
            f.write_str("?")?;
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    f.write_str("&")?;
                }
                match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        write!(f, "{key}=***")?;
                    }
                    _ => f.write_str(pair)?,
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::Redacted;

    #[test]
    fn passwords_are_hidden_and_everything_else_kept() {
        for (url, shown) in [
            ("postgres://u:p@h:5432/d", "postgres://u:***@h:5432/d"),
            ("postgres://u@h/d", "postgres://u@h/d"),
            ("postgres://u:p@ss@h/d", "postgres://u:***@h/d"),
            (
                "rediss://:p@h:6380/0#insecure",
                "rediss://:***@h:6380/0#insecure",
            ),
            (
                "postgres://h/d?user=u&password=p&sslmode=require",
                "postgres://h/d?user=u&password=***&sslmode=require",
            ),
            ("/var/data/sync.sqlite3", "/var/data/sync.sqlite3"),
        ] {
            assert_eq!(Redacted(url).to_string(), shown);
        }
    }
}
