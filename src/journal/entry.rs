//! One row of the `events` table, built on the handler's thread, so the writer only binds
//! values.

use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::event::CallEvent;
use crate::exchange::{Accepted, AnsweredBy};
use crate::form::form_pairs;

/// An accepted event as the journal stores it (docs/journal.md, "The events table").
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub(super) received_at: String,
    pub(super) event: &'static str,
    pub(super) call_id: String,
    pub(super) direction: Option<String>,
    pub(super) from_number: Option<String>,
    pub(super) to_number: Option<String>,
    pub(super) answering_number: Option<String>,
    pub(super) cause: Option<String>,
    pub(super) dtmf: Option<String>,
    pub(super) rule: Option<String>,
    pub(super) fields: String,
}

impl Entry {
    /// The row for `accepted`, whose form body was `body`.
    pub fn new(accepted: &Accepted, body: &[u8]) -> Entry {
        let event = &accepted.event;
        let owned = |value: &Option<String>| value.clone();
        let (direction, from_number, to_number) = match event {
            CallEvent::NewCall(call) => (
                call.direction.as_ref().map(|d| d.as_str().to_owned()),
                Some(call.from.clone()),
                Some(call.to.clone()),
            ),
            CallEvent::Answer(answer) => (
                answer.direction.as_ref().map(|d| d.as_str().to_owned()),
                owned(&answer.from),
                owned(&answer.to),
            ),
            CallEvent::Hangup(hangup) => (
                hangup.direction.as_ref().map(|d| d.as_str().to_owned()),
                owned(&hangup.from),
                owned(&hangup.to),
            ),
            CallEvent::Dtmf(_) => (None, None, None),
        };
        Entry {
            received_at: timestamp(accepted.received_utc),
            event: event.kind().wire_name(),
            call_id: event.call_id().to_owned(),
            direction,
            from_number,
            to_number,
            answering_number: match event {
                CallEvent::Answer(answer) => owned(&answer.answering_number),
                CallEvent::Hangup(hangup) => owned(&hangup.answering_number),
                _ => None,
            },
            cause: match event {
                CallEvent::Hangup(hangup) => hangup.cause.as_ref().map(|c| c.as_str().to_owned()),
                _ => None,
            },
            dtmf: match event {
                CallEvent::Dtmf(dtmf) => owned(&dtmf.digits),
                _ => None,
            },
            rule: accepted.answered_by.as_ref().map(rule_text),
            fields: fields_json(body),
        }
    }

    /// The event's `received_at`, as stored.
    pub fn received_at(&self) -> &str {
        &self.received_at
    }

    /// The `call_id` column.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The `fields` column: every form field, as a JSON object.
    pub fn fields(&self) -> &str {
        &self.fields
    }
}

/// `received_at`: RFC 3339 in UTC with milliseconds, one fixed width, so that the text
/// sorts as the time does and range queries can use the index.
pub(super) fn timestamp(time: SystemTime) -> String {
    match jiff::Timestamp::try_from(time) {
        Ok(timestamp) => format!("{timestamp:.3}"),
        // Only for clocks outside years -9999..=9999.
        Err(_) => "0000-01-01T00:00:00.000Z".to_owned(),
    }
}

/// What the call rules decided, as a query would name it: the rule's name (or `rule N`),
/// `no rule fits`, `menu M: option O`, `menu M: otherwise`, `menu M: unknown`.
fn rule_text(answered_by: &AnsweredBy) -> String {
    match answered_by {
        AnsweredBy::Rule(Some(rule)) => match &rule.name {
            Some(name) => name.clone(),
            None => format!("rule {}", rule.number),
        },
        AnsweredBy::Rule(None) => "no rule fits".to_owned(),
        AnsweredBy::Menu {
            menu,
            option: Some(option),
        } => format!("menu {menu}: option {option}"),
        AnsweredBy::Menu { menu, option: None } => format!("menu {menu}: otherwise"),
        AnsweredBy::UnknownMenu(menu) => format!("menu {menu}: unknown"),
    }
}

/// Every form field as received, decoded, as a JSON object: a name ending in `[]` always
/// holds an array, a name sent more than once too, any other a string. Nothing the typed
/// event drops is lost, so a later question can still be answered from the journal.
pub(super) fn fields_json(body: &[u8]) -> String {
    let mut fields = Map::new();
    for (name, value) in form_pairs(body) {
        let value = Value::String(value.into_owned());
        match fields.get_mut(name.as_ref()) {
            Some(Value::Array(values)) => values.push(value),
            Some(single) => {
                let first = single.take();
                *single = Value::Array(vec![first, value]);
            }
            None if name.ends_with("[]") => {
                fields.insert(name.into_owned(), Value::Array(vec![value]));
            }
            None => {
                fields.insert(name.into_owned(), value);
            }
        }
    }
    // Straight from the map: Value's Display goes through a formatter adapter.
    serde_json::to_string(&fields).unwrap_or_else(|_| "{}".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;
    use crate::exchange::RuleRef;
    use crate::output::tests::accepted;

    #[test]
    fn fields_keep_every_field_and_arrays_as_arrays() {
        let json = fields_json(
            b"event=newCall&from=492111234567&user%5B%5D=Alice+A&user%5B%5D=Bob&userId[]=w0&x=1&x=2&empty=",
        );
        let value: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "event": "newCall",
                "from": "492111234567",
                "user[]": ["Alice A", "Bob"],
                "userId[]": ["w0"],
                "x": ["1", "2"],
                "empty": "",
            })
        );
        assert_eq!(fields_json(b""), "{}");
    }

    #[test]
    fn a_hangup_fills_its_columns() {
        let body =
            "event=hangup&cause=busy&callId=c1&from=491&to=492&direction=out&answeringNumber=493";
        let entry = Entry::new(&accepted(EventKind::Hangup, body, None), body.as_bytes());
        assert_eq!(entry.received_at, "2026-11-18T11:06:40.123Z");
        assert_eq!(entry.event, "hangup");
        assert_eq!(entry.call_id, "c1");
        assert_eq!(entry.direction.as_deref(), Some("out"));
        assert_eq!(entry.from_number.as_deref(), Some("491"));
        assert_eq!(entry.to_number.as_deref(), Some("492"));
        assert_eq!(entry.answering_number.as_deref(), Some("493"));
        assert_eq!(entry.cause.as_deref(), Some("busy"));
        assert_eq!((entry.dtmf, entry.rule), (None, None));
    }

    #[test]
    fn the_rule_column_names_what_the_rules_decided() {
        let rule = |number, name: Option<&str>| {
            AnsweredBy::Rule(Some(RuleRef {
                number,
                name: name.map(str::to_owned),
            }))
        };
        let menu = |option: Option<&str>| AnsweredBy::Menu {
            menu: "main".to_owned(),
            option: option.map(str::to_owned),
        };
        for (answered_by, text) in [
            (rule(2, Some("office hours")), "office hours"),
            (rule(3, None), "rule 3"),
            (AnsweredBy::Rule(None), "no rule fits"),
            (menu(Some("1")), "menu main: option 1"),
            (menu(None), "menu main: otherwise"),
            (
                AnsweredBy::UnknownMenu("old".to_owned()),
                "menu old: unknown",
            ),
        ] {
            assert_eq!(rule_text(&answered_by), text);
        }
    }
}
