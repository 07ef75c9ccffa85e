//! sipgate's call events, parsed from their form bodies into typed values, and the one
//! line each prints.
//!
//! Parsing is liberal where sipgate's API is not pinned down (see the spec's UNCONFIRMED
//! marks): any parameter order, `user[]` spelled encoded or literally, unknown parameters
//! ignored, unknown `cause` and `direction` values kept. Only `callId` (every event) and
//! `from`/`to` (newCall) are required.

use std::borrow::Cow;
use std::fmt;

use serde::{Serialize, Serializer};

/// Which of sipgate's four events a body carries. The wire names are sipgate's own
/// (`event=newCall` …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A call starts; sent to the URL set in the sipgate console.
    NewCall,
    /// The call was answered; sent to `onAnswer`.
    Answer,
    /// The call ended; sent to `onHangup`.
    Hangup,
    /// The caller typed digits after a `<Gather>`; sent to `onData`.
    Dtmf,
}

impl EventKind {
    /// The value of the `event` parameter.
    pub fn wire_name(self) -> &'static str {
        match self {
            EventKind::NewCall => "newCall",
            EventKind::Answer => "answer",
            EventKind::Hangup => "hangup",
            EventKind::Dtmf => "dtmf",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wire_name())
    }
}

/// `direction`: who placed the call, seen from the sipgate account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Direction {
    /// `in`: someone calls the account.
    In,
    /// `out`: the account calls someone.
    Out,
    /// A value sipgate has not documented, kept as sent.
    Other(String),
}

impl Serialize for Direction {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Direction {
    fn from_wire(value: &str) -> Direction {
        match value {
            "in" => Direction::In,
            "out" => Direction::Out,
            other => Direction::Other(other.to_owned()),
        }
    }

    /// The value as sipgate sends it.
    pub fn as_str(&self) -> &str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::Other(other) => other,
        }
    }
}

/// `cause` of a hangup, as documented by sipgate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HangupCause {
    /// A participant hung up after the call was established.
    NormalClearing,
    /// The called party was busy.
    Busy,
    /// The caller hung up before anyone answered.
    Cancel,
    /// The called party rejected the call (for example do-not-disturb).
    NoAnswer,
    /// The called party could not be reached.
    Congestion,
    /// The number does not exist or the party is offline.
    NotFound,
    /// The call was forwarded; a new call with a new `callId` follows.
    Forwarded,
    /// A value sipgate has not documented, kept as sent.
    Other(String),
}

impl Serialize for HangupCause {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl HangupCause {
    /// The causes sipgate documents, in its order.
    pub const DOCUMENTED: [HangupCause; 7] = [
        HangupCause::NormalClearing,
        HangupCause::Busy,
        HangupCause::Cancel,
        HangupCause::NoAnswer,
        HangupCause::Congestion,
        HangupCause::NotFound,
        HangupCause::Forwarded,
    ];

    fn from_wire(value: &str) -> HangupCause {
        match value {
            "normalClearing" => HangupCause::NormalClearing,
            "busy" => HangupCause::Busy,
            "cancel" => HangupCause::Cancel,
            "noAnswer" => HangupCause::NoAnswer,
            "congestion" => HangupCause::Congestion,
            "notFound" => HangupCause::NotFound,
            "forwarded" => HangupCause::Forwarded,
            other => HangupCause::Other(other.to_owned()),
        }
    }

    /// The value as sipgate sends it.
    pub fn as_str(&self) -> &str {
        match self {
            HangupCause::NormalClearing => "normalClearing",
            HangupCause::Busy => "busy",
            HangupCause::Cancel => "cancel",
            HangupCause::NoAnswer => "noAnswer",
            HangupCause::Congestion => "congestion",
            HangupCause::NotFound => "notFound",
            HangupCause::Forwarded => "forwarded",
            HangupCause::Other(other) => other,
        }
    }
}

/// `event=newCall`. Numbers are E.164 digits without `+`, or `anonymous`, kept as sent.
///
/// Serialized (for `EVENT_FORMAT=json`) with sipgate's parameter names; absent fields
/// are left out.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewCall {
    pub call_id: String,
    pub from: String,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// The first call's id after a transfer or forward; equal to `call_id` otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orig_call_id: Option<String>,
    /// `user[]`: the calling user (out) or each user the call rings (in). Entries may be empty.
    #[serde(rename = "user", skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// `userId[]`; its length need not match `users`.
    #[serde(rename = "userId", skip_serializing_if = "Vec::is_empty")]
    pub user_ids: Vec<String>,
    /// `fullUserId[]`; its length need not match `users`.
    #[serde(rename = "fullUserId", skip_serializing_if = "Vec::is_empty")]
    pub full_user_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xcid: Option<String>,
    /// The originally dialled number when the call was diverted before it reached sipgate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diversion: Option<String>,
}

/// `event=answer`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    pub call_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// The answering user (incoming calls only; singular key `user`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_user_id: Option<String>,
    /// The number of the destination that answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answering_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diversion: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orig_call_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xcid: Option<String>,
}

/// `event=hangup`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hangup {
    pub call_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<HangupCause>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answering_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diversion: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orig_call_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xcid: Option<String>,
    /// Not documented for hangup, but kept if sipgate sends it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_user_id: Option<String>,
}

/// `event=dtmf`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dtmf {
    pub call_id: String,
    /// The digits as typed, leading zeros intact; `None` when the caller typed nothing
    /// (sipgate then omits `dtmf` or sends it empty).
    #[serde(rename = "dtmf", skip_serializing_if = "Option::is_none")]
    pub digits: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orig_call_id: Option<String>,
}

/// One parsed call event. Serialized with its sipgate name in `event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event")]
pub enum CallEvent {
    #[serde(rename = "newCall")]
    NewCall(NewCall),
    #[serde(rename = "answer")]
    Answer(Answer),
    #[serde(rename = "hangup")]
    Hangup(Hangup),
    #[serde(rename = "dtmf")]
    Dtmf(Dtmf),
}

impl CallEvent {
    /// Which event this is.
    pub fn kind(&self) -> EventKind {
        match self {
            CallEvent::NewCall(_) => EventKind::NewCall,
            CallEvent::Answer(_) => EventKind::Answer,
            CallEvent::Hangup(_) => EventKind::Hangup,
            CallEvent::Dtmf(_) => EventKind::Dtmf,
        }
    }

    /// The call this event belongs to.
    pub fn call_id(&self) -> &str {
        match self {
            CallEvent::NewCall(e) => &e.call_id,
            CallEvent::Answer(e) => &e.call_id,
            CallEvent::Hangup(e) => &e.call_id,
            CallEvent::Dtmf(e) => &e.call_id,
        }
    }
}

/// Why a body is not the event its route expects. Answered with 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventError {
    /// A required parameter is absent or empty.
    MissingField {
        event: EventKind,
        field: &'static str,
    },
    /// The `event` parameter names another event than the route serves.
    WrongEvent { expected: EventKind, found: String },
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventError::MissingField { event, field } => {
                write!(f, "missing required field {field} in the {event} event")
            }
            EventError::WrongEvent { expected, found } => write!(
                f,
                "event {found:?} sent to the {expected} route, which only takes event={expected}"
            ),
        }
    }
}

impl std::error::Error for EventError {}

/// A decoded form body: `+` is a space, `%XX` are UTF-8 bytes (invalid ones become U+FFFD),
/// and `user%5B%5D` and `user[]` are the same key.
/// Values borrow from the body where no decoding was needed.
struct Form<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'a> Form<'a> {
    fn parse(body: &'a [u8]) -> Form<'a> {
        Form(form_pairs(body))
    }

    /// The first value of `key`, if present. A repeated single-valued key keeps its first
    /// value, as most form parsers do.
    fn first(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value.as_ref())
    }

    /// Like [`Form::first`], but an empty value counts as absent.
    fn first_non_empty(&self, key: &str) -> Option<&str> {
        self.first(key).filter(|value| !value.is_empty())
    }

    /// [`Form::first_non_empty`], owned.
    fn non_empty(&self, key: &str) -> Option<String> {
        self.first_non_empty(key).map(str::to_owned)
    }

    /// Every value of an array parameter, in order, whether sent as `name[]` or `name`.
    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k.strip_suffix("[]").unwrap_or(k) == name)
            .map(|(_, value)| value.clone().into_owned())
            .collect()
    }

    /// A single-valued user field: sipgate sends `user` on answer, but `user[]` elsewhere.
    fn single_user_field(&self, name: &str) -> Option<String> {
        self.all(name).into_iter().find(|value| !value.is_empty())
    }

    fn required(&self, event: EventKind, field: &'static str) -> Result<String, EventError> {
        self.non_empty(field)
            .ok_or(EventError::MissingField { event, field })
    }

    /// `from`/`to` on newCall must be present, but may be empty (sipgate once sent `from=`
    /// for anonymous outgoing calls).
    fn required_maybe_empty(
        &self,
        event: EventKind,
        field: &'static str,
    ) -> Result<String, EventError> {
        self.first(field)
            .map(str::to_owned)
            .ok_or(EventError::MissingField { event, field })
    }
}

/// The decoded name-value pairs of a form body, exactly as `form_urlencoded::parse` gives
/// them (a test and the `form_pairs` fuzz target compare the two).
///
/// form_urlencoded decodes every pair, walking each byte several times, at about 1,300
/// instructions a pair; that was the largest cost of handling an event (about 14,000 of
/// the 125,000 instructions a newCall took, under callgrind). Most of sipgate's pairs
/// (`callId=54566B…`, `direction=in`) hold no `%` or `+`, so decoding would leave them
/// as they are: those are borrowed straight from the body. So are the values of the
/// array names sipgate always encodes (`userId%5B%5D=w0`), whose decoded names are
/// constants. form_urlencoded decodes the rest.
pub fn form_pairs(body: &[u8]) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    let Ok(text) = std::str::from_utf8(body) else {
        // Rare enough to leave to form_urlencoded, which replaces invalid UTF-8.
        return form_urlencoded::parse(body).collect();
    };
    // sipgate sends up to a dozen parameters.
    let mut pairs = Vec::with_capacity(16);
    for pair in text.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !needs_decoding(pair) {
            pairs.push((Cow::Borrowed(name), Cow::Borrowed(value)));
        } else if let Some(decoded) = encoded_array_name(name).filter(|_| !needs_decoding(value)) {
            pairs.push((Cow::Borrowed(decoded), Cow::Borrowed(value)));
        } else {
            pairs.extend(form_urlencoded::parse(pair.as_bytes()));
        }
    }
    pairs
}

/// Whether `text` holds a `%` or a `+`. Folded without an early exit, a 16-byte chunk
/// compiles to a few vector instructions; two `contains` (a memchr each) cost about 100
/// instructions per pair.
fn needs_decoding(text: &str) -> bool {
    let special = |byte: &u8| (*byte == b'%') | (*byte == b'+');
    let any_special = |chunk: &[u8]| {
        chunk
            .iter()
            .fold(false, |found, byte| found | special(byte))
    };
    let mut chunks = text.as_bytes().chunks_exact(16);
    chunks.by_ref().any(any_special) || chunks.remainder().iter().any(special)
}

/// The decoded name of an array parameter in the spelling sipgate sends
/// (`user%5B%5D=Alice`; the spec's "Arrays" section).
fn encoded_array_name(name: &str) -> Option<&'static str> {
    match name {
        "user%5B%5D" => Some("user[]"),
        "userId%5B%5D" => Some("userId[]"),
        "fullUserId%5B%5D" => Some("fullUserId[]"),
        _ => None,
    }
}

/// Parses `body` as the event `expected` (the one the route serves). A body without an
/// `event` parameter is taken to be that event.
///
/// # Errors
/// A missing required field, or an `event` parameter that names another event.
pub fn parse(expected: EventKind, body: &[u8]) -> Result<CallEvent, EventError> {
    let form = Form::parse(body);
    if let Some(found) = form.first("event") {
        if found != expected.wire_name() {
            return Err(EventError::WrongEvent {
                expected,
                found: found.to_owned(),
            });
        }
    }
    let direction = || form.first_non_empty("direction").map(Direction::from_wire);
    let event = match expected {
        EventKind::NewCall => CallEvent::NewCall(NewCall {
            call_id: form.required(expected, "callId")?,
            from: form.required_maybe_empty(expected, "from")?,
            to: form.required_maybe_empty(expected, "to")?,
            direction: direction(),
            orig_call_id: form.non_empty("origCallId"),
            users: form.all("user"),
            user_ids: form.all("userId"),
            full_user_ids: form.all("fullUserId"),
            xcid: form.non_empty("xcid"),
            diversion: form.non_empty("diversion"),
        }),
        EventKind::Answer => CallEvent::Answer(Answer {
            call_id: form.required(expected, "callId")?,
            from: form.non_empty("from"),
            to: form.non_empty("to"),
            direction: direction(),
            user: form.single_user_field("user"),
            user_id: form.single_user_field("userId"),
            full_user_id: form.single_user_field("fullUserId"),
            answering_number: form.non_empty("answeringNumber"),
            diversion: form.non_empty("diversion"),
            orig_call_id: form.non_empty("origCallId"),
            xcid: form.non_empty("xcid"),
        }),
        EventKind::Hangup => CallEvent::Hangup(Hangup {
            call_id: form.required(expected, "callId")?,
            cause: form.first_non_empty("cause").map(HangupCause::from_wire),
            from: form.non_empty("from"),
            to: form.non_empty("to"),
            direction: direction(),
            answering_number: form.non_empty("answeringNumber"),
            diversion: form.non_empty("diversion"),
            orig_call_id: form.non_empty("origCallId"),
            xcid: form.non_empty("xcid"),
            user: form.single_user_field("user"),
            user_id: form.single_user_field("userId"),
            full_user_id: form.single_user_field("fullUserId"),
        }),
        EventKind::Dtmf => CallEvent::Dtmf(Dtmf {
            call_id: form.required(expected, "callId")?,
            digits: form.non_empty("dtmf"),
            orig_call_id: form.non_empty("origCallId"),
        }),
    };
    Ok(event)
}

/// Shows an outside string on one line: control characters (a newline in a caller's name,
/// say) are escaped, so every event stays exactly one line.
pub struct Printable<'a>(pub &'a str);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The common case, written whole rather than a character at a time. Printable
        // ASCII (ids, numbers) is recognised 16 bytes at a time; other text is decoded.
        let printable_ascii = self.0.bytes().fold(true, |printable, byte| {
            printable & matches!(byte, b' '..=b'~')
        });
        if printable_ascii || !self.0.chars().any(char::is_control) {
            return f.write_str(self.0);
        }
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

/// An optional value for a line: absent ones read `unknown`.
struct OrUnknown<'a>(Option<&'a str>);

impl fmt::Display for OrUnknown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(value) if !value.is_empty() => Printable(value).fmt(f),
            _ => f.write_str("unknown"),
        }
    }
}

/// The event line printed to stdout, one per accepted event, without the newline.
impl fmt::Display for CallEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallEvent::NewCall(call) => {
                write!(
                    f,
                    "New call from {} to {} (direction {}), callId {}",
                    OrUnknown(Some(&call.from)),
                    OrUnknown(Some(&call.to)),
                    OrUnknown(call.direction.as_ref().map(Direction::as_str)),
                    Printable(&call.call_id),
                )?;
                let mut named = call.users.iter().filter(|user| !user.is_empty());
                if let Some(first) = named.next() {
                    write!(f, ", users: {}", Printable(first))?;
                    for user in named {
                        write!(f, ", {}", Printable(user))?;
                    }
                }
                Ok(())
            }
            CallEvent::Answer(answer) => {
                write!(
                    f,
                    "{} answered call from {}",
                    OrUnknown(answer.to.as_deref()),
                    OrUnknown(answer.from.as_deref()),
                )?;
                if let Some(user) = &answer.user {
                    write!(f, ", answered by {}", Printable(user))?;
                }
                if let Some(number) = &answer.answering_number {
                    write!(f, ", answering number {}", Printable(number))?;
                }
                write!(f, ", callId {}", Printable(&answer.call_id))
            }
            CallEvent::Hangup(hangup) => write!(
                f,
                "The call has been hung up, cause {}, callId {}",
                OrUnknown(hangup.cause.as_ref().map(HangupCause::as_str)),
                Printable(&hangup.call_id),
            ),
            CallEvent::Dtmf(dtmf) => match &dtmf.digits {
                Some(digits) => write!(
                    f,
                    "DTMF digits {}, callId {}",
                    Printable(digits),
                    Printable(&dtmf.call_id)
                ),
                None => write!(f, "DTMF: no digits, callId {}", Printable(&dtmf.call_id)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_pairs_match_form_urlencoded() {
        let bodies: [&[u8]; 18] = [
            b"",
            b"&&&",
            b"a=1&b=2",
            b"a=b=c&=x&y&&z=",
            b"user%5B%5D=Alice+Smith&user[]=Bob&userId%5B%5D=w0",
            b"name=J%C3%BCrgen&to=%2B4915791234567&from=+49+211",
            b"bad=%zz&half=%4&tail=%",
            b"lone=%E2%82&invalid=\xff\xfe&mixed=\xc3\xa4%20",
            b"emoji=%F0%9F%93%9E&raw=\xf0\x9f\x93\x9e",
            b"plus=%2B&space=+&both=a+%2B+b",
            b"nul=%00&cr=%0D%0A&ctl=\x01",
            b"==&=&=a",
            b"%3D=%26&k%3Dv=1",
            b"event=newCall&direction=in&from=492111234567&to=4915791234567&callId=54566B15&xcid=8419b3450b75cd19",
            b"trailing&",
            b"&leading=1",
            b"fullUserId%5B%5D=1234567w0&userId%5B%5D=&userId%5B%5D=x=y&user%5B%5D==",
            b"user%5B%5D=a%20b&user%5B%5D=a+b&user%5b%5d=lower&user%5B%5D%5B0%5D=nested&user%5B%5D",
        ];
        for body in bodies {
            let ours = form_pairs(body);
            let theirs: Vec<_> = form_urlencoded::parse(body).collect();
            assert_eq!(ours, theirs, "{:?}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn needs_decoding_finds_a_percent_or_plus_anywhere() {
        // Lengths on both sides of the 16-byte chunks, the special byte at every place.
        for length in 0..50 {
            let plain = "a".repeat(length);
            assert!(!needs_decoding(&plain), "{plain:?}");
            for place in 0..length {
                for special in ["%", "+"] {
                    let mut text = plain.clone();
                    text.replace_range(place..=place, special);
                    assert!(needs_decoding(&text), "{text:?}");
                }
            }
        }
        assert!(!needs_decoding(
            "event=newCall&user[]=Jürgen*-._~;,/?:@$!'()"
        ));
    }

    fn check(expected: EventKind, body: &str, line: &str) -> CallEvent {
        let event = parse(expected, body.as_bytes()).unwrap();
        assert_eq!(event.to_string(), line);
        event
    }

    #[test]
    fn new_call_with_encoded_and_literal_array_keys() {
        for body in [
            "event=newCall&from=49211&to=4915&direction=in&callId=c1&user%5B%5D=Alice+Smith&user%5B%5D=Bob&userId%5B%5D=w0",
            "callId=c1&user[]=Alice%20Smith&direction=in&user[]=Bob&to=4915&from=49211&userId[]=w0&extra=ignored",
        ] {
            let event = check(
                EventKind::NewCall,
                body,
                "New call from 49211 to 4915 (direction in), callId c1, users: Alice Smith, Bob",
            );
            let CallEvent::NewCall(call) = event else {
                panic!()
            };
            assert_eq!(call.users, ["Alice Smith", "Bob"]);
            assert_eq!(call.user_ids, ["w0"]);
            assert!(call.full_user_ids.is_empty());
            assert_eq!(call.direction, Some(Direction::In));
        }
    }

    #[test]
    fn new_call_requires_call_id_from_and_to() {
        for (body, field) in [
            ("event=newCall&from=1&to=2", "callId"),
            ("event=newCall&from=1&to=2&callId=", "callId"),
            ("event=newCall&to=2&callId=x", "from"),
            ("event=newCall&from=1&callId=x", "to"),
        ] {
            let error = parse(EventKind::NewCall, body.as_bytes()).unwrap_err();
            assert_eq!(
                error,
                EventError::MissingField {
                    event: EventKind::NewCall,
                    field
                }
            );
            assert!(error.to_string().contains(field));
        }
    }

    #[test]
    fn event_that_contradicts_the_route_names_both() {
        let error = parse(EventKind::Answer, b"event=hangup&callId=x").unwrap_err();
        assert_eq!(
            error.to_string(),
            "event \"hangup\" sent to the answer route, which only takes event=answer"
        );
    }

    #[test]
    fn missing_event_is_taken_from_the_route() {
        check(
            EventKind::Hangup,
            "callId=x&cause=busy",
            "The call has been hung up, cause busy, callId x",
        );
    }

    #[test]
    fn unknown_cause_and_direction_are_kept() {
        let event = parse(
            EventKind::Hangup,
            b"event=hangup&callId=x&cause=alienAbduction&direction=sideways",
        )
        .unwrap();
        let CallEvent::Hangup(hangup) = event else {
            panic!()
        };
        assert_eq!(
            hangup.cause,
            Some(HangupCause::Other("alienAbduction".into()))
        );
        assert_eq!(hangup.direction, Some(Direction::Other("sideways".into())));
    }

    #[test]
    fn answer_takes_the_singular_user_and_prints_who_answered() {
        check(
            EventKind::Answer,
            "event=answer&callId=x&user=John+Doe&from=491&to=492&answeringNumber=493",
            "492 answered call from 491, answered by John Doe, answering number 493, callId x",
        );
        check(
            EventKind::Answer,
            "event=answer&callId=x",
            "unknown answered call from unknown, callId x",
        );
    }

    #[test]
    fn dtmf_keeps_leading_zeros_and_treats_empty_as_none() {
        check(
            EventKind::Dtmf,
            "event=dtmf&dtmf=0815&callId=x",
            "DTMF digits 0815, callId x",
        );
        check(
            EventKind::Dtmf,
            "event=dtmf&dtmf=&callId=x",
            "DTMF: no digits, callId x",
        );
        check(
            EventKind::Dtmf,
            "event=dtmf&callId=x",
            "DTMF: no digits, callId x",
        );
    }

    #[test]
    fn control_characters_in_names_cannot_break_the_line() {
        let event = parse(
            EventKind::NewCall,
            b"event=newCall&from=1&to=2&callId=x%0Ay&user%5B%5D=Eve%0D%0AFake+line%00",
        )
        .unwrap();
        let line = event.to_string();
        assert_eq!(
            line,
            "New call from 1 to 2 (direction unknown), callId x\\ny, users: Eve\\r\\nFake line\\u{0}"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn printable_escapes_exactly_the_control_characters() {
        for byte in 0u8..=127 {
            let text = char::from(byte).to_string();
            let shown = Printable(&text).to_string();
            if byte < 0x20 || byte == 0x7f {
                assert_eq!(shown, char::from(byte).escape_default().to_string());
            } else {
                assert_eq!(shown, text);
            }
        }
        // A control character after the first 16 bytes, a C1 control, and text that is
        // not ASCII but printable.
        let long = format!("{}\u{7f}", "5".repeat(40));
        assert_eq!(
            Printable(&long).to_string(),
            format!("{}\\u{{7f}}", "5".repeat(40))
        );
        assert_eq!(Printable("a\u{85}b").to_string(), "a\\u{85}b");
        assert_eq!(Printable("Jürgen Müller").to_string(), "Jürgen Müller");
    }

    #[test]
    fn invalid_utf8_and_percent_encoding_do_not_fail() {
        let event = parse(
            EventKind::NewCall,
            b"from=%FF%FE&to=%zz&callId=%&user%5B%5D=J%C3%B6rg",
        )
        .unwrap();
        let CallEvent::NewCall(call) = event else {
            panic!()
        };
        assert_eq!(call.from, "\u{FFFD}\u{FFFD}");
        assert_eq!(call.to, "%zz");
        assert_eq!(call.call_id, "%");
        assert_eq!(call.users, ["Jörg"]);
    }
}
