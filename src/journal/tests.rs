//! The journal on real files in a temporary folder: opening, refusing, migrating, writing
//! and the `calls` view read back.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use rusqlite::Connection;

use super::*;
use crate::event::{self, EventKind};
use crate::exchange::Accepted;

/// A fresh folder for one test's files.
fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sipgateio-journal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn settings(path: PathBuf) -> CallLog {
    CallLog {
        path,
        sync: CallLogSync::Normal,
        days: 0,
    }
}

/// `body` as an accepted `kind` event, `at_ms` milliseconds after a fixed time.
fn entry(kind: EventKind, body: &str, at_ms: u64) -> Entry {
    let accepted = Accepted {
        event: event::parse(kind, body.as_bytes()).unwrap(),
        received_utc: SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_000_000_000 + at_ms),
        summary: None,
        answered_by: None,
    };
    Entry::new(&accepted, body.as_bytes())
}

#[test]
fn a_call_is_journaled_and_its_summary_read_from_the_journal() {
    let path = folder("summary").join("calls.sqlite");
    let journal = Journal::open(&settings(path.clone()), None).unwrap();
    let new_call = "event=newCall&direction=in&from=491&to=492&callId=c1&user%5B%5D=Alice";
    assert_eq!(
        journal.record(entry(EventKind::NewCall, new_call, 0)),
        Ok(None)
    );
    let answer =
        "event=answer&callId=c1&user=Alice&answeringNumber=493&direction=in&from=491&to=492";
    assert_eq!(
        journal.record(entry(EventKind::Answer, answer, 4_500)),
        Ok(None)
    );
    let hangup = "event=hangup&callId=c1&cause=normalClearing&direction=in&from=491&to=492";
    let summary = journal
        .record(entry(EventKind::Hangup, hangup, 65_750))
        .unwrap()
        .unwrap();
    assert_eq!(summary.rang, Duration::from_millis(4_500));
    assert_eq!(summary.talked, Some(Duration::from_millis(61_250)));
    journal.close(Duration::from_secs(5));

    let connection = Connection::open(&path).unwrap();
    let row: (String, String, String, f64, f64, String, String) = connection
        .query_row(
            "SELECT users, started_at, answered_by, ring_seconds, talk_seconds, cause, result FROM calls",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?)),
        )
        .unwrap();
    assert_eq!(
        row,
        (
            "[\"Alice\"]".to_owned(),
            "2026-11-18T11:06:40.000Z".to_owned(),
            "Alice".to_owned(),
            4.5,
            61.25,
            "normalClearing".to_owned(),
            "answered".to_owned()
        )
    );
}

#[test]
fn results_follow_the_hangup_cause() {
    let path = folder("results").join("calls.sqlite");
    let journal = Journal::open(&settings(path.clone()), None).unwrap();
    let call = |id: &str, cause: Option<&str>, at: u64| {
        let body = format!("event=newCall&from=491&to=492&callId={id}");
        journal
            .record(entry(EventKind::NewCall, &body, at))
            .unwrap();
        if let Some(cause) = cause {
            let body = format!("event=hangup&callId={id}&cause={cause}");
            journal
                .record(entry(EventKind::Hangup, &body, at + 1000))
                .unwrap();
        }
    };
    call("ringing", None, 0);
    call("cancelled", Some("cancel"), 10);
    call("busy", Some("busy"), 20);
    call("forwarded", Some("forwarded"), 30);
    call("unreachable", Some("notFound"), 40);
    journal.close(Duration::from_secs(5));
    let connection = Connection::open(&path).unwrap();
    let mut statement = connection
        .prepare("SELECT call_id, result, ring_seconds FROM calls ORDER BY started_at")
        .unwrap();
    let rows: Vec<(String, String, Option<f64>)> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let expected = [
        ("ringing", "ongoing", None),
        ("cancelled", "missed", Some(1.0)),
        ("busy", "busy", Some(1.0)),
        ("forwarded", "forwarded", Some(1.0)),
        ("unreachable", "failed", Some(1.0)),
    ];
    let expected: Vec<(String, String, Option<f64>)> = expected
        .iter()
        .map(|(id, result, ring)| ((*id).to_owned(), (*result).to_owned(), *ring))
        .collect();
    assert_eq!(rows, expected);
}

#[test]
fn a_version_1_file_is_migrated_with_its_events() {
    let path = folder("migrate").join("calls.sqlite");
    {
        let connection = Connection::open(&path).unwrap();
        connection.execute_batch(&schema::steps_up_to(1)).unwrap();
        connection
            .execute_batch(
                "INSERT INTO events (received_at, event, call_id, fields)
                 VALUES ('2026-01-01T10:00:00.000Z', 'newCall', 'old', '{}');
                 PRAGMA user_version = 1;",
            )
            .unwrap();
    }
    let journal = Journal::open(&settings(path.clone()), None).unwrap();
    journal.close(Duration::from_secs(5));
    let connection = Connection::open(&path).unwrap();
    assert_eq!(schema::version_of(&connection).unwrap(), schema::VERSION);
    let result: String = connection
        .query_row(
            "SELECT result FROM calls WHERE call_id = 'old'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(result, "ongoing");
}

#[test]
fn files_that_cannot_be_the_journal_are_refused_and_left_alone() {
    let dir = folder("refused");
    let text = dir.join("notes.txt");
    std::fs::write(
        &text,
        "these are not the calls you are looking for\n".repeat(100),
    )
    .unwrap();
    let newer = dir.join("newer.sqlite");
    Connection::open(&newer)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99;")
        .unwrap();
    let cases = [
        (text.clone(), "cannot read it as an SQLite database"),
        (newer.clone(), "newer than this binary's"),
        (dir.join("missing/calls.sqlite"), "does not exist"),
        (dir.clone(), "is a folder"),
    ];
    for (path, says) in cases {
        let before = std::fs::read(&path).ok();
        let error = Journal::open(&settings(path.clone()), None)
            .unwrap_err()
            .to_string();
        assert!(error.contains(says), "{}: {error}", path.display());
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert_eq!(std::fs::read(&path).ok(), before, "{}", path.display());
    }
}
