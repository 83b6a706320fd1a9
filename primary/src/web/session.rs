//! Dashboard sign-in sessions: the admin signs in once with the admin token and the browser
//! then carries a session cookie instead of the token.
//!
//! - **Signing in** (`POST /api/v1/session` `{"token": ...}`): the token is checked as the
//!   bearer admin token is; on success a new session id is drawn (32 bytes from the operating
//!   system's random source, as node tokens are: 256 bits, 64 hex characters) and set as the
//!   cookie [`COOKIE_NAME`] with `HttpOnly; SameSite=Strict; Path=/; Max-Age=` the lifetime
//!   ([`SESSION_LIFETIME`](crate::sessions::SESSION_LIFETIME), 12 h), and `Secure` when the primary serves TLS. The page never
//!   sees the token again: it is not kept in the page, a URL or the browser's storage.
//! - **Kept**: in memory only, as the SHA-256 of the id (a lookup's timing says nothing about
//!   the ids held) with its expiry. A restart signs everyone out. At most [`MAX_SESSIONS`](crate::sessions::MAX_SESSIONS) are
//!   held: expired ones are dropped whenever one is created, and when the store is still full
//!   the one closest to its expiry makes room.
//! - **Used**: [`AdminAuth`](super::extract::AdminAuth) takes a bearer admin token or a live
//!   session's cookie. A browser sends the cookie by itself, so a cookie-authorised request
//!   that changes something (any method but `GET` and `HEAD`) must also carry the header
//!   [`SESSION_HEADER`]` : 1`, which the dashboard's script sets. A page of another site cannot
//!   set a custom header on a cross-origin request without a CORS preflight, which the primary
//!   never grants; `SameSite=Strict` already keeps the cookie off cross-site requests, and the
//!   header is the second lock. The `Origin` header is not consulted.
//! - **Ended** (`DELETE /api/v1/session`): the session is deleted here and the cookie cleared
//!   (`Max-Age=0`); the old cookie then authorises nothing. An expired session is refused and
//!   dropped when next presented.

use std::time::Duration;

use axum::http::{HeaderMap, header};

/// The session cookie's name.
pub const COOKIE_NAME: &str = "pivitals_session";

/// The header a cookie-authorised, state-changing request must carry (with the value `1`).
pub const SESSION_HEADER: &str = "x-pivitals-session";

/// The `Set-Cookie` value that starts session `id`.
pub fn set_cookie(id: &str, lifetime: Duration, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}={id}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}",
        lifetime.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that makes the browser forget the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    set_cookie("", Duration::ZERO, secure)
}

/// The session id in the request's `Cookie` headers, if there is one.
pub fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == COOKIE_NAME && !value.is_empty())
        .map(|(_, value)| value.trim())
}

/// Whether the request carries [`SESSION_HEADER`]` : 1`.
pub fn has_session_header(headers: &HeaderMap) -> bool {
    headers
        .get(SESSION_HEADER)
        .is_some_and(|value| value.as_bytes() == b"1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_http_only_strict_and_bounded() {
        let cookie = set_cookie("ab12", crate::sessions::SESSION_LIFETIME, false);
        assert_eq!(
            cookie,
            "pivitals_session=ab12; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict"
        );
        let secure = set_cookie("ab12", crate::sessions::SESSION_LIFETIME, true);
        assert!(secure.ends_with("; SameSite=Strict; Secure"), "{secure}");
        let cleared = clear_cookie(true);
        assert_eq!(
            cleared,
            "pivitals_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict; Secure"
        );
    }

    #[test]
    fn the_session_id_is_read_from_any_cookie_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(session_id(&headers), None);
        headers.append(header::COOKIE, "theme=dark".parse().unwrap());
        headers.append(
            header::COOKIE,
            "a=1; pivitals_session=cafe; b=2".parse().unwrap(),
        );
        assert_eq!(session_id(&headers), Some("cafe"));
        let mut empty = HeaderMap::new();
        empty.insert(header::COOKIE, "pivitals_session=".parse().unwrap());
        assert_eq!(session_id(&empty), None);
    }

    #[test]
    fn only_the_value_one_counts_as_the_session_header() {
        let mut headers = HeaderMap::new();
        assert!(!has_session_header(&headers));
        headers.insert(SESSION_HEADER, "0".parse().unwrap());
        assert!(!has_session_header(&headers));
        headers.insert(SESSION_HEADER, "1".parse().unwrap());
        assert!(has_session_header(&headers));
    }
}
