//! The call journal when its disk fills up, with the binary as it runs in production: the
//! calls must go on being answered at once, the trouble logged once and counted, and once
//! space is back, journaling must resume and the events answered meanwhile reach the file.
//!
//! A full disk is a small tmpfs filled with a file, so these tests need root (CI has it);
//! elsewhere they are skipped.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::support::*;

const FAILED: &str = "events are answered and printed without being journaled first";
const RECOVERED: &str = "events are journaled before their answer again";
const WRITE_FAILURES: &str = "sipgateio_journal_failures_total{kind=\"write\"}";
const LOST: &str = "sipgateio_journal_failures_total{kind=\"lost\"}";

/// SQLite's default: the write-ahead log is copied into the file and started over once it
/// holds this many pages.
const WAL_CHECKPOINT_PAGES: u64 = 1000;

/// A tmpfs mounted for one test, unmounted when dropped, also when the test fails.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|error| format!("cannot run mount: {error}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            dir: dir.to_owned(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|status| status.success());
        if !unmounted {
            // Something still holds a file there: detach it now, so no mount outlives the
            // test, and let the kernel free it once that is closed.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Writes `path` until the file system refuses: ENOSPC. The bound only catches a file
/// system that never fills.
fn fill(path: &Path) {
    let mut filler = File::create(path).unwrap();
    let block = [b'x'; 4096];
    for _ in 0..100_000 {
        match filler.write_all(&block) {
            Ok(()) => {}
            Err(error) if error.kind() == ErrorKind::StorageFull => return,
            Err(error) => panic!("filling {}: {error}", path.display()),
        }
    }
    panic!("{} never filled up", path.display());
}

/// One keep-alive connection, so that hundreds of events cost the test little and an
/// answer's time is the server's, not the connect's.
struct KeepAlive {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl KeepAlive {
    fn to(server: &Binary) -> KeepAlive {
        let stream = TcpStream::connect(server.addr).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        KeepAlive { stream, reader }
    }

    /// A newCall for `id`: its status and body, and how long the answer took.
    fn new_call(&mut self, id: &str) -> (u16, String, Duration) {
        let body = format!("event=newCall&direction=in&from=491&to=4921100000&callId={id}");
        let started = Instant::now();
        self.stream
            .write_all(&raw_post("/new-call").body(body).bytes())
            .unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status = statuses(&line)
            .first()
            .copied()
            .unwrap_or_else(|| panic!("{id}: not a status line: {line:?}"));
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        (status, String::from_utf8(body).unwrap(), started.elapsed())
    }
}

/// `newCall` rows in the journal for `id`.
fn journaled(journal: &Path, id: &str) -> u32 {
    let connection = Connection::open(journal).unwrap();
    connection
        .query_row(
            "SELECT count(*) FROM events WHERE call_id = ?1 AND event = 'newCall'",
            [id],
            |row| row.get(0),
        )
        .unwrap()
}

/// The value of `series` (a name with its labels) on the metrics page; `None` when the
/// page does not have it.
fn sample(server: &Binary, series: &str) -> Option<f64> {
    let page = get(&server.url("/metrics"));
    assert_eq!(page.status, 200, "{page:?}");
    page.body.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        Some(value.parse().unwrap())
    })
}

fn count(lines: &[String], text: &str) -> usize {
    lines.iter().filter(|line| line.contains(text)).count()
}

/// Where the journal is when its disk fills up.
struct Scenario {
    name: &'static str,
    tmpfs_size: &'static str,
    /// newCalls journaled before the disk is filled.
    before: usize,
    /// Whether SQLite has copied the write-ahead log into the file and started it over by
    /// then (it then rewrites the log in place, which a full disk does not stop at once).
    checkpointed: bool,
    /// newCalls posted on the full disk at least; more until a commit has failed.
    during_at_least: usize,
}

fn full_disk(scenario: &Scenario) {
    // Answers are timed against a bound.
    let _exclusive = exclusive();
    let mount_point = temp_dir(scenario.name);
    let tmpfs = match Tmpfs::mount(&mount_point, scenario.tmpfs_size) {
        Ok(tmpfs) => tmpfs,
        Err(why) if in_ci() => panic!("the full-disk tests need a tmpfs in CI: {why}"),
        Err(why) => {
            skipped(&format!(
                "the journal on a full disk needs root to mount a tmpfs: {why}"
            ));
            return;
        }
    };
    let journal = tmpfs.dir.join("calls.sqlite");
    let wal = tmpfs.dir.join("calls.sqlite-wal");
    let filler = tmpfs.dir.join("filler");
    // The server's own directory is elsewhere: only the journal is on the small disk.
    let work = temp_dir(&format!("{}-work", scenario.name));
    // Declared after the tmpfs, so dropped (killed) before it is unmounted.
    let mut server = Binary::start(
        &work,
        &[
            ("CALL_LOG_FILE", journal.to_str().unwrap()),
            ("METRICS", "true"),
            ("SKIP_SIGNATURE_VERIFICATION", "true"),
        ],
    );
    let lines_printed = server.drain_stdout();
    let mut client = KeepAlive::to(&server);

    let before: Vec<String> = (0..scenario.before)
        .map(|i| format!("before-{i}"))
        .collect();
    for id in &before {
        assert_eq!(client.new_call(id).0, 200, "{id}");
    }
    assert_eq!(journaled(&journal, before.last().unwrap()), 1);
    let wal_pages = std::fs::metadata(&wal).unwrap().len() / 4096;
    assert_eq!(
        wal_pages >= WAL_CHECKPOINT_PAGES,
        scenario.checkpointed,
        "the write-ahead log has {wal_pages} pages: not the scenario this test is about"
    );

    fill(&filler);
    let mut during = Vec::new();
    let mut slowest = Duration::ZERO;
    let mut write_failures = None;
    while during.len() < scenario.during_at_least || write_failures.is_none() {
        assert!(
            during.len() < 5_000,
            "no commit failed in {} events on a full disk",
            during.len()
        );
        let id = format!("full-{}", during.len());
        let (status, body, took) = client.new_call(&id);
        slowest = slowest.max(took);
        assert_eq!(status, 200, "{id}: {body}");
        assert!(body.contains("<Response onAnswer="), "{id}: {body}");
        during.push(id);
        if during.len() % 25 == 0 {
            write_failures = sample(&server, WRITE_FAILURES);
        }
    }
    let write_failures = sample(&server, WRITE_FAILURES).unwrap();
    // A handler that waited for a commit that never comes would take the whole 3 s wait.
    assert!(
        slowest < Duration::from_secs(1),
        "on a full disk a newCall took {slowest:?} to be answered"
    );
    assert!(
        write_failures <= during.len() as f64,
        "{write_failures} write failures for {} events on a full disk",
        during.len()
    );
    let lost = sample(&server, LOST);
    assert!(lost.is_none_or(|lost| lost == 0.0), "{lost:?} events lost");
    let lines = server.wait_for_stderr(Duration::from_secs(2), |lines| count(lines, FAILED) > 0);
    assert_eq!(count(&lines, FAILED), 1, "{lines:#?}");
    let failure_line = lines.iter().find(|line| line.contains(FAILED)).unwrap();
    assert!(failure_line.contains("disk is full"), "{failure_line}");
    // The figures for RELIABILITY.md, shown with `--nocapture`.
    eprintln!(
        "{}: {} newCalls on the full disk answered 200 with their XML, the slowest in {slowest:?}; {write_failures} failed to commit",
        scenario.name,
        during.len()
    );

    std::fs::remove_file(&filler).unwrap();
    let after: Vec<String> = (0..5).map(|i| format!("after-{i}")).collect();
    for id in &after {
        assert_eq!(client.new_call(id).0, 200, "{id}");
        assert_eq!(
            journaled(&journal, id),
            1,
            "{id} was answered before it was journaled, with space free again"
        );
    }
    // The backlog is written right after the first commit that succeeds, or at the retry a
    // second later.
    let lines = server.wait_for_stderr(Duration::from_secs(5), |lines| count(lines, RECOVERED) > 0);
    assert_eq!(count(&lines, RECOVERED), 1, "{lines:#?}");
    let recovery_line = lines.iter().find(|line| line.contains(RECOVERED)).unwrap();
    let all_kept = format!(
        "{write_failures} event(s) were answered first, {write_failures} of them are in the journal now"
    );
    assert!(recovery_line.ends_with(&all_kept), "{recovery_line}");
    assert_eq!(count(&lines, FAILED), 1, "{lines:#?}");
    assert_eq!(sample(&server, WRITE_FAILURES), Some(write_failures));
    // Read while the server runs: a backlog written only at the stop would not count.
    let connection = Connection::open(&journal).unwrap();
    let mut rows = connection
        .prepare("SELECT count(*) FROM events WHERE call_id = ?1 AND event = 'newCall'")
        .unwrap();
    for id in before.iter().chain(&during).chain(&after) {
        let found: u32 = rows.query_row([id], |row| row.get(0)).unwrap();
        assert_eq!(found, 1, "{id}");
    }
    drop(rows);
    drop(connection);

    drop(client);
    let status = server.stop();
    assert!(status.success(), "{status}: {}", server.stderr());
    assert_eq!(
        lines_printed.join().unwrap(),
        before.len() + during.len() + after.len(),
        "every event's line on stdout"
    );
    let integrity: String = Connection::open(&journal)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
}

/// A young journal: its write-ahead log only grows, so the first commit on the full disk
/// fails.
#[test]
fn a_full_disk_costs_no_answer_and_the_journal_catches_up_once_space_is_back() {
    full_disk(&Scenario {
        name: "journal-full-disk",
        tmpfs_size: "512k",
        before: 3,
        checkpointed: false,
        during_at_least: 100,
    });
}

/// A journal whose write-ahead log SQLite has started over: commits go on into the log's
/// old pages on the full disk, until the log must grow and the checkpoint cannot grow the
/// file. The same must hold from then on.
#[test]
fn a_full_disk_after_a_checkpoint_costs_no_answer_and_the_journal_catches_up() {
    full_disk(&Scenario {
        name: "journal-full-disk-checkpointed",
        tmpfs_size: "8m",
        before: 400,
        checkpointed: true,
        during_at_least: 100,
    });
}

/// A call whose newCall and answer were answered on the full disk, and whose hangup is the
/// first event once space is back: the hangup finds them in the journal (the events kept
/// for a retry are written first, in the order they came), so its line has its times.
#[test]
fn a_call_begun_on_a_full_disk_keeps_its_times_and_its_order() {
    let mount_point = temp_dir("journal-full-disk-order");
    let tmpfs = match Tmpfs::mount(&mount_point, "512k") {
        Ok(tmpfs) => tmpfs,
        Err(why) if in_ci() => panic!("the full-disk tests need a tmpfs in CI: {why}"),
        Err(why) => {
            skipped(&format!(
                "the journal on a full disk needs root to mount a tmpfs: {why}"
            ));
            return;
        }
    };
    let journal = tmpfs.dir.join("calls.sqlite");
    let filler = tmpfs.dir.join("filler");
    let work = temp_dir("journal-full-disk-order-work");
    let mut server = Binary::start(
        &work,
        &[
            ("CALL_LOG_FILE", journal.to_str().unwrap()),
            ("SKIP_SIGNATURE_VERIFICATION", "true"),
        ],
    );
    let event = |path: &str, body: &str| {
        let answer = post(&server.url(path), body.as_bytes(), &[]);
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    };
    event("/new-call", "event=newCall&from=491&to=492&callId=first");
    fill(&filler);
    event("/new-call", "event=newCall&from=491&to=492&callId=begun");
    std::thread::sleep(Duration::from_millis(200));
    event("/on-answer", "event=answer&callId=begun&user=Alice");
    let lines = server.wait_for_stderr(Duration::from_secs(5), |lines| count(lines, FAILED) > 0);
    assert_eq!(count(&lines, FAILED), 1, "{lines:#?}");
    std::fs::remove_file(&filler).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    event(
        "/on-hangup",
        "event=hangup&callId=begun&cause=normalClearing",
    );
    let (stdout, _) = server.stop_cleanly();
    let hangup = stdout
        .lines()
        .find(|line| line.contains("hung up") && line.contains("callId begun"))
        .unwrap_or_else(|| panic!("no hangup line: {stdout}"));
    assert!(
        hangup.contains(", rang ") && hangup.contains(", talked "),
        "{hangup}"
    );
    let connection = Connection::open(&journal).unwrap();
    let mut statement = connection
        .prepare("SELECT event FROM events WHERE call_id = 'begun' ORDER BY id")
        .unwrap();
    let order: Vec<String> = statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(order, ["newCall", "answer", "hangup"]);
}
