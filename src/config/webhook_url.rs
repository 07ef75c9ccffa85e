//! `WEBHOOK_URL`: the public base URL sipgate reaches the server at, and the callback URLs
//! built from it.

use std::fmt;

/// The public base URL, split into the parts the server needs: the prefix its routes live
/// under, and the text the callback URLs are built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    /// `scheme://authority` plus the path prefix, without a trailing slash.
    base: String,
    /// Length of `scheme://authority` inside `base`; the rest is the path prefix.
    origin_len: usize,
    /// The query string without `?`, if any.
    query: Option<String>,
}

impl WebhookUrl {
    /// Accepts `http://` or `https://` URLs with a host, an optional path prefix and an
    /// optional query; a trailing slash on the path is dropped.
    ///
    /// # Errors
    /// A sentence saying what a valid value looks like.
    pub fn parse(text: &str) -> Result<WebhookUrl, String> {
        const EXAMPLE: &str =
            "such as https://example.com or https://example.com/hooks?token=secret";
        if let Some(bad) = text.chars().find(|c| {
            c.is_control()
                || c.is_whitespace()
                || !c.is_ascii()
                || matches!(c, '"' | '<' | '>' | '\\')
        }) {
            return Err(format!(
                "a URL without spaces, quotes or non-ASCII characters (found {bad:?}; percent-encode it), {EXAMPLE}"
            ));
        }
        let lower = text.to_ascii_lowercase();
        let scheme_len = if lower.starts_with("https://") {
            "https://".len()
        } else if lower.starts_with("http://") {
            "http://".len()
        } else {
            return Err(format!("an http:// or https:// URL, {EXAMPLE}"));
        };
        if text.contains('#') {
            return Err(format!("a URL without a #fragment, {EXAMPLE}"));
        }
        let (before_query, query) = match text.split_once('?') {
            Some((before, query)) => (before, (!query.is_empty()).then(|| query.to_owned())),
            None => (text, None),
        };
        let rest = &before_query[scheme_len..];
        let (authority, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, ""),
        };
        let host_and_port = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        if host_and_port.is_empty() || host_and_port.starts_with(':') {
            return Err(format!("a URL with a host name, {EXAMPLE}"));
        }
        if let Some((_, port)) = host_and_port
            .rsplit_once(':')
            .filter(|_| !host_and_port.ends_with(']'))
        {
            if port.parse::<u16>().is_err() {
                return Err(format!(
                    "a URL whose port is a number from 0 to 65535, {EXAMPLE}"
                ));
            }
        }
        let path = path.trim_end_matches('/');
        if path.contains("//") {
            return Err(format!("a URL path without empty segments (//), {EXAMPLE}"));
        }
        let origin = &before_query[..scheme_len + authority.len()];
        Ok(WebhookUrl {
            base: format!("{origin}{path}"),
            origin_len: origin.len(),
            query,
        })
    }

    /// `host[:port]` as written, without user info: where sipgate sends the events.
    pub fn authority(&self) -> &str {
        let origin = &self.base[..self.origin_len];
        let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host)
    }

    /// Whether the host is this machine (`localhost`, `127.0.0.1`, `[::1]` and the like):
    /// nothing outside it reaches such a URL unless something forwards it.
    pub fn is_on_this_machine(&self) -> bool {
        let host = self.host();
        host.eq_ignore_ascii_case("localhost") || self.ip().is_some_and(|ip| ip.is_loopback())
    }

    /// The host without port and brackets: `example.com`, `127.0.0.1`, `::1`.
    pub fn host(&self) -> &str {
        let authority = self.authority();
        let host = match authority.rsplit_once(':') {
            // `[::1]:8080`, `example.com:8080`; not the colons inside `[::1]`.
            Some((host, port)) if !port.contains(']') => host,
            _ => authority,
        };
        host.trim_start_matches('[').trim_end_matches(']')
    }

    /// The host, if it is an IP address.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        self.host().parse().ok()
    }

    /// The port sipgate connects to: the one written, or the scheme's.
    pub fn port(&self) -> u16 {
        let authority = self.authority();
        match authority.rsplit_once(':') {
            // The parse accepted only a number here.
            Some((_, port)) if !port.contains(']') => port.parse().unwrap_or(0),
            _ if self.is_https() => 443,
            _ => 80,
        }
    }

    /// Whether the scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.base
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
    }

    /// The path prefix the routes are served under: `""` or `/hooks/abc` (no trailing slash).
    pub fn path_prefix(&self) -> &str {
        &self.base[self.origin_len..]
    }

    /// The absolute URL sipgate should call for `route` (which starts with `/`), keeping
    /// the query string.
    pub fn callback(&self, route: &str) -> String {
        match &self.query {
            Some(query) => format!("{}{route}?{query}", self.base),
            None => format!("{}{route}", self.base),
        }
    }

    /// [`WebhookUrl::callback`] with `extra` (`name=value`, already encoded) added to the
    /// query, after `WEBHOOK_URL`'s own.
    pub fn callback_with(&self, route: &str, extra: &str) -> String {
        match &self.query {
            Some(query) => format!("{}{route}?{query}&{extra}", self.base),
            None => format!("{}{route}?{extra}", self.base),
        }
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.query {
            Some(query) => write!(f, "{}?{query}", self.base),
            None => f.write_str(&self.base),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_url_keeps_prefix_and_query_and_drops_trailing_slash() {
        let cases = [
            (
                "http://localhost:8080",
                "",
                "http://localhost:8080/new-call",
            ),
            (
                "http://localhost:8080/",
                "",
                "http://localhost:8080/new-call",
            ),
            ("https://h.example/p", "/p", "https://h.example/p/new-call"),
            (
                "https://h.example/p///",
                "/p",
                "https://h.example/p/new-call",
            ),
            (
                "https://h.example/p?t=1",
                "/p",
                "https://h.example/p/new-call?t=1",
            ),
            (
                "https://h.example/?t=1",
                "",
                "https://h.example/new-call?t=1",
            ),
            (
                "https://h.example?t=1",
                "",
                "https://h.example/new-call?t=1",
            ),
            (
                "https://u:pw@h.example:8443/x",
                "/x",
                "https://u:pw@h.example:8443/x/new-call",
            ),
            ("http://[::1]:8080/x", "/x", "http://[::1]:8080/x/new-call"),
            ("HTTPS://h.example/x?", "/x", "HTTPS://h.example/x/new-call"),
        ];
        for (text, prefix, callback) in cases {
            let url = WebhookUrl::parse(text).unwrap();
            assert_eq!(url.path_prefix(), prefix, "{text}");
            assert_eq!(url.callback("/new-call"), callback, "{text}");
        }
    }

    #[test]
    fn host_port_and_ip() {
        let cases = [
            ("https://calls.example.com", "calls.example.com", 443, false),
            ("http://calls.example.com/x", "calls.example.com", 80, false),
            (
                "HTTPS://u:pw@Calls.example.com:8443/x?t=1",
                "Calls.example.com",
                8443,
                false,
            ),
            ("http://[::1]:8080", "::1", 8080, true),
            ("http://[::1]", "::1", 80, true),
            ("http://127.0.0.1:9/v2", "127.0.0.1", 9, true),
            ("http://LOCALHOST:8092", "LOCALHOST", 8092, true),
        ];
        for (text, host, port, local) in cases {
            let url = WebhookUrl::parse(text).unwrap();
            assert_eq!((url.host(), url.port()), (host, port), "{text}");
            assert_eq!(url.is_on_this_machine(), local, "{text}");
        }
        assert_eq!(
            WebhookUrl::parse("https://10.0.0.1").unwrap().ip(),
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(WebhookUrl::parse("https://example.com").unwrap().ip(), None);
    }

    #[test]
    fn authority_scheme_and_extra_query() {
        let url = WebhookUrl::parse("HTTPS://u:pw@Calls.example.com:8443/x?t=1").unwrap();
        assert_eq!(url.authority(), "Calls.example.com:8443");
        assert!(url.is_https());
        assert_eq!(
            url.callback_with("/on-dtmf", "menu=main"),
            "HTTPS://u:pw@Calls.example.com:8443/x/on-dtmf?t=1&menu=main"
        );
        let plain = WebhookUrl::parse("http://[::1]:8080").unwrap();
        assert_eq!(plain.authority(), "[::1]:8080");
        assert!(!plain.is_https());
        assert_eq!(
            plain.callback_with("/on-dtmf", "menu=m"),
            "http://[::1]:8080/on-dtmf?menu=m"
        );
    }
}
