//! Settings, read once at start from the environment (and `.env`) into typed values.
//!
//! This is the only module that knows the variable names. Parsing goes through
//! [`Config::from_lookup`], so tests never touch the process environment.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use jiff::tz::TimeZone;

mod event_format;
mod webhook_url;

pub use event_format::EventFormat;
pub use webhook_url::WebhookUrl;

/// Every setting the server runs with, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The public base URL sipgate reaches this server at (`WEBHOOK_URL`).
    pub webhook_url: WebhookUrl,
    /// Where to listen (`LISTEN_ADDR`).
    pub listen_addr: SocketAddr,
    /// `true` turns the signature check off (`SKIP_SIGNATURE_VERIFICATION`).
    pub skip_signature_verification: bool,
    /// A PEM file that replaces the embedded sipgate key (`SIPGATE_PUBLIC_KEY_FILE`).
    pub public_key_file: Option<PathBuf>,
    /// A connection on which no byte arrives for this long is closed (`READ_TIMEOUT_SECONDS`).
    pub read_timeout: Duration,
    /// A client that takes no byte of an answer for this long is dropped (`WRITE_TIMEOUT_SECONDS`).
    pub write_timeout: Duration,
    /// At most this many connections are served at once (`MAX_CONNECTIONS`); `None`: as
    /// many as the open-file limit allows, which only the server can find out.
    pub max_connections: Option<usize>,
    /// Larger request bodies are refused with 413 (`MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// How event lines are written (`EVENT_FORMAT`).
    pub event_format: EventFormat,
    /// A call's start is remembered for the hangup's durations this long (`CALL_TTL_SECONDS`).
    pub call_ttl_seconds: u64,
    /// At most this many calls are remembered at once (`MAX_TRACKED_CALLS`).
    pub max_tracked_calls: usize,
    /// The call rules (`CALL_RULES_FILE`); `None`: every newCall gets the subscription only.
    pub call_rules_file: Option<PathBuf>,
    /// Where the rules' `hours` are read (`TIMEZONE`).
    pub timezone: TimeZone,
    /// `true` serves `GET /metrics` (`METRICS`).
    pub metrics: bool,
    /// The call journal (`CALL_LOG_FILE`, `CALL_LOG_SYNC`, `CALL_LOG_DAYS`); `None` without.
    pub call_log: Option<CallLog>,
    /// sipgate's REST API, for `register` (`SIPGATE_API_URL`, `SIPGATE_TOKEN_ID`,
    /// `SIPGATE_TOKEN`).
    pub sipgate_api: SipgateApi,
    /// `true` registers `WEBHOOK_URL` at sipgate at every start (`REGISTER_ON_START`).
    pub register_on_start: bool,
    /// Settings that are set but no longer mean anything, for a warning at start.
    pub retired_settings: Vec<RetiredSetting>,
}

/// Where sipgate's REST API is, and the personal access token to call it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipgateApi {
    /// The base URL, without a trailing slash: `https://api.sipgate.com/v2`.
    pub url: String,
    /// `None` unless both `SIPGATE_TOKEN_ID` and `SIPGATE_TOKEN` are set.
    pub token: Option<SipgateToken>,
}

/// A personal access token: HTTP Basic with `id:secret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipgateToken {
    /// `token-` and six letters or digits.
    pub id: String,
    pub secret: Secret,
}

/// A value that no log line, error or debug output may show.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// A setting an earlier version read, and what took its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredSetting {
    pub name: &'static str,
    pub replaced_by: &'static str,
}

const RETIRED: &[RetiredSetting] = &[RetiredSetting {
    name: "WORKERS",
    replaced_by: "each connection is served on a thread of its own; MAX_CONNECTIONS bounds them",
}];

/// One documented variable: its name, its default and what it means. `--help` and the
/// README's table are written from the same facts.
pub struct Variable {
    /// The environment variable's name.
    pub name: &'static str,
    /// The value used when it is unset or empty.
    pub default: &'static str,
    /// One line for `--help`.
    pub meaning: &'static str,
}

/// Every variable the program reads, in the order `--help` lists them. Where a default is a
/// value, it is parsed like a value the user set, so this table is the only place it is written.
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "WEBHOOK_URL",
        default: "http://localhost:PORT, PORT being LISTEN_ADDR's (8080 if that is 0)",
        meaning: "public base URL sipgate reaches this server at; may carry a path prefix and a query",
    },
    Variable {
        name: "LISTEN_ADDR",
        default: "127.0.0.1:8080",
        meaning: "address and port to listen on",
    },
    Variable {
        name: "SKIP_SIGNATURE_VERIFICATION",
        default: "false",
        meaning: "true accepts unsigned requests (local testing only)",
    },
    Variable {
        name: "SIPGATE_PUBLIC_KEY_FILE",
        default: "(embedded sipgate key)",
        meaning: "PEM public key that replaces the embedded one (key rotation)",
    },
    Variable {
        name: "READ_TIMEOUT_SECONDS",
        default: "10",
        meaning: "a connection on which no byte arrives for this long is closed (idle, or a stalled request); a large body must be whole this long after its head",
    },
    Variable {
        name: "WRITE_TIMEOUT_SECONDS",
        default: "10",
        meaning: "a client that takes no byte of an answer for this long is dropped",
    },
    Variable {
        name: "MAX_CONNECTIONS",
        default: "half the open-file limit, at most 10000",
        meaning: "most connections served at once (each takes 2 descriptors and a thread); more wait to be accepted",
    },
    Variable {
        name: "MAX_BODY_BYTES",
        default: "65536",
        meaning: "larger request bodies are refused with 413; at least 4096, as sipgate's own requests need room",
    },
    Variable {
        name: "EVENT_FORMAT",
        default: "text",
        meaning: "event lines on stdout: text (a sentence) or json (one JSON object per line)",
    },
    Variable {
        name: "CALL_TTL_SECONDS",
        default: "14400",
        meaning: "how long a call's start is remembered for the ring and talk times on its hangup",
    },
    Variable {
        name: "MAX_TRACKED_CALLS",
        default: "10000",
        meaning: "most calls remembered at once; the oldest is forgotten first",
    },
    Variable {
        name: "CALL_RULES_FILE",
        default: "(none: every call gets the plain subscription)",
        meaning: "TOML file of call rules: reject, forward, voicemail, announcements, keypad menus (SIGHUP reloads it)",
    },
    Variable {
        name: "TIMEZONE",
        default: "Europe/Berlin",
        meaning: "IANA time zone the call rules' hours are read in",
    },
    Variable {
        name: "METRICS",
        default: "false",
        meaning: "true serves Prometheus metrics at GET /metrics under WEBHOOK_URL's path (keep it off the public side)",
    },
    Variable {
        name: "CALL_LOG_FILE",
        default: "(none: events are only printed)",
        meaning: "SQLite file every accepted event is committed to before its answer; the call history (calls) reads it",
    },
    Variable {
        name: "CALL_LOG_SYNC",
        default: "normal",
        meaning: "normal: the journal survives a crash of the process; full: also a power loss (an fsync per commit)",
    },
    Variable {
        name: "CALL_LOG_DAYS",
        default: "90",
        meaning: "events older than this many days are removed from the journal (at start and daily); 0 keeps all",
    },
    Variable {
        name: "SIPGATE_TOKEN_ID",
        default: "(none)",
        meaning: "id of a personal access token of the sipgate account (token-XXXXXX), for register",
    },
    Variable {
        name: "SIPGATE_TOKEN",
        default: "(none)",
        meaning: "that token (a UUID); never logged",
    },
    Variable {
        name: "SIPGATE_API_URL",
        default: "https://api.sipgate.com/v2",
        meaning: "sipgate's REST API; http:// only on this machine (tests), so the token never crosses a network in clear",
    },
    Variable {
        name: "REGISTER_ON_START",
        default: "false",
        meaning: "true sets the account's sipgate.io URLs to WEBHOOK_URL/new-call at every start, as register does",
    },
    Variable {
        name: "RUST_LOG",
        default: "info",
        meaning: "log filter (error, warn, info, debug, trace); logs go to stderr",
    },
];

/// An hour: far longer than any client that sends or reads at all needs.
const MAX_TIMEOUT_SECONDS: usize = 3600;
const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;
const MAX_CALL_TTL_SECONDS: usize = 7 * 24 * 3600;
const MAX_TRACKED_CALLS_LIMIT: usize = 10_000_000;
/// A hundred years.
const MAX_CALL_LOG_DAYS: u32 = 36_500;
// Far above any sipgate body (all captures are under 1 KiB) and small enough that a full
// buffer per in-flight request cannot exhaust memory.
const MAX_BODY_LIMIT: usize = 64 * 1024 * 1024;
// The largest captured request is a newCall to a group (445 bytes, with two users); a
// group of a few dozen users takes some kilobytes, and below that sipgate's own requests
// would be refused.
const MIN_BODY_BYTES: usize = 4096;

/// A setting that cannot be used; the program stops with exit code 2 and this one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable's name.
    pub var: &'static str,
    /// The value as given.
    pub value: String,
    /// What would have been accepted.
    pub expected: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} {:?}: expected {}",
            self.var, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

/// The error for `var`'s `value`, saying what would have been accepted.
fn invalid(var: &'static str, value: &str, expected: &str) -> ConfigError {
    ConfigError {
        var,
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

impl Config {
    /// Reads the settings from the process environment.
    ///
    /// # Errors
    /// The first variable whose value cannot be used.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// Reads the settings through `lookup`, which returns a variable's value if it is set.
    /// An empty value counts as unset, so `VAR=` in `.env` means "use the default".
    ///
    /// # Errors
    /// The first variable whose value cannot be used.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.is_empty());
        let get_or_default = |name: &str| get(name).unwrap_or_else(|| default_of(name).to_owned());

        let value = get_or_default("LISTEN_ADDR");
        let listen_addr: SocketAddr = value.parse().map_err(|_| {
            invalid(
                "LISTEN_ADDR",
                &value,
                "an IP address and port such as 127.0.0.1:8080 or [::1]:8080 (host names are not resolved)",
            )
        })?;

        // Unset, the server's own address on this machine, so that the follow-up events of
        // a call reach it whatever port it listens on. Port 0 (the system picks one at
        // start) names no port; 8080 stands in, as the URLs cannot know the real one.
        let value = get("WEBHOOK_URL").unwrap_or_else(|| match listen_addr.port() {
            0 => "http://localhost:8080".to_owned(),
            port => format!("http://localhost:{port}"),
        });
        let webhook_url = WebhookUrl::parse(&value)
            .map_err(|problem| invalid("WEBHOOK_URL", &value, &problem))?;

        let value = get_or_default("SKIP_SIGNATURE_VERIFICATION");
        let skip_signature_verification = parse_bool(&value).ok_or_else(|| {
            invalid(
                "SKIP_SIGNATURE_VERIFICATION",
                &value,
                "true or false (also 1/0, yes/no)",
            )
        })?;

        let public_key_file = get("SIPGATE_PUBLIC_KEY_FILE").map(PathBuf::from);

        // A whole number from 1 to `max`; `unit` says what it counts, for the error.
        let number_in = |var: &'static str, value: String, max: usize, unit: &str| {
            parse_in_range(&value, 1, max).ok_or_else(|| {
                invalid(
                    var,
                    &value,
                    &format!("a whole number {unit}from 1 to {max}"),
                )
            })
        };
        let number = |var: &'static str, max: usize, unit: &str| {
            number_in(var, get_or_default(var), max, unit)
        };

        let seconds = |var: &'static str| {
            number(var, MAX_TIMEOUT_SECONDS, "of seconds ").map(|n| Duration::from_secs(n as u64))
        };
        let read_timeout = seconds("READ_TIMEOUT_SECONDS")?;
        let write_timeout = seconds("WRITE_TIMEOUT_SECONDS")?;
        // The default depends on the open-file limit, which only the server finds out.
        let max_connections = match get("MAX_CONNECTIONS") {
            None => None,
            Some(value) => Some(number_in(
                "MAX_CONNECTIONS",
                value,
                MAX_CONNECTIONS_LIMIT,
                "",
            )?),
        };
        let value = get_or_default("MAX_BODY_BYTES");
        let max_body_bytes = parse_in_range(&value, MIN_BODY_BYTES, MAX_BODY_LIMIT).ok_or_else(|| {
            invalid(
                "MAX_BODY_BYTES",
                &value,
                &format!(
                    "a whole number of bytes from {MIN_BODY_BYTES} to {MAX_BODY_LIMIT} (sipgate's own requests take up to a few kilobytes)"
                ),
            )
        })?;

        let value = get_or_default("EVENT_FORMAT");
        let event_format = value
            .parse()
            .map_err(|()| invalid("EVENT_FORMAT", &value, "text or json"))?;

        let call_ttl_seconds =
            number("CALL_TTL_SECONDS", MAX_CALL_TTL_SECONDS, "of seconds ")? as u64;
        let max_tracked_calls = number("MAX_TRACKED_CALLS", MAX_TRACKED_CALLS_LIMIT, "")?;

        let call_rules_file = get("CALL_RULES_FILE").map(PathBuf::from);
        let value = get_or_default("TIMEZONE");
        let timezone = TimeZone::get(value.trim()).map_err(|_| {
            invalid(
                "TIMEZONE",
                &value,
                "an IANA time zone name such as Europe/Berlin, Europe/Vienna or UTC",
            )
        })?;

        let value = get_or_default("METRICS");
        let metrics = parse_bool(&value)
            .ok_or_else(|| invalid("METRICS", &value, "true or false (also 1/0, yes/no)"))?;

        let call_log = call_log(&get, &get_or_default)?;

        let sipgate_api = sipgate_api(&get, &get_or_default)?;
        let value = get_or_default("REGISTER_ON_START");
        let register_on_start = parse_bool(&value).ok_or_else(|| {
            invalid(
                "REGISTER_ON_START",
                &value,
                "true or false (also 1/0, yes/no)",
            )
        })?;
        if register_on_start && sipgate_api.token.is_none() {
            return Err(invalid(
                "REGISTER_ON_START",
                &value,
                "false, or SIPGATE_TOKEN_ID and SIPGATE_TOKEN set to a personal access token of the account",
            ));
        }

        Ok(Config {
            webhook_url,
            listen_addr,
            skip_signature_verification,
            public_key_file,
            read_timeout,
            write_timeout,
            max_connections,
            max_body_bytes,
            event_format,
            call_ttl_seconds,
            max_tracked_calls,
            call_rules_file,
            timezone,
            metrics,
            call_log,
            sipgate_api,
            register_on_start,
            retired_settings: RETIRED
                .iter()
                .filter(|retired| get(retired.name).is_some())
                .cloned()
                .collect(),
        })
    }
}

/// Where and how the call journal is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallLog {
    /// `CALL_LOG_FILE`.
    pub path: PathBuf,
    /// `CALL_LOG_SYNC`.
    pub sync: CallLogSync,
    /// `CALL_LOG_DAYS`; 0 keeps every event.
    pub days: u32,
}

/// What a committed event survives (`CALL_LOG_SYNC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallLogSync {
    /// A crash of the process (SQLite's `synchronous=NORMAL` in WAL mode).
    Normal,
    /// Also a power loss: an fsync per commit (`synchronous=FULL`).
    Full,
}

/// `CALL_LOG_FILE`, `CALL_LOG_SYNC` and `CALL_LOG_DAYS`; the last two are checked even
/// without a file, so a typo shows before the journal is turned on.
fn call_log(
    get: &dyn Fn(&str) -> Option<String>,
    get_or_default: &dyn Fn(&str) -> String,
) -> Result<Option<CallLog>, ConfigError> {
    let value = get_or_default("CALL_LOG_SYNC");
    let sync = match value.trim().to_ascii_lowercase().as_str() {
        "normal" => CallLogSync::Normal,
        "full" => CallLogSync::Full,
        _ => {
            return Err(invalid(
                "CALL_LOG_SYNC",
                &value,
                "normal (survives a crash of the process) or full (also a power loss)",
            ));
        }
    };
    let value = get_or_default("CALL_LOG_DAYS");
    let days = value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|days| *days <= MAX_CALL_LOG_DAYS)
        .ok_or_else(|| {
            invalid(
                "CALL_LOG_DAYS",
                &value,
                &format!("a whole number of days from 0 (keep every event) to {MAX_CALL_LOG_DAYS}"),
            )
        })?;
    Ok(get("CALL_LOG_FILE").map(|path| CallLog {
        path: PathBuf::from(path),
        sync,
        days,
    }))
}

/// `SIPGATE_API_URL`, `SIPGATE_TOKEN_ID` and `SIPGATE_TOKEN`. The token's value appears in
/// no error.
fn sipgate_api(
    get: &dyn Fn(&str) -> Option<String>,
    get_or_default: &dyn Fn(&str) -> String,
) -> Result<SipgateApi, ConfigError> {
    let value = get_or_default("SIPGATE_API_URL");
    let url = WebhookUrl::parse(&value)
        .map_err(|problem| invalid("SIPGATE_API_URL", &value, &problem))?;
    if !url.is_https() && !url.is_on_this_machine() {
        return Err(invalid(
            "SIPGATE_API_URL",
            &value,
            "an https:// URL such as https://api.sipgate.com/v2 (http:// only on this machine, as the token must not cross a network in clear)",
        ));
    }
    let id = get("SIPGATE_TOKEN_ID");
    if let Some(id) = &id {
        let well_formed = id
            .strip_prefix("token-")
            .is_some_and(|rest| rest.len() == 6 && rest.chars().all(|c| c.is_ascii_alphanumeric()));
        if !well_formed {
            return Err(invalid(
                "SIPGATE_TOKEN_ID",
                id,
                "token- and six letters or digits, such as token-AB12CD (the id shown with the personal access token)",
            ));
        }
    }
    let secret = get("SIPGATE_TOKEN");
    if secret.as_deref().is_some_and(|secret| !is_uuid_v4(secret)) {
        return Err(invalid(
            "SIPGATE_TOKEN",
            "(not shown)",
            "the personal access token itself, a UUID such as 0f1e2d3c-4b5a-4c6d-8e7f-0a1b2c3d4e5f",
        ));
    }
    let token = match (id, secret) {
        (Some(id), Some(secret)) => Some(SipgateToken {
            id,
            secret: Secret(secret),
        }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(invalid(
                "SIPGATE_TOKEN",
                "",
                "the token that belongs to SIPGATE_TOKEN_ID (both or neither)",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "SIPGATE_TOKEN_ID",
                "",
                "the id of the token in SIPGATE_TOKEN, such as token-AB12CD (both or neither)",
            ));
        }
    };
    Ok(SipgateApi {
        url: url.to_string(),
        token,
    })
}

/// A UUID of version 4, in any case, as sipgate's personal access tokens are.
fn is_uuid_v4(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    let lengths_fit = groups.iter().map(|group| group.len()).eq([8, 4, 4, 4, 12]);
    lengths_fit
        && groups
            .iter()
            .all(|group| group.chars().all(|c| c.is_ascii_hexdigit()))
        && groups[2].starts_with('4')
        && groups[3].starts_with(['8', '9', 'a', 'b', 'A', 'B'])
}

/// The default of a variable in [`VARIABLES`].
///
/// # Panics
/// If `name` is not in the table: a typo in the program, caught by the tests.
#[must_use]
pub fn default_of(name: &str) -> &'static str {
    VARIABLES
        .iter()
        .find(|variable| variable.name == name)
        .map(|variable| variable.default)
        .unwrap_or_else(|| panic!("{name} is not in VARIABLES"))
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn parse_in_range(value: &str, min: usize, max: usize) -> Option<usize> {
    value
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (min..=max).contains(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let config = config(&[]).unwrap();
        assert_eq!(
            config.webhook_url.callback("/on-answer"),
            "http://localhost:8080/on-answer"
        );
        assert_eq!(config.listen_addr, "127.0.0.1:8080".parse().unwrap());
        assert!(!config.skip_signature_verification);
        assert_eq!(config.public_key_file, None);
        assert_eq!(config.read_timeout, Duration::from_secs(10));
        assert_eq!(config.write_timeout, Duration::from_secs(10));
        assert_eq!(config.max_connections, None);
        assert_eq!(config.max_body_bytes, 65536);
        assert_eq!(config.event_format, EventFormat::Text);
        assert_eq!(config.call_ttl_seconds, 14_400);
        assert_eq!(config.max_tracked_calls, 10_000);
    }

    /// Unset, WEBHOOK_URL is the server on this machine at the port it listens on, so a
    /// server moved to another port still receives its calls' follow-up events.
    #[test]
    fn the_default_webhook_url_follows_the_listening_port() {
        let moved = config(&[("LISTEN_ADDR", "127.0.0.1:8092")]).unwrap();
        assert_eq!(
            moved.webhook_url.callback("/on-answer"),
            "http://localhost:8092/on-answer"
        );
        let everywhere = config(&[("LISTEN_ADDR", "0.0.0.0:9000"), ("WEBHOOK_URL", "")]).unwrap();
        assert_eq!(everywhere.webhook_url.to_string(), "http://localhost:9000");
    }

    #[test]
    fn empty_values_mean_default() {
        let config = config(&[("WEBHOOK_URL", ""), ("MAX_CONNECTIONS", "")]).unwrap();
        assert_eq!(config.webhook_url.path_prefix(), "");
        assert_eq!(config.max_connections, None);
    }

    #[test]
    fn every_value_is_parsed() {
        let config = config(&[
            ("WEBHOOK_URL", "https://example.com/hooks/abc/?token=a&b=c"),
            ("LISTEN_ADDR", "[::1]:9000"),
            ("SKIP_SIGNATURE_VERIFICATION", "TRUE"),
            ("SIPGATE_PUBLIC_KEY_FILE", "/etc/key.pem"),
            ("READ_TIMEOUT_SECONDS", "3"),
            ("WRITE_TIMEOUT_SECONDS", "4"),
            ("MAX_CONNECTIONS", "7"),
            ("MAX_BODY_BYTES", "5000"),
            ("EVENT_FORMAT", "json"),
            ("CALL_TTL_SECONDS", "60"),
            ("MAX_TRACKED_CALLS", "5"),
        ])
        .unwrap();
        assert_eq!(config.webhook_url.path_prefix(), "/hooks/abc");
        assert_eq!(
            config.webhook_url.callback("/on-hangup"),
            "https://example.com/hooks/abc/on-hangup?token=a&b=c"
        );
        assert_eq!(config.listen_addr, "[::1]:9000".parse().unwrap());
        assert!(config.skip_signature_verification);
        assert_eq!(config.public_key_file, Some(PathBuf::from("/etc/key.pem")));
        assert_eq!(config.read_timeout, Duration::from_secs(3));
        assert_eq!(config.write_timeout, Duration::from_secs(4));
        assert_eq!(config.max_connections, Some(7));
        assert!(config.retired_settings.is_empty());
        assert_eq!(config.max_body_bytes, 5000);
        assert_eq!(config.event_format, EventFormat::Json);
        assert_eq!(config.call_ttl_seconds, 60);
        assert_eq!(config.max_tracked_calls, 5);
    }

    #[test]
    fn bad_values_name_the_variable_the_value_and_the_fix() {
        let cases = [
            ("WEBHOOK_URL", "ftp://example.com", "http:// or https://"),
            ("WEBHOOK_URL", "example.com", "http:// or https://"),
            ("WEBHOOK_URL", "https://", "host name"),
            ("WEBHOOK_URL", "https://example.com:99999", "port"),
            ("WEBHOOK_URL", "https://example.com/a b", "without spaces"),
            ("WEBHOOK_URL", "https://example.com/#x", "fragment"),
            ("LISTEN_ADDR", "localhost:8080", "IP address and port"),
            ("LISTEN_ADDR", "127.0.0.1", "IP address and port"),
            ("SKIP_SIGNATURE_VERIFICATION", "maybe", "true or false"),
            ("MAX_CONNECTIONS", "0", "from 1 to"),
            ("MAX_CONNECTIONS", "four", "from 1 to"),
            ("READ_TIMEOUT_SECONDS", "0", "seconds from 1 to 3600"),
            ("WRITE_TIMEOUT_SECONDS", "1.5", "seconds from 1 to 3600"),
            ("MAX_BODY_BYTES", "-1", "from 4096 to"),
            ("MAX_BODY_BYTES", "10", "from 4096 to"),
            ("MAX_BODY_BYTES", "999999999999", "from 4096 to"),
            ("EVENT_FORMAT", "xml", "text or json"),
            ("CALL_TTL_SECONDS", "0", "seconds from 1 to"),
            ("MAX_TRACKED_CALLS", "lots", "from 1 to"),
        ];
        for (var, value, hint) in cases {
            let error = config(&[(var, value)]).unwrap_err();
            assert_eq!(error.var, var);
            let line = error.to_string();
            assert!(
                line.starts_with(&format!("invalid {var} {value:?}: expected ")),
                "{line}"
            );
            assert!(line.contains(hint), "{line} should mention {hint}");
        }
    }

    #[test]
    fn a_token_is_both_halves_well_formed_and_never_shown() {
        const ID: &str = "token-AB12CD";
        const SECRET: &str = "7c9e6679-7425-40DE-944b-e07fc1f90ae7";
        let with_token = config(&[("SIPGATE_TOKEN_ID", ID), ("SIPGATE_TOKEN", SECRET)]).unwrap();
        let token = with_token.sipgate_api.token.clone().unwrap();
        assert_eq!((token.id.as_str(), token.secret.expose()), (ID, SECRET));
        assert!(
            !format!("{with_token:?}").contains(SECRET),
            "Debug shows no secret"
        );
        assert_eq!(with_token.sipgate_api.url, "https://api.sipgate.com/v2");
        assert_eq!(config(&[]).unwrap().sipgate_api.token, None, "neither set");
        for (vars, var) in [
            (&[("SIPGATE_TOKEN_ID", ID)][..], "SIPGATE_TOKEN"),
            (&[("SIPGATE_TOKEN", SECRET)][..], "SIPGATE_TOKEN_ID"),
            (
                &[
                    ("SIPGATE_TOKEN_ID", "token-AB12C"),
                    ("SIPGATE_TOKEN", SECRET),
                ][..],
                "SIPGATE_TOKEN_ID",
            ),
            (
                &[
                    ("SIPGATE_TOKEN_ID", ID),
                    ("SIPGATE_TOKEN", "7c9e6679-7425-30de-944b-e07fc1f90ae7"),
                ][..],
                "SIPGATE_TOKEN",
            ),
            (&[("REGISTER_ON_START", "true")][..], "REGISTER_ON_START"),
            (
                &[("SIPGATE_API_URL", "http://api.sipgate.com/v2")][..],
                "SIPGATE_API_URL",
            ),
        ] {
            let error = config(vars).unwrap_err();
            assert_eq!(error.var, var, "{vars:?}");
            assert!(!error.to_string().contains(&SECRET[..8]), "{error}");
        }
        let local = config(&[("SIPGATE_API_URL", "http://127.0.0.1:9/v2/")]).unwrap();
        assert_eq!(local.sipgate_api.url, "http://127.0.0.1:9/v2");
    }

    #[test]
    fn a_retired_setting_is_named_for_a_warning_whatever_its_value() {
        let config = config(&[("WORKERS", "many")]).unwrap();
        let names: Vec<_> = config.retired_settings.iter().map(|r| r.name).collect();
        assert_eq!(names, ["WORKERS"]);
    }
}
