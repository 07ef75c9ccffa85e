//! sipgate's call events, parsed from their form bodies into typed values. How each one
//! prints is in [`crate::output`].
//!
//! Parsing is liberal where sipgate's documentation does not pin the API down
//! (https://developer.sipgate.io/push-api/api-reference/): any parameter order, `user[]` spelled encoded or literally, unknown parameters
//! ignored, unknown `cause` and `direction` values kept. Only `callId` (every event) and
//! `from`/`to` (newCall) are required.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::form::Form;

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
        EventKind::NewCall => {
            let [users, user_ids, full_user_ids] = form.arrays(["user", "userId", "fullUserId"]);
            CallEvent::NewCall(NewCall {
                call_id: required(&form, expected, "callId")?,
                from: required_maybe_empty(&form, expected, "from")?,
                to: required_maybe_empty(&form, expected, "to")?,
                direction: direction(),
                orig_call_id: form.non_empty("origCallId"),
                users,
                user_ids,
                full_user_ids,
                xcid: form.non_empty("xcid"),
                diversion: form.non_empty("diversion"),
            })
        }
        EventKind::Answer => CallEvent::Answer(Answer {
            call_id: required(&form, expected, "callId")?,
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
            call_id: required(&form, expected, "callId")?,
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
            call_id: required(&form, expected, "callId")?,
            digits: form.non_empty("dtmf"),
            orig_call_id: form.non_empty("origCallId"),
        }),
    };
    Ok(event)
}

fn required(form: &Form<'_>, event: EventKind, field: &'static str) -> Result<String, EventError> {
    form.non_empty(field)
        .ok_or(EventError::MissingField { event, field })
}

/// `from`/`to` on newCall must be present, but may be empty (sipgate once sent `from=`
/// for anonymous outgoing calls).
fn required_maybe_empty(
    form: &Form<'_>,
    event: EventKind,
    field: &'static str,
) -> Result<String, EventError> {
    form.first(field)
        .map(str::to_owned)
        .ok_or(EventError::MissingField { event, field })
}

#[cfg(test)]
mod tests {
    use super::*;

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
