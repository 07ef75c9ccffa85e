//! `event::parse` for each event kind. Input: one byte choosing the kind (its value mod 4:
//! newCall, answer, hangup, dtmf), then the raw form body.
//!
//! Beyond "never panics": an accepted event is the kind its route asked for, has a
//! non-empty callId, and prints exactly one line (the load test and anyone reading stdout
//! rely on one event = one line).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipgateio_callevents::event::{self, EventKind};

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
    let expected = KINDS[usize::from(selector % 4)];
    match event::parse(expected, body) {
        Ok(event) => {
            assert_eq!(event.kind(), expected);
            assert!(!event.call_id().is_empty(), "accepted without a callId");
            let line = event.to_string();
            assert!(
                !line.contains('\n') && !line.contains('\r'),
                "an event line must be one line: {line:?}"
            );
            assert!(!line.is_empty());
        }
        Err(error) => {
            // The 400 body; must render without panicking and name something.
            assert!(!error.to_string().is_empty());
        }
    }
});
