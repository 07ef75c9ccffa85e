//! `sipgateio-callevents doctor`: checks the path sipgate's requests take, from the
//! outside in, against the server running on this machine with the same settings. One line
//! per check, `✓` or `✗` with the fix (`!` for what may be fine, such as a tunnel test on
//! one machine); exit 0 only when no check fails.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::{Config, WebhookUrl};
use crate::health;
use crate::routes;

/// How long each request may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// `doctor --help`.
pub const USAGE: &str = "\
Usage: sipgateio-callevents doctor

Checks, one line each, what sipgate needs before it can deliver a call: the signature
check is on; WEBHOOK_URL is https with a certificate a public client trusts (as sipgate
does: Mozilla's CA list, or the PEM file in SSL_CERT_FILE); WEBHOOK_URL/health, asked from
the outside, reaches the server running on this machine (not another one), and how long
that took; a POST to WEBHOOK_URL/new-call without a signature comes back 403 (the route is
there, and protected). Start the server first, with the same settings (the environment or
a .env file in the working directory); doctor does not start one.

Exit code: 0 every check passed, 1 one failed, 2 bad settings.
";

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// Worth a look, but no failure: sipgate may still get through.
    Warning,
    Failed,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub outcome: Outcome,
    pub text: String,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = match self.outcome {
            Outcome::Passed => "✓",
            Outcome::Warning => "!",
            Outcome::Failed => "✗",
        };
        write!(f, "{mark} {}", self.text)
    }
}

fn passed(text: String) -> Check {
    Check {
        outcome: Outcome::Passed,
        text,
    }
}

fn warning(text: String) -> Check {
    Check {
        outcome: Outcome::Warning,
        text,
    }
}

fn failed(text: String) -> Check {
    Check {
        outcome: Outcome::Failed,
        text,
    }
}

/// Runs every check, printing each line through `report` as it comes.
///
/// # Errors
/// `SSL_CERT_FILE` is set but holds no certificate.
pub fn run(
    config: &Config,
    ssl_cert_file: Option<&str>,
    report: &mut dyn FnMut(&Check),
) -> Result<Vec<Check>, String> {
    let mut checks = Vec::new();
    let mut note = |check: Check| {
        report(&check);
        checks.push(check);
    };
    let webhook = &config.webhook_url;

    note(if config.skip_signature_verification {
        failed(
            "SKIP_SIGNATURE_VERIFICATION is on: anyone who finds the URL can send fake calls; unset it before sipgate calls"
                .to_owned(),
        )
    } else {
        passed("the signature check is on".to_owned())
    });
    note(if webhook.is_https() {
        passed(format!("WEBHOOK_URL {webhook} is https"))
    } else {
        failed(format!(
            "WEBHOOK_URL {webhook} is plain http: sipgate would send the callers' numbers unencrypted; use the https:// URL of your tunnel or TLS proxy"
        ))
    });
    if let Some(where_) = not_public(webhook) {
        note(warning(format!(
            "WEBHOOK_URL's host is {where_}: sipgate reaches it only if a tunnel or proxy forwards it; fine for a test on this machine"
        )));
    }

    let instance = match health::url(config.listen_addr, webhook.path_prefix()) {
        Err(problem) => {
            note(failed(problem));
            None
        }
        Ok(url) => {
            let local_url = format!("{url}?instance");
            match instance_at(&health::local_agent(TIMEOUT), &local_url) {
                Ok(instance) => {
                    note(passed(format!(
                        "the server on this machine answers at {local_url} (instance {instance})"
                    )));
                    Some(instance)
                }
                Err(problem) => {
                    note(failed(format!(
                        "no server of this program answers at {local_url} ({problem}); start it with the same settings in another terminal (cargo run --release), then run doctor again"
                    )));
                    None
                }
            }
        }
    };

    let public = public_agent(ssl_cert_file)?;
    let health_url = webhook.callback_with(routes::HEALTH, "instance");
    let started = Instant::now();
    let reached = instance_at(&public, &health_url);
    let took = started.elapsed();
    note(match (&reached, &instance) {
        (Ok(theirs), Some(ours)) if theirs == ours => passed(format!(
            "{health_url} reaches this server from the outside, in {} ms",
            took.as_millis()
        )),
        (Ok(theirs), Some(_)) => failed(format!(
            "{health_url} reaches another sipgateio-callevents process (instance {theirs}), not the one on {}; point the tunnel or proxy at this server, or WEBHOOK_URL at its public URL",
            config.listen_addr
        )),
        (Ok(_), None) => failed(format!(
            "{health_url} reaches a server, but none runs on {}; start this one there",
            config.listen_addr
        )),
        (Err(problem), _) => failed(format!("{health_url}: {problem}")),
    });

    if reached.is_ok() {
        let new_call = webhook.callback(routes::NEW_CALL);
        note(
            match public
                .post(&new_call)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .send("event=newCall&callId=doctor&from=anonymous&to=4900&direction=in")
            {
                Ok(answer) if answer.status() == 403 => passed(format!(
                    "POST {new_call} without a signature is refused with 403: the route is there, and protected"
                )),
                Ok(answer) if answer.status() == 200 => failed(format!(
                    "POST {new_call} without a signature was accepted (200): turn the signature check on"
                )),
                Ok(answer) => failed(format!(
                    "POST {new_call} answered {} instead of 403; WEBHOOK_URL's path must be the server's",
                    answer.status().as_u16()
                )),
                Err(error) => failed(format!("POST {new_call}: {}", describe(&error))),
            },
        );
    }
    Ok(checks)
}

/// `this machine` or `a private address` for a host sipgate cannot reach on its own.
fn not_public(webhook: &WebhookUrl) -> Option<&'static str> {
    if webhook.is_on_this_machine() {
        return Some("this machine");
    }
    let private = match webhook.ip() {
        Some(IpAddr::V4(ip)) => ip.is_private() || ip.is_link_local(),
        Some(IpAddr::V6(ip)) => (ip.segments()[0] & 0xfe00) == 0xfc00,
        None => false,
    };
    private.then_some("a private address")
}

/// A client that trusts what sipgate's does: Mozilla's CA list (webpki-roots), or the
/// certificates of `ssl_cert_file` instead.
fn public_agent(ssl_cert_file: Option<&str>) -> Result<ureq::Agent, String> {
    use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
    let roots = match ssl_cert_file {
        None => RootCerts::WebPki,
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|error| format!("cannot read SSL_CERT_FILE {path:?}: {error}"))?;
            let certificates: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(PemItem::Certificate(certificate)) => Some(certificate),
                    _ => None,
                })
                .collect();
            if certificates.is_empty() {
                return Err(format!(
                    "SSL_CERT_FILE {path:?} holds no PEM certificate; point it at a CA certificate, or unset it to trust the public CAs"
                ));
            }
            RootCerts::new_with_certs(&certificates)
        }
    };
    Ok(ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT))
        .max_redirects(0)
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        .build()
        .into())
}

/// The instance id a server of this program answers `GET …/health?instance` with.
fn instance_at(agent: &ureq::Agent, url: &str) -> Result<String, String> {
    let mut answer = agent.get(url).call().map_err(|error| describe(&error))?;
    let status = answer.status().as_u16();
    let body = answer.body_mut().read_to_string().unwrap_or_default();
    match (status, body.strip_prefix("ok ")) {
        (200, Some(instance)) => Ok(instance.trim().to_owned()),
        (200, None) => Err("answered 200, but not as this program does".to_owned()),
        (404, _) => Err(
            "answered 404: nothing of this program serves that path; WEBHOOK_URL's path must be the server's"
                .to_owned(),
        ),
        (status, _) => Err(format!("answered {status} instead of 200")),
    }
}

/// One phrase for why a request failed, with the fix.
fn describe(error: &ureq::Error) -> String {
    let text = error.to_string();
    let tls = matches!(error, ureq::Error::Rustls(_) | ureq::Error::Tls(_))
        || text.contains("certificate")
        || text.contains("UnknownIssuer");
    if tls {
        format!(
            "its certificate is not one a public client trusts ({text}); sipgate refuses such a URL: use a tunnel's https URL, or a certificate from a public CA such as Let's Encrypt"
        )
    } else if matches!(error, ureq::Error::Timeout(_)) {
        format!(
            "no answer within {} s; is the tunnel or proxy running?",
            TIMEOUT.as_secs()
        )
    } else {
        format!("no answer ({text}); is the tunnel or proxy running, and WEBHOOK_URL its URL?")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_sipgate_cannot_reach_on_its_own_are_named() {
        let named = |url: &str| not_public(&WebhookUrl::parse(url).unwrap());
        assert_eq!(named("https://localhost:8443"), Some("this machine"));
        assert_eq!(named("https://127.0.0.1"), Some("this machine"));
        assert_eq!(
            named("https://192.168.1.20:8443"),
            Some("a private address")
        );
        assert_eq!(named("https://10.0.0.1"), Some("a private address"));
        assert_eq!(named("https://[fd00::1]"), Some("a private address"));
        assert_eq!(named("https://calls.example.com"), None);
        assert_eq!(named("https://8.8.8.8"), None);
    }

    #[test]
    fn a_check_line_starts_with_its_mark() {
        assert_eq!(passed("fine".to_owned()).to_string(), "✓ fine");
        assert_eq!(failed("broken".to_owned()).to_string(), "✗ broken");
        assert_eq!(warning("maybe".to_owned()).to_string(), "! maybe");
    }
}
