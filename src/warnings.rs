//! Warnings for the classic misconfiguration: a `WEBHOOK_URL` that is not the address
//! sipgate reaches. The newCall arrives (it goes to the URL set in the sipgate console), but
//! answer and hangup go to the URLs built from `WEBHOOK_URL`, and never arrive.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, PoisonError};

use crate::config::WebhookUrl;

/// Distinct hosts warned about; beyond this many, one last warning says so and the rest
/// go unlogged, so requests cannot grow the set without bound.
const MAX_HOSTS_WARNED: usize = 32;

/// Compares the host a newCall was sent to with `WEBHOOK_URL`'s, once per distinct host.
pub struct HostCheck {
    /// `WEBHOOK_URL`'s host and port, lower case, without its scheme's default port.
    expected: String,
    https: bool,
    url: String,
    warned: Mutex<HashSet<String>>,
}

impl HostCheck {
    pub fn new(webhook: &WebhookUrl) -> HostCheck {
        HostCheck {
            expected: normalise(webhook.authority(), webhook.is_https()),
            https: webhook.is_https(),
            url: webhook.to_string(),
            warned: Mutex::new(HashSet::new()),
        }
    }

    /// The warning for a newCall whose `Host` (or, behind a proxy, `X-Forwarded-Host`) is
    /// `seen`, the first time that host differs from `WEBHOOK_URL`'s; `None` otherwise.
    pub fn check(&self, seen: Option<&str>) -> Option<String> {
        // A proxy may list several hosts; the first is the client's.
        let seen = seen?.split(',').next()?.trim();
        if seen.is_empty() {
            return None;
        }
        // The usual case, sipgate calling WEBHOOK_URL's host, without building strings.
        if seen.eq_ignore_ascii_case(&self.expected) {
            return None;
        }
        let host = normalise(seen, self.https);
        // A proxy may pass the host without the port it was reached on; another port on
        // the same host is told apart, as a tunnel or a proxy publishes one port.
        let same_host_no_port = !host.contains(':') && host == host_part(&self.expected);
        // Requests from this machine to a local WEBHOOK_URL: trying it out, not sipgate.
        let both_local = is_loopback(host_part(&host)) && is_loopback(host_part(&self.expected));
        if host == self.expected || same_host_no_port || both_local {
            return None;
        }
        let mut warned = self.warned.lock().unwrap_or_else(PoisonError::into_inner);
        if warned.len() > MAX_HOSTS_WARNED || !warned.insert(host.clone()) {
            return None;
        }
        if warned.len() > MAX_HOSTS_WARNED {
            return Some(format!(
                "newCalls arrive for more than {MAX_HOSTS_WARNED} hosts other than WEBHOOK_URL's; no more are logged"
            ));
        }
        Some(format!(
            "a newCall arrived for host {seen:?}, but WEBHOOK_URL is {}: sipgate will send this call's answer and hangup events there, which it may not reach. Set WEBHOOK_URL to the public URL sipgate calls (the one in the sipgate console, without /new-call)",
            self.url
        ))
    }
}

/// Lower case, and without the scheme's default port.
fn normalise(authority: &str, https: bool) -> String {
    let lower = authority.to_ascii_lowercase();
    let default_port = if https { ":443" } else { ":80" };
    lower
        .strip_suffix(default_port)
        .map(str::to_owned)
        .unwrap_or(lower)
}

fn host_part(authority: &str) -> &str {
    match authority.rsplit_once(':') {
        // `[::1]:8080`, `example.com:8080`; not the colons inside `[::1]`.
        Some((host, port)) if !port.contains(']') => host,
        _ => authority,
    }
}

/// `localhost`, `127.0.0.1`, `[::1]` and the like: this machine.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The warning for a plain `http://` `WEBHOOK_URL` on a host other than this machine:
/// sipgate would send call data (numbers, names) unencrypted over the internet.
pub fn plain_http(webhook: &WebhookUrl) -> Option<String> {
    if webhook.is_https() {
        return None;
    }
    (!webhook.is_on_this_machine()).then(|| {
        format!(
            "WEBHOOK_URL {webhook} is plain http: sipgate would send the callers' numbers and names unencrypted, and sipgate's documentation strongly recommends https. Put a TLS proxy in front (docs/deployment.md) and use its https:// URL"
        )
    })
}

/// The warning for a `WEBHOOK_URL` on this machine at another port than the server
/// listens on: the follow-up events of every call (and `simulate`) go there. A local proxy
/// may forward that port to the server's, so it is a warning, not an error.
pub fn other_port(webhook: &WebhookUrl, listen: SocketAddr) -> Option<String> {
    if !webhook.is_on_this_machine() || listen.port() == 0 {
        return None;
    }
    let port = webhook.port();
    (port != listen.port()).then(|| {
        format!(
            "WEBHOOK_URL {webhook} is port {port} of this machine, but the server listens on {listen}: the answer and hangup events of every call go to port {port}. \
             Set WEBHOOK_URL to http://localhost:{} (or leave it unset), unless a proxy on port {port} passes them on",
            listen.port()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str) -> HostCheck {
        HostCheck::new(&WebhookUrl::parse(url).unwrap())
    }

    #[test]
    fn a_matching_host_never_warns() {
        let hosts = check("https://Calls.Example.com/hooks?token=1");
        for seen in [
            "calls.example.com",
            "CALLS.example.com",
            "calls.example.com:443",
        ] {
            assert_eq!(hosts.check(Some(seen)), None, "{seen}");
        }
        // Behind a proxy on the same machine, Host is the upstream address; the proxy's
        // X-Forwarded-Host is what the caller passes in.
        assert_eq!(hosts.check(None), None);
        let local = check("http://localhost:8080");
        for seen in [
            "localhost:8080",
            "127.0.0.1:8080",
            "127.0.0.1:40000",
            "[::1]:8080",
        ] {
            assert_eq!(local.check(Some(seen)), None, "{seen}");
        }
        // A tunnel keeps the public host: the classic case of a WEBHOOK_URL left local.
        assert!(local.check(Some("abc.serveo.net")).is_some());
    }

    #[test]
    fn another_host_warns_once() {
        let hosts = check("https://calls.example.com");
        let warning = hosts.check(Some("old.example.com")).unwrap();
        assert!(
            warning.starts_with("a newCall arrived for host \"old.example.com\", but WEBHOOK_URL is https://calls.example.com: "),
            "{warning}"
        );
        assert_eq!(hosts.check(Some("old.example.com")), None);
        assert_eq!(hosts.check(Some("OLD.example.com:443")), None);
        assert!(hosts.check(Some("abc.ngrok.io, 10.0.0.1")).is_some());
        assert!(hosts.check(Some("calls.example.com:8443")).is_some());
    }

    #[test]
    fn warnings_stop_after_many_hosts() {
        let hosts = check("https://calls.example.com");
        let warnings: Vec<String> = (0..100)
            .filter_map(|n| hosts.check(Some(&format!("h{n}.example.com"))))
            .collect();
        assert_eq!(warnings.len(), MAX_HOSTS_WARNED + 1);
        assert!(warnings.last().unwrap().contains("no more are logged"));
    }

    #[test]
    fn plain_http_warns_unless_the_host_is_this_machine() {
        for url in [
            "http://localhost:8080",
            "http://127.0.0.1:8080/x",
            "http://[::1]:8080",
            "https://calls.example.com",
        ] {
            assert_eq!(plain_http(&WebhookUrl::parse(url).unwrap()), None, "{url}");
        }
        let warning = plain_http(&WebhookUrl::parse("http://calls.example.com").unwrap()).unwrap();
        assert!(
            warning.starts_with("WEBHOOK_URL http://calls.example.com is plain http"),
            "{warning}"
        );
    }

    #[test]
    fn a_local_webhook_url_at_another_port_warns() {
        let warn = |url: &str, listen: &str| {
            other_port(&WebhookUrl::parse(url).unwrap(), listen.parse().unwrap())
        };
        for (url, listen) in [
            ("http://localhost:8080", "127.0.0.1:8080"),
            ("http://127.0.0.1:8092/hooks", "0.0.0.0:8092"),
            ("http://[::1]:8080", "[::1]:8080"),
            ("http://localhost", "127.0.0.1:80"),
            ("https://calls.example.com", "127.0.0.1:8092"),
            ("http://localhost:8080", "127.0.0.1:0"),
        ] {
            assert_eq!(warn(url, listen), None, "{url} {listen}");
        }
        let warning = warn("http://localhost:8080", "127.0.0.1:8092").unwrap();
        assert!(
            warning.starts_with("WEBHOOK_URL http://localhost:8080 is port 8080 of this machine, but the server listens on 127.0.0.1:8092"),
            "{warning}"
        );
        assert!(warning.contains("http://localhost:8092"), "{warning}");
        assert!(
            warn("https://localhost", "127.0.0.1:8443")
                .unwrap()
                .contains("port 443")
        );
    }
}
