//! Micro-benchmark: what deciding a newCall's answer by 50 call rules costs, in release
//! mode, against answering without rules.
//!
//! The rules are those of `bench/rules-50.toml`: 49 rules that each match a `to` prefix in
//! office hours, then a catch-all, so a call that fits none of the 49 is held against every
//! condition before the last rule answers (the slowest case). Also times reading and checking
//! the file, which the server does at start and on SIGHUP, never per request.
//!
//! `cargo run --release --example rules_cost [ITERATIONS]` (default 200000).

use std::hint::black_box;
use std::time::SystemTime;

#[path = "support/timing.rs"]
mod timing;
use timing::time;

use sipgateio_callevents::config::WebhookUrl;
use sipgateio_callevents::event::{self, CallEvent, EventKind};
use sipgateio_callevents::rules::Rules;

const RULES: &str = include_str!("../bench/rules-50.toml");
const BODY: &[u8] = include_bytes!("../tests/fixtures/01-newcall-in.form");

fn main() {
    let iterations: u32 = std::env::args().nth(1).map_or(200_000, |n| {
        n.parse().expect("ITERATIONS is a whole number")
    });
    let webhook = WebhookUrl::parse("https://calls.example.com").expect("a valid URL");
    let zone = jiff::tz::TimeZone::get("Europe/Berlin").expect("the time zone database");
    let rules = Rules::parse(RULES, "bench/rules-50.toml", &webhook).expect("valid rules");
    let Ok(CallEvent::NewCall(call)) = event::parse(EventKind::NewCall, BODY) else {
        panic!("fixture 01 is a newCall");
    };
    let now = SystemTime::now();
    let decision = rules.decide(&call, now, &zone);
    assert_eq!(
        decision.rule.map(|rule| rule.number),
        Some(50),
        "the call must fall through to the catch-all"
    );

    let decide = time(iterations, || {
        black_box(rules.decide(black_box(&call), now, &zone));
    });
    let load = time(iterations.div_ceil(1000).max(10), || {
        black_box(Rules::parse(RULES, "bench/rules-50.toml", &webhook).expect("valid rules"));
    });
    println!("rules: 50, the call fits only the last");
    println!("decide one newCall: {:.2} µs", decide.as_secs_f64() * 1e6);
    println!(
        "read and check the file: {:.1} µs",
        load.as_secs_f64() * 1e6
    );
}
