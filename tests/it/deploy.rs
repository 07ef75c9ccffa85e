//! The deployment files besides nginx's (tests/it/nginx.rs): the systemd unit and the
//! Caddyfile.
//!
//! Each is checked for the settings docs/deployment.md promises, and by its own tool when that tool
//! is installed: `systemd-analyze verify` for the unit, `caddy validate` for the Caddyfile.
//! Without the tool the check prints "skipped: …" and only the text checks run (neither tool
//! is needed to build or test the server, so CI does not install them).

use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{find_on_path, skipped, temp_dir};

const UNIT: &str = include_str!("../../deploy/sipgateio-callevents.service");
const CADDYFILE: &str = include_str!("../../deploy/Caddyfile");

/// The unit's `Key=value` lines, in order (comments and section headers left out).
fn unit_settings() -> Vec<(&'static str, &'static str)> {
    UNIT.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with(['#', ';', '[']))
        .map(|line| line.split_once('=').expect("Key=value"))
        .collect()
}

#[test]
fn the_unit_has_the_promised_settings() {
    let settings = unit_settings();
    let get = |key: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .collect()
    };
    for (key, value) in [
        ("ExecStart", "/usr/local/bin/sipgateio-callevents"),
        ("EnvironmentFile", "/etc/sipgateio-callevents/env"),
        ("Restart", "on-failure"),
        ("StandardOutput", "journal"),
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("MemoryDenyWriteExecute", "yes"),
        ("LockPersonality", "yes"),
        ("CapabilityBoundingSet", ""),
        ("WantedBy", "multi-user.target"),
    ] {
        assert_eq!(get(key), [value], "{key}");
    }
    assert_eq!(get("SystemCallFilter")[0], "@system-service");
    // The cut of trickling connections copies sockets with pidfd_getfd, outside
    // @system-service: allowed after the deny list, so that none of it takes it back.
    assert_eq!(get("SystemCallFilter").last(), Some(&"pidfd_getfd"));
    // The server reads a .env in its working directory: it must start in an empty one.
    assert_eq!(get("RuntimeDirectory"), ["sipgateio-callevents"]);
    assert_eq!(get("WorkingDirectory"), ["/run/sipgateio-callevents"]);
}

/// Runs `systemd-analyze verify` on the unit, with ExecStart pointed at the binary cargo
/// built (verify insists that the command exists). Any output, even a warning about an
/// unknown key, fails the test: verify exits 0 on those.
#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let Some(analyze) = find_on_path("systemd-analyze") else {
        skipped("systemd-analyze not installed (apt-get install systemd); unit not verified");
        return;
    };
    let exec_start = "ExecStart=/usr/local/bin/sipgateio-callevents";
    assert!(UNIT.contains(exec_start));
    let dir = temp_dir("systemd-verify");
    let unit = dir.join("sipgateio-callevents.service");
    std::fs::write(
        &unit,
        UNIT.replace(
            exec_start,
            &format!("ExecStart={}", env!("CARGO_BIN_EXE_sipgateio-callevents")),
        ),
    )
    .unwrap();
    let output = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&unit)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && text.trim().is_empty(),
        "systemd-analyze verify:\n{text}"
    );
}

#[test]
fn the_caddyfile_has_the_promised_settings() {
    for needle in [
        "max_size 64KiB",
        "request_buffers 64KiB",
        "> 65536",
        "health_uri /health",
        "keepalive off",
        "read_header 5s",
        "read_body 5s",
        "response_header_timeout 5s",
        "reverse_proxy 127.0.0.1:8080",
        "@webhook path /new-call /on-answer /on-hangup /on-dtmf /health",
    ] {
        assert!(
            CADDYFILE.contains(needle),
            "deploy/Caddyfile lacks {needle:?}"
        );
    }
    // The signature header must reach the server as sent.
    assert!(
        !CADDYFILE
            .lines()
            .any(|line| !line.trim_start().starts_with('#')
                && line.to_ascii_lowercase().contains("x-sipgate-signature"))
    );
}

/// `caddy validate` on the Caddyfile. Caddy before 2.7 (Debian 12 has 2.6) does not know
/// `request_buffers`; there the line is replaced by the old spelling, `buffer_requests`.
#[test]
fn caddy_validate_accepts_the_caddyfile() {
    let Some(caddy) = find_on_path("caddy") else {
        skipped("caddy not installed; Caddyfile not validated");
        return;
    };
    let version = Command::new(&caddy).arg("version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    let old = version
        .trim_start_matches('v')
        .split('.')
        .take(2)
        .map(|part| part.parse::<u32>().unwrap_or(0))
        .collect::<Vec<_>>()
        < vec![2, 7];
    let text = if old {
        CADDYFILE.replace("request_buffers 64KiB", "buffer_requests")
    } else {
        CADDYFILE.to_owned()
    };
    let dir = temp_dir("caddy-validate");
    let file = dir.join("Caddyfile");
    std::fs::write(&file, text).unwrap();
    let output = Command::new(&caddy)
        .args(["validate", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env("XDG_DATA_HOME", &dir)
        .env("XDG_CONFIG_HOME", &dir)
        .env("HOME", Path::new(&dir))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "caddy {version}validate:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
