//! `sipgateio-callevents simulate`: plays one call against a running server the way
//! sipgate would, so the whole flow can be tried without a sipgate account or a tunnel.
//!
//! The pure parts (options, form bodies, the check of the XML answer) are separate from
//! the HTTP part and tested here with literal inputs; `tests/it/simulate.rs` runs the
//! binary.
//!
//! The simulator cannot sign its requests: the signing key is sipgate's. It is meant for a
//! server started with `SKIP_SIGNATURE_VERIFICATION=true`, and says so when refused.

use std::fmt;
use std::io::{self, Write};
use std::thread;
use std::time::{Duration, SystemTime};

use crate::config::WebhookUrl;
use crate::event::{HangupCause, Printable};
use crate::router::paths;

const DEFAULT_URL: &str = "http://localhost:8080";
const DEFAULT_FROM: &str = "492111234567";
const DEFAULT_TO: &str = "4915791234567";
const DEFAULT_CALLER_NAME: &str = "Alice Smith";
const DEFAULT_DIGITS: &str = "1234";
const DEFAULT_RING: Duration = Duration::from_millis(1000);
const DEFAULT_TALK: Duration = Duration::from_millis(2000);
/// Long pauses only make a forgotten simulator hang; a minute is more than any demo needs.
const MAX_PAUSE_MS: u64 = 60_000;
/// sipgate gives up on an answer after ten seconds (sipgate staff in
/// https://github.com/sipgate/sipgate.io/issues/32).
const TIMEOUT: Duration = Duration::from_secs(10);
/// All real answers are a few hundred bytes; this only stops a runaway server.
const MAX_ANSWER_BYTES: u64 = 64 * 1024;
/// Lines of an answer body shown in the transcript.
const MAX_SHOWN_LINES: usize = 30;
/// The fixed user ids of the simulated account, in sipgate's format.
const USER_ID: &str = "w0";
const FULL_USER_ID: &str = "1234567w0";
/// sipgate redirects an incoming call to at most five numbers ("up to 5 targets", sipgate's
/// Push API reference, https://github.com/sipgate/docs `docs/push-api/api-reference.md`).
const MAX_DIAL_NUMBERS: usize = 5;

/// Why the simulation stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    /// One line: what went wrong and what to do about it.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A bad option or URL (exit code 2).
    Usage,
    /// The server refused the call, answered wrongly or could not be reached (exit code 1).
    Call,
}

impl Error {
    fn usage(message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Usage,
            message: message.into(),
        }
    }

    fn call(message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Call,
            message: message.into(),
        }
    }

    /// The process exit code: 2 for bad options, 1 for a call that did not go through.
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            ErrorKind::Usage => 2,
            ErrorKind::Call => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// The subcommand: `args` are the arguments after `simulate`.
///
/// # Errors
/// [`ErrorKind::Usage`] for bad options, [`ErrorKind::Call`] when the call did not go
/// through; the message is one line for the user.
pub fn main(args: impl IntoIterator<Item = String>) -> Result<(), Error> {
    let options = match parse_args(args)? {
        Command::Help => {
            print!("{}", help());
            return Ok(());
        }
        Command::Run(options) => options,
    };
    let call = Call::new(&options, &Ids::random());
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let result = simulate(&options, &call, &mut out);
    // The transcript must be complete before main prints the error line on stderr.
    let _ = out.flush();
    result
}

/// The text of `simulate --help`.
pub fn help() -> String {
    format!(
        "Usage: sipgateio-callevents simulate [URL] [options]\n\
         \n\
         Plays one call against a running server the way sipgate would: POSTs a newCall\n\
         to URL/new-call, checks the XML answer, then follows the onAnswer, onHangup and\n\
         <Gather onData> URLs it names, printing every request and answer.\n\
         \n\
         URL is the server's WEBHOOK_URL (default {DEFAULT_URL}), with its path and\n\
         query if it has them. https:// URLs are not supported: the simulator has no TLS,\n\
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
         \x20 --digits DIGITS        keys pressed after a <Gather>: 0-9, * and #, \"\" for none\n\
         \x20                        (default {DEFAULT_DIGITS}, cut to the Gather's maxDigits)\n\
         \x20 --pause-ms N           pause before each follow-up event, in ms, at most {MAX_PAUSE_MS}\n\
         \x20                        (default {} ms ringing, then {} ms talking)\n\
         \x20 --fast                 same as --pause-ms 0\n\
         \x20 -h, --help             this text\n\
         \n\
         Exit code: 0 the whole call went through, 1 the server refused it or answered\n\
         wrongly, 2 bad options.\n",
        DEFAULT_RING.as_millis(),
        DEFAULT_TALK.as_millis(),
    )
}

// ---------------------------------------------------------------------------------------
// Options

/// What the arguments ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Run(Box<Options>),
}

/// The call to play, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The server's base URL, read as `WEBHOOK_URL` is.
    pub url: WebhookUrl,
    pub direction: Direction,
    pub from: String,
    pub to: String,
    /// The `user[]` value of the newCall.
    pub caller_name: String,
    /// `None`: normalClearing, unless the server's XML rejects or hangs up the call.
    pub cause: Option<HangupCause>,
    pub digits: String,
    /// Between newCall and the first follow-up event.
    pub ring: Duration,
    /// Between answer and hangup.
    pub talk: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// Whether sipgate sends `answer` before a hangup with this cause. A forwarded leg is not
/// answered either: in a real capture (https://github.com/sipgate/sipgate.io/issues/134),
/// the hangup with `cause=forwarded` follows the newCall directly and carries no
/// answeringNumber.
fn was_answered(cause: &HangupCause) -> bool {
    *cause == HangupCause::NormalClearing
}

/// Reads the arguments after `simulate`.
///
/// # Errors
/// A usage error naming the bad value and what to write instead.
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, Error> {
    let mut url: Option<String> = None;
    let mut direction = Direction::In;
    let mut from = DEFAULT_FROM.to_owned();
    let mut to = DEFAULT_TO.to_owned();
    let mut caller_name = DEFAULT_CALLER_NAME.to_owned();
    let mut cause = None;
    let mut digits = DEFAULT_DIGITS.to_owned();
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
                if value.len() > 32
                    || !value
                        .chars()
                        .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
                {
                    return Err(Error::usage(format!(
                        "invalid --digits {value:?}: expected up to 32 keypad keys 0-9, * and #, e.g. --digits 1234 (\"\" for no input)"
                    )));
                }
                digits = value;
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

    let url_text = url.unwrap_or_else(|| DEFAULT_URL.to_owned());
    let url = parse_url(&url_text)?;
    Ok(Command::Run(Box::new(Options {
        url,
        direction,
        from,
        to,
        caller_name,
        cause,
        digits,
        ring: pause.unwrap_or(DEFAULT_RING),
        talk: pause.unwrap_or(DEFAULT_TALK),
    })))
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
            "cannot simulate against {text:?}: the simulator speaks plain http only (it has no TLS); use the local server's address, e.g. {DEFAULT_URL}"
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

// ---------------------------------------------------------------------------------------
// Form bodies

/// The random identifiers of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// 76 upper-case hex characters, like sipgate's since about 2018.
    pub call_id: String,
    /// 16 lower-case hex characters.
    pub xcid: String,
}

impl Ids {
    /// Fresh ids, different in every run so the server cannot confuse two simulated calls.
    pub fn random() -> Ids {
        Ids {
            call_id: random_hex(76).to_ascii_uppercase(),
            xcid: random_hex(16),
        }
    }
}

/// Lower-case hex from std's randomly keyed hasher: the ids need only differ between runs,
/// not resist guessing, so no random-number crate is needed.
fn random_hex(len: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    let state = std::collections::hash_map::RandomState::new();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let mut hex = String::with_capacity(len + 16);
    let mut block = 0_u64;
    while hex.len() < len {
        let mut hasher = state.build_hasher();
        hasher.write_u128(nanos);
        hasher.write_u64(block);
        hex.push_str(&format!("{:016x}", hasher.finish()));
        block += 1;
    }
    hex.truncate(len);
    hex
}

/// Everything the event bodies of one call are made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub direction: Direction,
    pub from: String,
    pub to: String,
    pub caller_name: String,
    pub ids: Ids,
}

impl Call {
    pub fn new(options: &Options, ids: &Ids) -> Call {
        Call {
            direction: options.direction,
            from: options.from.clone(),
            to: options.to.clone(),
            caller_name: options.caller_name.clone(),
            ids: ids.clone(),
        }
    }

    /// The newCall body, fields in the order of sipgate's captures (fixture 01).
    pub fn new_call_body(&self) -> String {
        form(&[
            ("event", "newCall"),
            ("direction", self.direction.as_str()),
            ("from", &self.from),
            ("to", &self.to),
            ("callId", &self.ids.call_id),
            ("origCallId", &self.ids.call_id),
            ("user[]", &self.caller_name),
            ("userId[]", USER_ID),
            ("fullUserId[]", FULL_USER_ID),
            ("xcid", &self.ids.xcid),
        ])
    }

    /// The answer body (fixtures 07, 08). Only incoming calls name the user who answered.
    pub fn answer_body(&self, answering_number: &str) -> String {
        let mut fields = vec![("event", "answer"), ("callId", self.ids.call_id.as_str())];
        if self.direction == Direction::In {
            fields.extend([
                ("user", self.caller_name.as_str()),
                ("userId", USER_ID),
                ("fullUserId", FULL_USER_ID),
            ]);
        }
        fields.extend([
            ("from", self.from.as_str()),
            ("to", self.to.as_str()),
            ("direction", self.direction.as_str()),
            ("answeringNumber", answering_number),
            ("origCallId", &self.ids.call_id),
            ("xcid", &self.ids.xcid),
        ]);
        form(&fields)
    }

    /// The hangup body (fixtures 09, 10, 12); `answering_number` only if it was answered.
    pub fn hangup_body(&self, cause: &HangupCause, answering_number: Option<&str>) -> String {
        let mut fields = vec![
            ("event", "hangup"),
            ("cause", cause.as_str()),
            ("callId", self.ids.call_id.as_str()),
            ("from", &self.from),
            ("to", &self.to),
            ("direction", self.direction.as_str()),
        ];
        if let Some(number) = answering_number {
            fields.push(("answeringNumber", number));
        }
        fields.extend([
            ("origCallId", self.ids.call_id.as_str()),
            ("xcid", &self.ids.xcid),
        ]);
        form(&fields)
    }

    /// The dtmf body (fixtures 13, 14): without input, sipgate leaves `dtmf` out.
    pub fn dtmf_body(&self, digits: &str) -> String {
        let mut fields = vec![("event", "dtmf")];
        if !digits.is_empty() {
            fields.push(("dtmf", digits));
        }
        fields.push(("callId", &self.ids.call_id));
        form(&fields)
    }
}

/// Encodes like sipgate: `[]` as `%5B%5D`, spaces as `+`, UTF-8 percent-escapes.
fn form(fields: &[(&str, &str)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        serializer.append_pair(name, value);
    }
    serializer.finish()
}

// ---------------------------------------------------------------------------------------
// The XML answer

/// A `<Response>` that passed the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseXml {
    pub on_answer: Option<String>,
    pub on_hangup: Option<String>,
    pub actions: Vec<Action>,
}

/// One child of `<Response>`: an action of sipgate's Push API reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Dial {
        caller_id: Option<String>,
        anonymous: Option<bool>,
        /// Empty for `<Voicemail/>`.
        numbers: Vec<String>,
    },
    Play {
        url: String,
    },
    Gather {
        on_data: String,
        max_digits: u32,
        timeout_ms: u32,
        play: Option<String>,
    },
    Reject {
        busy: bool,
    },
    Hangup,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Dial {
                caller_id,
                anonymous,
                numbers,
            } => {
                if numbers.is_empty() {
                    f.write_str("Dial to voicemail")?;
                } else {
                    write!(f, "Dial {}", numbers.join(", "))?;
                }
                if let Some(caller_id) = caller_id {
                    write!(f, ", callerId {caller_id}")?;
                }
                if let Some(anonymous) = anonymous {
                    write!(f, ", anonymous {anonymous}")?;
                }
                Ok(())
            }
            Action::Play { url } => write!(f, "Play {url}"),
            Action::Gather {
                on_data,
                max_digits,
                timeout_ms,
                play,
            } => {
                write!(
                    f,
                    "Gather up to {max_digits} digits (timeout {timeout_ms} ms) for {on_data}"
                )?;
                if let Some(url) = play {
                    write!(f, ", playing {url}")?;
                }
                Ok(())
            }
            Action::Reject { busy: true } => f.write_str("Reject as busy"),
            Action::Reject { busy: false } => f.write_str("Reject"),
            Action::Hangup => f.write_str("Hangup"),
        }
    }
}

impl ResponseXml {
    /// The first `<Gather>`, unless a `<Reject>` or `<Hangup>` ends the call before it.
    pub fn gather(&self) -> Option<(&str, u32)> {
        for action in &self.actions {
            match action {
                Action::Gather {
                    on_data,
                    max_digits,
                    ..
                } => return Some((on_data, *max_digits)),
                Action::Reject { .. } | Action::Hangup => return None,
                _ => {}
            }
        }
        None
    }

    /// The hangup cause when the XML ends the call unanswered. sipgate documents no cause
    /// for these; `noAnswer` is its cause for a rejecting callee and `normalClearing` the
    /// plain one, so these are the best guesses.
    pub fn ending_cause(&self) -> Option<HangupCause> {
        self.actions.iter().find_map(|action| match action {
            Action::Reject { busy: true } => Some(HangupCause::Busy),
            Action::Reject { busy: false } => Some(HangupCause::NoAnswer),
            Action::Hangup => Some(HangupCause::NormalClearing),
            _ => None,
        })
    }

    /// The number sipgate reports as `answeringNumber`: the first `<Dial>` target, or the
    /// dialled number.
    pub fn answering_number<'a>(&'a self, to: &'a str) -> &'a str {
        self.actions
            .iter()
            .find_map(|action| match action {
                Action::Dial { numbers, .. } => numbers.first().map(|n| n.trim_start_matches('+')),
                _ => None,
            })
            .unwrap_or(to)
    }
}

/// Checks an answer body against what sipgate accepts (the XML of its Push API reference)
/// and reads it.
///
/// # Errors
/// One sentence saying what is wrong, with the line and column for syntax errors.
pub fn check_response(xml: &str, direction: Direction) -> Result<ResponseXml, String> {
    let root = parse_document(xml)?;
    if root.name != "Response" {
        return Err(format!(
            "the root element is <{}>; sipgate expects <Response>",
            root.name
        ));
    }
    only_attributes(&root, &["onAnswer", "onHangup"])?;
    no_text(&root)?;
    let on_answer = url_attribute(&root, "onAnswer")?;
    let on_hangup = url_attribute(&root, "onHangup")?;
    let mut actions = Vec::new();
    for child in &root.children {
        actions.push(check_action(child, direction)?);
    }
    Ok(ResponseXml {
        on_answer,
        on_hangup,
        actions,
    })
}

fn check_action(element: &Element, direction: Direction) -> Result<Action, String> {
    match element.name.as_str() {
        "Dial" => {
            only_attributes(element, &["callerId", "anonymous"])?;
            no_text(element)?;
            let caller_id = element.attribute("callerId").map(str::to_owned);
            if let Some(id) = &caller_id {
                if !is_number(id) {
                    return Err(format!(
                        "<Dial callerId={id:?}> is not a phone number; write E.164 digits such as 492111234567"
                    ));
                }
            }
            let anonymous = match element.attribute("anonymous") {
                None => None,
                Some("true") => Some(true),
                Some("false") => Some(false),
                Some(other) => {
                    return Err(format!(
                        "<Dial anonymous={other:?}> must be \"true\" or \"false\"; leave it out for the account's setting"
                    ));
                }
            };
            let mut numbers = Vec::new();
            let mut voicemail = false;
            for child in &element.children {
                match child.name.as_str() {
                    "Number" => {
                        only_attributes(child, &[])?;
                        no_children(child)?;
                        let number = child.text.trim();
                        if !is_number(number) {
                            return Err(format!(
                                "<Number>{number}</Number> is not a phone number; write E.164 digits such as 4915799912345"
                            ));
                        }
                        numbers.push(number.to_owned());
                    }
                    "Voicemail" => {
                        only_attributes(child, &[])?;
                        no_children(child)?;
                        no_text(child)?;
                        voicemail = true;
                    }
                    other => {
                        return Err(format!(
                            "<{other}> inside <Dial>; sipgate knows <Number> and <Voicemail/> there"
                        ));
                    }
                }
            }
            match (numbers.len(), voicemail) {
                (0, false) => Err(
                    "<Dial> has no target; put <Number>…</Number> or <Voicemail/> inside".into(),
                ),
                (1.., true) => Err(
                    "<Dial> holds both <Number> and <Voicemail/>; sipgate dials either numbers or the voicemail"
                        .into(),
                ),
                (_, true) if element.children.len() > 1 => {
                    Err("<Dial> holds <Voicemail/> more than once".into())
                }
                (count, _) if direction == Direction::In && count > MAX_DIAL_NUMBERS => Err(format!(
                    "<Dial> has {count} <Number>s; sipgate redirects an incoming call to at most {MAX_DIAL_NUMBERS}"
                )),
                _ => Ok(Action::Dial {
                    caller_id,
                    anonymous,
                    numbers,
                }),
            }
        }
        "Play" => check_play(element),
        "Gather" => {
            only_attributes(element, &["onData", "type", "maxDigits", "timeout"])?;
            no_text(element)?;
            let on_data = url_attribute(element, "onData")?.ok_or(
                "<Gather> lacks onData, the URL sipgate POSTs the digits to; add onData=\"http://…/on-dtmf\"",
            )?;
            if let Some(kind) = element.attribute("type") {
                if kind != "dtmf" {
                    return Err(format!(
                        "<Gather type={kind:?}>: sipgate knows only type=\"dtmf\" (the default)"
                    ));
                }
            }
            let max_digits = positive_attribute(element, "maxDigits", 1)?;
            let timeout_ms = positive_attribute(element, "timeout", 2000)?;
            let mut play = None;
            for child in &element.children {
                if child.name != "Play" || play.is_some() {
                    return Err(format!(
                        "<{}> inside <Gather>; only one <Play> may be nested there",
                        child.name
                    ));
                }
                let Action::Play { url } = check_play(child)? else {
                    unreachable!("check_play returns Play")
                };
                play = Some(url);
            }
            Ok(Action::Gather {
                on_data,
                max_digits,
                timeout_ms,
                play,
            })
        }
        "Reject" => {
            only_attributes(element, &["reason"])?;
            no_children(element)?;
            no_text(element)?;
            match element.attribute("reason") {
                None | Some("rejected") => Ok(Action::Reject { busy: false }),
                Some("busy") => Ok(Action::Reject { busy: true }),
                Some(other) => Err(format!(
                    "<Reject reason={other:?}>: sipgate knows reason=\"rejected\" (the default) and reason=\"busy\""
                )),
            }
        }
        "Hangup" => {
            only_attributes(element, &[])?;
            no_children(element)?;
            no_text(element)?;
            Ok(Action::Hangup)
        }
        "Voicemail" => Err(
            "<Voicemail/> directly in <Response>; sipgate wants it inside <Dial>: <Dial><Voicemail/></Dial>"
                .into(),
        ),
        other => Err(format!(
            "unknown action <{other}>; sipgate knows <Dial>, <Play>, <Gather>, <Reject> and <Hangup> (names are case-sensitive)"
        )),
    }
}

fn check_play(element: &Element) -> Result<Action, String> {
    only_attributes(element, &[])?;
    match element.children.as_slice() {
        [url] if url.name == "Url" && element.text.trim().is_empty() => {
            only_attributes(url, &[])?;
            no_children(url)?;
            let text = url.text.trim();
            check_absolute_url(text).map_err(|problem| format!("<Url>{text}</Url>: {problem}"))?;
            Ok(Action::Play {
                url: text.to_owned(),
            })
        }
        _ => Err(
            "<Play> must hold exactly one <Url>https://…/file.wav</Url> and nothing else".into(),
        ),
    }
}

fn is_number(text: &str) -> bool {
    let digits = text.strip_prefix('+').unwrap_or(text);
    !digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit())
}

fn only_attributes(element: &Element, known: &[&str]) -> Result<(), String> {
    for (name, _) in &element.attributes {
        if !known.contains(&name.as_str()) {
            let expected = if known.is_empty() {
                "sipgate knows none there".to_owned()
            } else {
                format!("sipgate knows {} (case-sensitive)", known.join(", "))
            };
            return Err(format!(
                "unknown attribute {name} on <{}>; {expected}",
                element.name
            ));
        }
    }
    Ok(())
}

fn no_text(element: &Element) -> Result<(), String> {
    let text = element.text.trim();
    if text.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "text {:?} inside <{}>, where only elements belong",
            Printable(text).to_string(),
            element.name
        ))
    }
}

fn no_children(element: &Element) -> Result<(), String> {
    match element.children.first() {
        None => Ok(()),
        Some(child) => Err(format!(
            "<{}> inside <{}>, which takes no elements",
            child.name, element.name
        )),
    }
}

fn url_attribute(element: &Element, name: &str) -> Result<Option<String>, String> {
    let Some(value) = element.attribute(name) else {
        return Ok(None);
    };
    check_absolute_url(value)
        .map_err(|problem| format!("<{} {name}={value:?}>: {problem}", element.name))?;
    Ok(Some(value.to_owned()))
}

/// sipgate calls the URLs in the XML from outside, so they must be absolute.
fn check_absolute_url(value: &str) -> Result<(), String> {
    let lower = value.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
    else {
        return Err("sipgate needs an absolute http:// or https:// URL here".into());
    };
    if rest.is_empty() || rest.starts_with(['/', '?', ':']) {
        return Err("the URL has no host name".into());
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a URL cannot hold spaces; percent-encode them as %20".into());
    }
    Ok(())
}

fn positive_attribute(element: &Element, name: &str, default: u32) -> Result<u32, String> {
    match element.attribute(name) {
        None => Ok(default),
        Some(value) => value
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                format!(
                    "<{} {name}={value:?}> must be a whole number of at least 1",
                    element.name
                )
            }),
    }
}

// ---------------------------------------------------------------------------------------
// A reader for the small XML subset sipgate uses: elements, attributes, text, the five
// named entities and character references, comments, an XML declaration. Anything else
// (DOCTYPE, CDATA, processing instructions) is refused, which no sipgate answer needs.

/// One element, with its text content joined.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Element {
    name: String,
    attributes: Vec<(String, String)>,
    children: Vec<Element>,
    text: String,
}

impl Element {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// sipgate's documents are two or three levels deep; the bound keeps a hostile answer from
/// overflowing the stack.
const MAX_DEPTH: usize = 16;

fn parse_document(text: &str) -> Result<Element, String> {
    let mut reader = Reader {
        text: text.strip_prefix('\u{feff}').unwrap_or(text),
        pos: 0,
    };
    if reader.text.trim().is_empty() {
        return Err(
            "the answer is empty; sipgate expects an XML document such as <Response/>".into(),
        );
    }
    if reader.rest().starts_with("<?xml") {
        reader.declaration()?;
    } else if reader.text.trim_start().starts_with("<?xml") {
        return Err(
            "something (a blank line or spaces) comes before <?xml …?>, which must be the very first characters of the answer"
                .into(),
        );
    }
    reader.misc()?;
    if !reader.rest().starts_with('<') {
        return Err(reader.error("expected the <Response> element"));
    }
    let root = reader.element(0)?;
    reader.misc()?;
    if !reader.rest().is_empty() {
        return Err(reader.error(&format!(
            "content after the end of <{}>; a document has one root element",
            root.name
        )));
    }
    Ok(root)
}

struct Reader<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    /// `message`, with the line and column and a glimpse of the text there.
    fn error(&self, message: &str) -> String {
        let before = &self.text[..self.pos];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |at| at + 1) + 1;
        let glimpse: String = self.rest().chars().take(24).collect();
        if glimpse.is_empty() {
            format!("{message} (line {line}, column {column}, at the end)")
        } else {
            format!(
                "{message} (line {line}, column {column}, at {:?})",
                Printable(&glimpse).to_string()
            )
        }
    }

    fn skip_whitespace(&mut self) -> bool {
        let rest = self.rest();
        let trimmed = rest.trim_start_matches([' ', '\t', '\r', '\n']);
        self.pos += rest.len() - trimmed.len();
        trimmed.len() != rest.len()
    }

    fn expect(&mut self, token: &str, what: &str) -> Result<(), String> {
        if self.rest().starts_with(token) {
            self.pos += token.len();
            Ok(())
        } else {
            Err(self.error(&format!("expected {what}")))
        }
    }

    /// `<?xml version="1.0" encoding="UTF-8"?>`: only UTF-8, as the answer is read as UTF-8.
    fn declaration(&mut self) -> Result<(), String> {
        let Some(end) = self.rest().find("?>") else {
            return Err(self.error("the XML declaration <?xml … is not closed with ?>"));
        };
        let inside = self.rest()["<?xml".len()..end].to_owned();
        if let Some(at) = inside.find("encoding=") {
            let value = inside[at + "encoding=".len()..]
                .trim_start_matches(['"', '\''])
                .split(['"', '\''])
                .next()
                .unwrap_or("");
            if !value.eq_ignore_ascii_case("utf-8") {
                return Err(format!(
                    "the XML declaration names encoding {value:?}; send UTF-8 and declare encoding=\"UTF-8\""
                ));
            }
        }
        self.pos += end + 2;
        Ok(())
    }

    /// Whitespace and comments between elements.
    fn misc(&mut self) -> Result<(), String> {
        loop {
            self.skip_whitespace();
            if self.rest().starts_with("<!--") {
                self.comment()?;
            } else if self.rest().starts_with("<!") || self.rest().starts_with("<?") {
                return Err(self.error(
                    "DOCTYPE, CDATA and processing instructions are not part of sipgate's XML",
                ));
            } else {
                return Ok(());
            }
        }
    }

    fn comment(&mut self) -> Result<(), String> {
        match self.rest()[4..].find("-->") {
            Some(end) => {
                self.pos += 4 + end + 3;
                Ok(())
            }
            None => Err(self.error("a comment <!-- is not closed with -->")),
        }
    }

    fn name(&mut self, what: &str) -> Result<String, String> {
        let rest = self.rest();
        let len = rest
            .char_indices()
            .find(|&(at, c)| {
                let allowed = c.is_alphabetic() || c == '_' || c == ':';
                !(allowed || (at > 0 && (c.is_alphanumeric() || c == '-' || c == '.')))
            })
            .map_or(rest.len(), |(at, _)| at);
        if len == 0 {
            return Err(self.error(&format!("expected {what}")));
        }
        let name = rest[..len].to_owned();
        self.pos += len;
        Ok(name)
    }

    fn element(&mut self, depth: usize) -> Result<Element, String> {
        if depth > MAX_DEPTH {
            return Err(self.error(&format!(
                "elements nested more than {MAX_DEPTH} deep; sipgate's XML is three levels deep"
            )));
        }
        self.expect("<", "<")?;
        let name = self.name("an element name after <")?;
        let mut element = Element {
            name,
            attributes: Vec::new(),
            children: Vec::new(),
            text: String::new(),
        };
        loop {
            let spaced = self.skip_whitespace();
            if self.rest().starts_with("/>") {
                self.pos += 2;
                return Ok(element);
            }
            if self.rest().starts_with('>') {
                self.pos += 1;
                break;
            }
            if self.rest().is_empty() {
                return Err(self.error(&format!("<{} is not closed with > or />", element.name)));
            }
            if !spaced {
                return Err(self.error(&format!("expected a space, > or /> in <{}>", element.name)));
            }
            let attribute =
                self.name(&format!("an attribute name, > or /> in <{}>", element.name))?;
            self.skip_whitespace();
            self.expect("=", &format!("= after the attribute name {attribute}"))?;
            self.skip_whitespace();
            let quote = match self.rest().chars().next() {
                Some(quote @ ('"' | '\'')) => quote,
                _ => {
                    return Err(self.error(&format!("expected the value of {attribute} in quotes")));
                }
            };
            self.pos += 1;
            let Some(end) = self.rest().find(quote) else {
                return Err(self.error(&format!(
                    "the value of {attribute} is not closed with {quote}"
                )));
            };
            let raw = &self.rest()[..end];
            if raw.contains('<') {
                return Err(self.error(&format!("the value of {attribute} holds a <; write &lt;")));
            }
            let value = decode(raw).map_err(|problem| {
                self.error(&format!("in the value of {attribute}: {problem}"))
            })?;
            if element.attribute(&attribute).is_some() {
                return Err(self.error(&format!(
                    "the attribute {attribute} appears twice in <{}>",
                    element.name
                )));
            }
            element.attributes.push((attribute, value));
            self.pos += end + 1;
        }
        loop {
            let rest = self.rest();
            if rest.starts_with("</") {
                self.pos += 2;
                let closing = self.name("an element name after </")?;
                if closing != element.name {
                    return Err(self.error(&format!(
                        "</{closing}> closes <{}>; expected </{}>",
                        element.name, element.name
                    )));
                }
                self.skip_whitespace();
                self.expect(">", &format!("> to end </{closing}"))?;
                return Ok(element);
            } else if rest.starts_with("<!--") {
                self.comment()?;
            } else if rest.starts_with("<!") || rest.starts_with("<?") {
                return Err(
                    self.error("CDATA and processing instructions are not part of sipgate's XML")
                );
            } else if rest.starts_with('<') {
                let child = self.element(depth + 1)?;
                element.children.push(child);
            } else if rest.is_empty() {
                return Err(self.error(&format!(
                    "<{}> is not closed; expected </{}>",
                    element.name, element.name
                )));
            } else {
                let end = rest.find('<').unwrap_or(rest.len());
                let text = decode(&rest[..end]).map_err(|problem| self.error(&problem))?;
                element.text.push_str(&text);
                self.pos += end;
            }
        }
    }
}

/// Replaces entity and character references; a bare `&` is an error, the usual one being an
/// unescaped `&` between a URL's query parameters.
fn decode(raw: &str) -> Result<String, String> {
    let mut decoded = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        decoded.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = rest[..rest.len().min(12)].find(';');
        let reference = end.map(|end| &rest[1..end]);
        let c = match reference {
            Some("amp") => Some('&'),
            Some("lt") => Some('<'),
            Some("gt") => Some('>'),
            Some("quot") => Some('"'),
            Some("apos") => Some('\''),
            Some(number) if number.starts_with('#') => {
                let code = match number.strip_prefix("#x") {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => number[1..].parse::<u32>().ok(),
                };
                code.and_then(char::from_u32)
            }
            _ => None,
        };
        match (c, end) {
            (Some(c), Some(end)) => {
                decoded.push(c);
                rest = &rest[end + 1..];
            }
            _ => {
                let glimpse: String = rest.chars().take(12).collect();
                return Err(format!(
                    "a bare & at {glimpse:?}; XML needs &amp; for & (also between a URL's query parameters)"
                ));
            }
        }
    }
    decoded.push_str(rest);
    Ok(decoded)
}

// ---------------------------------------------------------------------------------------
// Playing the call

/// The HTTP client: sipgate's headers, no proxy (sipgate reaches the server directly, and
/// a proxy from the environment would not know localhost), sipgate's ten-second limit, and
/// redirects shown rather than followed, as sipgate is not known to follow them.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(TIMEOUT))
        .max_redirects(0)
        .user_agent("sipgate.io")
        .accept("application/xml, text/plain, text/html")
        .build()
        .into()
}

/// What a server answered.
struct Answer {
    status: u16,
    content_type: Option<String>,
    content_encoding: Option<String>,
    body: String,
}

/// Which request of the call this is, for the messages.
#[derive(Clone, Copy)]
enum Step {
    NewCall,
    Answer,
    Hangup,
    Dtmf,
}

impl Step {
    fn event(self) -> &'static str {
        match self {
            Step::NewCall => "newCall",
            Step::Answer => "answer",
            Step::Hangup => "hangup",
            Step::Dtmf => "dtmf",
        }
    }

    /// Where the URL came from.
    fn source(self) -> &'static str {
        match self {
            Step::NewCall => "URL",
            Step::Answer => "the onAnswer URL of the server's newCall answer",
            Step::Hangup => "the onHangup URL of the server's newCall answer",
            Step::Dtmf => "the <Gather onData> URL of the server's newCall answer",
        }
    }
}

fn simulate(options: &Options, call: &Call, out: &mut dyn Write) -> Result<(), Error> {
    let agent = agent();
    let say = |out: &mut dyn Write, text: &str| -> Result<(), Error> {
        writeln!(out, "{text}").map_err(print_failed)
    };

    say(
        out,
        &format!(
            "Simulating an {} call from {} to {} against {}, as sipgate would (unsigned)",
            match call.direction {
                Direction::In => "incoming",
                Direction::Out => "outgoing",
            },
            call.from,
            call.to,
            options.url
        ),
    )?;
    say(out, "")?;

    let new_call_url = options.url.callback(paths::NEW_CALL);
    let answer = post(
        &agent,
        out,
        Step::NewCall,
        &new_call_url,
        &call.new_call_body(),
    )?;
    let xml = check_xml_answer(Step::NewCall, &new_call_url, &answer, call.direction)?;
    describe(out, &xml)?;
    let mut sent = vec!["newCall"];
    if xml.on_answer.is_none() && xml.on_hangup.is_none() && xml.gather().is_none() {
        // Nothing subscribed: sipgate would send nothing more, so there is nothing to wait for.
        return say(
            out,
            &format!(
                "The call went through: the server accepted newCall and subscribed to no further events (callId {}).",
                call.ids.call_id
            ),
        );
    }

    let mut ending = options.cause.clone().map(|cause| (cause, false));
    if ending.is_none() {
        ending = xml.ending_cause().map(|cause| (cause, true));
    }
    let mut paused = false;

    if let Some((on_data, max_digits)) = xml.gather() {
        pause(
            out,
            options.ring,
            "ringing; the caller listens and presses keys",
        )?;
        paused = true;
        let digits: String = options.digits.chars().take(max_digits as usize).collect();
        if digits.len() < options.digits.len() {
            say(
                out,
                &format!(
                    "(sipgate stops after maxDigits={max_digits}: sending {digits:?} of {:?})",
                    options.digits
                ),
            )?;
        }
        let url = followable(Step::Dtmf, on_data)?;
        let answer = post(&agent, out, Step::Dtmf, url, &call.dtmf_body(&digits))?;
        if !answer.body.trim().is_empty() {
            let dtmf_xml = check_xml_answer(Step::Dtmf, url, &answer, call.direction)?;
            describe(out, &dtmf_xml)?;
            if ending.is_none() {
                ending = dtmf_xml.ending_cause().map(|cause| (cause, true));
            }
        }
        sent.push("dtmf");
    }

    let (cause, guessed) = ending.unwrap_or((HangupCause::NormalClearing, false));
    if guessed {
        say(
            out,
            &format!(
                "(the XML ends the call unanswered; the simulator sends hangup cause {}, its best guess, as sipgate documents none; --cause overrides it)",
                cause.as_str()
            ),
        )?;
    }
    let answered = was_answered(&cause);
    let answering_number = xml.answering_number(&call.to).to_owned();

    if answered {
        if let Some(url) = &xml.on_answer {
            if !paused {
                pause(out, options.ring, "ringing")?;
            }
            let url = followable(Step::Answer, url)?;
            // sipgate discards the body of this answer; post() already checked the status.
            post(
                &agent,
                out,
                Step::Answer,
                url,
                &call.answer_body(&answering_number),
            )?;
            sent.push("answer");
        } else {
            say(
                out,
                "(no onAnswer in the XML, so sipgate sends no answer event)",
            )?;
        }
        pause(out, options.talk, "talking")?;
    } else if !paused {
        pause(out, options.ring, "ringing, never answered")?;
    }

    if let Some(url) = &xml.on_hangup {
        let url = followable(Step::Hangup, url)?;
        let body = call.hangup_body(&cause, answered.then_some(answering_number.as_str()));
        post(&agent, out, Step::Hangup, url, &body)?;
        sent.push("hangup");
    } else {
        say(
            out,
            "(no onHangup in the XML, so sipgate sends no hangup event)",
        )?;
    }

    say(
        out,
        &format!(
            "The call went through: the server accepted {} (callId {}).",
            sent.join(", "),
            call.ids.call_id
        ),
    )
}

fn print_failed(error: io::Error) -> Error {
    Error::call(format!("cannot write to stdout: {error}"))
}

fn pause(out: &mut dyn Write, duration: Duration, what: &str) -> Result<(), Error> {
    if !duration.is_zero() {
        writeln!(out, "... {what} for {} ms\n", duration.as_millis())
            .and_then(|()| out.flush())
            .map_err(print_failed)?;
        thread::sleep(duration);
    }
    Ok(())
}

/// The simulator can only follow http URLs; an https one in the server's XML usually means
/// WEBHOOK_URL is set to the public address, which the simulator cannot (and need not) use.
fn followable(step: Step, url: &str) -> Result<&str, Error> {
    if url.to_ascii_lowercase().starts_with("https://") {
        return Err(Error::call(format!(
            "cannot follow {} {url:?}: the simulator speaks plain http only; for a local test start the server without WEBHOOK_URL (it defaults to {DEFAULT_URL}) or with an http:// one",
            step.source()
        )));
    }
    Ok(url)
}

/// Shows what the XML asks sipgate to do.
fn describe(out: &mut dyn Write, xml: &ResponseXml) -> Result<(), Error> {
    let mut lines = vec!["The answer is valid sipgate XML:".to_owned()];
    for (name, url) in [("answer", &xml.on_answer), ("hangup", &xml.on_hangup)] {
        if let Some(url) = url {
            lines.push(format!("  sends {name} to {url}"));
        }
    }
    for action in &xml.actions {
        lines.push(format!("  {action}"));
    }
    if lines.len() == 1 {
        lines.push("  no actions, no follow-up events: sipgate routes the call normally".into());
    }
    lines.push(String::new());
    writeln!(out, "{}", lines.join("\n")).map_err(print_failed)
}

/// POSTs one event like sipgate and prints the request and the answer.
fn post(
    agent: &ureq::Agent,
    out: &mut dyn Write,
    step: Step,
    url: &str,
    body: &str,
) -> Result<Answer, Error> {
    let printed = print_failed;
    writeln!(out, "> POST {url}").map_err(printed)?;
    for (name, value) in form_urlencoded::parse(body.as_bytes()) {
        writeln!(out, ">   {name} = {}", Printable(&value)).map_err(printed)?;
    }
    out.flush().map_err(printed)?;

    let result = agent
        .post(url)
        .header(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=UTF-8",
        )
        .header("Accept-Charset", "utf-8")
        .header("Accept-Encoding", "gzip,deflate")
        .send(body);
    let mut response = match result {
        Ok(response) => response,
        Err(error) => return Err(Error::call(unreachable_message(step, url, &error))),
    };
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type");
    let content_encoding = header("content-encoding");
    let status = response.status();
    let bytes = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_vec()
        .map_err(|error| {
            Error::call(format!(
                "could not read the server's answer to {} at {url}: {error}; sipgate needs a complete answer of a few hundred bytes",
                step.event()
            ))
        })?;
    let body = String::from_utf8_lossy(&bytes).into_owned();

    let mut status_line = format!(
        "< {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    if let Some(content_type) = &content_type {
        status_line.push_str(&format!(" ({content_type})"));
    }
    writeln!(out, "{}", status_line.trim_end()).map_err(printed)?;
    if body.trim().is_empty() {
        writeln!(out, "<   (empty body)").map_err(printed)?;
    }
    let lines: Vec<&str> = body
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    // An error page can be long; its start says what it is.
    for line in lines.iter().take(MAX_SHOWN_LINES) {
        writeln!(out, "<   {}", Printable(line)).map_err(printed)?;
    }
    if lines.len() > MAX_SHOWN_LINES {
        writeln!(out, "<   (… {} more lines)", lines.len() - MAX_SHOWN_LINES).map_err(printed)?;
    }
    writeln!(out).map_err(printed)?;

    let answer = Answer {
        status: status.as_u16(),
        content_type,
        content_encoding,
        body,
    };
    if !(200..300).contains(&answer.status) {
        return Err(Error::call(refusal_message(step, url, &answer)));
    }
    if std::str::from_utf8(&bytes).is_err() {
        return Err(Error::call(format!(
            "the server's answer to {} is not UTF-8; send XML in UTF-8",
            step.event()
        )));
    }
    Ok(answer)
}

fn unreachable_message(step: Step, url: &str, error: &ureq::Error) -> String {
    let what = match step {
        Step::NewCall => format!("at {url}"),
        _ => format!("at {url} ({})", step.source()),
    };
    let start = format!(
        "start one in another terminal with `SKIP_SIGNATURE_VERIFICATION=true cargo run --release` (or `SKIP_SIGNATURE_VERIFICATION=true sipgateio-callevents`), or pass its URL: sipgateio-callevents simulate http://HOST:PORT; the default is {DEFAULT_URL}"
    );
    let follow_up_hint = match step {
        Step::NewCall => start,
        _ => "the server's WEBHOOK_URL must be an address at which it can be reached".into(),
    };
    match error {
        ureq::Error::Io(io) if io.kind() == io::ErrorKind::ConnectionRefused => {
            format!("no server is listening {what} (connection refused); {follow_up_hint}")
        }
        ureq::Error::ConnectionFailed => {
            format!("could not connect {what}; {follow_up_hint}")
        }
        ureq::Error::HostNotFound => format!(
            "the host of {url} is not found ({}); check the host name",
            step.source()
        ),
        ureq::Error::Timeout(_) => format!(
            "no complete answer to {} {what} within {} s; sipgate gives up then and puts the call through without the server's XML: answer faster and close the response",
            step.event(),
            TIMEOUT.as_secs()
        ),
        other => format!("the {} request {what} failed: {other}", step.event()),
    }
}

fn refusal_message(step: Step, url: &str, answer: &Answer) -> String {
    let said = match answer.body.trim() {
        "" => String::new(),
        body => format!(
            " (the server said {:?})",
            Printable(&body.chars().take(200).collect::<String>()).to_string()
        ),
    };
    let status = answer.status;
    let event = step.event();
    let advice = match status {
        403 => "signature verification is on, and the simulator cannot sign its requests (only sipgate has the private key); start the server with SKIP_SIGNATURE_VERIFICATION=true for local testing".to_owned(),
        404 => match step {
            Step::NewCall => "no route at that path; if the server's WEBHOOK_URL has a path, add it to URL, e.g. simulate http://localhost:8080/PATH".to_owned(),
            _ => format!("the URL came from {}, so it does not match the server's own routes; check WEBHOOK_URL", step.source()),
        },
        400 | 415 => "the server does not accept sipgate's own request format; this is a bug in the server".to_owned(),
        413 => "the body is larger than the server allows; raise MAX_BODY_BYTES".to_owned(),
        300..=399 => "sipgate is not known to follow redirects; give sipgate the final URL".to_owned(),
        _ => "sipgate treats any answer but 2xx as a failed push and puts the call through with the account's settings".to_owned(),
    };
    format!("the server refused the {event} at {url} with {status}{said}: {advice}")
}

/// A newCall or dtmf answer: sipgate reads it, so it must be XML it accepts.
fn check_xml_answer(
    step: Step,
    url: &str,
    answer: &Answer,
    direction: Direction,
) -> Result<ResponseXml, Error> {
    let event = step.event();
    if let Some(encoding) = answer
        .content_encoding
        .as_deref()
        .filter(|encoding| !encoding.eq_ignore_ascii_case("identity"))
    {
        return Err(Error::call(format!(
            "the server's answer to {event} is compressed (Content-Encoding: {encoding}); sipgate asks for gzip but is not known to decode it: send it uncompressed"
        )));
    }
    let media_type = answer.content_type.as_deref().map(|value| {
        value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    if !matches!(media_type.as_deref(), Some("application/xml" | "text/xml")) {
        return Err(Error::call(format!(
            "the server answered {event} at {url} with Content-Type {:?}; sipgate ignores answers that are not application/xml (or text/xml)",
            answer.content_type.as_deref().unwrap_or("(none)")
        )));
    }
    check_response(&answer.body, direction).map_err(|problem| {
        Error::call(format!(
            "the server's answer to {event} at {url} is not valid sipgate XML: {problem}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str =
        "54566B150B0C0D3A5D534D5F565D7C5F54535A5C5B53525A7E5B5D5745504457444C425D5057";
    const CID_OUT: &str =
        "54566B150B0C0D3A5D50435A5D5A7E5B525551575452535A7C50565745514058474144555A56";

    fn args(list: &[&str]) -> Result<Command, Error> {
        parse_args(list.iter().map(|arg| (*arg).to_owned()))
    }

    fn options(list: &[&str]) -> Options {
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

    fn call(list: &[&str], call_id: &str, xcid: &str) -> Call {
        Call::new(
            &options(list),
            &Ids {
                call_id: call_id.into(),
                xcid: xcid.into(),
            },
        )
    }

    #[test]
    fn defaults_play_an_incoming_call_against_localhost() {
        let options = options(&[]);
        assert_eq!(
            options.url.callback(paths::NEW_CALL),
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
            options.url.callback(paths::NEW_CALL),
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

    #[test]
    fn bodies_match_sipgates_captures_byte_for_byte() {
        let incoming = call(&[], CID, "8419b3450b75cd19");
        assert_eq!(
            incoming.new_call_body(),
            include_str!("../tests/fixtures/01-newcall-in.form")
        );
        assert_eq!(
            incoming.answer_body("4915791234567"),
            include_str!("../tests/fixtures/07-answer-in.form")
        );
        assert_eq!(
            incoming.hangup_body(&HangupCause::NormalClearing, Some("4915791234567")),
            include_str!("../tests/fixtures/09-hangup-normalclearing.form")
        );

        let outgoing = call(
            &["--direction", "out", "--to", "4915799912345"],
            CID_OUT,
            "0a1b2c3d4e5f6789",
        );
        assert_eq!(
            outgoing.new_call_body(),
            include_str!("../tests/fixtures/04-newcall-out.form")
        );
        assert_eq!(
            outgoing.answer_body("4915799912345"),
            include_str!("../tests/fixtures/08-answer-out.form")
        );
        assert_eq!(
            outgoing.hangup_body(&HangupCause::Busy, None),
            include_str!("../tests/fixtures/12-hangup-busy-out.form")
        );

        let keys = call(
            &[],
            "54566B150B0C0D3A5D564D5F565F735B54565B54505E535E78595756455045544647465F5A57",
            "x",
        );
        assert_eq!(
            keys.dtmf_body("0815"),
            include_str!("../tests/fixtures/13-dtmf-digits.form")
        );
        assert_eq!(
            keys.dtmf_body(""),
            include_str!("../tests/fixtures/14-dtmf-omitted.form")
        );
    }

    #[test]
    fn names_are_encoded_like_sipgate_does() {
        let body = call(&["--caller-name", "Jörg Müller"], "C", "x").new_call_body();
        assert!(
            body.contains("&user%5B%5D=J%C3%B6rg+M%C3%BCller&"),
            "{body}"
        );
        let body = call(&["--caller-name", "a&b=c+d"], "C", "x").new_call_body();
        assert!(body.contains("&user%5B%5D=a%26b%3Dc%2Bd&"), "{body}");
    }

    #[test]
    fn random_ids_have_sipgates_shape_and_differ() {
        let (a, b) = (Ids::random(), Ids::random());
        assert_ne!(a, b);
        for ids in [a, b] {
            assert_eq!(ids.call_id.len(), 76);
            assert!(
                ids.call_id
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'))
            );
            assert_eq!(ids.xcid.len(), 16);
            assert!(
                ids.xcid
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            );
        }
    }

    #[test]
    fn the_servers_own_answer_is_valid() {
        let doc = crate::xml::ResponseDoc {
            on_answer: Some("http://localhost:8080/on-answer?t=1&u=2".into()),
            on_hangup: Some("http://localhost:8080/on-hangup".into()),
        };
        let xml = check_response(&doc.to_xml(), Direction::In).unwrap();
        assert_eq!(
            xml,
            ResponseXml {
                on_answer: Some("http://localhost:8080/on-answer?t=1&u=2".into()),
                on_hangup: Some("http://localhost:8080/on-hangup".into()),
                actions: vec![],
            }
        );
        let empty = check_response("<Response/>", Direction::In).unwrap();
        assert_eq!((empty.on_answer, empty.actions.len()), (None, 0));
    }

    #[test]
    fn every_documented_action_is_read() {
        let xml = "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
            <!-- from the spec -->\n\
            <Response onHangup='https://h.example/x?a=1&amp;b=&#x32;'>\n\
            \t<Dial callerId=\"492111234567\" anonymous=\"false\">\n\
            \t\t<Number>4915799912345</Number>\n\
            \t\t<Number>+492111234567</Number>\n\
            \t</Dial>\n\
            \t<Dial><Voicemail /></Dial>\n\
            \t<Play><Url>https://example.com/example.wav</Url></Play>\n\
            \t<Gather onData=\"http://h.example/dtmf\" maxDigits=\"3\" timeout=\"10000\">\n\
            \t\t<Play><Url> https://example.com/example.wav </Url></Play>\n\
            \t</Gather>\n\
            \t<Reject reason=\"busy\" />\n\
            \t<Reject/>\n\
            \t<Hangup></Hangup>\n\
            </Response>\n";
        let doc = check_response(xml, Direction::In).unwrap();
        assert_eq!(
            doc.on_hangup.as_deref(),
            Some("https://h.example/x?a=1&b=2")
        );
        assert_eq!(
            doc.actions,
            vec![
                Action::Dial {
                    caller_id: Some("492111234567".into()),
                    anonymous: Some(false),
                    numbers: vec!["4915799912345".into(), "+492111234567".into()],
                },
                Action::Dial {
                    caller_id: None,
                    anonymous: None,
                    numbers: vec![],
                },
                Action::Play {
                    url: "https://example.com/example.wav".into()
                },
                Action::Gather {
                    on_data: "http://h.example/dtmf".into(),
                    max_digits: 3,
                    timeout_ms: 10000,
                    play: Some("https://example.com/example.wav".into()),
                },
                Action::Reject { busy: true },
                Action::Reject { busy: false },
                Action::Hangup,
            ]
        );
        assert_eq!(doc.gather(), Some(("http://h.example/dtmf", 3)));
        assert_eq!(doc.answering_number("49"), "4915799912345");
        assert_eq!(doc.ending_cause(), Some(HangupCause::Busy));
    }

    #[test]
    fn gather_defaults_and_what_ends_a_call() {
        let doc = check_response(
            "<Response><Gather onData=\"http://h/d\"/></Response>",
            Direction::In,
        )
        .unwrap();
        assert_eq!(doc.gather(), Some(("http://h/d", 1)));
        assert_eq!(doc.ending_cause(), None);
        assert_eq!(doc.answering_number("4930"), "4930");
        let doc = check_response(
            "<Response><Hangup/><Gather onData=\"http://h/d\"/></Response>",
            Direction::In,
        )
        .unwrap();
        assert_eq!(doc.gather(), None, "the call ends before the Gather");
        assert_eq!(doc.ending_cause(), Some(HangupCause::NormalClearing));
        let doc = check_response("<Response><Reject/></Response>", Direction::In).unwrap();
        assert_eq!(doc.ending_cause(), Some(HangupCause::NoAnswer));
    }

    #[test]
    fn wrong_answers_are_explained() {
        let six = "<Number>1</Number>".repeat(6);
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "the answer is empty"),
            ("  \n".into(), "the answer is empty"),
            (
                "ok".into(),
                "expected the <Response> element (line 1, column 1, at \"ok\")",
            ),
            ("{\"ok\":true}".into(), "expected the <Response> element"),
            (
                "<html><body>hi</body></html>".into(),
                "the root element is <html>; sipgate expects <Response>",
            ),
            (
                "\n<?xml version=\"1.0\"?><Response/>".into(),
                "must be the very first characters",
            ),
            (
                "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><Response/>".into(),
                "encoding \"ISO-8859-1\"",
            ),
            (
                "<Response onAnswer=\"http://h/a?x=1&y=2\"/>".into(),
                "a bare & at \"&y=2\"; XML needs &amp;",
            ),
            (
                "<Response onAnswer=\"/on-answer\"/>".into(),
                "<Response onAnswer=\"/on-answer\">: sipgate needs an absolute http:// or https:// URL",
            ),
            ("<Response onAnswer=\"http:///x\"/>".into(), "no host name"),
            (
                "<Response onanswer=\"http://h/a\"/>".into(),
                "unknown attribute onanswer on <Response>; sipgate knows onAnswer, onHangup",
            ),
            (
                "<Response onData=\"http://h/a\"/>".into(),
                "unknown attribute onData on <Response>",
            ),
            (
                "<Response onAnswer=\"http://h/a\" onAnswer=\"http://h/b\"/>".into(),
                "appears twice",
            ),
            (
                "<Response onAnswer=http://h/a/>".into(),
                "expected the value of onAnswer in quotes",
            ),
            (
                "<Response onAnswer=\"http://h/a\"onHangup=\"http://h/b\"/>".into(),
                "expected a space, > or /> in <Response>",
            ),
            (
                "<Response>".into(),
                "<Response> is not closed; expected </Response>",
            ),
            (
                "<Response></Respons>".into(),
                "</Respons> closes <Response>",
            ),
            (
                "<Response/><Response/>".into(),
                "content after the end of <Response>",
            ),
            (
                "<Response/>trailing".into(),
                "content after the end of <Response>",
            ),
            (
                "<Response>hello</Response>".into(),
                "text \"hello\" inside <Response>",
            ),
            ("<!DOCTYPE x><Response/>".into(), "DOCTYPE"),
            ("<Response><![CDATA[x]]></Response>".into(), "CDATA"),
            (
                "<Response><Voicemail/></Response>".into(),
                "<Dial><Voicemail/></Dial>",
            ),
            (
                "<Response><dial/></Response>".into(),
                "unknown action <dial>",
            ),
            (
                "<Response><Dial/></Response>".into(),
                "<Dial> has no target",
            ),
            (
                "<Response><Dial><Number>0800 123</Number></Dial></Response>".into(),
                "is not a phone number",
            ),
            (
                "<Response><Dial anonymous=\"undefined\"><Voicemail/></Dial></Response>".into(),
                "anonymous=\"undefined\"> must be \"true\" or \"false\"",
            ),
            (
                "<Response><Dial><Number>1</Number><Voicemail/></Dial></Response>".into(),
                "both <Number> and <Voicemail/>",
            ),
            (
                format!("<Response><Dial>{six}</Dial></Response>"),
                "at most 5",
            ),
            (
                "<Response><Play>http://h/a.wav</Play></Response>".into(),
                "<Play> must hold exactly one <Url>",
            ),
            (
                "<Response><Play><Url>a.wav</Url></Play></Response>".into(),
                "<Url>a.wav</Url>: sipgate needs an absolute",
            ),
            (
                "<Response><Gather maxDigits=\"3\"/></Response>".into(),
                "<Gather> lacks onData",
            ),
            (
                "<Response><Gather onData=\"http://h/d\" maxDigits=\"0\"/></Response>".into(),
                "maxDigits=\"0\"> must be a whole number of at least 1",
            ),
            (
                "<Response><Gather onData=\"http://h/d\" type=\"speech\"/></Response>".into(),
                "type=\"dtmf\"",
            ),
            (
                "<Response><Gather onData=\"http://h/d\"><Hangup/></Gather></Response>".into(),
                "<Hangup> inside <Gather>",
            ),
            (
                "<Response><Reject reason=\"nope\"/></Response>".into(),
                "reason=\"busy\"",
            ),
            (
                "<Response><Hangup>now</Hangup></Response>".into(),
                "text \"now\" inside <Hangup>",
            ),
            (
                "<Response><Hangup/><!-- open</Response>".into(),
                "comment <!-- is not closed",
            ),
            (
                "<Response><A><A><A><A><A><A><A><A><A><A><A><A><A><A><A><A><A><A>".into(),
                "nested more than 16 deep",
            ),
        ];
        for (xml, expected) in &cases {
            let problem = check_response(xml, Direction::In).unwrap_err();
            assert!(problem.contains(expected), "{xml:?}: {problem}");
        }
        assert!(
            check_response(
                &format!("<Response><Dial>{six}</Dial></Response>"),
                Direction::Out
            )
            .is_ok(),
            "the five-number limit is for incoming calls"
        );
    }

    #[test]
    fn refusals_say_what_to_do() {
        let answer = |status: u16, body: &str| Answer {
            status,
            content_type: Some("text/plain".into()),
            content_encoding: None,
            body: body.into(),
        };
        let message = refusal_message(
            Step::NewCall,
            "http://l/new-call",
            &answer(403, "forbidden: no signature"),
        );
        assert!(
            message.contains("with 403 (the server said \"forbidden: no signature\")"),
            "{message}"
        );
        assert!(
            message.contains("start the server with SKIP_SIGNATURE_VERIFICATION=true"),
            "{message}"
        );
        let message = refusal_message(Step::NewCall, "http://l/new-call", &answer(404, ""));
        assert!(message.contains("add it to URL"), "{message}");
        let message = refusal_message(Step::Answer, "http://l/on-answer", &answer(500, ""));
        assert!(message.contains("failed push"), "{message}");

        let error = check_xml_answer(
            Step::NewCall,
            "http://l/new-call",
            &answer(200, "<Response/>"),
            Direction::In,
        )
        .unwrap_err();
        assert!(
            error.message.contains("Content-Type \"text/plain\""),
            "{error}"
        );
        assert_eq!(error.exit_code(), 1);
        let xml = Answer {
            content_type: Some("text/xml; charset=utf-8".into()),
            ..answer(200, "<Response/>")
        };
        assert!(check_xml_answer(Step::NewCall, "u", &xml, Direction::In).is_ok());
        let gzipped = Answer {
            content_encoding: Some("gzip".into()),
            ..xml
        };
        let error = check_xml_answer(Step::NewCall, "u", &gzipped, Direction::In).unwrap_err();
        assert!(error.message.contains("compressed"), "{error}");
    }

    #[test]
    fn https_follow_ups_are_refused_with_the_fix() {
        let error = followable(Step::Answer, "https://public.example/on-answer").unwrap_err();
        assert!(
            error
                .message
                .contains("start the server without WEBHOOK_URL"),
            "{error}"
        );
        assert_eq!(
            followable(Step::Answer, "http://l/on-answer").unwrap(),
            "http://l/on-answer"
        );
    }

    #[test]
    fn only_normal_clearing_was_answered() {
        for cause in HangupCause::DOCUMENTED {
            assert_eq!(
                was_answered(&cause),
                cause == HangupCause::NormalClearing,
                "{cause:?}"
            );
        }
    }
}
