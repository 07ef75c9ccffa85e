//! Micro-benchmark: what the application's part of a request costs, in release mode: routing
//! one event (`App::route`: content type, parse, call table, answer) and formatting its
//! event line, for the bodies `bench/run.sh` sends. tiny_http's part (head, reply) is not
//! in it; `bench/profile.sh` shows the whole request.
//!
//! `cargo run --release --example route_cost [ITERATIONS [PATH]]` (default 200000, both
//! paths). Under `valgrind --tool=callgrind --toggle-collect='*App::route*'` it counts
//! instructions.

use std::hint::black_box;
use std::time::{Instant, SystemTime};

#[path = "support/timing.rs"]
mod timing;
use timing::time;

use sipgateio_callevents::app::App;
use sipgateio_callevents::config::{Config, EventFormat};
use sipgateio_callevents::exchange::{Incoming, Method};
use sipgateio_callevents::output::event_line;

const TARGETS: [(&str, &[u8]); 2] = [
    (
        "/new-call",
        include_bytes!("../tests/fixtures/01-newcall-in.form"),
    ),
    (
        "/on-hangup",
        include_bytes!("../tests/fixtures/09-hangup-normalclearing.form"),
    ),
];

fn main() {
    let iterations: u32 = std::env::args().nth(1).map_or(200_000, |n| {
        n.parse().expect("ITERATIONS is a whole number")
    });
    let config = Config::from_lookup(|name| {
        (name == "SKIP_SIGNATURE_VERIFICATION").then(|| "true".to_owned())
    })
    .expect("the defaults are valid");
    let app = App::new(&config, None);
    let only = std::env::args().nth(2);
    for (path, body) in TARGETS {
        if only.as_ref().is_some_and(|only| only != path) {
            continue;
        }
        let request = Incoming {
            method: Method::Post,
            path,
            query: None,
            host: Some("127.0.0.1:8080"),
            forwarded_host: None,
            content_type: Some("application/x-www-form-urlencoded; charset=UTF-8"),
            signature: None,
            body,
            received: Instant::now(),
            received_utc: SystemTime::now(),
        };
        let reply = app.route(&request);
        let accepted = reply
            .accepted
            .as_ref()
            .expect("the fixture is a valid event");
        let route = time(iterations, || {
            black_box(app.route(black_box(&request)));
        });
        let line = time(iterations, || {
            black_box(event_line(EventFormat::Text, black_box(accepted)));
        });
        println!(
            "{path}: route {:.2} µs, event line {:.2} µs",
            route.as_secs_f64() * 1e6,
            line.as_secs_f64() * 1e6
        );
    }
}
