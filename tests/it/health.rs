//! `sipgateio-callevents health`, the container's HEALTHCHECK, against the real binary.

use std::net::TcpListener;

use crate::support::*;

#[test]
fn health_exits_0_against_a_running_server_under_its_prefix() {
    let dir = temp_dir("health-up");
    let webhook = (
        "WEBHOOK_URL",
        "https://calls.example.com/hooks/7f3c?token=abc",
    );
    let mut server = Binary::start(&dir, &[webhook]);
    let port = server.addr.port().to_string();

    let listen = format!("127.0.0.1:{port}");
    let (code, stdout, stderr) =
        run_binary(&dir, &[webhook, ("LISTEN_ADDR", &listen)], &["health"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        format!("healthy: http://127.0.0.1:{port}/hooks/7f3c/health answered 200\n")
    );
    assert_eq!(stderr, "");

    // The container's setting: every interface is asked on the loopback.
    let wildcard = format!("0.0.0.0:{port}");
    let (code, _, stderr) = run_binary(&dir, &[webhook, ("LISTEN_ADDR", &wildcard)], &["health"]);
    assert_eq!(code, 0, "{stderr}");

    // Without the prefix, the server answers 404, which is not healthy.
    let (code, _, stderr) = run_binary(&dir, &[("LISTEN_ADDR", &listen)], &["health"]);
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        format!(
            "sipgateio-callevents: error: unhealthy: http://127.0.0.1:{port}/health answered 404 instead of 200; WEBHOOK_URL's path must be the server's\n"
        )
    );
    assert!(server.stop().success());
}

#[test]
fn health_exits_1_with_one_line_against_a_closed_port() {
    let dir = temp_dir("health-down");
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let (code, stdout, stderr) = run_binary(&dir, &[("LISTEN_ADDR", &listen)], &["health"]);
    assert_eq!(code, 1);
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        format!(
            "sipgateio-callevents: error: unhealthy: no answer from http://127.0.0.1:{port}/health: connection refused; is the server running, and with this LISTEN_ADDR?\n"
        )
    );
}

#[test]
fn health_fails_with_exit_1_on_what_it_cannot_ask_and_has_help() {
    let dir = temp_dir("health-usage");
    // Exit 2 would be wrong here: container runtimes reserve it for health checks.
    let (code, _, stderr) = run_binary(&dir, &[("LISTEN_ADDR", "127.0.0.1:0")], &["health"]);
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with(
            "sipgateio-callevents: error: LISTEN_ADDR 127.0.0.1:0 lets the system pick the port"
        ),
        "{stderr}"
    );
    let (code, _, stderr) = run_binary(&dir, &[("LISTEN_ADDR", "localhost")], &["health"]);
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with("sipgateio-callevents: error: invalid LISTEN_ADDR \"localhost\""),
        "{stderr}"
    );
    let (code, _, stderr) = run_binary(&dir, &[], &["health", "--now"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("health takes no arguments, got \"--now\""),
        "{stderr}"
    );

    let (code, stdout, _) = run_binary(&dir, &[], &["health", "--help"]);
    assert_eq!(code, 0);
    assert!(
        stdout.starts_with("Usage: sipgateio-callevents health\n"),
        "{stdout}"
    );
    let (code, stdout, _) = run_binary(&dir, &[], &["--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("sipgateio-callevents health "), "{stdout}");
}
