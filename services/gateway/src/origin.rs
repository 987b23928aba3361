//! Where a browser request comes from: its `Origin` against the page's own (the origin of the
//! host it asked for) and the origins `CORS_ALLOWED_ORIGINS` names. A request without an
//! `Origin` is no browser's cross-origin call (a script on another site cannot leave it out),
//! so it passes.

use axum::http::{HeaderMap, header};

/// The origins other than the page's own that may call the gateway from a browser.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins(Vec<String>);

impl AllowedOrigins {
    pub fn new(origins: &[String]) -> Self {
        Self(origins.to_vec())
    }

    /// Whether the request comes from the page's own origin (or from no browser at all).
    pub fn is_same_origin(headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        let Some(host) = headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
        else {
            return false;
        };
        origin
            .to_str()
            .ok()
            .and_then(|origin| origin.split_once("://"))
            .is_some_and(|(scheme, authority)| {
                matches!(scheme, "http" | "https") && authority.eq_ignore_ascii_case(host)
            })
    }

    /// Whether the request's origin may call: its own, or one of these.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        Self::is_same_origin(headers)
            || headers
                .get(header::ORIGIN)
                .and_then(|origin| origin.to_str().ok())
                .is_some_and(|origin| {
                    self.0
                        .iter()
                        .any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(origin))
                })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(origin: Option<&'static str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "localhost:8100".parse().unwrap());
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, origin.parse().unwrap());
        }
        headers
    }

    #[test]
    fn the_pages_own_origin_and_the_listed_ones_are_admitted() {
        let allowed = AllowedOrigins::new(&["https://app.example".to_owned()]);
        assert!(allowed.admits(&request(None)), "not a browser");
        assert!(allowed.admits(&request(Some("http://localhost:8100"))));
        assert!(allowed.admits(&request(Some("https://app.example"))));
        assert!(!allowed.admits(&request(Some("https://evil.example"))));
        assert!(!allowed.admits(&request(Some("http://localhost:8101"))));
        assert!(!allowed.admits(&request(Some("null"))));
        assert!(!AllowedOrigins::is_same_origin(&request(Some(
            "https://app.example"
        ))));
    }
}
