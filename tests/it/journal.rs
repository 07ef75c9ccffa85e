//! The call journal (`CALL_LOG_FILE`) with the binary as users run it: events posted over
//! HTTP, the file read back with SQLite, the `calls` subcommand, a restart in the middle of
//! a call, an older file migrated, and files that cannot be the journal refused untouched.

use std::path::{Path, PathBuf};
use std::process::Command;

use rusqlite::Connection;

use crate::support::*;

const JOURNAL: &str = "calls.sqlite";

/// The binary with the journal in `dir`, unsigned requests accepted.
fn start(dir: &Path, more: &[(&str, &str)]) -> Binary {
    let mut vars = vec![
        ("SKIP_SIGNATURE_VERIFICATION", "true"),
        ("CALL_LOG_FILE", JOURNAL),
        ("TIMEZONE", "UTC"),
    ];
    vars.extend_from_slice(more);
    Binary::start(dir, &vars)
}

fn new_call(server: &Binary, id: &str, from: &str) -> Answer {
    let body = format!(
        "event=newCall&direction=in&from={from}&to=4921100000&callId={id}&user%5B%5D=Alice&user%5B%5D=Bob"
    );
    post(&server.url("/new-call"), body.as_bytes(), &[])
}

fn answer(server: &Binary, id: &str) -> Answer {
    let body = format!(
        "event=answer&direction=in&from=491&to=4921100000&callId={id}&user=Alice&answeringNumber=4921100001"
    );
    post(&server.url("/on-answer"), body.as_bytes(), &[])
}

fn hangup(server: &Binary, id: &str, cause: &str) -> Answer {
    let body =
        format!("event=hangup&direction=in&from=491&to=4921100000&callId={id}&cause={cause}");
    post(&server.url("/on-hangup"), body.as_bytes(), &[])
}

/// Runs `calls` with `args` in `dir`, where the journal is: (exit code, stdout, stderr).
fn calls(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["calls"];
    all.extend_from_slice(args);
    run_binary(
        dir,
        &[("CALL_LOG_FILE", JOURNAL), ("TIMEZONE", "UTC")],
        &all,
    )
}

/// The rows of `query` on the journal in `dir`, each as its columns' text (NULL as "-").
fn rows(dir: &Path, query: &str) -> Vec<Vec<String>> {
    let connection = Connection::open(dir.join(JOURNAL)).unwrap();
    let mut statement = connection.prepare(query).unwrap();
    let columns = statement.column_count();
    statement
        .query_map([], |row| {
            (0..columns)
                .map(|index| {
                    Ok(match row.get_ref(index)? {
                        rusqlite::types::ValueRef::Null => "-".to_owned(),
                        rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                        rusqlite::types::ValueRef::Real(x) => x.to_string(),
                        rusqlite::types::ValueRef::Text(text) => {
                            String::from_utf8_lossy(text).into_owned()
                        }
                        rusqlite::types::ValueRef::Blob(_) => "(blob)".to_owned(),
                    })
                })
                .collect()
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// An answered call, a missed one and one still ringing.
fn three_calls(server: &Binary) {
    for status in [
        new_call(server, "answered", "491").status,
        answer(server, "answered").status,
        hangup(server, "answered", "normalClearing").status,
        new_call(server, "missed", "492").status,
        hangup(server, "missed", "cancel").status,
        new_call(server, "ringing", "493").status,
    ] {
        assert_eq!(status, 200);
    }
}

#[test]
fn events_and_calls_are_in_the_journal_when_answered() {
    let dir = temp_dir("journal-rows");
    let mut server = start(&dir, &[]);
    let reply = new_call(&server, "first", "491");
    assert!(reply.body.contains("<Response onAnswer="), "{}", reply.body);
    // Committed before the answer: the row is there as soon as the 200 is.
    assert_eq!(
        rows(&dir, "SELECT event, call_id FROM events"),
        [["newCall", "first"]]
    );
    three_calls(&server);
    let events = rows(
        &dir,
        "SELECT event, call_id, direction, from_number, to_number, answering_number, cause, dtmf, rule,
                json_extract(fields, '$.\"user[]\"'), length(received_at)
         FROM events WHERE call_id = 'answered' ORDER BY id",
    );
    assert_eq!(
        events,
        [
            [
                "newCall",
                "answered",
                "in",
                "491",
                "4921100000",
                "-",
                "-",
                "-",
                "-",
                "[\"Alice\",\"Bob\"]",
                "24"
            ],
            [
                "answer",
                "answered",
                "in",
                "491",
                "4921100000",
                "4921100001",
                "-",
                "-",
                "-",
                "-",
                "24"
            ],
            [
                "hangup",
                "answered",
                "in",
                "491",
                "4921100000",
                "-",
                "normalClearing",
                "-",
                "-",
                "-",
                "24"
            ],
        ]
    );
    let calls = rows(
        &dir,
        "SELECT call_id, from_number, users, answered_by, cause, result,
                started_at IS NOT NULL, answered_at IS NOT NULL, ended_at IS NOT NULL,
                ring_seconds >= 0, talk_seconds >= 0
         FROM calls WHERE call_id != 'first' ORDER BY call_id",
    );
    assert_eq!(
        calls,
        [
            [
                "answered",
                "491",
                "[\"Alice\",\"Bob\"]",
                "Alice",
                "normalClearing",
                "answered",
                "1",
                "1",
                "1",
                "1",
                "1"
            ],
            [
                "missed",
                "492",
                "[\"Alice\",\"Bob\"]",
                "-",
                "cancel",
                "missed",
                "1",
                "0",
                "1",
                "1",
                "-"
            ],
            [
                "ringing",
                "493",
                "[\"Alice\",\"Bob\"]",
                "-",
                "-",
                "ongoing",
                "1",
                "0",
                "0",
                "-",
                "-"
            ],
        ]
    );
    let (stdout, _) = server.stop_cleanly();
    assert!(
        stdout.contains("cause normalClearing, callId answered, rang"),
        "{stdout}"
    );
}

#[test]
fn calls_shows_the_history_in_three_formats() {
    let dir = temp_dir("journal-calls");
    let mut server = start(&dir, &[]);
    three_calls(&server);

    let (code, table, stderr) = calls(&dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("STARTED "), "{table}");
    assert_eq!(lines.len(), 4, "{table}");
    // Newest first; equal start times (one millisecond) may come in either order, so
    // only the results as a set are checked here, and the order with --since below.
    for (result, from) in [("answered", "491"), ("missed", "492"), ("ongoing", "493")] {
        assert!(
            lines
                .iter()
                .any(|line| line.contains(result) && line.contains(from)),
            "{result}: {table}"
        );
    }
    let answered = lines.iter().find(|line| line.contains("answered")).unwrap();
    assert!(answered.contains("Alice"), "{answered}");

    let (code, json, _) = calls(&dir, &["--format", "json", "--missed"]);
    assert_eq!(code, 0);
    let objects: Vec<serde_json::Value> = json
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(objects.len(), 1, "{json}");
    assert_eq!(objects[0]["call_id"], "missed");
    assert_eq!(objects[0]["result"], "missed");
    assert_eq!(objects[0]["cause"], "cancel");
    assert_eq!(objects[0]["users"], serde_json::json!(["Alice", "Bob"]));
    assert!(objects[0]["answered_at"].is_null());
    assert!(objects[0]["ring_seconds"].is_number());

    let (code, csv, _) = calls(&dir, &["--format", "csv", "--since", "1h"]);
    assert_eq!(code, 0);
    let mut csv_lines = csv.lines();
    assert_eq!(
        csv_lines.next(),
        Some(
            "call_id,direction,from_number,to_number,users,started_at,answered_at,ended_at,answered_by,ring_seconds,talk_seconds,cause,result"
        )
    );
    assert_eq!(csv_lines.count(), 3, "{csv}");
    assert!(csv.contains("\"[\"\"Alice\"\",\"\"Bob\"\"]\""), "{csv}");

    // A start time in the future leaves nothing, and says so on stderr.
    let (code, empty, said) = calls(&dir, &["--format", "csv", "--since", "2999-01-01"]);
    assert_eq!(code, 0);
    assert_eq!(empty.lines().count(), 1, "{empty}");
    assert!(
        said.contains("no calls in the journal") && said.contains("--since"),
        "{said}"
    );
    let (_, only_492, _) = calls(&dir, &["--from", "+492", "--format", "json"]);
    assert_eq!(only_492.lines().count(), 1, "{only_492}");
    assert!(only_492.contains("\"missed\""), "{only_492}");
    server.stop_cleanly();
}

#[test]
fn an_empty_history_and_a_missing_journal_say_so() {
    let dir = temp_dir("journal-empty");
    let mut server = start(&dir, &[]);
    let (code, stdout, stderr) = calls(&dir, &[]);
    assert_eq!((code, stdout.as_str()), (0, ""), "{stderr}");
    assert!(
        stderr.contains("no calls in the journal calls.sqlite yet"),
        "{stderr}"
    );
    server.stop_cleanly();

    let (code, _, stderr) = run_binary(&dir, &[], &["calls"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("set CALL_LOG_FILE"), "{stderr}");
    let (code, _, stderr) = calls(&dir, &["--file", "nothing-here.sqlite"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("nothing-here.sqlite: it does not exist"),
        "{stderr}"
    );
    let (code, _, stderr) = calls(&dir, &["--limit", "none"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--limit \"none\""), "{stderr}");
}

#[test]
fn a_restart_in_the_middle_of_a_call_keeps_its_summary() {
    let dir = temp_dir("journal-restart");
    let mut server = start(&dir, &[]);
    assert_eq!(new_call(&server, "long", "491").status, 200);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(answer(&server, "long").status, 200);
    server.stop_cleanly();

    let mut server = start(&dir, &[]);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(hangup(&server, "long", "normalClearing").status, 200);
    let (stdout, _) = server.stop_cleanly();
    let line = stdout
        .lines()
        .find(|line| line.contains("callId long"))
        .unwrap_or_else(|| panic!("no hangup line: {stdout}"));
    let rang: f64 = line
        .split("rang ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|seconds| seconds.parse().ok())
        .unwrap_or_else(|| panic!("no ring time in {line:?}"));
    assert!((0.2..5.0).contains(&rang), "{line}");
    assert!(line.contains(", talked "), "{line}");
}

/// The first schema, as a version-1 binary made it: the events table and its indexes.
const VERSION_1: &str = "CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        received_at TEXT NOT NULL,
        event TEXT NOT NULL,
        call_id TEXT NOT NULL,
        direction TEXT,
        from_number TEXT,
        to_number TEXT,
        answering_number TEXT,
        cause TEXT,
        dtmf TEXT,
        rule TEXT,
        fields TEXT NOT NULL
     );
     CREATE INDEX events_call_id ON events (call_id, event);
     CREATE INDEX events_received_at ON events (received_at);
     PRAGMA user_version = 1;";

#[test]
fn a_version_1_journal_is_migrated_in_place() {
    let dir = temp_dir("journal-migrate");
    {
        let connection = Connection::open(dir.join(JOURNAL)).unwrap();
        connection.execute_batch(VERSION_1).unwrap();
        connection
            .execute(
                "INSERT INTO events (received_at, event, call_id, from_number, fields)
                 VALUES ('2026-01-01T10:00:00.000Z', 'newCall', 'old', '491', '{}')",
                [],
            )
            .unwrap();
    }
    // CALL_LOG_DAYS=0: the old event must stay for the check, whatever today is.
    let mut server = start(&dir, &[("CALL_LOG_DAYS", "0")]);
    assert_eq!(hangup(&server, "old", "busy").status, 200);
    let (_, stderr) = server.stop_cleanly();
    assert!(
        stderr.contains("schema brought from version 1 to 2"),
        "{stderr}"
    );
    assert_eq!(rows(&dir, "PRAGMA user_version"), [["2"]]);
    assert_eq!(
        rows(&dir, "SELECT call_id, from_number, result FROM calls"),
        [["old", "491", "busy"]]
    );
}

/// Exit 2, one line naming the file and the cause, and the file as it was.
fn refused(dir: &Path, file: &str, says: &str) {
    let path = dir.join(file);
    let before = std::fs::read(&path).ok();
    let (code, _, stderr) = run_binary(
        dir,
        &[
            ("SKIP_SIGNATURE_VERIFICATION", "true"),
            ("CALL_LOG_FILE", file),
        ],
        &[],
    );
    assert_eq!(code, 2, "{file}: {stderr}");
    let error = stderr
        .lines()
        .find(|line| line.contains("error:"))
        .unwrap_or_else(|| panic!("{file}: no error line in {stderr}"));
    assert!(
        error.contains(&format!("CALL_LOG_FILE {file}: ")) && error.contains(says),
        "{file}: {error}"
    );
    assert_eq!(std::fs::read(&path).ok(), before, "{file} changed");
}

#[test]
fn files_that_cannot_be_the_journal_stop_the_start_untouched() {
    let dir = temp_dir("journal-refused");
    std::fs::write(dir.join("notes.txt"), "call Bob back\n".repeat(300)).unwrap();
    refused(&dir, "notes.txt", "cannot read it as an SQLite database");
    refused(
        &dir,
        "missing/calls.sqlite",
        "the folder missing does not exist",
    );
    std::fs::create_dir(dir.join("folder")).unwrap();
    refused(&dir, "folder", "is a folder");
    Connection::open(dir.join("newer.sqlite"))
        .unwrap()
        .execute_batch("CREATE TABLE events (id INTEGER PRIMARY KEY); PRAGMA user_version = 7;")
        .unwrap();
    refused(
        &dir,
        "newer.sqlite",
        "its schema version is 7, newer than this binary's 2",
    );
}

#[test]
fn a_journal_that_cannot_be_written_stops_the_start_untouched() {
    let dir = temp_dir("journal-readonly");
    // A journal made by the server, then made unwritable.
    let mut server = start(&dir, &[]);
    assert_eq!(new_call(&server, "kept", "491").status, 200);
    server.stop_cleanly();
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0");
    if !is_root {
        set_mode(&dir.join(JOURNAL), 0o444);
        set_mode(&dir, 0o555);
        refused(&dir, JOURNAL, "cannot be written");
        set_mode(&dir, 0o755);
        return;
    }
    // Root writes through any file mode; a read-only mount stops even root.
    let mount = dir.join("readonly");
    std::fs::create_dir(&mount).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mount)
        .status()
        .is_ok_and(|status| status.success());
    if !mounted {
        assert!(
            !in_ci(),
            "CI runs as root and must be able to mount a tmpfs"
        );
        skipped("cannot mount a tmpfs for the read-only journal test");
        return;
    }
    let _unmount = Unmount(mount.clone());
    std::fs::copy(dir.join(JOURNAL), mount.join(JOURNAL)).unwrap();
    let remounted = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&mount)
        .status()
        .unwrap();
    assert!(remounted.success());
    refused(&mount, JOURNAL, "cannot be written");
}

/// Unmounts a test's mount when the test ends, also by a failure.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn bad_journal_settings_exit_2_naming_the_value() {
    let dir = temp_dir("journal-settings");
    for (name, value, says) in [
        (
            "CALL_LOG_SYNC",
            "always",
            "normal (survives a crash of the process) or full",
        ),
        ("CALL_LOG_DAYS", "-1", "from 0 (keep every event)"),
    ] {
        let (code, _, stderr) = run_binary(&dir, &[(name, value)], &[]);
        assert_eq!(code, 2, "{name}={value}: {stderr}");
        assert!(
            stderr.contains(&format!("invalid {name} \"{value}\"")) && stderr.contains(says),
            "{stderr}"
        );
    }
}

#[test]
fn commits_are_measured_with_metrics_on() {
    let dir = temp_dir("journal-metrics");
    let mut server = start(&dir, &[("METRICS", "true")]);
    three_calls(&server);
    let page = get(&server.url("/metrics")).body;
    let value = |name: &str| -> f64 {
        page.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {page}"))
    };
    // Six events, posted one after another: six commits of one event each.
    assert_eq!(value("sipgateio_journal_commit_seconds_count"), 6.0);
    assert_eq!(value("sipgateio_journal_events_per_commit_sum"), 6.0);
    assert!(
        !page.contains("sipgateio_journal_failures_total{"),
        "no failure yet: {page}"
    );
    server.stop_cleanly();
}

#[test]
fn old_events_are_removed_at_start() {
    let dir = temp_dir("journal-retention");
    let mut server = start(&dir, &[]);
    assert_eq!(new_call(&server, "recent", "491").status, 200);
    server.stop_cleanly();
    {
        // More than one batch of old events, from another year.
        let mut connection = Connection::open(dir.join(JOURNAL)).unwrap();
        let transaction = connection.transaction().unwrap();
        for index in 0..1_234 {
            transaction
                .execute(
                    "INSERT INTO events (received_at, event, call_id, fields)
                     VALUES ('2020-01-01T10:00:00.000Z', 'newCall', ?1, '{}')",
                    [format!("old-{index}")],
                )
                .unwrap();
        }
        transaction.commit().unwrap();
    }
    let server = start(&dir, &[("CALL_LOG_DAYS", "30")]);
    let removed = "removed 1234 event(s) older than 30 days";
    let lines = server.wait_for_stderr(std::time::Duration::from_secs(10), |lines| {
        lines.iter().any(|line| line.contains(removed))
    });
    assert!(
        lines.iter().any(|line| line.contains(removed)),
        "{lines:#?}"
    );
    assert_eq!(rows(&dir, "SELECT call_id FROM events"), [["recent"]]);
}

#[test]
fn a_lock_held_past_the_wait_delays_the_event_not_the_answer() {
    let _alone = exclusive();
    let dir = temp_dir("journal-busy");
    let mut server = start(&dir, &[("METRICS", "true")]);
    assert_eq!(new_call(&server, "before", "491").status, 200);
    // Another process (here: this test) holds the write lock for 4 s, longer than the
    // 3 s a request waits for its commit.
    let blocker = Connection::open(dir.join(JOURNAL)).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    let reply = new_call(&server, "held", "492");
    let took = started.elapsed();
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("<Response onAnswer="), "{}", reply.body);
    assert!(
        (2.8..3.9).contains(&took.as_secs_f64()),
        "answered after {took:?}, not after the 3 s wait"
    );
    assert!(rows(&dir, "SELECT call_id FROM events WHERE call_id = 'held'").is_empty());
    std::thread::sleep(std::time::Duration::from_secs(4).saturating_sub(started.elapsed()));
    blocker.execute_batch("COMMIT").unwrap();
    let lines = server.wait_for_stderr(std::time::Duration::from_secs(10), |lines| {
        lines
            .iter()
            .any(|line| line.contains("journaled before their answer again"))
    });
    let failure = lines
        .iter()
        .filter(|line| line.contains("answered and printed without being journaled first"))
        .count();
    assert_eq!(failure, 1, "{lines:#?}");
    assert!(
        lines.iter().any(|line| line
            .contains("1 event(s) were answered first, 1 of them are in the journal now")),
        "{lines:#?}"
    );
    assert_eq!(
        rows(&dir, "SELECT call_id FROM events WHERE call_id = 'held'"),
        [["held"]]
    );
    let page = get(&server.url("/metrics")).body;
    assert!(
        page.contains("sipgateio_journal_failures_total{kind=\"late\"} 1"),
        "{page}"
    );
    server.stop_cleanly();
}
