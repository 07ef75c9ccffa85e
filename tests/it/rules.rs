//! Call rules over HTTP: the real server, in this process (with the clock injected) or as
//! the binary (start-up checks, SIGHUP, `check-rules`, `answer`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::support::{Binary, TestServer, post, run_binary, temp_dir};
use sipgateio_callevents::exchange::Incoming;

const RULES: &str = r#"
[[rule]]
name = "no anonymous callers"
match = { from = "anonymous" }
answer = { reject = "busy" }

[[rule]]
name = "office hours"
match = { to = "4921100000000", hours = "Mon-Fri 09:00-17:00" }
answer = { dial = ["4915790000000"] }

[[rule]]
name = "after hours"
match = { to = "4921100000000" }
answer = { voicemail = true }

[[rule]]
name = "menu line"
match = { to = "49211*" }
answer = { menu = "main" }

[menu.main]
max_digits = 1
timeout_ms = 5000
options = { "1" = { menu = "sales" }, "0" = { hangup = true } }
otherwise = { reject = "rejected" }

[menu.sales]
play = "https://example.com/sales.wav"
max_digits = 2
options = { "12" = { dial = ["4915790000012"] }, "2" = { dial = ["4915790000002", "4915790000003"] } }
"#;

const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
const SUBSCRIPTION: &str =
    "onAnswer=\"http://localhost:8080/on-answer\" onHangup=\"http://localhost:8080/on-hangup\"";

fn answer(actions: &str) -> String {
    format!("{DECLARATION}<Response {SUBSCRIPTION}>{actions}</Response>\n")
}

fn plain() -> String {
    format!("{DECLARATION}<Response {SUBSCRIPTION} />\n")
}

fn new_call(from: &str, to: &str) -> Vec<u8> {
    format!("event=newCall&direction=in&from={from}&to={to}&callId=c-{from}-{to}&user%5B%5D=Alice")
        .into_bytes()
}

fn dtmf(digits: &str) -> Vec<u8> {
    format!("event=dtmf&callId=c-menu&dtmf={digits}").into_bytes()
}

fn write_rules(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("rules.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A server in this process with `rules` in its CALL_RULES_FILE, whose requests all
/// arrive at `at` (Berlin time).
fn server_at(rules: &str, at: &str) -> TestServer {
    let file = write_rules(&temp_dir("rules-at"), rules);
    let at = berlin(at);
    TestServer::start_with(
        &[
            ("SKIP_SIGNATURE_VERIFICATION", "true"),
            ("TIMEZONE", "Europe/Berlin"),
            ("CALL_RULES_FILE", file.to_str().unwrap()),
        ],
        move |app, request| {
            app.route(&Incoming {
                received_utc: at,
                ..*request
            })
        },
    )
}

fn berlin(civil: &str) -> SystemTime {
    let zone = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    let zoned = civil
        .parse::<jiff::civil::DateTime>()
        .unwrap()
        .to_zoned_datetime(zone)
        .unwrap();
    SystemTime::try_from(zoned.timestamp()).unwrap()
}

// 2026-12-02 is a Wednesday.
const WEDNESDAY_10: &str = "2026-12-02T10:00";

#[test]
fn anonymous_is_rejected_a_prefix_leads_to_the_menu_and_no_match_gets_todays_answer() {
    let server = server_at(RULES, WEDNESDAY_10);
    let rejected = server.post_form("/new-call", &new_call("anonymous", "4921100000000"));
    assert_eq!(rejected.status, 200);
    assert_eq!(
        rejected.header("Content-Type"),
        Some("application/xml; charset=UTF-8")
    );
    assert_eq!(rejected.body, answer("<Reject reason=\"busy\" />"));

    let menu = server.post_form("/new-call", &new_call("491701234567", "4921155555"));
    assert_eq!(
        menu.body,
        answer(
            "<Gather onData=\"http://localhost:8080/on-dtmf?menu=main\" maxDigits=\"1\" timeout=\"5000\" />"
        )
    );

    let unmatched = server.post_form("/new-call", &new_call("491701234567", "4930123456"));
    assert_eq!(unmatched.body, plain());
    // Today's answer, byte for byte: what a server without rules sends.
    let without_rules = TestServer::unsigned();
    let today = without_rules.post_form("/new-call", &new_call("491701234567", "4930123456"));
    assert_eq!(unmatched.body, today.body);

    let lines = server.lines.all();
    assert!(
        lines[0].ends_with(", rule \"no anonymous callers\""),
        "{lines:?}"
    );
    assert!(lines[1].ends_with(", rule \"menu line\""), "{lines:?}");
    assert!(lines[2].ends_with(", no rule fits"), "{lines:?}");
}

#[test]
fn hours_decide_by_the_time_the_call_arrives() {
    let call = new_call("491701234567", "4921100000000");
    for (at, expected) in [
        (
            WEDNESDAY_10,
            answer("<Dial><Number>4915790000000</Number></Dial>"),
        ),
        ("2026-12-02T08:59", answer("<Dial><Voicemail /></Dial>")),
        ("2026-12-02T17:00", answer("<Dial><Voicemail /></Dial>")),
        ("2026-12-05T10:00", answer("<Dial><Voicemail /></Dial>")),
    ] {
        let server = server_at(RULES, at);
        assert_eq!(server.post_form("/new-call", &call).body, expected, "{at}");
    }
}

#[test]
fn a_two_level_menu_is_driven_through_on_dtmf() {
    let server = server_at(RULES, WEDNESDAY_10);
    server.post_form("/new-call", &new_call("491701234567", "4921155555"));
    let sales = server.post_form("/on-dtmf?menu=main", &dtmf("1"));
    assert_eq!(
        sales.body,
        answer(
            "<Gather onData=\"http://localhost:8080/on-dtmf?menu=sales\" maxDigits=\"2\" timeout=\"2000\"><Play><Url>https://example.com/sales.wav</Url></Play></Gather>"
        )
    );
    let dialled = server.post_form("/on-dtmf?menu=sales", &dtmf("12"));
    assert_eq!(
        dialled.body,
        answer("<Dial><Number>4915790000012</Number></Dial>")
    );
    let two = server.post_form("/on-dtmf?menu=sales", &dtmf("2"));
    assert_eq!(
        two.body,
        answer("<Dial><Number>4915790000002</Number><Number>4915790000003</Number></Dial>")
    );
    // No digits, or digits without an option: `otherwise`, or without one, the call goes on.
    let timed_out = server.post_form("/on-dtmf?menu=main", &dtmf(""));
    assert_eq!(timed_out.body, answer("<Reject reason=\"rejected\" />"));
    let unknown_option = server.post_form("/on-dtmf?menu=sales", &dtmf("9"));
    assert_eq!(unknown_option.body, plain());
    let unknown_menu = server.post_form("/on-dtmf?menu=gone", &dtmf("1"));
    assert_eq!(unknown_menu.body, plain());
    // A dtmf push without a menu is answered as without rules.
    let plain_dtmf = server.post_form("/on-dtmf", &dtmf("1"));
    assert_eq!((plain_dtmf.status, plain_dtmf.body.as_str()), (200, ""));

    let lines = server.lines.all();
    assert_eq!(
        lines[1..],
        [
            "DTMF digits 1, callId c-menu, menu main: option 1",
            "DTMF digits 12, callId c-menu, menu sales: option 12",
            "DTMF digits 2, callId c-menu, menu sales: option 2",
            "DTMF: no digits, callId c-menu, menu main: otherwise",
            "DTMF digits 9, callId c-menu, menu sales: otherwise",
            "DTMF digits 1, callId c-menu, menu gone: not in the rules, the call goes on",
            "DTMF digits 1, callId c-menu",
        ]
    );
}

#[test]
fn json_lines_name_the_rule_and_the_menu_option() {
    let file = write_rules(&temp_dir("rules-json"), RULES);
    let server = TestServer::start(&[
        ("SKIP_SIGNATURE_VERIFICATION", "true"),
        ("EVENT_FORMAT", "json"),
        ("CALL_RULES_FILE", file.to_str().unwrap()),
    ]);
    server.post_form("/new-call", &new_call("anonymous", "4921100000000"));
    server.post_form("/new-call", &new_call("491701234567", "4930123456"));
    server.post_form("/on-dtmf?menu=main", &dtmf("0"));
    server.post_form("/on-dtmf?menu=main", &dtmf("5"));
    let lines: Vec<serde_json::Value> = server
        .lines
        .all()
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        (lines[0]["rule"].as_u64(), lines[0]["ruleName"].as_str()),
        (Some(1), Some("no anonymous callers"))
    );
    assert_eq!(lines[1]["noRuleFits"], true);
    assert_eq!(
        (lines[2]["menu"].as_str(), lines[2]["option"].as_str()),
        (Some("main"), Some("0"))
    );
    assert_eq!(lines[3]["option"], "otherwise");
}

/// Waits until `check` holds, for at most five seconds.
fn eventually(mut check: impl FnMut() -> bool, what: &str) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < Duration::from_secs(5), "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_reloads_a_good_file_and_keeps_the_rules_when_the_new_one_is_bad() {
    let dir = temp_dir("rules-reload");
    let path = write_rules(&dir, "[[rule]]\nanswer = { reject = \"busy\" }\n");
    let server = Binary::start(
        &dir,
        &[
            ("SKIP_SIGNATURE_VERIFICATION", "true"),
            ("CALL_RULES_FILE", path.to_str().unwrap()),
        ],
    );
    let new_call_answer = || post(&server.url("/new-call"), &new_call("4917", "4921"), &[]).body;
    assert_eq!(new_call_answer(), answer("<Reject reason=\"busy\" />"));
    assert!(
        server
            .stderr()
            .contains("answering calls by 1 rule and 0 menus in "),
        "{}",
        server.stderr()
    );

    write_rules(&dir, "[[rule]]\nanswer = { hangup = true }\n");
    server.signal("HUP");
    eventually(
        || new_call_answer() == answer("<Hangup />"),
        "the good file was not taken",
    );
    assert!(
        server
            .stderr()
            .contains("reloaded the call rules: 1 rule and 0 menus")
    );

    write_rules(
        &dir,
        "[[rule]]\nanswer = { hangup = true, reject = \"busy\" }\n",
    );
    server.signal("HUP");
    let refusal = format!(
        "kept the call rules in use; the new file is refused: {}:2: rule 1: an answer takes one of dial, voicemail, reject, play, hangup or menu, not reject and hangup",
        path.display()
    );
    eventually(
        || server.stderr().contains(&refusal),
        "the bad file was not refused",
    );
    assert_eq!(new_call_answer(), answer("<Hangup />"));
    // The server is still up and still stops gracefully.
    server.signal("TERM");
}

#[test]
fn a_bad_rules_file_stops_the_start_with_its_file_line_and_problem() {
    let dir = temp_dir("rules-bad");
    for (text, problem) in [
        (
            "[[rule]]\nanswer = { hangup = true\n",
            "2: unclosed inline table, expected `}`",
        ),
        (
            "[[rule]]\nmatch = { caller = \"1\" }\nanswer = { hangup = true }\n",
            "2: unknown field `caller`, expected one of `from`, `to`, `direction`, `user`, `hours`",
        ),
        (
            "[[rule]]\nanswer = { menu = \"sales\" }\n",
            "2: rule 1: menu \"sales\" is not defined: add a [menu.sales] table",
        ),
        (
            "[[rule]]\nname = \"six\"\nanswer = { dial = [\"4915790000001\", \"4915790000002\", \"4915790000003\", \"4915790000004\", \"4915790000005\", \"4915790000006\"] }\n",
            "3: \"six\": dial has 6 numbers; sipgate rings 1 to 5 at once",
        ),
        (
            "[[rule]]\nanswer = { dial = \"0211-123\" }\n",
            "2: rule 1: dial: \"0211-123\" is not a phone number sipgate can dial: expected E.164 digits without spaces, such as 4915790000000 (a leading + is allowed)",
        ),
        (
            "[[rule]]\nmatch = { hours = \"Mon-Fri 9:00-17\" }\nanswer = { hangup = true }\n",
            "2: rule 1: match hours \"Mon-Fri 9:00-17\": \"17\" is not a time of day such as 09:00; expected windows such as \"Mon-Fri 09:00-17:00, Sat 10:00-13:00\"",
        ),
    ] {
        let path = write_rules(&dir, text);
        let (code, stdout, stderr) =
            run_binary(&dir, &[("CALL_RULES_FILE", path.to_str().unwrap())], &[]);
        assert_eq!(code, 2, "{text}\n{stderr}");
        assert_eq!(stdout, "");
        assert_eq!(
            stderr,
            format!(
                "sipgateio-callevents: error: {}:{problem}\n",
                path.display()
            ),
            "{text}"
        );
    }
    let (code, _, stderr) = run_binary(&dir, &[("CALL_RULES_FILE", "missing.toml")], &[]);
    assert_eq!(code, 2);
    assert!(
        stderr
            .starts_with("sipgateio-callevents: error: missing.toml: cannot read the rules file: "),
        "{stderr}"
    );
    let (code, _, stderr) = run_binary(&dir, &[("TIMEZONE", "Europe/Berln")], &[]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        "sipgateio-callevents: error: invalid TIMEZONE \"Europe/Berln\": expected an IANA time zone name such as Europe/Berlin, Europe/Vienna or UTC\n"
    );
}

#[test]
fn check_rules_and_answer_print_what_the_rules_do() {
    let dir = temp_dir("rules-commands");
    let path = write_rules(&dir, RULES);
    let file = path.to_str().unwrap();

    let (code, stdout, stderr) = run_binary(&dir, &[], &["check-rules", file]);
    assert_eq!((code, stderr.as_str()), (0, ""));
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some(format!("{file}: 4 rules and 2 menus").as_str())
    );
    assert_eq!(
        lines.next(),
        Some("\"no anonymous callers\" (line 2): from anonymous → reject (busy)")
    );
    assert_eq!(
        stdout.lines().last(),
        Some("no rule fits → as the account routes it")
    );
    // FILE defaults to CALL_RULES_FILE.
    let (code, same, _) = run_binary(&dir, &[("CALL_RULES_FILE", file)], &["check-rules"]);
    assert_eq!((code, same), (0, stdout));

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[rule]]\nanswer = { reject = \"later\" }\n").unwrap();
    let (code, stdout, stderr) = run_binary(&dir, &[], &["check-rules", bad.to_str().unwrap()]);
    assert_eq!((code, stdout.as_str()), (2, ""));
    assert_eq!(
        stderr,
        format!(
            "sipgateio-callevents: error: {}:2: rule 1: reject reason \"later\" is unknown: expected busy or rejected\n",
            bad.display()
        )
    );
    let (code, _, stderr) = run_binary(&dir, &[], &["check-rules"]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        "sipgateio-callevents: error: no rules file: pass one (check-rules FILE) or set CALL_RULES_FILE\n"
    );

    let vars = [("CALL_RULES_FILE", file)];
    let (code, stdout, stderr) = run_binary(
        &dir,
        &vars,
        &["answer", "--from", "anonymous", "--to", "4921100000000"],
    );
    assert_eq!(code, 0);
    assert_eq!(stdout, answer("<Reject reason=\"busy\" />"));
    assert_eq!(
        stderr,
        format!("\"no anonymous callers\" of {file} answers\n")
    );
    for (at, expected) in [
        (
            "2026-12-02T10:00",
            "<Dial><Number>4915790000000</Number></Dial>",
        ),
        ("2026-12-02T20:00", "<Dial><Voicemail /></Dial>"),
    ] {
        let args = [
            "answer",
            "--from",
            "4917",
            "--to",
            "4921100000000",
            "--at",
            at,
        ];
        let (code, stdout, _) = run_binary(&dir, &vars, &args);
        assert_eq!((code, stdout), (0, answer(expected)), "{at}");
    }
    let (code, stdout, stderr) = run_binary(&dir, &vars, &["answer", "--to", "4921"]);
    assert_eq!((code, stdout.as_str()), (2, ""));
    assert_eq!(
        stderr,
        "sipgateio-callevents: error: answer needs --from NUMBER (or --from anonymous)\n"
    );
    let (code, stdout, _) = run_binary(&dir, &[], &["answer", "--from", "1", "--to", "2"]);
    assert_eq!((code, stdout), (0, plain()));
}
