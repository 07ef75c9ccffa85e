//! `sipgateio-callevents register`: sets the sipgate.io webhook URLs of the account to
//! `{WEBHOOK_URL}/new-call` through sipgate's REST API, as sipgate's own Node library does
//! (`createSettingsModule(client).setIncomingUrl(url)` in sipgateio-node,
//! https://github.com/sipgate-io/sipgateio-node): read `/settings/sipgateio`, change the
//! URLs, put the whole object back, so the account's other sipgate.io settings (`log`,
//! `whitelist`) stay as they were. API reference: https://api.sipgate.com/v2/doc.

use std::fmt;
use std::time::Duration;

use base64ct::{Base64, Encoding};
use serde_json::Value;

use crate::config::{Config, SipgateToken};
use crate::routes;

/// How long the whole exchange with the API may take before it is given up.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// `register --help`.
pub const USAGE: &str = "\
Usage: sipgateio-callevents register [--incoming] [--outgoing]

Sets the sipgate.io webhook URL of the account to WEBHOOK_URL/new-call through sipgate's
REST API: the URL for incoming calls (--incoming), for outgoing calls (--outgoing), or
both when neither is given. The account's other sipgate.io settings are kept. Prints the
URLs before and after.

Needs a personal access token of the account (sipgate web app: personal access tokens,
with the sipgate.io settings scopes) in SIPGATE_TOKEN_ID (token-XXXXXX) and SIPGATE_TOKEN,
and a WEBHOOK_URL that sipgate can reach (a tunnel's or proxy's public URL). Settings come
from the environment or a .env file in the working directory, as for the server.
REGISTER_ON_START=true makes the server do this at each start.

Exit code: 0 set, 1 sipgate refused or could not be reached, 2 bad settings or options.
";

/// Which of the account's webhook URLs to set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    pub incoming: bool,
    pub outgoing: bool,
}

impl Targets {
    /// Both URLs.
    pub const BOTH: Targets = Targets {
        incoming: true,
        outgoing: true,
    };

    /// `--incoming` and/or `--outgoing`; both when neither is given.
    ///
    /// # Errors
    /// An argument that is neither.
    pub fn from_args(args: &[String]) -> Result<Targets, String> {
        let mut targets = Targets {
            incoming: false,
            outgoing: false,
        };
        for arg in args {
            match arg.as_str() {
                "--incoming" => targets.incoming = true,
                "--outgoing" => targets.outgoing = true,
                other => {
                    return Err(format!(
                        "unknown argument {other:?}; register takes --incoming and/or --outgoing (see register --help)"
                    ));
                }
            }
        }
        Ok(if targets.incoming || targets.outgoing {
            targets
        } else {
            Targets::BOTH
        })
    }
}

/// The account's webhook URLs; `None` where none is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls {
    pub incoming: Option<String>,
    pub outgoing: Option<String>,
}

/// The URLs before and after a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub before: Urls,
    pub after: Urls,
}

impl fmt::Display for Registered {
    /// One line per URL: `incoming URL: OLD -> NEW`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |url: &Option<String>| url.clone().unwrap_or_else(|| "(none)".to_owned());
        writeln!(
            f,
            "incoming URL: {} -> {}",
            shown(&self.before.incoming),
            shown(&self.after.incoming)
        )?;
        write!(
            f,
            "outgoing URL: {} -> {}",
            shown(&self.before.outgoing),
            shown(&self.after.outgoing)
        )
    }
}

/// Why the URLs could not be set: one line with the fix. Never holds the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterError {
    /// The settings do not allow it (exit code 2).
    Settings(String),
    /// sipgate refused, answered oddly, or could not be reached (exit code 1).
    Api(String),
}

impl RegisterError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RegisterError::Settings(_) => 2,
            RegisterError::Api(_) => 1,
        }
    }
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterError::Settings(message) | RegisterError::Api(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for RegisterError {}

/// Sets `targets` of the account to `{WEBHOOK_URL}/new-call`.
///
/// # Errors
/// No token, a `WEBHOOK_URL` sipgate cannot reach, or the API refused or did not answer.
pub fn register(
    config: &Config,
    targets: Targets,
    timeout: Duration,
) -> Result<Registered, RegisterError> {
    let Some(token) = &config.sipgate_api.token else {
        return Err(RegisterError::Settings(
            "register needs a personal access token of the sipgate account: set SIPGATE_TOKEN_ID (token-XXXXXX) and SIPGATE_TOKEN (see register --help)".to_owned(),
        ));
    };
    if config.webhook_url.is_on_this_machine() {
        return Err(RegisterError::Settings(format!(
            "WEBHOOK_URL is {}, which sipgate cannot reach; set WEBHOOK_URL to the public URL of your tunnel or proxy first",
            config.webhook_url
        )));
    }
    let url = config.webhook_url.callback(routes::NEW_CALL);
    let settings_url = format!("{}/settings/sipgateio", config.sipgate_api.url);
    let api = Api::new(token, timeout);

    let mut settings = api.get(&settings_url)?;
    let Some(object) = settings.as_object_mut() else {
        return Err(RegisterError::Api(format!(
            "sipgate answered GET {settings_url} with JSON that is not an object; SIPGATE_API_URL must be sipgate's API, such as https://api.sipgate.com/v2"
        )));
    };
    let before = urls_of(object);
    if targets.incoming {
        object.insert("incomingUrl".to_owned(), Value::String(url.clone()));
    }
    if targets.outgoing {
        object.insert("outgoingUrl".to_owned(), Value::String(url.clone()));
    }
    let after = urls_of(object);
    api.put(&settings_url, &settings)?;
    Ok(Registered { before, after })
}

/// `incomingUrl` and `outgoingUrl` of the settings; an empty one is none.
fn urls_of(settings: &serde_json::Map<String, Value>) -> Urls {
    let url = |name: &str| {
        settings
            .get(name)
            .and_then(Value::as_str)
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
    };
    Urls {
        incoming: url("incomingUrl"),
        outgoing: url("outgoingUrl"),
    }
}

/// The API with the token's Basic authorization.
struct Api {
    agent: ureq::Agent,
    authorization: String,
}

impl Api {
    fn new(token: &SipgateToken, timeout: Duration) -> Api {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .max_redirects(0)
            .build()
            .into();
        let pair = format!("{}:{}", token.id, token.secret.expose());
        Api {
            agent,
            authorization: format!("Basic {}", Base64::encode_string(pair.as_bytes())),
        }
    }

    fn get(&self, url: &str) -> Result<Value, RegisterError> {
        let answer = self
            .agent
            .get(url)
            .header("Authorization", &self.authorization)
            .header("Accept", "application/json")
            .call()
            .map_err(|error| unreachable(url, &error))?;
        let mut answer = refused("GET", url, answer)?;
        let text = answer.body_mut().read_to_string().map_err(|error| {
            RegisterError::Api(format!(
                "could not read sipgate's answer to GET {url}: {error}"
            ))
        })?;
        serde_json::from_str(&text).map_err(|_| {
            RegisterError::Api(format!(
                "sipgate answered GET {url} with something other than JSON; SIPGATE_API_URL must be sipgate's API, such as https://api.sipgate.com/v2"
            ))
        })
    }

    fn put(&self, url: &str, settings: &Value) -> Result<(), RegisterError> {
        let answer = self
            .agent
            .put(url)
            .header("Authorization", &self.authorization)
            .header("Accept", "application/json")
            .header("Content-Type", "application/json")
            .send(settings.to_string())
            .map_err(|error| unreachable(url, &error))?;
        refused("PUT", url, answer).map(drop)
    }
}

/// The answer, if it is a success; otherwise what it means and what to do.
fn refused(
    method: &str,
    url: &str,
    answer: ureq::http::Response<ureq::Body>,
) -> Result<ureq::http::Response<ureq::Body>, RegisterError> {
    let status = answer.status().as_u16();
    let message = match status {
        200..=299 => return Ok(answer),
        401 => format!(
            "sipgate refused the token ({method} {url}: 401): check SIPGATE_TOKEN_ID and SIPGATE_TOKEN, a personal access token of the account"
        ),
        403 => format!(
            "sipgate refused the request ({method} {url}: 403): sipgate.io is not booked for this account, or the token lacks the sipgate.io settings scopes; create a token with them"
        ),
        404 => format!(
            "sipgate has no {url} (404): SIPGATE_API_URL must be sipgate's API, such as https://api.sipgate.com/v2"
        ),
        500..=599 => {
            format!("sipgate could not answer {method} {url} ({status}); try again in a moment")
        }
        _ => format!("sipgate answered {method} {url} with {status}"),
    };
    Err(RegisterError::Api(message))
}

fn unreachable(url: &str, error: &ureq::Error) -> RegisterError {
    RegisterError::Api(match error {
        ureq::Error::Timeout(_) => format!(
            "no answer from {url} within {} s; check the network, or SIPGATE_API_URL",
            TIMEOUT.as_secs()
        ),
        other => format!("cannot reach {url}: {other}; check the network, or SIPGATE_API_URL"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|arg| (*arg).to_owned()).collect()
    }

    #[test]
    fn targets_default_to_both() {
        assert_eq!(Targets::from_args(&[]), Ok(Targets::BOTH));
        assert_eq!(
            Targets::from_args(&args(&["--incoming"])),
            Ok(Targets {
                incoming: true,
                outgoing: false
            })
        );
        assert_eq!(
            Targets::from_args(&args(&["--outgoing", "--incoming"])),
            Ok(Targets::BOTH)
        );
        assert!(Targets::from_args(&args(&["--all"])).is_err());
    }

    #[test]
    fn the_report_shows_before_and_after() {
        let registered = Registered {
            before: Urls {
                incoming: Some("https://old.example.com/new-call".to_owned()),
                outgoing: None,
            },
            after: Urls {
                incoming: Some("https://calls.example.com/new-call".to_owned()),
                outgoing: None,
            },
        };
        assert_eq!(
            registered.to_string(),
            "incoming URL: https://old.example.com/new-call -> https://calls.example.com/new-call\noutgoing URL: (none) -> (none)"
        );
    }
}
