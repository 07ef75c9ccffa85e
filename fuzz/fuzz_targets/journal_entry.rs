//! `journal::Entry::new`, the row an accepted event is journaled as. Input: one byte
//! choosing the kind (its value mod 4: newCall, answer, hangup, dtmf), then the raw form
//! body.
//!
//! Beyond "never panics": the `fields` column is a JSON object that holds every pair of
//! the body exactly as `form_urlencoded::parse` decodes it, nothing more (people query it
//! with json_extract, so a lost or changed field is a lost fact), and the row's call_id and
//! time are the event's.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sipgateio_callevents::event::{self, EventKind};
use sipgateio_callevents::exchange::Accepted;
use sipgateio_callevents::journal::Entry;

const KINDS: [EventKind; 4] = [
    EventKind::NewCall,
    EventKind::Answer,
    EventKind::Hangup,
    EventKind::Dtmf,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let Ok(event) = event::parse(KINDS[usize::from(selector % 4)], body) else {
        return;
    };
    let accepted = Accepted {
        event,
        received_utc: SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_000_000_123),
        summary: None,
        answered_by: None,
    };
    let entry = Entry::new(&accepted, body);
    assert_eq!(entry.call_id(), accepted.event.call_id());
    assert_eq!(entry.received_at(), "2026-11-18T11:06:40.123Z");

    let fields: Value = serde_json::from_str(entry.fields()).expect("fields is JSON");
    let fields = fields.as_object().expect("fields is a JSON object");
    let pairs: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let mut stored = 0;
    for (name, value) in fields {
        stored += match value {
            Value::String(_) => 1,
            Value::Array(values) => values.len(),
            other => panic!("{name}: {other:?} is neither a string nor an array"),
        };
    }
    assert_eq!(stored, pairs.len(), "every pair stored once: {pairs:?} vs {fields:?}");
    for (name, value) in &pairs {
        let held = match &fields[name.as_str()] {
            Value::String(single) => single == value,
            Value::Array(values) => values.iter().any(|held| held.as_str() == Some(value)),
            _ => false,
        };
        assert!(held, "{name}={value:?} not in {fields:?}");
    }
});
