//! Malformed and hostile requests against the real server on 127.0.0.1, over raw TCP where a
//! client library would refuse to send them.
//!
//! Every case asserts the exact outcome (the status codes, or silence), how many event
//! lines it printed, and then that the same server still serves a normal request: the
//! signed real capture (fixture 18) when verification is on, an unsigned hangup otherwise.
//! The outcomes are what tiny_http_fork 0.12.17 and our server do today, measured; where
//! tiny_http has no limit at all, the case says so and shows the server survives the input.
//!
//! Two tiny_http habits shape the expectations:
//! - after answering on a keep-alive connection that the client half-closed, tiny_http
//!   reads EOF where the next request would start and writes a stray `400` of its own; on
//!   such connections only the first status is ours ([`Expect::First`]);
//! - it answers errors it finds itself (bad request line, bad header) with an empty `400`
//!   and closes the connection.

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::*;

/// Upper bound for an answer that does come; answers here take milliseconds.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// How long a case that expects no answer waits for one.
const SILENCE: Duration = Duration::from_millis(300);

const FORM_HEADERS: &str = "Host: x\r\nContent-Type: application/x-www-form-urlencoded\r\n";

/// The outcome a case expects.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Exactly these answers, then the server closes the connection.
    Exactly(&'static [u16]),
    /// This answer first; tiny_http may add its stray 400 on a half-closed connection.
    First(u16),
    /// No byte within [`SILENCE`], and the connection is still open.
    Silent,
}

struct Case {
    name: &'static str,
    request: Vec<u8>,
    /// Half-close the connection after sending, as a client that has nothing more to say.
    half_close: bool,
    expect: Expect,
    /// Event lines the request prints (0 unless it is a valid event).
    events: usize,
    /// A text the answer must contain (our reason phrases), if any.
    body_contains: Option<&'static str>,
}

impl Case {
    fn new(name: &'static str, request: impl Into<Vec<u8>>, expect: Expect) -> Case {
        Case {
            name,
            request: request.into(),
            half_close: true,
            expect,
            events: 0,
            body_contains: None,
        }
    }

    fn events(self, events: usize) -> Case {
        Case { events, ..self }
    }

    fn containing(self, text: &'static str) -> Case {
        Case {
            body_contains: Some(text),
            ..self
        }
    }

    fn kept_open(self) -> Case {
        Case {
            half_close: false,
            ..self
        }
    }
}

/// The server still does its job: the real signed capture when it verifies, an unsigned
/// hangup when it does not; each prints its line.
fn assert_still_serves(server: &TestServer, verifying: bool, after: &str) {
    let before = server.lines.all().len();
    let answer = if verifying {
        post_signed(&server.url("/new-call"))
    } else {
        server.post_form("/on-hangup", &fixture("09-hangup-normalclearing.form"))
    };
    assert_eq!(
        answer.status, 200,
        "not served after {after}: {}",
        answer.body
    );
    assert_eq!(
        server.lines.all().len(),
        before + 1,
        "no line after {after}"
    );
}

fn run(server: &TestServer, verifying: bool, cases: Vec<Case>) {
    for case in cases {
        let before = server.lines.all().len();
        let wait = match case.expect {
            Expect::Silent => SILENCE,
            _ => ANSWER_WITHIN,
        };
        let got = exchange(server.addr, &case.request, case.half_close, wait);
        let codes = statuses(&got.text);
        let name = case.name;
        match case.expect {
            Expect::Exactly(expected) => {
                assert_eq!(codes, expected, "{name}: {}", got.text);
                assert!(got.closed, "{name}: the connection stays open");
            }
            Expect::First(expected) => {
                assert_eq!(codes.first(), Some(&expected), "{name}: {}", got.text);
                assert!(
                    codes[1..].iter().all(|&code| code == 400) && codes.len() <= 2,
                    "{name}: more than tiny_http's stray 400: {codes:?}"
                );
                assert!(got.closed, "{name}: the connection stays open");
            }
            Expect::Silent => {
                assert_eq!(got.text, "", "{name}: expected no answer");
                assert!(!got.closed, "{name}: expected the connection to stay open");
            }
        }
        if let Some(text) = case.body_contains {
            assert!(
                got.text.contains(text),
                "{name}: lacks {text:?}: {}",
                got.text
            );
        }
        assert_eq!(
            server.lines.all().len() - before,
            case.events,
            "{name}: event lines"
        );
        assert_still_serves(server, verifying, name);
    }
}

#[test]
fn request_lines_and_versions() {
    use Expect::*;
    let server = TestServer::start(&[]);
    run(
        &server,
        true,
        vec![
            // tiny_http_fork parses HTTP/2.0 and then deadlocks writing its own 505: the
            // connection is never answered, and its thread (and 2 fds) stay blocked even
            // after the client closes, for the life of the process. Measured, not wanted;
            // the server counts such threads and survives hundreds (see below).
            Case::new(
                "HTTP/2.0",
                "GET /health HTTP/2.0\r\nHost: x\r\n\r\n",
                Silent,
            ),
            Case::new(
                "HTTP/3.0",
                "GET /health HTTP/3.0\r\nHost: x\r\n\r\n",
                Silent,
            ),
            Case::new("HTTP/2.0 kept open", "GET /health HTTP/2.0\r\n\r\n", Silent).kept_open(),
            // HTTP/0.9 is parsed and answered, with an `HTTP/0.9 200 OK` status line.
            Case::new(
                "HTTP/0.9",
                "GET /health HTTP/0.9\r\nHost: x\r\n\r\n",
                First(200),
            ),
            Case::new(
                "HTTP/1.2",
                "GET /health HTTP/1.2\r\nHost: x\r\n\r\n",
                Exactly(&[400]),
            ),
            Case::new(
                "no version",
                "GET /health\r\nHost: x\r\n\r\n",
                Exactly(&[400]),
            ),
            Case::new(
                "two spaces",
                "GET  /health HTTP/1.1\r\n\r\n",
                Exactly(&[400]),
            ),
            Case::new("empty request line", "\r\n\r\n", Exactly(&[400])),
            Case::new(
                "TLS ClientHello on the plain port",
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
                Exactly(&[400]),
            ),
            Case::new(
                "lower-case method is another method",
                "get /health HTTP/1.1\r\nConnection: close\r\n\r\n",
                Exactly(&[405]),
            ),
            Case::new(
                "absolute-form target",
                "GET http://x/health HTTP/1.1\r\nConnection: close\r\n\r\n",
                Exactly(&[404]),
            ),
            Case::new(
                "asterisk-form target",
                "OPTIONS * HTTP/1.1\r\nConnection: close\r\n\r\n",
                Exactly(&[404]),
            ),
            Case::new(
                "NUL in the path",
                b"GET /hea\0lth HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec(),
                Exactly(&[404]),
            )
            .containing("no route for \"/hea\\0lth\""),
            Case::new(
                "percent-encoded route is not decoded",
                "GET /heal%74h HTTP/1.1\r\nConnection: close\r\n\r\n",
                Exactly(&[404]),
            ),
            Case::new(
                "non-ASCII in the path",
                "GET /health/ü HTTP/1.1\r\nConnection: close\r\n\r\n",
                Exactly(&[400]),
            ),
            Case::new(
                "HTTP/1.0 without Host closes after the answer",
                "GET /health HTTP/1.0\r\n\r\n",
                Exactly(&[200]),
            )
            .kept_open(),
            Case::new(
                "HTTP/1.1 without Host is served",
                "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n",
                Exactly(&[200]),
            ),
        ],
    );
}

#[test]
fn header_syntax() {
    use Expect::*;
    let server = TestServer::start(&[]);
    let (body, signature) = signed_capture();
    let get = |header: &[u8]| {
        let mut request = b"GET /health HTTP/1.1\r\nHost: x\r\n".to_vec();
        request.extend_from_slice(header);
        request.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        request
    };
    run(
        &server,
        true,
        vec![
            Case::new(
                "header line without a colon",
                get(b"Host x"),
                Exactly(&[400]),
            ),
            // obs-fold: the continuation line is trimmed and parsed as a header of its own.
            Case::new(
                "obs-fold continuation without a colon",
                get(b"X-A: 1\r\n continued"),
                Exactly(&[400]),
            ),
            Case::new(
                "obs-fold continuation with a colon",
                get(b"X-A: 1\r\n X-Folded: yes"),
                Exactly(&[200]),
            ),
            Case::new("NUL in a header value", get(b"X-A: a\0b"), Exactly(&[400])),
            Case::new(
                "bare CR in a header value",
                get(b"X-A: a\rb"),
                Exactly(&[400]),
            ),
            Case::new(
                "LF injecting a header",
                get(b"X-A: a\nX-Injected: b"),
                Exactly(&[400]),
            ),
            // RFC 9110 allows HTAB in field values; tiny_http refuses it.
            Case::new("TAB in a header value", get(b"X-A: a\tb"), Exactly(&[400])),
            Case::new(
                "UTF-8 in a header value",
                get("X-Name: Jörg".as_bytes()),
                Exactly(&[400]),
            ),
            Case::new(
                "invalid UTF-8 in a header value",
                get(b"X-A: \xff\xfe"),
                Exactly(&[400]),
            ),
            Case::new(
                "bare LF line endings",
                "GET /health HTTP/1.1\nHost: x\n\n",
                Exactly(&[400]),
            ),
            Case::new(
                "headers cut off, then EOF",
                "GET /health HTTP/1.1\r\nHost: x",
                Exactly(&[400]),
            ),
            Case::new(
                "Expect: 100-continue",
                raw_post("/new-call")
                    .header("Expect", "100-continue")
                    .header("X-Sipgate-Signature", &signature)
                    .close()
                    .body(&body)
                    .bytes(),
                Exactly(&[100, 200]),
            )
            .events(1),
            Case::new(
                "unknown Expect",
                "GET /health HTTP/1.1\r\nExpect: teapot\r\nConnection: close\r\n\r\n",
                Exactly(&[417]),
            ),
        ],
    );
}

#[test]
fn content_length() {
    use Expect::*;
    let server = TestServer::unsigned();
    let with_length = |length: &str, body: &str| {
        raw_post("/on-hangup")
            .length(length)
            .close()
            .body(body)
            .bytes()
    };
    run(
        &server,
        false,
        vec![
            // No length: the body is empty for us, and its bytes are read as the next
            // request line, which tiny_http refuses.
            Case::new(
                "missing Content-Length with a body",
                format!("POST /on-hangup HTTP/1.1\r\n{FORM_HEADERS}\r\ncallId=x"),
                Exactly(&[400, 400]),
            )
            .containing("missing required field callId"),
            Case::new(
                "duplicate equal Content-Length",
                format!(
                    "POST /on-hangup HTTP/1.1\r\n{FORM_HEADERS}Content-Length: 8\r\nContent-Length: 8\r\nConnection: close\r\n\r\ncallId=x"
                ),
                Exactly(&[200]),
            )
            .events(1),
            // The first one wins, in tiny_http and in our check alike, so the two never
            // disagree about where the body ends.
            Case::new(
                "duplicate different Content-Length",
                format!(
                    "POST /on-hangup HTTP/1.1\r\n{FORM_HEADERS}Content-Length: 8\r\nContent-Length: 20\r\nConnection: close\r\n\r\ncallId=x"
                ),
                Exactly(&[200]),
            )
            .events(1),
            Case::new("negative", with_length("-1", "callId=x"), Exactly(&[400]))
                .containing("invalid Content-Length \"-1\""),
            Case::new("hex", with_length("0x8", "callId=x"), Exactly(&[400])),
            Case::new("list", with_length("8, 8", "callId=x"), Exactly(&[400])),
            // Both tiny_http and Rust's integer parser take a leading `+`.
            Case::new("leading plus", with_length("+8", "callId=x"), Exactly(&[200])).events(1),
            Case::new("padded", with_length("   8   ", "callId=x"), Exactly(&[200])).events(1),
            Case::new(
                "1000000000000000",
                with_length("1000000000000000", "callId=x"),
                First(413),
            )
            .containing("a body of 1000000000000000 bytes is over the limit"),
            Case::new(
                "u64::MAX",
                with_length("18446744073709551615", "callId=x"),
                First(413),
            ),
            Case::new(
                "u64::MAX + 1",
                with_length("18446744073709551616", "callId=x"),
                First(400),
            )
            .containing("invalid Content-Length"),
            // tiny_http buffers bodies up to 1 KiB itself and answers a short one with 400.
            Case::new(
                "small body cut short",
                raw_post("/on-hangup").length(100).body("callId=x").bytes(),
                Exactly(&[400]),
            ),
            Case::new(
                "large body cut short",
                raw_post("/on-hangup")
                    .length(5000)
                    .body(format!("callId=x&pad={}", "p".repeat(2000)))
                    .bytes(),
                First(400),
            )
            .containing("the body ended after 2013 of its 5000 bytes"),
            Case::new(
                "Content-Length 0 on an event route",
                with_length("0", ""),
                Exactly(&[400]),
            ),
        ],
    );
}

#[test]
fn transfer_encoding() {
    use Expect::*;
    let server = TestServer::unsigned();
    let chunked = |te_headers: &str, chunks: &str| {
        format!(
            "POST /on-hangup HTTP/1.1\r\n{FORM_HEADERS}{te_headers}Connection: close\r\n\r\n{chunks}"
        )
    };
    const CALL: &str = "8\r\ncallId=x\r\n0\r\n\r\n";
    run(
        &server,
        false,
        vec![
            // sipgate sends Content-Length. A chunked body cut short inside a chunk reads as
            // complete (chunked_transfer 1.5 returns EOF), so chunked bodies are refused
            // (read to their end first, so no byte of them is taken for a request).
            Case::new(
                "chunked",
                chunked("Transfer-Encoding: chunked\r\n", CALL),
                Exactly(&[411]),
            ),
            Case::new(
                "chunked cut short inside a chunk",
                format!(
                    "POST /on-hangup HTTP/1.1\r\n{FORM_HEADERS}Transfer-Encoding: chunked\r\n\r\n10\r\ncallId=abc"
                ),
                First(411),
            ),
            Case::new(
                "chunk extension",
                chunked(
                    "Transfer-Encoding: chunked\r\n",
                    "8;ext=1\r\ncallId=x\r\n0\r\n\r\n",
                ),
                Exactly(&[411]),
            ),
            Case::new(
                "invalid chunk size",
                chunked(
                    "Transfer-Encoding: chunked\r\n",
                    "zz\r\ncallId=x\r\n0\r\n\r\n",
                ),
                Exactly(&[400]),
            )
            .containing("could not read the request body"),
            // tiny_http compares the coding case-sensitively.
            Case::new(
                "Chunked, capitalised",
                chunked("Transfer-Encoding: Chunked\r\n", CALL),
                Exactly(&[400]),
            ),
            Case::new(
                "gzip",
                chunked("Transfer-Encoding: gzip\r\n", "callId=x"),
                Exactly(&[400]),
            ),
            Case::new(
                "identity",
                chunked("Transfer-Encoding: identity\r\n", "callId=x"),
                Exactly(&[400]),
            ),
            Case::new(
                "chunked, chunked",
                chunked("Transfer-Encoding: chunked, chunked\r\n", CALL),
                Exactly(&[400]),
            ),
            // tiny_http looks at the last coding of the first header only: a proxy that
            // reads these differently could frame the body otherwise (docs/limits.md).
            Case::new(
                "gzip, chunked",
                chunked("Transfer-Encoding: gzip, chunked\r\n", CALL),
                Exactly(&[411]),
            ),
            Case::new(
                "two TE headers",
                chunked(
                    "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
                    CALL,
                ),
                Exactly(&[411]),
            ),
            Case::new(
                "TE and CL",
                chunked("Transfer-Encoding: chunked\r\nContent-Length: 8\r\n", CALL),
                Exactly(&[400]),
            ),
            Case::new(
                "CL and TE",
                chunked("Content-Length: 8\r\nTransfer-Encoding: chunked\r\n", CALL),
                Exactly(&[400]),
            ),
            // The body of a refused chunked request is read to its end, so a request
            // hidden after it on the connection is a request of its own, answered in turn.
            Case::new(
                "chunked, then a pipelined request",
                format!(
                    "POST /on-hangup HTTP/1.1\r\n{FORM_HEADERS}Transfer-Encoding: chunked\r\n\r\n{CALL}GET /health HTTP/1.1\r\nConnection: close\r\n\r\n"
                ),
                Exactly(&[411, 200]),
            ),
        ],
    );
}

#[test]
fn bodies() {
    use Expect::*;
    let server = TestServer::unsigned();
    let ok = Exactly(&[200]);
    let close = |body: &[u8]| raw_post("/on-hangup").close().body(body).bytes();
    let mut within_limit = b"callId=big&pad=".to_vec();
    within_limit.resize(65536, b'p');
    let mut giant_call_id = b"callId=".to_vec();
    giant_call_id.resize(60000, b'c');
    let mut over_limit = within_limit.clone();
    over_limit.push(b'p');
    run(
        &server,
        false,
        vec![
            Case::new("UTF-8 in the body", close("callId=Jörg".as_bytes()), ok).events(1),
            Case::new(
                "invalid UTF-8 in the body",
                close(b"callId=\xff\xfe&x=\xc3"),
                ok,
            )
            .events(1),
            Case::new("NUL in the body", close(b"callId=a\0b"), ok).events(1),
            Case::new("invalid percent-encoding", close(b"callId=%zz%4&%"), ok).events(1),
            Case::new(
                "encoded newline in a value",
                close(b"callId=a%0D%0Ab%00"),
                ok,
            )
            .events(1),
            Case::new("empty body", close(b""), Exactly(&[400]))
                .containing("missing required field callId"),
            Case::new("only separators &&&", close(b"&&&"), Exactly(&[400])),
            Case::new("only separators ===", close(b"==="), Exactly(&[400])),
            Case::new("key without value", close(b"callId"), Exactly(&[400])),
            Case::new("repeated keys", close(b"callId=first&callId=second"), ok).events(1),
            Case::new(
                "a thousand repeated keys",
                close(&b"callId=a&".repeat(1000)),
                ok,
            )
            .events(1),
            Case::new("a body of exactly MAX_BODY_BYTES", close(&within_limit), ok).events(1),
            Case::new("a 60 kB callId", close(&giant_call_id), ok).events(1),
            Case::new(
                "one byte over MAX_BODY_BYTES",
                close(&over_limit),
                Exactly(&[413]),
            )
            .containing("over the limit of 65536 bytes"),
            Case::new(
                "wrong event for the route",
                close(b"event=newCall&callId=x"),
                Exactly(&[400]),
            ),
        ],
    );
    // Every accepted line is one line, whatever the body held.
    let lines = server.lines.all();
    assert!(
        lines.iter().any(|l| l.ends_with("callId Jörg")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l.ends_with("callId \u{fffd}\u{fffd}")));
    assert!(lines.iter().any(|l| l.ends_with("callId a\\u{0}b")));
    assert!(lines.iter().any(|l| l.ends_with("callId %zz%4")));
    assert!(lines.iter().any(|l| l.ends_with("callId a\\r\\nb\\u{0}")));
    assert!(lines.iter().any(|l| l.ends_with("callId first")));
    assert!(lines.iter().any(|l| l.ends_with(&"c".repeat(59993))));
}

#[test]
fn content_types() {
    use Expect::*;
    let server = TestServer::unsigned();
    let with_type = |content_type: &str| {
        format!(
            "POST /on-hangup HTTP/1.1\r\nHost: x\r\n{content_type}Content-Length: 8\r\nConnection: close\r\n\r\ncallId=x"
        )
    };
    run(
        &server,
        false,
        vec![
            Case::new("no Content-Type", with_type(""), Exactly(&[415])),
            Case::new("text/plain", with_type("Content-Type: text/plain\r\n"), Exactly(&[415])),
            Case::new(
                "application/json",
                with_type("Content-Type: application/json\r\n"),
                Exactly(&[415]),
            ),
            Case::new(
                "multipart/form-data",
                with_type("Content-Type: multipart/form-data; boundary=x\r\n"),
                Exactly(&[415]),
            ),
            Case::new(
                "form type with a suffix",
                with_type("Content-Type: application/x-www-form-urlencodedx\r\n"),
                Exactly(&[415]),
            ),
            Case::new("empty Content-Type", with_type("Content-Type: \r\n"), Exactly(&[415])),
            // The first header counts.
            Case::new(
                "JSON, then form",
                with_type(
                    "Content-Type: application/json\r\nContent-Type: application/x-www-form-urlencoded\r\n",
                ),
                Exactly(&[415]),
            ),
            Case::new(
                "form, then JSON",
                with_type(
                    "Content-Type: application/x-www-form-urlencoded\r\nContent-Type: application/json\r\n",
                ),
                Exactly(&[200]),
            )
            .events(1),
        ],
    );
}

#[test]
fn signature_headers() {
    use Expect::*;
    let server = TestServer::start(&[]);
    let (body, signature) = signed_capture();
    let signed = |signatures: &[&str]| {
        signatures
            .iter()
            .fold(raw_post("/new-call"), |request, signature| {
                request.header("X-Sipgate-Signature", signature)
            })
            .close()
            .body(&body)
            .bytes()
    };
    let bogus = "A".repeat(684);
    run(
        &server,
        true,
        vec![
            Case::new(
                "valid signature, then a bogus one",
                signed(&[&signature, &bogus]),
                Exactly(&[200]),
            )
            .events(1),
            Case::new(
                "bogus signature, then the valid one",
                signed(&[&bogus, &signature]),
                Exactly(&[403]),
            ),
            Case::new(
                "1 MiB signature",
                signed(&[&"QUFB".repeat(1 << 18)]),
                Exactly(&[403]),
            )
            .containing("does not match"),
            Case::new(
                "signature padded with spaces",
                signed(&[&format!("   {signature}   ")]),
                Exactly(&[200]),
            )
            .events(1),
            Case::new(
                "signature of another body",
                raw_post("/new-call")
                    .header("X-Sipgate-Signature", &signature)
                    .close()
                    .body(fixture("01-newcall-in.form"))
                    .bytes(),
                Exactly(&[403]),
            ),
            Case::new(
                "signature, no body",
                raw_post("/new-call")
                    .header("X-Sipgate-Signature", &signature)
                    .close()
                    .bytes(),
                Exactly(&[403]),
            ),
        ],
    );
}

/// tiny_http has no limit on the request line, a header line or the number of headers; the
/// only bound is memory (each is held whole until the request is parsed).
#[test]
fn no_size_limits_on_request_lines_and_headers() {
    use Expect::*;
    let _exclusive = exclusive();
    let server = TestServer::unsigned();
    let mib = "a".repeat(1 << 20);
    let many_headers = (0..10_000).fold(raw_post("/on-hangup"), |request, i| {
        request.header(&format!("X-H{i}"), "v")
    });
    run(
        &server,
        false,
        vec![
            // The query is not part of the route, so this is a valid event.
            Case::new(
                "1 MiB request line",
                raw_post(&format!("/on-hangup?{mib}"))
                    .close()
                    .body("callId=x")
                    .bytes(),
                Exactly(&[200]),
            )
            .events(1),
            Case::new(
                "1 MiB header line",
                raw_post("/on-hangup")
                    .header("X-Big", &mib)
                    .close()
                    .body("callId=x")
                    .bytes(),
                Exactly(&[200]),
            )
            .events(1),
            Case::new(
                "10,000 headers",
                many_headers.close().body("callId=x").bytes(),
                Exactly(&[200]),
            )
            .events(1),
        ],
    );
}

#[test]
fn connections() {
    use Expect::*;
    let server = TestServer::unsigned();
    let hangup = |body: &str| raw_post("/on-hangup").body(body).bytes();
    let mut pipelined = Vec::new();
    for call_id in ["p1", "p2", "p3", "p4", "p5", "p6"] {
        pipelined.extend(hangup(&format!("callId={call_id}")));
    }
    pipelined.extend_from_slice(b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
    run(
        &server,
        false,
        vec![
            Case::new("connects and sends nothing", "", Silent).kept_open(),
            Case::new("half-closes without a byte", "", Exactly(&[400])),
            Case::new(
                "headers without their end",
                "POST /on-hangup HTTP/1.1\r\nHost: x\r\n",
                Silent,
            )
            .kept_open(),
            Case::new("pipelined requests", pipelined, Exactly(&[200; 7])).events(6),
            Case::new(
                "keep-alive, then a half-close",
                hangup("callId=k"),
                First(200),
            )
            .events(1),
        ],
    );
    // Pipelined events print in the order they were sent.
    let lines = server.lines.all();
    let order: Vec<&str> = lines
        .iter()
        .filter_map(|line| line.rsplit("callId ").next())
        .filter(|id| id.starts_with('p'))
        .collect();
    assert_eq!(order, ["p1", "p2", "p3", "p4", "p5", "p6"]);
}

/// A client that pipelines many requests and never reads the answers fills its socket
/// buffers; the answer being written then blocks. That must hold only its own connection
/// thread, and only until the write timeout, after which the connection is dropped with
/// its queued requests.
#[test]
fn a_pipelining_client_that_never_reads_is_dropped_and_holds_nothing_else() {
    let _exclusive = exclusive();
    let server = TestServer::start(&[
        ("SKIP_SIGNATURE_VERIFICATION", "true"),
        ("WRITE_TIMEOUT_SECONDS", "1"),
    ]);
    let mut greedy = TcpStream::connect(server.addr).unwrap();
    greedy
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // Far more than the socket buffers of both sides hold: the server must stop reading
    // once its answers back up, so this write cannot finish.
    let flood = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1_000_000);
    let writer = thread::spawn(move || {
        let started = Instant::now();
        let written = greedy.write_all(&flood);
        (written, started.elapsed())
    });
    // Enough for the answers to back up into full socket buffers.
    thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    let got = exchange(
        server.addr,
        b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n",
        false,
        Duration::from_secs(3),
    );
    assert_eq!(
        statuses(&got.text),
        [200],
        "a fresh client is not served while one connection floods ({:?})",
        started.elapsed()
    );
    assert_still_serves(&server, false, "a pipelining flood");
    // The server drops the connection once an answer has waited a second, abandoning the
    // queued requests: the flood's write fails, long before its own 30 s timeout.
    let (written, took) = writer.join().unwrap();
    let error = written.expect_err("the server cannot have read the whole flood");
    assert!(
        matches!(
            error.kind(),
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
        ),
        "ended by the server, not by the client's timeout: {error:?} after {took:?}"
    );
}

/// tiny_http never answers an HTTP/2.0 request line (nor an HTTP/2 preface) and keeps its
/// connection thread for good; hundreds of them must leave the server serving.
#[test]
fn hundreds_of_http2_request_lines_leave_the_server_serving() {
    let _exclusive = exclusive();
    let server = TestServer::start(&[]);
    for index in 0..300 {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        let line: &[u8] = if index % 2 == 0 {
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        } else {
            b"POST /new-call HTTP/2.0\r\nHost: x\r\n\r\n"
        };
        stream.write_all(line).unwrap();
    }
    assert_still_serves(&server, true, "300 HTTP/2.0 request lines");
}

/// tiny_http makes the raw socket the body of an upgrade request, read until the client
/// closes. Such requests are refused at once, unread, and their connections closed.
#[test]
fn upgrade_requests_are_refused_at_once_and_hold_nothing() {
    let _exclusive = exclusive();
    let server = TestServer::unsigned();
    let started = Instant::now();
    let mut held: Vec<TcpStream> = (0..8)
        .map(|index| {
            let mut stream = TcpStream::connect(server.addr).unwrap();
            let connection = if index % 2 == 0 {
                "Upgrade"
            } else {
                "keep-alive, upgrade"
            };
            write!(
                stream,
                "POST /new-call HTTP/1.1\r\nHost: x\r\nConnection: {connection}\r\n\
                 Upgrade: websocket\r\nContent-Type: {FORM}\r\n\r\n"
            )
            .unwrap();
            stream
        })
        .collect();
    for stream in &mut held {
        let text = read_until_closed(stream, Duration::from_secs(5)).text;
        assert_eq!(statuses(&text), [400], "{text}");
        assert!(text.contains("Connection: upgrade"), "{text}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused and closed at once, not after a timeout: {:?}",
        started.elapsed()
    );
    assert!(
        server.lines.all().is_empty(),
        "no upgrade request printed a line"
    );
    assert_still_serves(&server, false, "upgrade requests");
}
