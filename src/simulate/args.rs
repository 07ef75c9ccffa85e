//! The options of `simulate`, and its `--help`.

use std::time::Duration;

use super::Error;
use crate::config::{WebhookUrl, default_of};
use crate::event::{Direction, HangupCause};

const DEFAULT_FROM: &str = "492111234567";
const DEFAULT_TO: &str = "4915791234567";
const DEFAULT_CALLER_NAME: &str = "Alice Smith";
const DEFAULT_DIGITS: &str = "1234";
pub(crate) const DEFAULT_RING: Duration = Duration::from_millis(1000);
pub(crate) const DEFAULT_TALK: Duration = Duration::from_millis(2000);
/// Long pauses only make a forgotten simulator hang; a minute is more than any demo needs.
const MAX_PAUSE_MS: u64 = 60_000;
/// A menu can lead back to itself (an option or `otherwise` naming its own menu), so the
/// simulator stops answering `<Gather>`s somewhere; no real menu tree is this deep.
pub(crate) const MAX_MENU_ROUNDS: usize = 10;
/// More keys than any `maxDigits` a menu asks for in practice.
const MAX_GROUP_KEYS: usize = 32;

/// Where a server started without settings is reached: `WEBHOOK_URL`'s default for the
/// default `LISTEN_ADDR`. For the messages; a run takes the settings' `WEBHOOK_URL`.
pub(crate) fn server_default_url() -> String {
    let listen = default_of("LISTEN_ADDR");
    let port = listen.rsplit_once(':').map_or(listen, |(_, port)| port);
    format!("http://localhost:{port}")
}

/// The text of `simulate --help`.
pub(crate) fn help() -> String {
    format!(
        "Usage: sipgateio-callevents simulate [URL] [options]\n\
         \n\
         Plays one call against a running server the way sipgate would: POSTs a newCall\n\
         to URL/new-call, checks the XML answer, then follows the onAnswer, onHangup and\n\
         <Gather onData> URLs it names, printing every request and answer.\n\
         \n\
         URL is the server's WEBHOOK_URL, with its path and query if it has them. Without\n\
         one, the simulator takes WEBHOOK_URL from the environment or a .env file in the\n\
         working directory, as the server does ({default_url} when unset). https:// URLs are not supported: the simulator has no TLS,\n\
         it is meant for a local server. It cannot sign its requests (only sipgate has the\n\
         key), so start the server with SKIP_SIGNATURE_VERIFICATION=true.\n\
         \n\
         Options:\n\
         \x20 --direction in|out     who places the call (default in)\n\
         \x20 --from NUMBER          caller, E.164 digits without + or anonymous (default {DEFAULT_FROM})\n\
         \x20 --to NUMBER            callee, E.164 digits without + (default {DEFAULT_TO})\n\
         \x20 --caller-name NAME     the user[] value: the sipgate user (default \"{DEFAULT_CALLER_NAME}\")\n\
         \x20 --cause CAUSE          hangup cause: normalClearing (default), busy, cancel,\n\
         \x20                        noAnswer, congestion, notFound, forwarded; all but\n\
         \x20                        normalClearing mean the call was never answered\n\
         \x20 --digits DIGITS        keys pressed after a <Gather>: 0-9, * and #, \"\" for none;\n\
         \x20                        one group per menu, separated by commas (--digits 1,2),\n\
         \x20                        each cut to its Gather's maxDigits. Given, the answer to\n\
         \x20                        the digits is followed into the next menu, up to {MAX_MENU_ROUNDS} menus\n\
         \x20                        deep, with no input once the groups run out; without it,\n\
         \x20                        {DEFAULT_DIGITS} is pressed in the first menu only\n\
         \x20 --pause-ms N           pause before each follow-up event, in ms, at most {MAX_PAUSE_MS}\n\
         \x20                        (default {} ms ringing, then {} ms talking)\n\
         \x20 --fast                 same as --pause-ms 0\n\
         \x20 -h, --help             this text\n\
         \n\
         Exit code: 0 the whole call went through, 1 the server refused it or answered\n\
         wrongly, 2 bad options.\n",
        DEFAULT_RING.as_millis(),
        DEFAULT_TALK.as_millis(),
        default_url = server_default_url(),
    )
}

/// What the arguments ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Help,
    Run(Box<Options>),
}

/// The call to play, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    /// The server's base URL, read as `WEBHOOK_URL` is.
    pub(crate) url: WebhookUrl,
    pub(crate) direction: Direction,
    pub(crate) from: String,
    pub(crate) to: String,
    /// The `user[]` value of the newCall.
    pub(crate) caller_name: String,
    /// `None`: normalClearing, unless the server's XML rejects or hangs up the call.
    pub(crate) cause: Option<HangupCause>,
    /// The `--digits` value: groups of keys separated by commas, one per menu.
    pub(crate) digits: String,
    /// Whether the answers to the digits are followed into further menus: only with
    /// `--digits`, as without it the simulator knows no path through a menu tree.
    pub(crate) follow_menus: bool,
    /// Between newCall and the first follow-up event.
    pub(crate) ring: Duration,
    /// Between answer and hangup.
    pub(crate) talk: Duration,
}

/// Reads the arguments after `simulate`.
///
/// # Errors
/// A usage error naming the bad value and what to write instead.
/// `webhook_url` gives the settings' `WEBHOOK_URL`, asked for only when no URL is given.
pub(crate) fn parse_args(
    args: impl IntoIterator<Item = String>,
    webhook_url: impl FnOnce() -> Result<String, Error>,
) -> Result<Command, Error> {
    let mut url: Option<String> = None;
    let mut direction = Direction::In;
    let mut from = DEFAULT_FROM.to_owned();
    let mut to = DEFAULT_TO.to_owned();
    let mut caller_name = DEFAULT_CALLER_NAME.to_owned();
    let mut cause = None;
    let mut digits = DEFAULT_DIGITS.to_owned();
    let mut follow_menus = false;
    let mut pause: Option<Duration> = None;

    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        if arg == "--fast" {
            pause = Some(Duration::ZERO);
            continue;
        }
        if !arg.starts_with('-') || arg == "-" {
            if let Some(first) = &url {
                return Err(Error::usage(format!(
                    "unexpected argument {arg:?}: the URL is already {first:?}; give one URL, or see simulate --help"
                )));
            }
            url = Some(arg);
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        let example = match name.as_str() {
            "--direction" => "in",
            "--from" | "--to" => DEFAULT_FROM,
            "--caller-name" => "\"Alice Smith\"",
            "--cause" => "busy",
            "--digits" => DEFAULT_DIGITS,
            "--pause-ms" => "0",
            _ => {
                return Err(Error::usage(format!(
                    "unknown option {arg:?} for simulate; see sipgateio-callevents simulate --help"
                )));
            }
        };
        let Some(value) = inline.or_else(|| args.next()) else {
            return Err(Error::usage(format!(
                "{name} needs a value, e.g. {name} {example}"
            )));
        };
        match name.as_str() {
            "--direction" => {
                direction = match value.as_str() {
                    "in" => Direction::In,
                    "out" => Direction::Out,
                    _ => {
                        return Err(Error::usage(format!(
                            "invalid --direction {value:?}: expected in or out"
                        )));
                    }
                }
            }
            "--from" => {
                from = value;
                if from != "anonymous" {
                    check_number("--from", &from, " or anonymous")?;
                }
            }
            "--to" => {
                to = value;
                check_number("--to", &to, "")?;
            }
            "--caller-name" => {
                if value.chars().any(char::is_control) {
                    return Err(Error::usage(format!(
                        "invalid --caller-name {value:?}: a name cannot hold control characters such as newlines"
                    )));
                }
                caller_name = value;
            }
            "--cause" => {
                cause = Some(
                    HangupCause::DOCUMENTED
                        .into_iter()
                        .find(|cause| cause.as_str() == value)
                        .ok_or_else(|| {
                            Error::usage(format!(
                                "invalid --cause {value:?}: expected one of {}",
                                HangupCause::DOCUMENTED
                                    .map(|cause| cause.as_str().to_owned())
                                    .join(", ")
                            ))
                        })?,
                );
            }
            "--digits" => {
                check_digits(&value)?;
                digits = value;
                follow_menus = true;
            }
            "--pause-ms" => {
                let ms = value
                    .parse::<u64>()
                    .ok()
                    .filter(|ms| *ms <= MAX_PAUSE_MS)
                    .ok_or_else(|| {
                        Error::usage(format!(
                            "invalid --pause-ms {value:?}: expected a whole number of milliseconds from 0 to {MAX_PAUSE_MS}"
                        ))
                    })?;
                pause = Some(Duration::from_millis(ms));
            }
            _ => unreachable!("every option with a value is listed above"),
        }
    }

    let url_text = match url {
        Some(url) => url,
        None => webhook_url()?,
    };
    let url = parse_url(&url_text)?;
    Ok(Command::Run(Box::new(Options {
        url,
        direction,
        from,
        to,
        caller_name,
        cause,
        digits,
        follow_menus,
        ring: pause.unwrap_or(DEFAULT_RING),
        talk: pause.unwrap_or(DEFAULT_TALK),
    })))
}

impl Options {
    /// The keys pressed in the first menu, the second, and so on; `""` is no input.
    pub(crate) fn digit_groups(&self) -> Vec<&str> {
        self.digits.split(',').collect()
    }
}

/// `--digits`: groups of keypad keys separated by commas, one group per menu.
fn check_digits(value: &str) -> Result<(), Error> {
    let groups: Vec<&str> = value.split(',').collect();
    if groups.len() > MAX_MENU_ROUNDS {
        return Err(Error::usage(format!(
            "invalid --digits {value:?}: {} groups, but the simulator follows at most {MAX_MENU_ROUNDS} menus in a row; give one group per menu",
            groups.len()
        )));
    }
    let keypad = |group: &str| {
        group.len() <= MAX_GROUP_KEYS
            && group
                .chars()
                .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
    };
    match groups.iter().find(|group| !keypad(group)) {
        None => Ok(()),
        Some(group) => {
            let which = if groups.len() > 1 {
                format!("the group {group:?} is not keypad keys; ")
            } else {
                String::new()
            };
            Err(Error::usage(format!(
                "invalid --digits {value:?}: {which}expected up to {MAX_GROUP_KEYS} keypad keys 0-9, * and # per menu, groups separated by commas, e.g. --digits {DEFAULT_DIGITS} or --digits 1,2 (\"\" for no input)"
            )))
        }
    }
}

/// sipgate sends numbers as E.164 digits without `+` (its Push API reference); a `+` here
/// would make the simulation unlike any real call.
fn check_number(option: &str, value: &str, alternative: &str) -> Result<(), Error> {
    if !value.is_empty() && value.len() <= 20 && value.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(());
    }
    let hint = match value.strip_prefix('+') {
        Some(digits) => format!("; sipgate leaves out the +, write {option} {digits}"),
        None => String::new(),
    };
    Err(Error::usage(format!(
        "invalid {option} {value:?}: expected E.164 digits without +{alternative}, e.g. {option} {DEFAULT_FROM}{hint}"
    )))
}

fn parse_url(text: &str) -> Result<WebhookUrl, Error> {
    if text.to_ascii_lowercase().starts_with("https://") {
        return Err(Error::usage(format!(
            "cannot simulate against {text:?}: the simulator speaks plain http only (it has no TLS); use the local server's address, e.g. {default_url}",
            default_url = server_default_url()
        )));
    }
    let url = WebhookUrl::parse(text)
        .map_err(|expected| Error::usage(format!("invalid URL {text:?}: expected {expected}")))?;
    let authority = url.to_string()["http://".len()..]
        .split(['/', '?'])
        .next()
        .unwrap_or("")
        .to_owned();
    if authority.contains('@') {
        return Err(Error::usage(format!(
            "invalid URL {text:?}: the simulator does not send credentials; leave out the user:password@ part"
        )));
    }
    Ok(url)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::routes;

    fn args(list: &[&str]) -> Result<Command, Error> {
        parse_args(list.iter().map(|arg| (*arg).to_owned()), || {
            Ok(server_default_url())
        })
    }

    pub(crate) fn options(list: &[&str]) -> Options {
        match args(list).unwrap() {
            Command::Run(options) => *options,
            Command::Help => panic!("help for {list:?}"),
        }
    }

    fn usage_error(list: &[&str]) -> String {
        let error = args(list).unwrap_err();
        assert_eq!(error.exit_code(), 2, "{list:?}: {error}");
        error.message
    }

    #[test]
    fn defaults_play_an_incoming_call_against_localhost() {
        let options = options(&[]);
        assert_eq!(
            options.url.callback(routes::NEW_CALL),
            "http://localhost:8080/new-call"
        );
        assert_eq!(options.direction, Direction::In);
        assert_eq!((options.ring, options.talk), (DEFAULT_RING, DEFAULT_TALK));
        assert_eq!(options.cause, None);
        assert_eq!(args(&["--help"]).unwrap(), Command::Help);
        assert_eq!(args(&["http://x", "-h"]).unwrap(), Command::Help);
    }

    #[test]
    fn every_option_is_read_in_both_spellings() {
        let options = options(&[
            "http://127.0.0.1:9000/hooks/?token=a&b=c",
            "--direction",
            "out",
            "--from=anonymous",
            "--to",
            "4930123456",
            "--caller-name",
            "Jörg Müller",
            "--cause=busy",
            "--digits",
            "0*#",
            "--pause-ms",
            "5",
        ]);
        assert_eq!(
            options.url.callback(routes::NEW_CALL),
            "http://127.0.0.1:9000/hooks/new-call?token=a&b=c"
        );
        assert_eq!(options.direction, Direction::Out);
        assert_eq!(options.from, "anonymous");
        assert_eq!(options.to, "4930123456");
        assert_eq!(options.caller_name, "Jörg Müller");
        assert_eq!(options.cause, Some(HangupCause::Busy));
        assert_eq!(options.digits, "0*#");
        assert_eq!(options.ring, Duration::from_millis(5));
        assert_eq!(options.talk, Duration::from_millis(5));
        let fast = self::options(&["--fast"]);
        assert_eq!((fast.ring, fast.talk), (Duration::ZERO, Duration::ZERO));
        assert_eq!(self::options(&["--digits", ""]).digits, "");
    }

    #[test]
    fn digits_are_one_group_per_menu_and_only_given_ones_lead_through_menus() {
        let plain = options(&[]);
        assert_eq!(plain.digit_groups(), ["1234"]);
        assert!(!plain.follow_menus, "without --digits, the first menu only");
        let two = options(&["--digits", "1,2"]);
        assert_eq!(two.digits, "1,2");
        assert_eq!(two.digit_groups(), ["1", "2"]);
        assert!(two.follow_menus);
        assert!(options(&["--digits", "1234"]).follow_menus);
        assert_eq!(options(&["--digits=,#0"]).digit_groups(), ["", "#0"]);
        assert_eq!(options(&["--digits", "*,"]).digit_groups(), ["*", ""]);
        assert_eq!(options(&["--digits", ""]).digit_groups(), [""]);
        let ten = ["9"; MAX_MENU_ROUNDS].join(",");
        assert_eq!(
            options(&["--digits", &ten]).digit_groups().len(),
            MAX_MENU_ROUNDS
        );
    }

    #[test]
    fn bad_options_name_the_value_and_the_fix() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--direction", "sideways"],
                "invalid --direction \"sideways\": expected in or out",
            ),
            (&["--from", "+492111234567"], "write --from 492111234567"),
            (
                &["--to", "anonymous"],
                "invalid --to \"anonymous\": expected E.164 digits",
            ),
            (
                &["--cause", "hungUp"],
                "invalid --cause \"hungUp\": expected one of normalClearing, busy, cancel",
            ),
            (&["--digits", "12a"], "invalid --digits \"12a\""),
            (
                &["--digits", "1,2a"],
                "invalid --digits \"1,2a\": the group \"2a\" is not keypad keys; expected up to 32 keypad keys 0-9, * and # per menu",
            ),
            (
                &["--digits", "1,1,1,1,1,1,1,1,1,1,1"],
                "invalid --digits \"1,1,1,1,1,1,1,1,1,1,1\": 11 groups, but the simulator follows at most 10 menus in a row",
            ),
            (
                &["--digits", "123456789012345678901234567890123"],
                "expected up to 32 keypad keys",
            ),
            (&["--digits", "1 2"], "invalid --digits \"1 2\""),
            (&["--pause-ms", "-1"], "invalid --pause-ms \"-1\""),
            (&["--pause-ms", "60001"], "from 0 to 60000"),
            (&["--caller-name", "a\nb"], "control characters"),
            (&["--to"], "--to needs a value, e.g. --to 492111234567"),
            (&["--colour"], "unknown option \"--colour\" for simulate"),
            (
                &["http://a", "http://b"],
                "unexpected argument \"http://b\"",
            ),
            (&["https://example.com"], "plain http only"),
            (
                &["localhost:8080"],
                "invalid URL \"localhost:8080\": expected an http:// or https:// URL",
            ),
            (
                &["http://u:p@localhost"],
                "leave out the user:password@ part",
            ),
        ];
        for (list, expected) in cases {
            let message = usage_error(list);
            assert!(message.contains(expected), "{list:?}: {message}");
            assert!(!message.contains('\n'), "{list:?}: one line");
        }
    }
}
