//! Where a request carries its token: an `Authorization: Bearer` header,
//! for the REST API and for WebSocket upgrades alike.

use warp::http::{HeaderMap, header};

/// The token of an `Authorization: Bearer` header, for clients that can
/// set headers (browsers cannot on a WebSocket; they send `auth` first).
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use warp::http::HeaderValue;

    use super::*;

    fn with(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn only_a_bearer_scheme_carries_a_token() {
        assert_eq!(bearer(&with("Bearer abc")), Some("abc".to_owned()));
        assert_eq!(bearer(&with("bearer  abc ")), Some("abc".to_owned()));
        assert_eq!(bearer(&with("Basic abc")), None);
        assert_eq!(bearer(&with("Bearer")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
