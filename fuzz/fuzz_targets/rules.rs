//! `Rules::parse` on any text: it refuses with a `FILE:LINE: problem` error or accepts, and
//! never panics. For an accepted file, every answer it can give (a newCall from any number,
//! at any time, and any menu's digits) is a well-formed document with one `<Response>`,
//! read back with `simulate::xml_reader`.
//!
//! Input: the rules file's text; its first line, if it holds `from|to|digits`, also gives
//! the call and the digits to try.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use sipgateio_callevents::config::WebhookUrl;
use sipgateio_callevents::event::{Direction, NewCall};
use sipgateio_callevents::rules::Rules;
use sipgateio_callevents::simulate::xml_reader::parse_document;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let webhook = WebhookUrl::parse("https://calls.example.com/hooks?token=a&b=c").unwrap();
    let rules = match Rules::parse(text, "fuzz.toml", &webhook) {
        Ok(rules) => rules,
        Err(error) => {
            let shown = error.to_string();
            assert!(shown.starts_with("fuzz.toml:"), "{shown}");
            assert!(!shown.contains('\n'), "one line: {shown:?}");
            return;
        }
    };
    let first = text.lines().next().unwrap_or_default();
    let mut parts = first.trim_start_matches('#').split('|');
    let (from, to, digits) = (
        parts.next().unwrap_or("4917"),
        parts.next().unwrap_or("4921"),
        parts.next().unwrap_or("1"),
    );
    let zone = jiff::tz::TimeZone::UTC;
    for (direction, hours) in [
        (Direction::In, 0),
        (Direction::Out, 60 * 60 * 24 * 3 + 3600 * 10),
    ] {
        let call = NewCall {
            call_id: "c".into(),
            from: from.into(),
            to: to.into(),
            direction: Some(direction),
            users: vec![from.into()],
            ..NewCall::default()
        };
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000 + hours);
        let decision = rules.decide(&call, at, &zone);
        let root =
            parse_document(&decision.xml).unwrap_or_else(|e| panic!("{e}: {}", decision.xml));
        assert_eq!(root.name, "Response");
    }
    for menu in ["main", "m", "sales", "a"] {
        for pressed in [Some(digits), Some(""), None] {
            if let Some(choice) = rules.choose(menu, pressed) {
                let root =
                    parse_document(&choice.xml).unwrap_or_else(|e| panic!("{e}: {}", choice.xml));
                assert_eq!(root.name, "Response");
            }
        }
    }
    let _ = rules.describe("UTC");
});
