//! Which browser origins may call the sync routes (CORS) and open live
//! sockets (the WebSocket `Origin` check).

use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, ORIGIN};
use axum::http::{HeaderMap, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::Error;

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// Whether `origin` is `*` or `scheme://host[:port]` (what browsers send).
pub(crate) fn is_origin(origin: &str) -> bool {
    let shaped = origin == "*"
        || origin.split_once("://").is_some_and(|(scheme, host)| {
            !scheme.is_empty() && !host.is_empty() && !host.contains('/')
        });
    shaped && HeaderValue::from_str(origin).is_ok()
}

/// `origin` as a header value, when [`is_origin`].
fn validate(setting: &str, origin: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(origin)
        .ok()
        .filter(|_| is_origin(origin))
        .ok_or_else(|| {
            Error::Config(format!(
                "invalid {setting} origin {origin:?}: expected scheme://host[:port] or *"
            ))
        })
}

/// The CORS layer for `origins` (none when the list is empty): simple and
/// preflighted `GET`/`POST` from those origins, any request header.
pub(crate) fn cors_layer(origins: &[String]) -> Result<Option<CorsLayer>, Error> {
    if origins.is_empty() {
        return Ok(None);
    }
    let values = origins
        .iter()
        .map(|origin| validate("CORS", origin))
        .collect::<Result<Vec<_>, _>>()?;
    let allow = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(values)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([AUTHORIZATION, CONTENT_TYPE])
            .expose_headers([crate::request_id::REQUEST_ID])
            .max_age(PREFLIGHT_MAX_AGE),
    ))
}

/// The origins allowed to open live sockets; empty allows any.
#[derive(Debug, Clone, Default)]
pub(crate) struct WsOrigins(Vec<String>);

impl WsOrigins {
    /// The allowlist `origins`, validated.
    pub(crate) fn new(origins: Vec<String>) -> Result<WsOrigins, Error> {
        for origin in &origins {
            validate("WebSocket", origin)?;
        }
        Ok(WsOrigins(origins))
    }

    /// Whether an upgrade with `headers` may proceed: no list, a `*` in it,
    /// no `Origin` header (not a browser), or an `Origin` on the list.
    pub(crate) fn allows(&self, headers: &HeaderMap) -> bool {
        if self.0.is_empty() || self.0.iter().any(|origin| origin == "*") {
            return true;
        }
        match headers.get(ORIGIN) {
            None => true,
            Some(origin) => self
                .0
                .iter()
                .any(|allowed| allowed.as_bytes() == origin.as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_validated_and_matched_exactly() {
        assert!(validate("CORS", "https://app.example.com").is_ok());
        assert!(validate("CORS", "http://localhost:5173").is_ok());
        assert!(validate("CORS", "*").is_ok());
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://",
            "",
        ] {
            let error = validate("CORS", bad).unwrap_err().to_string();
            assert!(error.contains("CORS") && error.contains(bad), "{error}");
        }
        let origins = WsOrigins::new(vec!["https://app.example.com".into()]).unwrap();
        let mut headers = HeaderMap::new();
        assert!(origins.allows(&headers), "no Origin: not a browser");
        headers.insert(ORIGIN, HeaderValue::from_static("https://app.example.com"));
        assert!(origins.allows(&headers));
        headers.insert(ORIGIN, HeaderValue::from_static("https://evil.example.com"));
        assert!(!origins.allows(&headers));
        assert!(WsOrigins::default().allows(&headers));
    }
}
