//! The server at its boundary: real HTTP against a server on 127.0.0.1:0.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use sipgateio_callevents::event::EventKind;

use crate::support::*;

/// Every fixture sipgate could send, to its route, with the exact line it prints. Each
/// goes to a fresh server, so no hangup finds its call and gains durations.
#[test]
fn every_fixture_is_answered_and_printed() {
    let cases = [
        (
            "01-newcall-in.form",
            format!(
                "New call from 492111234567 to 4915791234567 (direction in), callId {CID1}, users: Alice Smith"
            ),
        ),
        (
            "02-newcall-in-group.form",
            format!(
                "New call from 492111234567 to 4921100000000 (direction in), callId {CID1}, users: Alice Smith, Bob Jones, Carol"
            ),
        ),
        (
            "03-newcall-in-anonymous.form",
            format!(
                "New call from anonymous to 4915791234567 (direction in), callId {CID3}, users: Alice Smith"
            ),
        ),
        (
            "04-newcall-out.form",
            format!(
                "New call from 492111234567 to 4915799912345 (direction out), callId {CID2}, users: Alice Smith"
            ),
        ),
        (
            "05-newcall-in-forwarded-voicemail.form",
            format!(
                "New call from 491781234567 to 492031234567 (direction in), callId {CID2}, users: voicemail"
            ),
        ),
        (
            "06-newcall-in-utf8-name.form",
            format!(
                "New call from 4930123456789 to 4921100000000 (direction in), callId {CID3}, users: Jörg Müller"
            ),
        ),
        (
            "07-answer-in.form",
            format!(
                "4915791234567 answered call from 492111234567, answered by Alice Smith, answering number 4915791234567, callId {CID1}"
            ),
        ),
        (
            "08-answer-out.form",
            format!(
                "4915799912345 answered call from 492111234567, answering number 4915799912345, callId {CID2}"
            ),
        ),
        (
            "09-hangup-normalclearing.form",
            format!("The call has been hung up, cause normalClearing, callId {CID1}"),
        ),
        (
            "10-hangup-cancel-anonymous.form",
            format!("The call has been hung up, cause cancel, callId {CID3}"),
        ),
        (
            "11-hangup-forwarded.form",
            format!("The call has been hung up, cause forwarded, callId {CID1}"),
        ),
        (
            "12-hangup-busy-out.form",
            format!("The call has been hung up, cause busy, callId {CID2}"),
        ),
        (
            "13-dtmf-digits.form",
            format!("DTMF digits 0815, callId {CID3}"),
        ),
        (
            "14-dtmf-omitted.form",
            format!("DTMF: no digits, callId {CID3}"),
        ),
        (
            "15-dtmf-empty.form",
            format!("DTMF: no digits, callId {CID3}"),
        ),
        (
            "16-legacy-newcall-in-minimal.form",
            "New call from anonymous to 445603000514 (direction in), callId 4932215337270853042"
                .to_owned(),
        ),
        (
            "17-legacy-newcall-out-extension-from.form",
            "New call from 1452406e0 to 491714100300 (direction out), callId 5930108064835725888"
                .to_owned(),
        ),
        (
            "18-signed-real-capture.form",
            format!("New call from 491776249000 to 4928559389086 (direction in), callId {CID1}"),
        ),
    ];
    assert_eq!(
        cases.len(),
        EVENT_FIXTURES.len(),
        "a line for every event fixture"
    );
    for (name, line) in &cases {
        let server = TestServer::unsigned();
        let kind = kind_of(name);
        let answer = server.post_form(route(kind), &fixture(name));
        assert_eq!(answer.status, 200, "{name}: {}", answer.body);
        if kind == EventKind::NewCall {
            assert_eq!(
                answer.header("Content-Type"),
                Some("application/xml; charset=UTF-8"),
                "{name}"
            );
            assert_eq!(
                answer.body,
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response onAnswer=\"http://localhost:8080/on-answer\" onHangup=\"http://localhost:8080/on-hangup\" />\n",
                "{name}"
            );
        } else {
            assert_eq!(answer.body, "", "{name}");
        }
        assert_eq!(server.lines.all(), vec![line.clone()], "{name}");
    }
}

#[test]
fn a_call_seen_from_start_to_end_reports_ring_and_talk_time() {
    let server = TestServer::unsigned();
    server.post_form("/new-call", &fixture("01-newcall-in.form"));
    std::thread::sleep(Duration::from_millis(150));
    server.post_form("/on-answer", &fixture("07-answer-in.form"));
    std::thread::sleep(Duration::from_millis(250));
    server.post_form("/on-hangup", &fixture("09-hangup-normalclearing.form"));
    // A call this server never saw start: no durations.
    server.post_form("/on-hangup", &fixture("12-hangup-busy-out.form"));
    let lines = server.lines.all();
    let hangup = &lines[2];
    let prefix = format!("The call has been hung up, cause normalClearing, callId {CID1}, rang ");
    let rest = hangup
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{hangup}"));
    let (rang, talked) = rest.split_once(" s, talked ").unwrap();
    let rang: f64 = rang.parse().unwrap();
    let talked: f64 = talked.strip_suffix(" s").unwrap().parse().unwrap();
    assert!((0.1..5.0).contains(&rang), "{hangup}");
    assert!((0.2..5.0).contains(&talked), "{hangup}");
    assert_eq!(
        lines[3],
        format!("The call has been hung up, cause busy, callId {CID2}")
    );
}

#[test]
fn json_lines_for_every_event() {
    let server = TestServer::start(&[
        ("SKIP_SIGNATURE_VERIFICATION", "true"),
        ("EVENT_FORMAT", "json"),
    ]);
    server.post_form("/new-call", &fixture("02-newcall-in-group.form"));
    server.post_form("/on-answer", &fixture("07-answer-in.form"));
    server.post_form("/on-dtmf", &fixture("13-dtmf-digits.form"));
    server.post_form("/on-hangup", &fixture("09-hangup-normalclearing.form"));
    let lines = server.lines.all();
    assert_eq!(lines.len(), 4);
    let json: Vec<serde_json::Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(json[0]["event"], "newCall");
    assert_eq!(
        json[0]["user"],
        serde_json::json!(["Alice Smith", "Bob Jones", "Carol"])
    );
    assert_eq!(json[0]["fullUserId"][2], "1234567w2");
    assert_eq!(json[0].get("diversion"), None, "absent fields are absent");
    assert_eq!(json[1]["event"], "answer");
    assert_eq!(json[1]["user"], "Alice Smith");
    assert_eq!(json[1]["answeringNumber"], "4915791234567");
    assert_eq!(
        json[2]["dtmf"], "0815",
        "digits stay a string with the leading zero"
    );
    assert_eq!(json[3]["cause"], "normalClearing");
    assert_eq!(json[3]["answered"], true);
    assert!(json[3]["ringSeconds"].is_f64() && json[3]["talkSeconds"].is_f64());
    for value in &json {
        let received = value["receivedAt"].as_str().unwrap();
        assert!(
            received.len() == 24 && received.ends_with('Z'),
            "{received}"
        );
    }
}

#[test]
fn node_test_vector_passes_the_signature_but_has_no_call_id() {
    let server = TestServer::start(&[]);
    let signature = String::from_utf8(fixture("19-signed-nodelib-testvector.sig")).unwrap();
    let answer = server.post(
        "/new-call",
        &fixture("19-signed-nodelib-testvector.form"),
        &[("X-Sipgate-Signature", &signature)],
    );
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.body,
        "missing required field callId in the newCall event"
    );
    assert!(server.lines.all().is_empty());
}

/// The tests' server is built as the binary builds its app, so `SIPGATE_PUBLIC_KEY_FILE`
/// replaces sipgate's key there too: sipgate's signed capture fails against another key
/// and passes against a copy of sipgate's.
#[test]
fn a_test_server_checks_signatures_with_the_key_file() {
    let (body, signature) = signed_capture();
    let headers = [("X-Sipgate-Signature", signature.as_str())];
    let key = |name: &str| fixtures_dir().join(name).to_str().unwrap().to_owned();
    let unrelated = key("unrelated-rsa-2048-pubkey.pem");
    let other = TestServer::start(&[("SIPGATE_PUBLIC_KEY_FILE", &unrelated)]);
    let refused = other.post("/new-call", &body, &headers);
    assert_eq!(refused.status, 403, "{}", refused.body);
    let copy = key("sipgate-push-pubkey.pem");
    let same = TestServer::start(&[("SIPGATE_PUBLIC_KEY_FILE", &copy)]);
    assert_eq!(same.post("/new-call", &body, &headers).status, 200);
}

#[test]
fn real_signed_request_passes_and_every_tampering_fails() {
    let server = TestServer::start(&[]);
    let (body, signature) = signed_capture();
    let answer = server.post("/new-call", &body, &[("X-Sipgate-Signature", &signature)]);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains("<Response onAnswer="));
    assert_eq!(server.lines.all().len(), 1);

    let mut one_byte_changed = body.clone();
    one_byte_changed[30] = if one_byte_changed[30] == b'1' {
        b'2'
    } else {
        b'1'
    };
    let mut trailing_newline = body.clone();
    trailing_newline.push(b'\n');
    let cases: [(&[u8], Option<&str>, &str); 5] = [
        (
            &one_byte_changed,
            Some(&signature),
            "X-Sipgate-Signature does not match the request body",
        ),
        (
            &trailing_newline,
            Some(&signature),
            "X-Sipgate-Signature does not match the request body",
        ),
        (&body, None, "missing X-Sipgate-Signature header"),
        (
            &body,
            Some("fakeSignature"),
            "X-Sipgate-Signature header is not valid base64",
        ),
        (
            &body,
            Some(""),
            "X-Sipgate-Signature header is not valid base64",
        ),
    ];
    for (body, header, reason) in cases {
        let headers: Vec<(&str, &str)> = header
            .map(|h| ("X-Sipgate-Signature", h))
            .into_iter()
            .collect();
        let answer = server.post("/new-call", body, &headers);
        assert_eq!(answer.status, 403, "{reason}");
        assert_eq!(answer.body, format!("forbidden: {reason}"));
    }
    assert_eq!(
        server.lines.all().len(),
        1,
        "refused requests print no event line"
    );
}

#[test]
fn signature_is_checked_on_every_event_route() {
    let server = TestServer::start(&[]);
    for name in [
        "07-answer-in.form",
        "09-hangup-normalclearing.form",
        "13-dtmf-digits.form",
    ] {
        let path = route(kind_of(name));
        assert_eq!(server.post_form(path, &fixture(name)).status, 403, "{path}");
    }
    assert!(server.lines.all().is_empty());
}

#[test]
fn error_paths_answer_a_status_and_a_reason() {
    let server = TestServer::unsigned();
    let hangup = fixture("09-hangup-normalclearing.form");

    let answer = server.post_form("/nope", &hangup);
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (404, "no route for \"/nope\"")
    );

    let answer = server.get("/new-call");
    assert_eq!(answer.status, 405);
    assert_eq!(answer.header("Allow"), Some("POST"));
    assert!(answer.body.contains("POST"), "{}", answer.body);

    let answer = request(&server.url("/health"), "POST", b"", &[]);
    assert_eq!(
        (answer.status, answer.header("Allow")),
        (405, Some("GET, HEAD"))
    );

    let answer = server.post(
        "/on-hangup",
        &hangup,
        &[("Content-Type", "application/json")],
    );
    assert_eq!(answer.status, 415);
    assert!(answer.body.contains("application/json"), "{}", answer.body);

    let answer = request(&server.url("/on-hangup"), "POST", &hangup, &[]);
    assert_eq!(answer.status, 415, "a body without Content-Type");

    let answer = server.post_form("/new-call", b"event=newCall&from=1&callId=x");
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (400, "missing required field to in the newCall event")
    );

    let answer = server.post_form("/on-hangup", b"event=hangup&cause=busy");
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (400, "missing required field callId in the hangup event")
    );

    let answer = server.post_form("/on-answer", &hangup);
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.body,
        "event \"hangup\" sent to the answer route, which only takes event=answer"
    );

    for answer in [
        server.post_form("/on-hangup", &hangup),
        server.post_form("/on-answer", b"callId=x"),
    ] {
        assert!(answer.header("Content-Length").is_some());
    }
    assert_eq!(
        server.lines.all().len(),
        2,
        "only the two accepted events print"
    );
}

#[test]
fn oversized_bodies_get_413_declared_or_chunked() {
    let server = TestServer::start(&[
        ("SKIP_SIGNATURE_VERIFICATION", "true"),
        ("MAX_BODY_BYTES", "5000"),
    ]);
    let big = vec![b'a'; 5001];
    let answer = server.post_form("/on-hangup", &big);
    assert_eq!(answer.status, 413);
    assert_eq!(
        answer.body,
        "a body of 5001 bytes is over the limit of 5000 bytes (MAX_BODY_BYTES)"
    );

    let chunked = raw_post("/on-hangup")
        .close()
        .chunked(1000)
        .body(vec![b'a'; 6000])
        .bytes();
    let text = exchange(server.addr, &chunked, true, Duration::from_secs(5)).text;
    assert_eq!(statuses(&text), [413], "{text}");
    assert!(
        text.contains("the body is over the limit of 5000 bytes"),
        "{text}"
    );

    // A body at the limit is fine.
    let mut at_limit = b"callId=x&pad=".to_vec();
    at_limit.resize(5000, b'p');
    assert_eq!(server.post_form("/on-hangup", &at_limit).status, 200);
}

#[test]
fn a_body_shorter_than_its_content_length_gets_400() {
    let server = TestServer::unsigned();
    let body = format!("callId=x&pad={}", "p".repeat(1500));
    let request = raw_post("/on-hangup").length(body.len() + 100).body(&body);
    let text = exchange(server.addr, &request.bytes(), true, Duration::from_secs(5)).text;
    // (tiny_http then writes a second 400 of its own when it finds the half-closed
    // connection at its end; only the first answer is ours.)
    assert_eq!(statuses(&text).first(), Some(&400), "{text}");
    assert!(
        text.contains(&format!(
            "the body ended after {} of its {} bytes",
            body.len(),
            body.len() + 100
        )),
        "{text}"
    );
    assert!(server.lines.all().is_empty());
}

#[test]
fn invalid_content_length_gets_400() {
    let server = TestServer::unsigned();
    let text = exchange(
        server.addr,
        b"POST /on-hangup HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: abc\r\nConnection: close\r\n\r\n",
        true,
        Duration::from_secs(5),
    )
    .text;
    assert_eq!(statuses(&text), [400], "{text}");
    assert!(text.contains("invalid Content-Length \"abc\""), "{text}");
}

/// Stock tiny_http 0.12.0 aborts the whole process on this request; the fork must not.
#[test]
fn a_huge_content_length_is_refused_and_the_next_request_is_served() {
    let server = TestServer::unsigned();
    for length in ["1000000000000000", "18446744073709551615"] {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        let request = raw_post("/new-call").length(length).body("event=newCall");
        stream.write_all(&request.bytes()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut head = [0u8; 12];
        std::io::Read::read_exact(&mut stream, &mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 413", "Content-Length {length}");
        drop(stream);
        let answer = server.post_form("/on-hangup", &fixture("09-hangup-normalclearing.form"));
        assert_eq!(answer.status, 200, "after Content-Length {length}");
    }
}

#[test]
fn health_answers_ok_without_an_event_line() {
    let server = TestServer::start(&[("WEBHOOK_URL", "https://example.com/p")]);
    let answer = server.get("/p/health");
    assert_eq!((answer.status, answer.body.as_str()), (200, "ok"));
    assert_eq!(
        request(&server.url("/p/health"), "HEAD", b"", &[]).status,
        200
    );
    assert!(server.lines.all().is_empty());
}

#[test]
fn webhook_url_prefix_query_and_trailing_slash() {
    let server = TestServer::start(&[
        ("SKIP_SIGNATURE_VERIFICATION", "true"),
        (
            "WEBHOOK_URL",
            "https://example.com/hooks/abc/?token=s3cr3t&x=1",
        ),
    ]);
    let body = fixture("01-newcall-in.form");
    let answer = server.post_form("/hooks/abc/new-call?token=s3cr3t&x=1", &body);
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response onAnswer=\"https://example.com/hooks/abc/on-answer?token=s3cr3t&amp;x=1\" onHangup=\"https://example.com/hooks/abc/on-hangup?token=s3cr3t&amp;x=1\" />\n"
    );
    assert_eq!(
        server.post_form("/new-call", &body).status,
        404,
        "outside the prefix"
    );
    assert_eq!(server.post_form("/hooks/abc//new-call", &body).status, 404);
    let hangup = fixture("09-hangup-normalclearing.form");
    assert_eq!(
        server
            .post_form("/hooks/abc/on-hangup?token=s3cr3t&x=1", &hangup)
            .status,
        200
    );
}

#[test]
fn replies_are_never_compressed() {
    let server = TestServer::unsigned();
    let answer = server.post(
        "/new-call",
        &fixture("01-newcall-in.form"),
        &[("Accept-Encoding", "gzip,deflate")],
    );
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("Content-Encoding"), None);
    assert_eq!(
        answer.header("Content-Length"),
        Some(answer.body.len().to_string().as_str())
    );
}

#[test]
fn a_panicking_handler_answers_500_and_the_server_serves_on() {
    let config = config(&[]);
    let server = TestServer::with_handler(
        &config,
        Arc::new(|request| {
            if request.path == "/boom" {
                panic!("handler bug (expected by this test)");
            }
            sipgateio_callevents::exchange::Reply::text(200, "fine")
        }),
    );
    for _ in 0..3 {
        let answer = server.post_form("/boom", b"callId=x");
        assert_eq!(answer.status, 500);
        assert_eq!(
            server.post_form("/other", b"").body,
            "fine",
            "the server still serves"
        );
    }
}

#[test]
fn keep_alive_connection_serves_many_events() {
    let server = TestServer::unsigned();
    let body = fixture("09-hangup-normalclearing.form");
    let mut stream = TcpStream::connect(server.addr).unwrap();
    let mut request = raw_post("/on-hangup").body(&body).bytes().repeat(50);
    request.extend_from_slice(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(&request).unwrap();
    let text = read_until_closed(&mut stream, Duration::from_secs(10)).text;
    let codes = statuses(&text);
    assert_eq!(codes.len(), 51, "{text}");
    assert!(codes.iter().all(|&code| code == 200));
    assert_eq!(server.lines.all().len(), 50);
}

/// Every event fixture as JSON: one valid object per line, with the event's name and
/// every field it carries under sipgate's parameter name.
#[test]
fn json_lines_for_every_fixture() {
    let server = TestServer::start(&[
        ("SKIP_SIGNATURE_VERIFICATION", "true"),
        ("EVENT_FORMAT", "json"),
    ]);
    for (name, kind) in EVENT_FIXTURES {
        assert_eq!(
            server.post_form(route(kind), &fixture(name)).status,
            200,
            "{name}"
        );
    }
    let lines = server.lines.all();
    assert_eq!(lines.len(), EVENT_FIXTURES.len());
    for ((name, _), line) in EVENT_FIXTURES.iter().zip(&lines) {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}: {line}"));
        let object = value.as_object().unwrap();
        // Every parameter in the body (that this server knows) is in the line, as sent.
        for (key, sent) in form_urlencoded::parse(&fixture(name)) {
            let key = key.trim_end_matches("[]");
            if sent.is_empty() && key != "user" {
                assert!(!object.contains_key(key), "{name}: empty {key} is absent");
                continue;
            }
            let field = object
                .get(key)
                .unwrap_or_else(|| panic!("{name}: no {key} in {line}"));
            let matches = match field {
                serde_json::Value::Array(values) => values.iter().any(|v| v == sent.as_ref()),
                other => other == sent.as_ref(),
            };
            assert!(matches, "{name}: {key}={sent} but the line has {field}");
        }
    }
}

#[test]
fn hostile_names_stay_one_valid_line_in_both_formats() {
    let body = b"event=newCall&from=1&to=2&callId=c%22%5C&user%5B%5D=%22Eve%22+%5C%0A%7B%7D%00%1B%5B31m&user%5B%5D=%FF%C3%28";
    for format in ["text", "json"] {
        let server = TestServer::start(&[
            ("SKIP_SIGNATURE_VERIFICATION", "true"),
            ("EVENT_FORMAT", format),
        ]);
        assert_eq!(server.post_form("/new-call", body).status, 200);
        let lines = server.lines.all();
        assert_eq!(lines.len(), 1, "{format}: one event, one line: {lines:?}");
        if format == "json" {
            let value: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
            assert_eq!(value["user"][0], "\"Eve\" \\\n{}\u{0}\u{1b}[31m");
            assert_eq!(value["user"][1], "\u{FFFD}\u{FFFD}(");
            assert_eq!(value["callId"], "c\"\\");
        } else {
            assert!(
                !lines[0].contains('\u{1b}'),
                "no raw escape sequences reach the terminal"
            );
        }
    }
}

#[test]
fn every_answer_carries_the_date_and_the_server() {
    let server = TestServer::unsigned();
    for answer in [
        server.post_form("/new-call", &fixture("01-newcall-in.form")),
        server.get("/health"),
        server.get("/nope"),
    ] {
        let date = answer.header("Date").expect("a Date header");
        let sent = httpdate::parse_http_date(date).expect("an HTTP date");
        let off = std::time::SystemTime::now()
            .duration_since(sent)
            .unwrap_or_default();
        assert!(off < std::time::Duration::from_secs(5), "{date}");
        assert!(
            answer
                .header("Server")
                .is_some_and(|server| server.starts_with("sipgateio-callevents/")),
            "{answer:?}"
        );
    }
}

/// A stop wakes the accept loop on every system (a connection of its own, not a shutdown of
/// the listening socket, which macOS refuses), and the listener closes: its port is free
/// at once and new connections are refused, while a keep-alive connection opened before
/// is still served.
#[test]
fn after_a_stop_the_listener_closes() {
    let server = TestServer::unsigned();
    let mut kept = TcpStream::connect(server.addr).unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(server.get("/health").status, 200);
    server.stop();
    // Binding the port, not connecting to it: a connection would wake the loop itself.
    let stopped = std::time::Instant::now();
    let rebound = loop {
        match std::net::TcpListener::bind(server.addr) {
            Ok(listener) => break listener,
            Err(_) if stopped.elapsed() < Duration::from_secs(2) => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(error) => panic!("the port is still taken 2 s after the stop: {error}"),
        }
    };
    assert!(
        stopped.elapsed() < Duration::from_millis(500),
        "{stopped:?}"
    );
    drop(rebound);
    let refused = TcpStream::connect(server.addr).expect_err("nothing listens");
    assert_eq!(
        refused.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{refused}"
    );
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = [0u8; 12];
    std::io::Read::read_exact(&mut kept, &mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
}
