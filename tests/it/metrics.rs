//! `GET /metrics` and the warnings for a wrong `WEBHOOK_URL`, on the binary.

use std::collections::BTreeMap;
use std::time::Duration;

use sipgateio_callevents::event::{self, CallEvent};

use crate::support::{
    Binary, EVENT_FIXTURES, exchange, fixture, get, post, post_signed, raw_post, request, route,
    signed_capture, statuses, temp_dir,
};

/// The page, parsed as Prometheus text: each sample by its name and labels.
fn scrape(server: &Binary) -> BTreeMap<String, f64> {
    let page = get(&server.url("/metrics"));
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(
        page.header("Content-Type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(page.body.ends_with("# EOF\n"), "{}", page.body);
    let lines = page.body.lines().map(|line| Ok(line.to_owned()));
    let scrape =
        prometheus_parse::Scrape::parse(lines).expect("the page parses as Prometheus text");
    scrape
        .samples
        .into_iter()
        .map(|sample| {
            let mut labels: Vec<String> = sample
                .labels
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            labels.sort();
            let value = match sample.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(_) | prometheus_parse::Value::Summary(_) => {
                    f64::NAN
                }
            };
            (format!("{}{{{}}}", sample.metric, labels.join(",")), value)
        })
        .collect()
}

fn value(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    *samples
        .get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {samples:#?}"))
}

#[test]
fn metrics_are_off_by_default() {
    let server = Binary::start(
        &temp_dir("metrics-off"),
        &[("SKIP_SIGNATURE_VERIFICATION", "true")],
    );
    let page = get(&server.url("/metrics"));
    assert_eq!(page.status, 404, "{page:?}");
}

#[test]
fn counters_move_exactly_with_the_requests_sent() {
    let server = Binary::start(
        &temp_dir("metrics-counts"),
        &[
            ("SKIP_SIGNATURE_VERIFICATION", "true"),
            ("METRICS", "true"),
            ("MAX_BODY_BYTES", "5000"),
        ],
    );
    let before = scrape(&server);
    assert_eq!(
        value(&before, "sipgateio_events_total{cause=,event=newCall}"),
        0.0
    );
    assert_eq!(value(&before, "sipgateio_answer_seconds_count{}"), 0.0);
    assert!(value(&before, "sipgateio_connections_max{}") > 0.0);
    assert_eq!(value(&before, "sipgateio_build_info{version=0.1.0}"), 1.0);

    // Every event fixture, each accepted once.
    let mut expected: BTreeMap<String, f64> = BTreeMap::new();
    for (name, kind) in EVENT_FIXTURES {
        let body = fixture(name);
        let answer = post(&server.url(route(kind)), &body, &[]);
        assert_eq!(answer.status, 200, "{name}: {answer:?}");
        let cause = match event::parse(kind, &body).unwrap() {
            CallEvent::Hangup(hangup) => hangup.cause.unwrap().as_str().to_owned(),
            _ => String::new(),
        };
        *expected
            .entry(format!(
                "sipgateio_events_total{{cause={cause},event={}}}",
                kind.wire_name()
            ))
            .or_default() += 1.0;
    }
    let mut posts = EVENT_FIXTURES.len();

    // One of each refusal the server itself tells apart.
    let new_call = fixture("01-newcall-in.form");
    let chunked = raw_post("/new-call").chunked(100).body(&new_call).close();
    let refusals = [
        (
            "bad_request",
            400,
            post(&server.url("/new-call"), b"from=1&to=2", &[]).status,
        ),
        (
            "unsupported_media_type",
            415,
            post(
                &server.url("/new-call"),
                &new_call,
                &[("Content-Type", "text/plain")],
            )
            .status,
        ),
        (
            "too_large",
            413,
            post(&server.url("/on-hangup"), &[b'x'; 6000], &[]).status,
        ),
        (
            "length_required",
            411,
            statuses(&exchange(server.addr, &chunked.bytes(), false, Duration::from_secs(5)).text)
                [0],
        ),
        (
            "not_found",
            404,
            post(&server.url("/nope"), b"", &[]).status,
        ),
        (
            "method_not_allowed",
            405,
            request(&server.url("/new-call"), "PUT", b"", &[]).status,
        ),
    ];
    for (reason, status, answered) in refusals {
        assert_eq!(answered, status, "{reason}");
        expected.insert(
            format!("sipgateio_requests_refused_total{{reason={reason},status={status}}}"),
            1.0,
        );
    }
    // All but the PUT are POSTs.
    posts += refusals.len() - 1;
    // A GET of an unknown path is refused too, but takes no answer time: only POSTs do.
    assert_eq!(get(&server.url("/admin")).status, 404);
    expected.insert(
        "sipgateio_requests_refused_total{reason=not_found,status=404}".into(),
        2.0,
    );

    let after = scrape(&server);
    for (key, count) in &expected {
        assert_eq!(value(&after, key), *count, "{key}");
    }
    // Nothing else moved: every other event and refusal sample is zero.
    for (key, count) in &after {
        if (key.starts_with("sipgateio_events_total")
            || key.starts_with("sipgateio_requests_refused_total"))
            && !expected.contains_key(key)
        {
            assert_eq!(*count, 0.0, "{key}");
        }
    }
    let timed = value(&after, "sipgateio_answer_seconds_count{}");
    assert_eq!(timed, posts as f64, "one answer time per POST");
    assert!(
        value(&after, "sipgateio_calls_tracked{}") >= 1.0,
        "{after:#?}"
    );
}

#[test]
fn signature_refusals_are_told_apart() {
    let server = Binary::start(&temp_dir("metrics-signature"), &[("METRICS", "true")]);
    let (body, signature) = signed_capture();
    assert_eq!(post_signed(&server.url("/new-call")).status, 200);
    assert_eq!(post(&server.url("/new-call"), &body, &[]).status, 403);
    let mut tampered = body.clone();
    tampered[0] ^= 1;
    assert_eq!(
        post(
            &server.url("/new-call"),
            &tampered,
            &[("X-Sipgate-Signature", &signature)]
        )
        .status,
        403
    );
    assert_eq!(
        post(
            &server.url("/new-call"),
            &body,
            &[("X-Sipgate-Signature", "%%%")]
        )
        .status,
        403
    );
    let samples = scrape(&server);
    assert_eq!(
        value(&samples, "sipgateio_events_total{cause=,event=newCall}"),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "sipgateio_requests_refused_total{reason=signature_missing,status=403}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "sipgateio_requests_refused_total{reason=signature_invalid,status=403}"
        ),
        2.0
    );
}

#[test]
fn rules_and_menus_are_counted_by_name() {
    let dir = temp_dir("metrics-rules");
    let rules = dir.join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"anonymous\"\nmatch = { from = \"anonymous\" }\nanswer = { reject = \"busy\" }\n\
         [[rule]]\nmatch = { to = \"4921*\" }\nanswer = { menu = \"main\" }\n\
         [menu.main]\noptions = { \"1\" = { hangup = true } }\n",
    )
    .unwrap();
    let server = Binary::start(
        &dir,
        &[
            ("SKIP_SIGNATURE_VERIFICATION", "true"),
            ("METRICS", "true"),
            ("CALL_RULES_FILE", rules.to_str().unwrap()),
        ],
    );
    let call = |from: &str, to: &str| {
        let body = format!("event=newCall&from={from}&to={to}&callId=c&direction=in");
        assert_eq!(
            post(&server.url("/new-call"), body.as_bytes(), &[]).status,
            200
        );
    };
    call("anonymous", "4930");
    call("4917", "49211");
    call("4917", "4930");
    call("4917", "4930");
    for digits in ["1", "1", "7"] {
        let body = format!("event=dtmf&callId=c&dtmf={digits}");
        post(&server.url("/on-dtmf?menu=main"), body.as_bytes(), &[]);
    }
    post(
        &server.url("/on-dtmf?menu=%0Aevil"),
        b"event=dtmf&callId=c&dtmf=1",
        &[],
    );
    let samples = scrape(&server);
    for (key, count) in [
        ("sipgateio_rule_answers_total{rule=anonymous}", 1.0),
        ("sipgateio_rule_answers_total{rule=rule 2}", 1.0),
        ("sipgateio_rule_answers_total{rule=none}", 2.0),
        ("sipgateio_menu_choices_total{menu=main,option=1}", 2.0),
        (
            "sipgateio_menu_choices_total{menu=main,option=otherwise}",
            1.0,
        ),
        (
            "sipgateio_menu_choices_total{menu=(unknown),option=otherwise}",
            1.0,
        ),
    ] {
        assert_eq!(value(&samples, key), count, "{key}");
    }
}

#[test]
fn a_newcall_for_another_host_warns_once_per_host_and_never_for_webhook_urls() {
    let server = Binary::start(
        &temp_dir("metrics-hosts"),
        &[
            ("SKIP_SIGNATURE_VERIFICATION", "true"),
            ("WEBHOOK_URL", "https://calls.example.com/hooks"),
        ],
    );
    let new_call = fixture("01-newcall-in.form");
    let send = |host: &str, forwarded: Option<&str>| {
        let mut post = raw_post("/hooks/new-call")
            .host(host)
            .body(&new_call)
            .close();
        if let Some(forwarded) = forwarded {
            post = post.header("X-Forwarded-Host", forwarded);
        }
        let sent = exchange(server.addr, &post.bytes(), false, Duration::from_secs(5));
        assert_eq!(statuses(&sent.text), [200], "{}", sent.text);
    };
    for _ in 0..3 {
        send("calls.example.com", None);
        send("CALLS.example.com:443", None);
        send("127.0.0.1:8080", Some("calls.example.com"));
        send("old.example.com", None);
        send("127.0.0.1:8080", Some("abc.ngrok.io"));
    }
    // The hangup route never warns: sipgate sends it wherever WEBHOOK_URL says.
    let hangup = raw_post("/hooks/on-hangup")
        .host("elsewhere.example.com")
        .body(fixture("09-hangup-normalclearing.form"))
        .close();
    exchange(server.addr, &hangup.bytes(), false, Duration::from_secs(5));

    let warnings = server.wait_for_stderr(Duration::from_secs(2), |_| false);
    let warned: Vec<&String> = warnings
        .iter()
        .filter(|line| line.contains("a newCall arrived for host"))
        .collect();
    assert_eq!(warned.len(), 2, "{warnings:#?}");
    assert!(
        warned[0].contains(
            "host \"old.example.com\", but WEBHOOK_URL is https://calls.example.com/hooks: "
        ),
        "{}",
        warned[0]
    );
    assert!(warned[1].contains("host \"abc.ngrok.io\""), "{}", warned[1]);
}

#[test]
fn plain_http_on_a_public_host_warns_at_start() {
    let public = Binary::start(
        &temp_dir("metrics-http"),
        &[("WEBHOOK_URL", "http://calls.example.com")],
    );
    assert!(
        public
            .stderr()
            .contains("WEBHOOK_URL http://calls.example.com is plain http"),
        "{}",
        public.stderr()
    );
    let local = Binary::start(&temp_dir("metrics-http-local"), &[]);
    assert!(!local.stderr().contains("plain http"), "{}", local.stderr());
}

#[test]
fn a_newcall_without_answer_or_hangup_is_logged_and_counted() {
    let server = Binary::start(
        &temp_dir("metrics-unfollowed"),
        &[
            ("SKIP_SIGNATURE_VERIFICATION", "true"),
            ("METRICS", "true"),
            ("CALL_TTL_SECONDS", "1"),
        ],
    );
    let body =
        |id: &str| format!("event=newCall&from=4917&to=4921&callId={id}&direction=in").into_bytes();
    post(&server.url("/new-call"), &body("silent"), &[]);
    post(&server.url("/new-call"), &body("answered"), &[]);
    post(
        &server.url("/on-answer"),
        b"event=answer&callId=answered",
        &[],
    );
    let lines = server.wait_for_stderr(Duration::from_secs(5), |lines| {
        lines
            .iter()
            .any(|line| line.contains("no answer or hangup event came"))
    });
    let logged: Vec<&String> = lines
        .iter()
        .filter(|line| line.contains("no answer or hangup event came"))
        .collect();
    assert_eq!(logged.len(), 1, "{lines:#?}");
    assert!(
        logged[0].contains("of call silent; if no call ever gets one, sipgate cannot reach http://localhost:8080/on-hangup"),
        "{}",
        logged[0]
    );
    assert_eq!(
        value(&scrape(&server), "sipgateio_calls_without_followup_total{}"),
        1.0
    );
}

/// A connection that trickles its head is cut, counted, and logged.
#[test]
#[cfg_attr(
    feature = "portable",
    ignore = "only Linux tells which socket a thread reads, to cut it"
)]
fn a_cut_connection_is_counted_and_logged() {
    use std::io::Write;
    use std::net::TcpStream;

    use crate::support::{Trickle, read_until_closed};

    let mut server = Binary::start(
        &temp_dir("metrics-cut"),
        &[
            ("METRICS", "true"),
            ("SKIP_SIGNATURE_VERIFICATION", "true"),
            ("READ_TIMEOUT_SECONDS", "1"),
            ("WRITE_TIMEOUT_SECONDS", "1"),
        ],
    );
    assert_eq!(
        value(&scrape(&server), "sipgateio_connections_cut_total{}"),
        0.0
    );
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nX-Slow: ")
        .unwrap();
    let trickle = Trickle::on(&stream);
    let got = read_until_closed(&mut stream, Duration::from_secs(8));
    drop(trickle);
    assert!(got.closed, "the trickling connection is still open");
    assert_eq!(
        value(&scrape(&server), "sipgateio_connections_cut_total{}"),
        1.0
    );
    let (_, stderr) = server.stop_cleanly();
    assert!(
        stderr.contains("closed 1 connection(s) whose request was still arriving 3 s after"),
        "{stderr}"
    );
}
