//! Which requests the server answers, from where: browser origins (for the
//! WebSocket and the REST API alike), the `Host` names it serves (against DNS
//! rebinding), and the security headers every response carries.

use std::collections::HashSet;

use warp::http::{HeaderMap, HeaderValue, header};

/// Browser origins allowed to use the API and open WebSockets.
///
/// A request without `Origin` is not from a browser page and is allowed (a
/// CLI, a server, a test). A browser's own origin (the page was served by
/// this server: `Origin` names the request's `Host`) is always allowed.
/// Others only when listed, or when the list is `*`.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    any: bool,
    listed: HashSet<String>,
}

impl Origins {
    pub fn new(list: &[String]) -> Origins {
        Origins {
            any: list.iter().any(|o| o == "*"),
            listed: list
                .iter()
                .filter(|o| *o != "*")
                .map(|o| o.trim_end_matches('/').to_owned())
                .collect(),
        }
    }

    /// Whether a request with these headers may proceed.
    pub fn allow(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        if self.any || self.listed.contains(origin) {
            return true;
        }
        same_origin(origin, headers)
    }

    /// The `Access-Control-Allow-Origin` value for an allowed cross-origin
    /// request: the origin itself (never `*`, so credentials can never be
    /// shared with every site).
    pub fn cors_header(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        self.allow(headers).then(|| origin.clone())
    }
}

/// `Origin: http://host:port` names the request's own `Host: host:port`.
fn same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

/// The `Host` names the server answers to; empty answers any.
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    names: HashSet<String>,
}

impl Hosts {
    pub fn new(list: &[String]) -> Hosts {
        Hosts {
            names: list.iter().map(|h| h.to_ascii_lowercase()).collect(),
        }
    }

    /// Whether the request's `Host` (with or without its port) is served.
    pub fn allow(&self, headers: &HeaderMap) -> bool {
        if self.names.is_empty() {
            return true;
        }
        let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let name = host
            .rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(host.as_str(), |(name, _)| name);
        self.names.contains(&host) || self.names.contains(name)
    }
}

/// The content security policy of the web app: everything from this origin,
/// WebSockets to it, nothing inline but styles (Vue binds `style`
/// attributes), no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'self'; \
     form-action 'self'; frame-ancestors 'none'";

/// Headers every response carries.
pub fn secure(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn origins_default_to_the_servers_own() {
        let o = Origins::new(&[]);
        assert!(o.allow(&headers(&[("host", "a.example:8080")])));
        assert!(o.allow(&headers(&[
            ("host", "a.example:8080"),
            ("origin", "http://a.example:8080")
        ])));
        assert!(!o.allow(&headers(&[
            ("host", "a.example:8080"),
            ("origin", "https://evil.example")
        ])));
        let listed = Origins::new(&["http://localhost:5173".into()]);
        assert!(listed.allow(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://localhost:5173")
        ])));
        assert!(Origins::new(&["*".into()]).allow(&headers(&[("origin", "https://x")])));
    }

    #[test]
    fn hosts_match_with_or_without_port() {
        let h = Hosts::new(&["app.example".into(), "127.0.0.1:8080".into()]);
        assert!(h.allow(&headers(&[("host", "app.example")])));
        assert!(h.allow(&headers(&[("host", "APP.example:443")])));
        assert!(h.allow(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(!h.allow(&headers(&[("host", "evil.example")])));
        assert!(!h.allow(&HeaderMap::new()));
        assert!(Hosts::new(&[]).allow(&HeaderMap::new()));
    }
}
