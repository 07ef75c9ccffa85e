//! What an event looks like on stdout: a sentence for people, or a JSON object.

use std::fmt::{self, Write as _};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::calls::CallSummary;
use crate::event::{CallEvent, Direction, HangupCause};
use crate::exchange::{Accepted, AnsweredBy};

pub(super) fn text(accepted: &Accepted) -> String {
    // Room for a typical line, so the formatting does not regrow it.
    let mut line = String::with_capacity(256);
    let _ = write!(line, "{}", accepted.event);
    if let Some(summary) = &accepted.summary {
        let _ = write!(line, ", rang {}", Seconds(summary.rang));
        match summary.talked {
            Some(talked) => {
                let _ = write!(line, ", talked {}", Seconds(talked));
            }
            None => line.push_str(", never answered"),
        }
    }
    match &accepted.answered_by {
        Some(AnsweredBy::Rule(Some(rule))) => match &rule.name {
            Some(name) => {
                let _ = write!(line, ", rule \"{}\"", Printable(name));
            }
            None => {
                let _ = write!(line, ", rule {}", rule.number);
            }
        },
        Some(AnsweredBy::Rule(None)) => line.push_str(", no rule fits"),
        Some(AnsweredBy::Menu { menu, option }) => {
            let _ = write!(
                line,
                ", menu {}: {}",
                Printable(menu),
                match option {
                    Some(option) => format!("option {}", Printable(option)),
                    None => "otherwise".to_owned(),
                }
            );
        }
        Some(AnsweredBy::UnknownMenu(menu)) => {
            let _ = write!(
                line,
                ", menu {}: not in the rules, the call goes on",
                Printable(menu)
            );
        }
        None => {}
    }
    line
}

/// A duration as `12.3 s`.
struct Seconds(Duration);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1} s", self.0.as_secs_f64())
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonLine<'a> {
    #[serde(flatten)]
    event: &'a CallEvent,
    received_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    answered: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ring_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    talk_seconds: Option<f64>,
    /// The call rule that answered a newCall (1 for the first), and its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule_name: Option<&'a str>,
    /// `true` when the call rules are in use and none fitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    no_rule_fits: Option<bool>,
    /// The menu whose digits these are, and the option chosen (`otherwise` when none was).
    #[serde(skip_serializing_if = "Option::is_none")]
    menu: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    option: Option<&'a str>,
    /// `true` when the rules no longer have that menu.
    #[serde(skip_serializing_if = "Option::is_none")]
    menu_unknown: Option<bool>,
}

pub(super) fn json(accepted: &Accepted) -> String {
    let summary: Option<&CallSummary> = accepted.summary.as_ref();
    let mut line = JsonLine {
        event: &accepted.event,
        received_at: rfc3339(accepted.received_utc),
        answered: summary.map(|s| s.talked.is_some()),
        ring_seconds: summary.map(|s| millis_as_seconds(s.rang)),
        talk_seconds: summary.and_then(|s| s.talked).map(millis_as_seconds),
        rule: None,
        rule_name: None,
        no_rule_fits: None,
        menu: None,
        option: None,
        menu_unknown: None,
    };
    match &accepted.answered_by {
        Some(AnsweredBy::Rule(Some(rule))) => {
            line.rule = Some(rule.number);
            line.rule_name = rule.name.as_deref();
        }
        Some(AnsweredBy::Rule(None)) => line.no_rule_fits = Some(true),
        Some(AnsweredBy::Menu { menu, option }) => {
            line.menu = Some(menu);
            line.option = Some(option.as_deref().unwrap_or("otherwise"));
        }
        Some(AnsweredBy::UnknownMenu(menu)) => {
            line.menu = Some(menu);
            line.menu_unknown = Some(true);
        }
        None => {}
    }
    serde_json::to_string(&line)
        .expect("event fields are strings and numbers, which always serialize")
}

fn millis_as_seconds(duration: Duration) -> f64 {
    duration.as_millis() as f64 / 1000.0
}

/// UTC with millisecond precision, e.g. `2026-11-27T05:40:00.123Z`.
fn rfc3339(time: SystemTime) -> String {
    match jiff::Timestamp::try_from(time) {
        Ok(timestamp) => format!("{timestamp:.3}"),
        // Only for clocks outside years -9999..=9999.
        Err(_) => "unknown".to_owned(),
    }
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
    use crate::config::EventFormat;
    use crate::event::EventKind;
    use crate::output::event_line;
    use crate::output::tests::accepted;

    #[test]
    fn text_hangup_lines_carry_the_durations() {
        let body = "event=hangup&cause=normalClearing&callId=x";
        let answered = CallSummary {
            rang: Duration::from_millis(4_040),
            talked: Some(Duration::from_millis(65_960)),
        };
        let never = CallSummary {
            rang: Duration::from_millis(12_500),
            talked: None,
        };
        assert_eq!(
            event_line(
                EventFormat::Text,
                &accepted(EventKind::Hangup, body, Some(answered))
            ),
            "The call has been hung up, cause normalClearing, callId x, rang 4.0 s, talked 66.0 s"
        );
        assert_eq!(
            event_line(
                EventFormat::Text,
                &accepted(EventKind::Hangup, body, Some(never))
            ),
            "The call has been hung up, cause normalClearing, callId x, rang 12.5 s, never answered"
        );
        assert_eq!(
            event_line(EventFormat::Text, &accepted(EventKind::Hangup, body, None)),
            "The call has been hung up, cause normalClearing, callId x"
        );
    }

    #[test]
    fn json_lines_have_every_field_with_sipgate_names() {
        let line = event_line(
            EventFormat::Json,
            &accepted(
                EventKind::NewCall,
                "event=newCall&direction=in&from=0049&to=492&callId=c&user%5B%5D=A+B&user%5B%5D=&userId%5B%5D=w0",
                None,
            ),
        );
        assert_eq!(
            line,
            r#"{"event":"newCall","callId":"c","from":"0049","to":"492","direction":"in","user":["A B",""],"userId":["w0"],"receivedAt":"2026-11-18T11:06:40.123Z"}"#
        );
        let summary = CallSummary {
            rang: Duration::from_millis(4_000),
            talked: Some(Duration::from_millis(1_250)),
        };
        let line = event_line(
            EventFormat::Json,
            &accepted(EventKind::Hangup, "callId=c&cause=busy", Some(summary)),
        );
        assert_eq!(
            line,
            r#"{"event":"hangup","callId":"c","cause":"busy","receivedAt":"2026-11-18T11:06:40.123Z","answered":true,"ringSeconds":4.0,"talkSeconds":1.25}"#
        );
        let line = event_line(
            EventFormat::Json,
            &accepted(EventKind::Dtmf, "callId=c&dtmf=007", None),
        );
        assert_eq!(
            line,
            r#"{"event":"dtmf","callId":"c","dtmf":"007","receivedAt":"2026-11-18T11:06:40.123Z"}"#
        );
    }

    #[test]
    fn hostile_names_give_valid_json_on_one_line() {
        let body = "from=1&to=2&callId=%22%5C%0A%00%1F&user%5B%5D=%22quoted%22+%5Cback%5Cslash%0D%0Anext&user%5B%5D=%FF%FEbad%C3";
        let line = event_line(EventFormat::Json, &accepted(EventKind::NewCall, body, None));
        assert!(!line.contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["callId"], "\"\\\n\u{0}\u{1f}");
        assert_eq!(value["user"][0], "\"quoted\" \\back\\slash\r\nnext");
        assert_eq!(value["user"][1], "\u{FFFD}\u{FFFD}bad\u{FFFD}");
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
}
