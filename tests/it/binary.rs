//! The binary as a user runs it: settings, start-up errors, event lines, stopping.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use crate::support::*;

use crate::support::run_binary as run;

#[test]
fn bad_settings_stop_the_start_with_exit_2_and_one_line() {
    let dir = temp_dir("bad-settings");
    let cases = [
        (
            "WEBHOOK_URL",
            "example.com/hooks",
            "invalid WEBHOOK_URL \"example.com/hooks\": expected an http:// or https:// URL",
        ),
        (
            "LISTEN_ADDR",
            "localhost",
            "invalid LISTEN_ADDR \"localhost\": expected an IP address and port",
        ),
        (
            "SKIP_SIGNATURE_VERIFICATION",
            "sometimes",
            "invalid SKIP_SIGNATURE_VERIFICATION \"sometimes\": expected true or false",
        ),
        (
            "MAX_CONNECTIONS",
            "many",
            "invalid MAX_CONNECTIONS \"many\": expected a whole number from 1 to 1000000",
        ),
        (
            "READ_TIMEOUT_SECONDS",
            "0",
            "invalid READ_TIMEOUT_SECONDS \"0\": expected a whole number of seconds from 1 to 3600",
        ),
        (
            "MAX_BODY_BYTES",
            "0",
            "invalid MAX_BODY_BYTES \"0\": expected a whole number of bytes from 4096 to",
        ),
        (
            "SIPGATE_PUBLIC_KEY_FILE",
            "/nonexistent/key.pem",
            "invalid SIPGATE_PUBLIC_KEY_FILE \"/nonexistent/key.pem\": cannot read it",
        ),
        // Settings that parse but cannot work.
        (
            "WEBHOOK_URL",
            "https://calls.example.com/new-call",
            "invalid WEBHOOK_URL \"https://calls.example.com/new-call\": it ends in the route /new-call, which the server adds itself; drop /new-call: WEBHOOK_URL is the base URL, here https://calls.example.com",
        ),
        (
            "MAX_BODY_BYTES",
            "10",
            "invalid MAX_BODY_BYTES \"10\": expected a whole number of bytes from 4096 to",
        ),
        (
            "SIPGATE_PUBLIC_KEY_FILE",
            concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"),
            "invalid SIPGATE_PUBLIC_KEY_FILE",
        ),
    ];
    for (name, value, message) in cases {
        let (code, stdout, stderr) = run(&dir, &[(name, value)], &[]);
        assert_eq!(code, 2, "{name}={value}: {stderr}");
        if name == "SIPGATE_PUBLIC_KEY_FILE" && value.ends_with("README.md") {
            assert!(
                stderr
                    .contains(": not a PEM public key: it has no -----BEGIN PUBLIC KEY----- line;"),
                "{stderr}"
            );
        }
        assert_eq!(stdout, "");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(
            lines[0].starts_with(&format!("sipgateio-callevents: error: {message}")),
            "{stderr}"
        );
    }
}

#[test]
fn a_key_file_that_is_not_a_key_is_refused() {
    let dir = temp_dir("bad-key");
    std::fs::write(
        dir.join("key.pem"),
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let (code, _, stderr) = run(&dir, &[("SIPGATE_PUBLIC_KEY_FILE", "key.pem")], &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("invalid SIPGATE_PUBLIC_KEY_FILE \"key.pem\": not a PEM public key"),
        "{stderr}"
    );
}

#[test]
fn a_key_file_replaces_the_embedded_key() {
    let dir = temp_dir("key-file");
    std::fs::copy(
        fixtures_dir().join("sipgate-push-pubkey.pem"),
        dir.join("rotated.pem"),
    )
    .unwrap();
    let mut server = Binary::start(&dir, &[("SIPGATE_PUBLIC_KEY_FILE", "rotated.pem")]);
    assert_eq!(post_signed(&server.url("/new-call")).status, 200);
    assert!(server.stop().success());
}

#[test]
fn a_broken_env_file_is_an_error_and_a_good_one_is_read() {
    let dir = temp_dir("dotenv");
    std::fs::write(
        dir.join(".env"),
        "MAX_CONNECTIONS=3\nTHIS IS NOT A SETTING\n",
    )
    .unwrap();
    let (code, _, stderr) = run(&dir, &[], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.starts_with("sipgateio-callevents: error: cannot use .env in the working directory"),
        "{stderr}"
    );

    std::fs::write(dir.join(".env"), "# a comment\nMAX_CONNECTIONS=zero\n").unwrap();
    let (code, _, stderr) = run(&dir, &[], &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("invalid MAX_CONNECTIONS \"zero\""),
        "the .env value is used: {stderr}"
    );
}

#[test]
fn environment_wins_over_env_file() {
    let dir = temp_dir("dotenv-precedence");
    std::fs::write(dir.join(".env"), "WEBHOOK_URL=https://from-file.example\n").unwrap();
    let server = Binary::start(
        &dir,
        &[
            ("WEBHOOK_URL", "https://from-env.example"),
            ("SKIP_SIGNATURE_VERIFICATION", "true"),
        ],
    );
    let answer = post(
        &server.url("/new-call"),
        &fixture("01-newcall-in.form"),
        &[],
    );
    assert!(
        answer.body.contains("https://from-env.example/on-answer"),
        "{}",
        answer.body
    );
}

#[test]
fn a_port_in_use_is_named() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = temp_dir("port-in-use");
    let (code, _, stderr) = run(&dir, &[("LISTEN_ADDR", &addr)], &[]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "sipgateio-callevents: error: cannot listen on {addr}: the address is already in use; stop the program using it or set LISTEN_ADDR to another port"
        )
    );
}

#[test]
fn help_lists_every_variable_and_version_prints_the_version_and_target() {
    let dir = temp_dir("help");
    let (code, stdout, _) = run(&dir, &[], &["--help"]);
    assert_eq!(code, 0);
    for variable in sipgateio_callevents::config::VARIABLES {
        let name = variable.name;
        assert!(stdout.contains(name), "--help lacks {name}");
    }
    let (code, stdout, _) = run(&dir, &[], &["--version"]);
    assert_eq!(
        (code, stdout),
        (
            0,
            format!(
                "sipgateio-callevents {} ({})\n",
                env!("CARGO_PKG_VERSION"),
                env!("SIPGATEIO_CALLEVENTS_TARGET")
            )
        )
    );
    let (code, _, stderr) = run(&dir, &[], &["--frobnicate"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("unknown argument \"--frobnicate\""),
        "{stderr}"
    );
}

#[test]
fn events_go_to_stdout_and_logs_to_stderr() {
    let dir = temp_dir("stdout");
    let mut server = Binary::start(&dir, &[("SKIP_SIGNATURE_VERIFICATION", "true")]);
    assert!(
        server
            .stderr()
            .contains("SKIP_SIGNATURE_VERIFICATION is on"),
        "a warning at start"
    );
    for name in [
        "01-newcall-in.form",
        "07-answer-in.form",
        "09-hangup-normalclearing.form",
        "13-dtmf-digits.form",
    ] {
        let answer = post(&server.url(route(kind_of(name))), &fixture(name), &[]);
        assert_eq!(answer.status, 200);
    }
    assert_eq!(get(&server.url("/nope")).status, 404);
    let (stdout, stderr) = server.stop_cleanly();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines[0].starts_with("New call from 492111234567"));
    assert!(lines[1].starts_with("4915791234567 answered call from 492111234567"));
    assert!(lines[2].starts_with("The call has been hung up, cause normalClearing"));
    assert!(lines[3].starts_with("DTMF digits 0815"));
    assert!(stderr.contains("/nope"), "the 404 is logged on stderr");
}

#[test]
fn sigterm_and_sigint_stop_gracefully_even_with_stuck_clients() {
    let _exclusive = exclusive();
    for signal in ["TERM", "INT"] {
        let dir = temp_dir("shutdown");
        let mut server = Binary::start(&dir, &[("SKIP_SIGNATURE_VERIFICATION", "true")]);
        // An idle keep-alive client, and one stuck half-way through a large body.
        let mut idle = TcpStream::connect(server.addr).unwrap();
        write!(idle, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut stuck = TcpStream::connect(server.addr).unwrap();
        let large = raw_post("/on-hangup").length(60000).body("callId=x");
        stuck.write_all(&large.bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        server.signal(signal);
        let (status, took) = server.wait_exit(Duration::from_secs(10));
        assert!(status.success(), "SIG{signal}: {status:?}");
        assert!(took < Duration::from_secs(5), "SIG{signal} took {took:?}");
        assert!(
            TcpStream::connect(server.addr).is_err(),
            "no new connections after the stop"
        );
        drop((idle, stuck));
    }
}

#[test]
fn a_request_in_flight_at_the_stop_is_answered_and_printed() {
    let _exclusive = exclusive();
    let dir = temp_dir("in-flight");
    let mut server = Binary::start(&dir, &[("SKIP_SIGNATURE_VERIFICATION", "true")]);
    let body = fixture("09-hangup-normalclearing.form");
    // The headers and half the body now, the rest after the signal.
    let mut stream = TcpStream::connect(server.addr).unwrap();
    let request = raw_post("/on-hangup").close().body(&body);
    stream.write_all(&request.head()).unwrap();
    stream.write_all(&body[..100]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(100));
    stream.write_all(&body[100..]).unwrap();
    let text = read_until_closed(&mut stream, Duration::from_secs(5)).text;
    assert_eq!(statuses(&text), [200], "{text}");
    assert!(server.wait_exit(Duration::from_secs(10)).0.success());
    assert_eq!(server.stdout().lines().count(), 1);
}

#[test]
fn a_client_that_keeps_sending_cannot_hold_the_stop_open() {
    let _exclusive = exclusive();
    let dir = temp_dir("busy-stop");
    let mut server = Binary::start(&dir, &[("SKIP_SIGNATURE_VERIFICATION", "true")]);
    let stdout = server.drain_stdout();
    let mut stream = TcpStream::connect(server.addr).unwrap();
    let mut reader = stream.try_clone().unwrap();
    let answers = std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut reader, &mut sink);
    });
    let request = raw_post("/on-hangup")
        .body(fixture("09-hangup-normalclearing.form"))
        .bytes();
    let sender = std::thread::spawn(move || {
        // Bounded: the server is gone long before this many.
        for _ in 0..200_000 {
            if stream.write_all(&request).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    server.signal("TERM");
    let (status, took) = server.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    // Requests are let in for at most 1 s after the signal, busy client or not.
    assert!(
        took < Duration::from_millis(2500),
        "took {took:?} with a busy keep-alive client"
    );
    let _ = (sender.join(), answers.join());
    assert!(
        stdout.join().unwrap() > 0,
        "events were served before the stop"
    );
}

/// The documented settings are the real ones: `.env.example` as a `.env` starts the
/// server, and it and the README name every variable the program reads.
#[test]
fn env_example_and_readme_document_every_variable() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(root.join(".env.example")).unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for variable in sipgateio_callevents::config::VARIABLES {
        assert!(
            example.contains(variable.name),
            ".env.example lacks {}",
            variable.name
        );
        assert!(
            readme.contains(&format!("| `{}` |", variable.name)),
            "README's table lacks {}",
            variable.name
        );
    }
    let dir = temp_dir("env-example");
    // LISTEN_ADDR from the environment wins, so the test takes a free port.
    std::fs::write(dir.join(".env"), &example).unwrap();
    let mut server = Binary::start(&dir, &[]);
    assert_eq!(get(&server.url("/health")).status, 200);
    assert!(server.stop().success());
}

/// Without WEBHOOK_URL, the server subscribes to the follow-up events at its own port, so
/// moving it to another port loses none of them; and it says so where to point sipgate.
#[test]
fn a_server_on_another_port_subscribes_at_its_own_port() {
    let dir = temp_dir("own-port");
    let port = free_port();
    let mut server = Binary::start(
        &dir,
        &[
            ("SKIP_SIGNATURE_VERIFICATION", "true"),
            ("LISTEN_ADDR", &format!("127.0.0.1:{port}")),
        ],
    );
    let answer = post(
        &server.url("/new-call"),
        &fixture("01-newcall-in.form"),
        &[],
    );
    assert_eq!(answer.status, 200);
    assert!(
        answer.body.contains(&format!(
            "onAnswer=\"http://localhost:{port}/on-answer\" onHangup=\"http://localhost:{port}/on-hangup\""
        )),
        "{}",
        answer.body
    );
    let (_, stderr) = server.stop_cleanly();
    assert!(
        stderr.contains(&format!(
            "set the sipgate console's webhook URL to http://localhost:{port}/new-call"
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains(" is port "),
        "no other port named: {stderr}"
    );
}

/// A WEBHOOK_URL on this machine at another port than the server's is named at start, and
/// a RUST_LOG that lets no line through is said on stderr.
#[test]
fn a_local_webhook_url_at_another_port_and_a_silent_rust_log_are_named() {
    let dir = temp_dir("other-port");
    let port = free_port();
    let mut server = Binary::start(
        &dir,
        &[
            ("LISTEN_ADDR", &format!("127.0.0.1:{port}")),
            ("WEBHOOK_URL", "http://localhost:1"),
        ],
    );
    let (_, stderr) = server.stop_cleanly();
    assert!(
        stderr.contains(&format!(
            "WEBHOOK_URL http://localhost:1 is port 1 of this machine, but the server listens on 127.0.0.1:{port}"
        )),
        "{stderr}"
    );

    // No "listening" line to wait for here: the process runs a moment and is ended.
    let stderr_of = |filter: &str| {
        let mut child = binary_command(&dir, &[("RUST_LOG", filter)])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(800));
        child.kill().unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stderr).unwrap()
    };
    let stderr = stderr_of("verbose");
    assert!(
        stderr.starts_with(
            "sipgateio-callevents: warning: RUST_LOG=\"verbose\" lets no log line of this program through"
        ),
        "{stderr}"
    );
    assert_eq!(stderr_of("off"), "");
}

/// Every subcommand explains itself with --help, exit code 0, whatever the settings.
#[test]
fn every_subcommand_has_help() {
    let dir = temp_dir("help-all");
    for command in [
        "simulate",
        "check-rules",
        "answer",
        "health",
        "register",
        "doctor",
        "calls",
    ] {
        for flag in ["--help", "-h"] {
            let (code, stdout, stderr) = run(&dir, &[("MAX_BODY_BYTES", "10")], &[command, flag]);
            assert_eq!(code, 0, "{command} {flag}: {stderr}");
            assert!(
                stdout.starts_with(&format!("Usage: sipgateio-callevents {command}")),
                "{command} {flag}: {stdout}"
            );
        }
    }
}
