//! The answers sipgate takes to a `newCall` (and to a `dtmf` push): a typed model of its
//! XML, in which a value sipgate would refuse cannot be built.
//!
//! The elements and their rules are sipgate's, from
//! <https://developer.sipgate.io/push-api/api-reference/> ("The XML response", "Actions"):
//! `<Response>` carries `onAnswer`/`onHangup`; its actions are `<Dial>` (up to 5 `<Number>`s,
//! or `<Voicemail/>`), `<Play>` (a `<Url>`), `<Gather>` (`onData`, `maxDigits`, `timeout`, an
//! optional nested `<Play>`), `<Reject reason>` and `<Hangup/>`.
//!
//! Built as `Response::new().on_hangup(url).action(Action::Dial(dial))`, rendered with
//! [`Response::to_xml`].

use std::fmt::{self, Write as _};

use crate::xml::escape;

/// Why a value cannot be part of an answer; names the value and what sipgate takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerError {
    /// Not a phone number sipgate dials.
    Number(String),
    /// Not an absolute `http://` or `https://` URL.
    Url(String),
    /// `<Dial>` without targets, or with more than sipgate rings at once.
    DialTargets(usize),
    /// `maxDigits` below 1.
    MaxDigits(u32),
    /// `timeout` below 1 ms.
    Timeout(u32),
    /// Not one of sipgate's reject reasons.
    RejectReason(String),
}

impl fmt::Display for AnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerError::Number(text) => write!(
                f,
                "{text:?} is not a phone number sipgate can dial: expected E.164 digits without spaces, such as 4915790000000 (a leading + is allowed)"
            ),
            AnswerError::Url(text) => write!(
                f,
                "{text:?} is not an absolute URL: expected http:// or https:// with a host, such as https://example.com/menu.wav"
            ),
            AnswerError::DialTargets(count) => write!(
                f,
                "dial has {count} numbers; sipgate rings 1 to {MAX_DIAL_NUMBERS} at once"
            ),
            AnswerError::MaxDigits(n) => {
                write!(f, "max_digits {n} is too small: at least 1 digit")
            }
            AnswerError::Timeout(n) => write!(f, "timeout_ms {n} is too small: at least 1 ms"),
            AnswerError::RejectReason(text) => {
                write!(
                    f,
                    "reject reason {text:?} is unknown: expected busy or rejected"
                )
            }
        }
    }
}

impl std::error::Error for AnswerError {}

/// sipgate redirects a call "to up to 5 targets".
pub const MAX_DIAL_NUMBERS: usize = 5;

/// E.164 allows at most 15 digits; the shortest numbers sipgate dials are short service
/// numbers.
const NUMBER_DIGITS: std::ops::RangeInclusive<usize> = 2..=15;

/// A phone number as sipgate dials it: E.164 digits without `+` (`4915790000000`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Number(String);

impl Number {
    /// Accepts E.164 digits, with or without a leading `+`, which is dropped: sipgate's own
    /// examples never send it.
    ///
    /// # Errors
    /// Anything else: spaces, letters, too few or too many digits.
    pub fn new(text: &str) -> Result<Number, AnswerError> {
        let digits = text.strip_prefix('+').unwrap_or(text);
        if NUMBER_DIGITS.contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Number(digits.to_owned()))
        } else {
            Err(AnswerError::Number(text.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An absolute `http://` or `https://` URL: sipgate fetches `<Play>` files and posts
/// events there, so a relative one cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Url(String);

impl Url {
    /// # Errors
    /// Not `http://` or `https://` followed by a host, or holding whitespace or control
    /// characters.
    pub fn new(text: &str) -> Result<Url, AnswerError> {
        let lower = text.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"));
        // The host is what follows the user info, if any, in the authority: a user name
        // may be empty (`http://:secret@host`), the host may not (`http://user@:80`).
        let host_present = rest.is_some_and(|rest| {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            let host = authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host);
            !host.is_empty() && !host.starts_with(':')
        });
        if host_present && !text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Ok(Url(text.to_owned()))
        } else {
            Err(AnswerError::Url(text.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whom a `<Dial>` rings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialTarget {
    /// 1 to [`MAX_DIAL_NUMBERS`] numbers, rung at once; the first to answer takes the call.
    Numbers(Vec<Number>),
    /// The account's voicemail (it must be booked).
    Voicemail,
}

/// `<Dial>`: redirects the call. Dialling out costs call charges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    target: DialTarget,
    caller_id: Option<Number>,
    anonymous: Option<bool>,
}

impl Dial {
    /// Rings `numbers` at once.
    ///
    /// # Errors
    /// No number, or more than [`MAX_DIAL_NUMBERS`].
    pub fn numbers(numbers: Vec<Number>) -> Result<Dial, AnswerError> {
        if numbers.is_empty() || numbers.len() > MAX_DIAL_NUMBERS {
            return Err(AnswerError::DialTargets(numbers.len()));
        }
        Ok(Dial::to(DialTarget::Numbers(numbers)))
    }

    /// Sends the call to the voicemail.
    pub fn voicemail() -> Dial {
        Dial::to(DialTarget::Voicemail)
    }

    fn to(target: DialTarget) -> Dial {
        Dial {
            target,
            caller_id: None,
            anonymous: None,
        }
    }

    /// The number the called party sees (`callerId`).
    #[must_use]
    pub fn caller_id(self, number: Number) -> Dial {
        Dial {
            caller_id: Some(number),
            ..self
        }
    }

    /// Whether the called party sees no number at all (`anonymous`).
    #[must_use]
    pub fn anonymous(self, anonymous: bool) -> Dial {
        Dial {
            anonymous: Some(anonymous),
            ..self
        }
    }

    pub fn target(&self) -> &DialTarget {
        &self.target
    }

    pub fn caller_id_number(&self) -> Option<&Number> {
        self.caller_id.as_ref()
    }

    pub fn is_anonymous(&self) -> Option<bool> {
        self.anonymous
    }
}

/// `<Play>`: plays a sound file (a mono 16-bit PCM WAV at 8 kHz), then the call goes on as
/// it would have without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Play {
    pub url: Url,
}

/// `<Gather>`: collects keypad digits and posts them as a `dtmf` event to `onData`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gather {
    on_data: Url,
    max_digits: u32,
    timeout_ms: u32,
    play: Option<Play>,
}

impl Gather {
    /// sipgate's defaults when the attributes are left out.
    pub const DEFAULT_MAX_DIGITS: u32 = 1;
    pub const DEFAULT_TIMEOUT_MS: u32 = 2000;

    /// Digits go to `on_data`; one digit, waited for 2 seconds, as sipgate's defaults.
    pub fn new(on_data: Url) -> Gather {
        Gather {
            on_data,
            max_digits: Gather::DEFAULT_MAX_DIGITS,
            timeout_ms: Gather::DEFAULT_TIMEOUT_MS,
            play: None,
        }
    }

    /// # Errors
    /// `max_digits` is 0.
    pub fn max_digits(self, max_digits: u32) -> Result<Gather, AnswerError> {
        if max_digits == 0 {
            return Err(AnswerError::MaxDigits(max_digits));
        }
        Ok(Gather { max_digits, ..self })
    }

    /// How long sipgate waits for digits, after the announcement has played.
    ///
    /// # Errors
    /// `timeout_ms` is 0.
    pub fn timeout_ms(self, timeout_ms: u32) -> Result<Gather, AnswerError> {
        if timeout_ms == 0 {
            return Err(AnswerError::Timeout(timeout_ms));
        }
        Ok(Gather { timeout_ms, ..self })
    }

    /// An announcement played while digits are awaited; the first digit stops it.
    #[must_use]
    pub fn play(self, play: Play) -> Gather {
        Gather {
            play: Some(play),
            ..self
        }
    }

    pub fn on_data(&self) -> &Url {
        &self.on_data
    }

    pub fn max_digit_count(&self) -> u32 {
        self.max_digits
    }

    pub fn timeout(&self) -> u32 {
        self.timeout_ms
    }

    pub fn announcement(&self) -> Option<&Play> {
        self.play.as_ref()
    }
}

/// `<Reject reason>`: what the caller hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// The call is refused (sipgate's default).
    Rejected,
    /// The line sounds busy.
    Busy,
}

impl RejectReason {
    /// sipgate's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Rejected => "rejected",
            RejectReason::Busy => "busy",
        }
    }
}

impl std::str::FromStr for RejectReason {
    type Err = AnswerError;

    fn from_str(text: &str) -> Result<RejectReason, AnswerError> {
        match text {
            "rejected" => Ok(RejectReason::Rejected),
            "busy" => Ok(RejectReason::Busy),
            _ => Err(AnswerError::RejectReason(text.to_owned())),
        }
    }
}

/// One action of a `<Response>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Dial(Dial),
    Play(Play),
    Gather(Gather),
    Reject(RejectReason),
    Hangup,
}

/// The whole answer: the follow-up subscriptions and the actions. Without actions, the
/// call goes on as the account is set up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    on_answer: Option<Url>,
    on_hangup: Option<Url>,
    actions: Vec<Action>,
}

impl Response {
    pub fn new() -> Response {
        Response::default()
    }

    /// Where sipgate posts `event=answer` when the call is answered.
    #[must_use]
    pub fn on_answer(self, url: Url) -> Response {
        Response {
            on_answer: Some(url),
            ..self
        }
    }

    /// Where sipgate posts `event=hangup` when the call ends.
    #[must_use]
    pub fn on_hangup(self, url: Url) -> Response {
        Response {
            on_hangup: Some(url),
            ..self
        }
    }

    /// Adds an action after those already there.
    #[must_use]
    pub fn action(mut self, action: Action) -> Response {
        self.actions.push(action);
        self
    }

    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// The `onAnswer` URL, if the answer subscribes to `answer` events.
    pub fn on_answer_url(&self) -> Option<&Url> {
        self.on_answer.as_ref()
    }

    /// The `onHangup` URL, if the answer subscribes to `hangup` events.
    pub fn on_hangup_url(&self) -> Option<&Url> {
        self.on_hangup.as_ref()
    }

    /// The XML document: a declaration, then `<Response>`. Attribute values and text are
    /// escaped.
    pub fn to_xml(&self) -> String {
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response");
        attribute(&mut xml, "onAnswer", self.on_answer.as_ref());
        attribute(&mut xml, "onHangup", self.on_hangup.as_ref());
        if self.actions.is_empty() {
            xml.push_str(" />\n");
            return xml;
        }
        xml.push('>');
        for action in &self.actions {
            write_action(&mut xml, action);
        }
        xml.push_str("</Response>\n");
        xml
    }
}

fn attribute(xml: &mut String, name: &str, value: Option<&impl fmt::Display>) {
    if let Some(value) = value {
        let _ = write!(xml, " {name}=\"{}\"", escape(&value.to_string()));
    }
}

fn write_play(xml: &mut String, play: &Play) {
    let _ = write!(xml, "<Play><Url>{}</Url></Play>", escape(play.url.as_str()));
}

fn write_action(xml: &mut String, action: &Action) {
    match action {
        Action::Dial(dial) => {
            xml.push_str("<Dial");
            attribute(xml, "callerId", dial.caller_id.as_ref());
            attribute(xml, "anonymous", dial.anonymous.as_ref());
            xml.push('>');
            match &dial.target {
                DialTarget::Numbers(numbers) => {
                    for number in numbers {
                        let _ = write!(xml, "<Number>{number}</Number>");
                    }
                }
                DialTarget::Voicemail => xml.push_str("<Voicemail />"),
            }
            xml.push_str("</Dial>");
        }
        Action::Play(play) => write_play(xml, play),
        Action::Gather(gather) => {
            xml.push_str("<Gather");
            attribute(xml, "onData", Some(&gather.on_data));
            attribute(xml, "maxDigits", Some(&gather.max_digits));
            attribute(xml, "timeout", Some(&gather.timeout_ms));
            match &gather.play {
                Some(play) => {
                    xml.push('>');
                    write_play(xml, play);
                    xml.push_str("</Gather>");
                }
                None => xml.push_str(" />"),
            }
        }
        Action::Reject(reason) => {
            let _ = write!(xml, "<Reject reason=\"{}\" />", reason.as_str());
        }
        Action::Hangup => xml.push_str("<Hangup />"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

    fn url(text: &str) -> Url {
        Url::new(text).unwrap()
    }

    fn number(text: &str) -> Number {
        Number::new(text).unwrap()
    }

    #[test]
    fn subscription_only_is_the_plain_answer() {
        let xml = Response::new()
            .on_answer(url("https://h.example/on-answer?a=1&b=2"))
            .on_hangup(url("https://h.example/on-hangup"))
            .to_xml();
        assert_eq!(
            xml,
            format!(
                "{DECLARATION}<Response onAnswer=\"https://h.example/on-answer?a=1&amp;b=2\" onHangup=\"https://h.example/on-hangup\" />\n"
            )
        );
        assert_eq!(
            Response::new().to_xml(),
            format!("{DECLARATION}<Response />\n")
        );
    }

    #[test]
    fn every_action_renders_as_sipgate_documents_it() {
        let dial = Dial::numbers(vec![number("4915799912345"), number("+492111234567")])
            .unwrap()
            .caller_id(number("492111234567"))
            .anonymous(false);
        let gather = Gather::new(url("https://h.example/dtmf?x=1&y=2"))
            .max_digits(3)
            .unwrap()
            .timeout_ms(10000)
            .unwrap()
            .play(Play {
                url: url("https://h.example/menu.wav"),
            });
        let cases = [
            (
                Action::Dial(dial),
                "<Dial callerId=\"492111234567\" anonymous=\"false\"><Number>4915799912345</Number><Number>492111234567</Number></Dial>",
            ),
            (
                Action::Dial(Dial::voicemail()),
                "<Dial><Voicemail /></Dial>",
            ),
            (
                Action::Play(Play {
                    url: url("https://h.example/a.wav?v=1&w=<2>"),
                }),
                "<Play><Url>https://h.example/a.wav?v=1&amp;w=&lt;2&gt;</Url></Play>",
            ),
            (
                Action::Gather(gather),
                "<Gather onData=\"https://h.example/dtmf?x=1&amp;y=2\" maxDigits=\"3\" timeout=\"10000\"><Play><Url>https://h.example/menu.wav</Url></Play></Gather>",
            ),
            (
                Action::Gather(Gather::new(url("http://h.example/d"))),
                "<Gather onData=\"http://h.example/d\" maxDigits=\"1\" timeout=\"2000\" />",
            ),
            (
                Action::Reject(RejectReason::Busy),
                "<Reject reason=\"busy\" />",
            ),
            (Action::Hangup, "<Hangup />"),
        ];
        for (action, element) in cases {
            assert_eq!(
                Response::new().action(action).to_xml(),
                format!("{DECLARATION}<Response>{element}</Response>\n")
            );
        }
    }

    #[test]
    fn values_sipgate_refuses_cannot_be_built() {
        for bad in [
            "",
            "+",
            "49 211 123",
            "0049-211",
            "anonymous",
            "1",
            "1234567890123456",
        ] {
            assert_eq!(Number::new(bad), Err(AnswerError::Number(bad.to_owned())));
        }
        assert_eq!(number("+4915790000000").as_str(), "4915790000000");
        for bad in [
            "/menu.wav",
            "menu.wav",
            "ftp://h/x",
            "https://",
            "https:///x",
            "https://h/a b",
            "https://user@:80/x",
            "https://@/x",
        ] {
            assert_eq!(Url::new(bad), Err(AnswerError::Url(bad.to_owned())));
        }
        // Found by the xml_roundtrip fuzz target: WEBHOOK_URL takes an empty user name,
        // so the callback URLs built from it must be URLs here too.
        assert_eq!(
            url("http://:p@h/on-answer").as_str(),
            "http://:p@h/on-answer"
        );
        let six = vec![number("4915790000000"); 6];
        assert_eq!(Dial::numbers(six), Err(AnswerError::DialTargets(6)));
        assert_eq!(Dial::numbers(Vec::new()), Err(AnswerError::DialTargets(0)));
        let gather = Gather::new(url("https://h.example/d"));
        assert_eq!(gather.clone().max_digits(0), Err(AnswerError::MaxDigits(0)));
        assert_eq!(gather.timeout_ms(0), Err(AnswerError::Timeout(0)));
        assert_eq!(
            "maybe".parse::<RejectReason>(),
            Err(AnswerError::RejectReason("maybe".into()))
        );
    }

    #[test]
    fn errors_name_the_value_and_what_is_expected() {
        assert_eq!(
            AnswerError::DialTargets(6).to_string(),
            "dial has 6 numbers; sipgate rings 1 to 5 at once"
        );
        assert!(
            AnswerError::Number("49 211".into())
                .to_string()
                .starts_with("\"49 211\" is not a phone number")
        );
    }
}
