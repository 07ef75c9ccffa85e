//! `sipgateio-callevents health`: asks the running server's `GET /health` and says whether
//! it answered `200`. A container's `HEALTHCHECK` runs it, as the image has no shell and no
//! curl to ask with.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::Config;
use crate::routes;

/// How long the whole request may take. The server answers `/health` from memory in well
/// under a millisecond; a server that cannot do so in this time is not healthy, and a
/// container runtime waits 30 s for the check before it counts it as failed anyway.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// `health --help`.
pub const USAGE: &str = "\
Usage: sipgateio-callevents health

Asks the server running on this machine for GET /health, with the same settings as the
server (LISTEN_ADDR, and WEBHOOK_URL's path prefix; from the environment or a .env file in
the working directory). A listen address on every interface (0.0.0.0, [::]) is asked on
the loopback (127.0.0.1, [::1]).

Exit code 0: the server answered 200. Exit code 1: it did not, or could not be asked; one
line on stderr says why. For a container's HEALTHCHECK: no shell or curl needed.
";

/// The URL the server at `listen` answers `/health` at, asked from the same machine.
///
/// # Errors
/// A sentence naming the value, when `LISTEN_ADDR` has no fixed port to ask.
pub fn url(listen: SocketAddr, path_prefix: &str) -> Result<String, String> {
    if listen.port() == 0 {
        return Err(format!(
            "LISTEN_ADDR {listen} lets the system pick the port, so there is no fixed port to ask; set LISTEN_ADDR to the server's port, such as 127.0.0.1:8080"
        ));
    }
    Ok(format!(
        "http://{}{path_prefix}{}",
        crate::server::reachable(listen),
        routes::HEALTH
    ))
}

/// A client for the server on this machine: no proxy, as a proxy from the environment
/// would not know its loopback address; statuses are answers, not errors.
pub(crate) fn local_agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(timeout))
        .max_redirects(0)
        .build()
        .into()
}

/// Asks the server `config` describes for `/health`.
///
/// # Errors
/// One line naming the URL and what went wrong: no answer, or an answer other than `200`;
/// or why there is no URL to ask.
pub fn check(config: &Config, timeout: Duration) -> Result<String, String> {
    let url = url(config.listen_addr, config.webhook_url.path_prefix())?;
    match local_agent(timeout).get(&url).call() {
        Ok(answer) if answer.status() == 200 => Ok(format!("{url} answered 200")),
        Ok(answer) if answer.status() == 404 => Err(format!(
            "unhealthy: {url} answered 404 instead of 200; WEBHOOK_URL's path must be the server's"
        )),
        Ok(answer) => Err(format!(
            "unhealthy: {url} answered {} instead of 200",
            answer.status().as_u16()
        )),
        Err(error) => Err(format!(
            "unhealthy: no answer from {url}: {}",
            unreachable_reason(&error, timeout)
        )),
    }
}

fn unreachable_reason(error: &ureq::Error, timeout: Duration) -> String {
    match error {
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused; is the server running, and with this LISTEN_ADDR?".to_owned()
        }
        ureq::Error::Timeout(_) => format!("no answer within {} s", timeout.as_secs()),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_addresses_are_asked_on_the_loopback_under_the_prefix() {
        let cases = [
            ("0.0.0.0:8080", "", "http://127.0.0.1:8080/health"),
            ("[::]:8080", "", "http://[::1]:8080/health"),
            (
                "127.0.0.1:9000",
                "/hooks/7f3c",
                "http://127.0.0.1:9000/hooks/7f3c/health",
            ),
            ("[::1]:8080", "/x", "http://[::1]:8080/x/health"),
            ("192.0.2.7:80", "", "http://192.0.2.7:80/health"),
        ];
        for (listen, prefix, expected) in cases {
            assert_eq!(
                url(listen.parse().unwrap(), prefix).as_deref(),
                Ok(expected),
                "{listen}"
            );
        }
    }

    #[test]
    fn port_0_is_refused_with_the_fix() {
        let error = url("127.0.0.1:0".parse().unwrap(), "").unwrap_err();
        assert!(error.starts_with("LISTEN_ADDR 127.0.0.1:0 "), "{error}");
        assert!(error.contains("such as 127.0.0.1:8080"), "{error}");
    }
}
