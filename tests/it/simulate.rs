//! `sipgateio-callevents simulate` as a user runs it: against the real binary, against
//! stand-in servers that answer with Gather or broken XML, and without any server.

use std::sync::{Arc, Mutex, OnceLock};

use sipgateio_callevents::exchange::{Incoming, Reply};

use crate::support::*;

/// Runs `simulate` with `args` to completion: (exit code, stdout, stderr).
fn simulate(args: &[&str]) -> (i32, String, String) {
    let dir = temp_dir("simulate-client");
    let args: Vec<&str> = std::iter::once("simulate")
        .chain(args.iter().copied())
        .collect();
    run_binary(&dir, &[], &args)
}

/// The value of `name` in a form body.
fn field(body: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(body.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

#[test]
fn a_whole_call_reaches_the_real_server() {
    // The server's XML names WEBHOOK_URL, so it must be the address it listens on; the path
    // and query check that the simulator keeps both, as sipgate does.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}/hooks/abc?token=t1");
    let dir = temp_dir("simulate-server");
    let mut server = Binary::start(
        &dir,
        &[
            ("SKIP_SIGNATURE_VERIFICATION", "true"),
            ("LISTEN_ADDR", &format!("127.0.0.1:{port}")),
            ("WEBHOOK_URL", &base),
        ],
    );

    let (code, stdout, stderr) = simulate(&[&base, "--pause-ms", "0"]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(stderr, "");
    for expected in [
        &format!("> POST http://127.0.0.1:{port}/hooks/abc/new-call?token=t1"),
        ">   user[] = Alice Smith",
        "< 200 OK (application/xml",
        "The answer is valid sipgate XML:",
        &format!("> POST http://127.0.0.1:{port}/hooks/abc/on-answer?token=t1"),
        ">   cause = normalClearing",
        "The call went through: the server accepted newCall, answer, hangup",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing in:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains('\u{1b}'),
        "no color codes when stdout is not a terminal"
    );
    let call_id = stdout
        .lines()
        .find_map(|line| line.strip_prefix(">   callId = "))
        .unwrap()
        .to_owned();

    // An unanswered outgoing call: no answer event, the chosen cause.
    let (code, stdout, stderr) = simulate(&[
        &base,
        "--fast",
        "--direction",
        "out",
        "--cause",
        "busy",
        "--to",
        "4915799912345",
    ]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let answer_post = format!("> POST http://127.0.0.1:{port}/hooks/abc/on-answer");
    assert!(!stdout.contains(&answer_post), "{stdout}");
    assert!(stdout.contains("accepted newCall, hangup"), "{stdout}");

    let (events, _) = server.stop_cleanly();
    let lines: Vec<&str> = events.lines().collect();
    assert_eq!(lines.len(), 5, "{events}");
    assert!(
        lines[0].starts_with("New call from 492111234567 to 4915791234567 (direction in)"),
        "{events}"
    );
    assert!(
        lines[1].starts_with("4915791234567 answered call from 492111234567"),
        "{events}"
    );
    assert!(
        lines[2].starts_with("The call has been hung up, cause normalClearing"),
        "{events}"
    );
    for line in &lines[..3] {
        assert!(line.contains(&call_id), "{line} lacks {call_id}");
    }
    assert!(
        lines[3].starts_with("New call from 492111234567 to 4915799912345 (direction out)"),
        "{events}"
    );
    assert!(
        lines[4].starts_with("The call has been hung up, cause busy"),
        "{events}"
    );
}

/// The binary with the call rules `toml`, unsigned, at a port its WEBHOOK_URL names, as
/// the menus' onData URLs must reach it: (the server, its base URL).
fn server_with_rules(name: &str, toml: &str) -> (Binary, String) {
    let dir = temp_dir(name);
    let rules = dir.join("rules.toml");
    std::fs::write(&rules, toml).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let server = Binary::start(
        &dir,
        &[
            ("SKIP_SIGNATURE_VERIFICATION", "true"),
            ("LISTEN_ADDR", &format!("127.0.0.1:{port}")),
            ("WEBHOOK_URL", &base),
            ("CALL_RULES_FILE", rules.to_str().unwrap()),
        ],
    );
    (server, base)
}

#[test]
fn digits_lead_through_a_two_level_menu_of_the_real_server() {
    let (mut server, base) = server_with_rules(
        "simulate-menus",
        r#"
[[rule]]
answer = { menu = "main" }

[menu.main]
options = { "1" = { menu = "sub" } }

[menu.sub]
options = { "2" = { dial = ["4915790000000"] } }
"#,
    );
    let (code, stdout, stderr) = simulate(&[&base, "--fast", "--digits", "1,2"]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(stderr, "");
    let mut rest = stdout.as_str();
    for expected in [
        &format!("> POST {base}/new-call"),
        &format!("  Gather up to 1 digits (timeout 2000 ms) for {base}/on-dtmf?menu=main"),
        &format!("> POST {base}/on-dtmf?menu=main"),
        ">   dtmf = 1",
        &format!("  Gather up to 1 digits (timeout 2000 ms) for {base}/on-dtmf?menu=sub"),
        &format!("> POST {base}/on-dtmf?menu=sub"),
        ">   dtmf = 2",
        "  Dial 4915790000000",
        &format!("> POST {base}/on-answer"),
        ">   answeringNumber = 4915790000000",
        &format!("> POST {base}/on-hangup"),
        "The call went through: the server accepted newCall, dtmf, dtmf, answer, hangup",
    ] {
        let at = rest
            .find(expected)
            .unwrap_or_else(|| panic!("{expected:?} missing, or out of order, in:\n{stdout}"));
        rest = &rest[at + expected.len()..];
    }

    // More groups than menus: the rest is named.
    let (code, stdout, _) = simulate(&[&base, "--fast", "--digits", "1,2,3"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("(the call left the menus after 2 of the 3 --digits groups)"),
        "{stdout}"
    );

    // Without --digits, the default keys go to the first menu only, cut to its maxDigits,
    // and the second menu is shown but not answered.
    let (code, stdout, _) = simulate(&[&base, "--fast"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("(sipgate stops after maxDigits=1: sending \"1\" of \"1234\")"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("for {base}/on-dtmf?menu=sub")),
        "{stdout}"
    );
    assert!(
        !stdout.contains(&format!("> POST {base}/on-dtmf?menu=sub")),
        "{stdout}"
    );
    assert!(
        stdout.contains("The call went through: the server accepted newCall, dtmf, answer, hangup"),
        "{stdout}"
    );

    assert!(server.stop().success());
    let events = server.stdout();
    assert!(events.contains("menu main: option 1"), "{events}");
    assert!(events.contains("menu sub: option 2"), "{events}");
}

/// A `<Hangup/>` or a `<Reject>` ends the call before anyone answers: the simulator sends
/// no answer event, and a hangup with the cause of an unanswered call, so the server prints
/// no "answered" line and reports the call never answered.
#[test]
fn a_call_ended_by_the_answer_is_never_answered() {
    let (mut server, base) = server_with_rules(
        "simulate-ended",
        r#"
[[rule]]
match = { from = "4930111" }
answer = { hangup = true }

[[rule]]
match = { from = "4930222" }
answer = { reject = "rejected" }

[[rule]]
match = { from = "4930333" }
answer = { reject = "busy" }
"#,
    );
    for (from, cause) in [
        ("4930111", "noAnswer"),
        ("4930222", "noAnswer"),
        ("4930333", "busy"),
    ] {
        let (code, stdout, stderr) = simulate(&[&base, "--fast", "--from", from]);
        assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
        assert!(
            !stdout.contains(&format!("> POST {base}/on-answer")),
            "{stdout}"
        );
        assert!(stdout.contains(&format!(">   cause = {cause}")), "{stdout}");
        assert!(
            stdout.contains("The call went through: the server accepted newCall, hangup"),
            "{stdout}"
        );
    }
    assert!(server.stop().success());
    let events = server.stdout();
    assert!(!events.contains("answered call"), "{events}");
    assert_eq!(events.matches("never answered").count(), 3, "{events}");
}

#[test]
fn a_menu_that_leads_back_to_itself_is_left_after_ten_rounds() {
    let (mut server, base) = server_with_rules(
        "simulate-menu-loop",
        r#"
[[rule]]
answer = { menu = "main" }

[menu.main]
options = { "1" = { hangup = true } }
otherwise = { menu = "main" }
"#,
    );
    let (code, stdout, stderr) = simulate(&[&base, "--fast", "--digits", "7,8"]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let dtmf_posts = format!("> POST {base}/on-dtmf?menu=main");
    assert_eq!(stdout.matches(&dtmf_posts).count(), 10, "{stdout}");
    assert_eq!(
        stdout.matches(">   dtmf = ").count(),
        2,
        "then no input: {stdout}"
    );
    assert!(
        stdout.contains(
            "(the server asked for digits 10 times in a row; the simulator answers no more menus and lets the call end)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("> POST {base}/on-hangup")),
        "{stdout}"
    );
    assert!(server.stop().success());
}

#[test]
fn a_server_that_checks_signatures_is_named_with_the_fix() {
    let dir = temp_dir("simulate-signed");
    let mut server = Binary::start(&dir, &[]);
    let (code, stdout, stderr) = simulate(&[&server.url(""), "--fast"]);
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("< 403 Forbidden"), "{stdout}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("signature verification is on")
            && lines[0].contains("start the server with SKIP_SIGNATURE_VERIFICATION=true"),
        "{stderr}"
    );
    let (stdout, _) = server.stop_cleanly();
    assert_eq!(stdout, "", "no event was accepted");
}

#[test]
fn no_server_at_the_url_is_named_with_how_to_start_one() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let (code, _, stderr) = simulate(&[&url, "--fast"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "no server is listening at {url}/new-call (connection refused); start one"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("SKIP_SIGNATURE_VERIFICATION=true cargo run --release"),
        "{stderr}"
    );
}

#[test]
fn bad_options_exit_2_with_one_line_and_help_exits_0() {
    for (args, message) in [
        (
            &["--direction", "sideways"][..],
            "invalid --direction \"sideways\": expected in or out",
        ),
        (
            &["--pause-ms", "soon"][..],
            "invalid --pause-ms \"soon\": expected a whole number of milliseconds",
        ),
        (
            &["https://example.com"][..],
            "cannot simulate against \"https://example.com\": the simulator speaks plain http only",
        ),
    ] {
        let (code, stdout, stderr) = simulate(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert_eq!(stdout, "", "{args:?}: nothing is sent");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!("sipgateio-callevents: error: {message}")),
            "{args:?}: {stderr}"
        );
    }
    let (code, stdout, _) = simulate(&["--help"]);
    assert_eq!(code, 0);
    for option in [
        "--direction",
        "--from",
        "--to",
        "--caller-name",
        "--cause",
        "--digits",
        "--pause-ms",
        "https:// URLs are not supported",
    ] {
        assert!(stdout.contains(option), "simulate --help lacks {option}");
    }
}

/// A stand-in server answering newCall with `xml(base URL)` and recording every request.
struct StandIn {
    server: TestServer,
    requests: Arc<Mutex<Vec<(String, String)>>>,
}

impl StandIn {
    fn start(xml: fn(&str) -> String) -> StandIn {
        let base = Arc::new(OnceLock::<String>::new());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (seen, known_base) = (Arc::clone(&requests), Arc::clone(&base));
        let handler = move |request: &Incoming<'_>| {
            let body = String::from_utf8_lossy(request.body).into_owned();
            seen.lock().unwrap().push((request.path.to_owned(), body));
            if request.path == "/new-call" {
                Reply::xml(xml(known_base
                    .get()
                    .expect("set before the simulator starts")))
            } else {
                Reply::text(200, "")
            }
        };
        let server = TestServer::with_handler(&config(&[]), Arc::new(handler));
        base.set(server.url("")).unwrap();
        StandIn { server, requests }
    }

    fn paths(&self) -> Vec<String> {
        let requests = self.requests.lock().unwrap();
        requests.iter().map(|(path, _)| path.clone()).collect()
    }
}

#[test]
fn a_gather_gets_the_digits_posted_to_on_data() {
    let stand_in = StandIn::start(|base| {
        format!(
            "<Response onAnswer=\"{base}/on-answer\" onHangup=\"{base}/on-hangup\">\
             <Gather onData=\"{base}/on-dtmf\" maxDigits=\"4\"/></Response>"
        )
    });
    let (code, stdout, stderr) = simulate(&[
        &stand_in.server.url(""),
        "--pause-ms",
        "0",
        "--digits",
        "081599",
    ]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("Gather up to 4 digits (timeout 2000 ms)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("sending \"0815\" of \"081599\""),
        "{stdout}"
    );
    assert_eq!(
        stand_in.paths(),
        ["/new-call", "/on-dtmf", "/on-answer", "/on-hangup"]
    );
    let requests = stand_in.requests.lock().unwrap();
    let call_id = field(&requests[0].1, "callId").unwrap();
    assert_eq!(call_id.len(), 76);
    assert_eq!(
        requests[1].1,
        format!("event=dtmf&dtmf=0815&callId={call_id}")
    );
    assert_eq!(field(&requests[3].1, "callId"), Some(call_id));
}

#[test]
fn an_answer_that_is_not_sipgate_xml_is_explained() {
    // The usual mistake: a URL's & left unescaped in the attribute.
    let stand_in =
        StandIn::start(|base| format!("<Response onAnswer=\"{base}/on-answer?a=1&b=2\"/>"));
    let (code, _, stderr) = simulate(&[&stand_in.server.url(""), "--fast"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("is not valid sipgate XML: in the value of onAnswer: a bare & at \"&b=2\""),
        "{stderr}"
    );
    assert_eq!(stand_in.paths(), ["/new-call"], "nothing is followed");
}

/// Without a URL, the simulator reads the settings as the server does, `.env` included:
/// it posts to that `WEBHOOK_URL`, and a setting the server refuses stops it the same way.
#[test]
fn without_a_url_the_simulator_takes_webhook_url_from_the_env_file() {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = Binary::start(
        &temp_dir("simulate-env-server"),
        &[
            ("SKIP_SIGNATURE_VERIFICATION", "true"),
            ("LISTEN_ADDR", &format!("127.0.0.1:{port}")),
            ("WEBHOOK_URL", &base),
        ],
    );
    let dir = temp_dir("simulate-env");
    std::fs::write(dir.join(".env"), format!("WEBHOOK_URL={base}\n")).unwrap();
    let (code, stdout, stderr) = run_binary(&dir, &[], &["simulate", "--fast"]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains(&format!("> POST {base}/new-call")),
        "{stdout}"
    );
    assert!(
        stdout.contains("The call went through: the server accepted newCall, answer, hangup"),
        "{stdout}"
    );
    assert!(server.stop().success());

    std::fs::write(dir.join(".env"), "MAX_BODY_BYTES=10\n").unwrap();
    let (code, _, stderr) = run_binary(&dir, &[], &["simulate", "--fast"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.starts_with("sipgateio-callevents: error: invalid MAX_BODY_BYTES \"10\""),
        "{stderr}"
    );
}
