//! The call journal (`CALL_LOG_FILE`): every accepted event committed to an SQLite file
//! before its answer goes out, so that what sipgate sent once outlives the process, and
//! the call history the `calls` subcommand shows.
//!
//! One writer thread owns the file. Handlers queue their event and wait for its commit;
//! the writer commits whatever waits in one transaction, so under load many events share
//! one commit (and one fsync with `CALL_LOG_SYNC=full`). The journal never costs a call
//! its answer: a handler waits [`COMMIT_WAIT`] at most, a failed commit answers at once,
//! and what could not be written is kept for a retry (docs/journal.md).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::calls::CallSummary;
use crate::config::{CallLog, CallLogSync};
use crate::metrics::JournalMetrics;

mod entry;
pub mod history;
mod schema;
mod writer;

pub use entry::Entry;
pub use schema::VERSION as SCHEMA_VERSION;

/// How long a handler waits for its event's commit. Long enough for a slow disk's fsync,
/// far inside the 10 s sipgate waits for a whole answer.
pub const COMMIT_WAIT: Duration = Duration::from_secs(3);

/// Events waiting for the writer at most; past that, a handler answers without queueing
/// (a disk that stopped must not grow the queue without end).
const QUEUE_LIMIT: usize = 10_000;

/// How often the checkpointer copies the write-ahead log into the file: off the writer's
/// thread, so that commits rarely wait for the copying and its fsync. It cannot reach the
/// log's end while commits go on, so SQLite's own checkpoint inside a commit (every 1,000
/// pages) still runs, finds little left to copy, and lets the log start over. Measured
/// against either alone in BENCHMARKS.md.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// How long the writer waits for a lock another process holds on the file (a `sqlite3`
/// shell in a write transaction) before the commit counts as failed.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The journal, shared by the handlers.
pub struct Journal {
    path: PathBuf,
    queue: SyncSender<writer::Message>,
    failures: Arc<Failures>,
    /// Signalled by the writer when it has written everything and closed the file.
    finished: Mutex<Option<mpsc::Receiver<()>>>,
    /// Dropping the sender stops the checkpointer; it is joined before the writer stops,
    /// so the writer's connection is the last and checkpoints the log as it closes.
    checkpointer: Mutex<Option<(SyncSender<()>, std::thread::JoinHandle<()>)>>,
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish()
    }
}

/// A file that cannot be the journal; the program stops with exit code 2 and this line.
#[derive(Debug)]
pub struct JournalError {
    path: PathBuf,
    problem: String,
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CALL_LOG_FILE {}: {}", self.path.display(), self.problem)
    }
}

impl std::error::Error for JournalError {}

/// Why an event is not in the journal when its answer goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotCommitted {
    /// The commit failed; the event is kept for a retry (unless the backlog is full).
    WriteFailed,
    /// Not committed within [`COMMIT_WAIT`]; it stays queued and is written later.
    Late,
    /// Not kept: the queue was full, or the writer is gone.
    Lost,
}

impl Journal {
    /// Opens (or creates) the journal `settings` name, brings its schema up to date and
    /// starts its writer, which also removes events past `CALL_LOG_DAYS`.
    ///
    /// # Errors
    /// The file cannot be the journal: not an SQLite file, a folder that does not exist,
    /// no write permission, a schema newer than this binary's. A file that was refused is
    /// left as it was.
    pub fn open(
        settings: &CallLog,
        metrics: Option<JournalMetrics>,
    ) -> Result<Journal, JournalError> {
        let connection = open_for_writing(settings)?;
        let checkpointer = start_checkpointer(&settings.path)?;
        let failures = Arc::new(Failures::new(settings.path.clone(), metrics.clone()));
        let (queue, received) = mpsc::sync_channel(QUEUE_LIMIT);
        let (finished_tx, finished) = mpsc::sync_channel(1);
        let writer = writer::Writer::new(
            connection,
            received,
            Arc::clone(&failures),
            metrics,
            settings.days,
        );
        std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || {
                writer.run();
                let _ = finished_tx.send(());
            })
            .map_err(|error| JournalError {
                path: settings.path.clone(),
                problem: format!("cannot start its writer thread: {error}"),
            })?;
        Ok(Journal {
            path: settings.path.clone(),
            queue,
            failures,
            finished: Mutex::new(Some(finished)),
            checkpointer: Mutex::new(Some(checkpointer)),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Commits `entry`, waiting at most [`COMMIT_WAIT`]. For a hangup, the call's summary
    /// from the journal: `None` when its newCall is not there.
    ///
    /// # Errors
    /// The event is not in the journal yet (logged once per episode, counted); the caller
    /// answers anyway.
    pub fn record(&self, entry: Entry) -> Result<Option<CallSummary>, NotCommitted> {
        let (done, outcome) = mpsc::sync_channel(1);
        let pending = writer::Pending { entry, done };
        match self
            .queue
            .try_send(writer::Message::Event(Box::new(pending)))
        {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.failures.failed(
                    Failure::Lost,
                    "events arrive faster than the disk takes them",
                    1,
                );
                return Err(NotCommitted::Lost);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.failures
                    .failed(Failure::Lost, "its writer has stopped", 1);
                return Err(NotCommitted::Lost);
            }
        }
        match outcome.recv_timeout(COMMIT_WAIT) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => {
                self.failures.failed(
                    Failure::Late,
                    "a commit took longer than the answer can wait (a slow or busy disk, or a lock held by another process)",
                    1,
                );
                Err(NotCommitted::Late)
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.failures
                    .failed(Failure::Lost, "its writer has stopped", 1);
                Err(NotCommitted::Lost)
            }
        }
    }

    /// Writes what is still queued and closes the file, waiting `grace` at most. Events
    /// that arrive later are answered without the journal.
    pub fn close(&self, grace: Duration) {
        let checkpointer = self
            .checkpointer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((stop, thread)) = checkpointer {
            drop(stop);
            let _ = thread.join();
        }
        // A full queue takes the stop message once the writer makes room.
        if self.queue.send(writer::Message::Stop).is_err() {
            return;
        }
        let finished = self
            .finished
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(finished) = finished {
            if finished.recv_timeout(grace).is_err() {
                log::error!(
                    "call journal {}: the writer did not finish within {} s; events still queued are not in it (their lines are on stdout)",
                    self.path.display(),
                    grace.as_secs()
                );
            }
        }
    }
}

/// Starts the thread that checkpoints the write-ahead log every [`CHECKPOINT_EVERY`], on
/// a connection of its own. PASSIVE: it copies what no reader still needs and never waits
/// for the writer, nor the writer for it. A checkpoint that fails (a full disk) is tried
/// again at the next turn; the log grows meanwhile, and the commits go on.
fn start_checkpointer(
    path: &Path,
) -> Result<(SyncSender<()>, std::thread::JoinHandle<()>), JournalError> {
    let refuse = |problem: String| JournalError {
        path: path.to_owned(),
        problem,
    };
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|error| {
        refuse(format!(
            "cannot open it a second time: {}",
            describe(&error)
        ))
    })?;
    let (stop, stopped) = mpsc::sync_channel::<()>(0);
    let thread = std::thread::Builder::new()
        .name("journal-checkpoint".into())
        .spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
                if let Err(error) =
                    connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                {
                    log::debug!("call journal: checkpoint deferred: {}", describe(&error));
                }
            }
        })
        .map_err(|error| refuse(format!("cannot start its checkpoint thread: {error}")))?;
    Ok((stop, thread))
}

/// Opens the file, checks it can be the journal, and migrates it; nothing is written to a
/// file before it has passed the checks.
fn open_for_writing(settings: &CallLog) -> Result<Connection, JournalError> {
    let path = &settings.path;
    let refuse = |problem: String| JournalError {
        path: path.clone(),
        problem,
    };
    if path.is_dir() {
        return Err(refuse(
            "is a folder; name a file in it, such as calls.sqlite".to_owned(),
        ));
    }
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        return Err(refuse(format!(
            "the folder {} does not exist; create it, or name a file in an existing folder",
            folder.display()
        )));
    }
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|error| refuse(format!("cannot open it: {}", describe(&error))))?;
    // Known at open, before any read: a WAL file that cannot be written may not even be
    // readable, and "not a database" would then send the user the wrong way.
    if connection.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
        return Err(refuse(
            "cannot be written (no write permission, or a read-only file system); give this user write access to the file and its folder".to_owned(),
        ));
    }
    let version = schema::version_of(&connection).map_err(|error| {
        refuse(format!(
            "cannot read it as an SQLite database ({}); name a new file, or the journal file this program made",
            describe(&error)
        ))
    })?;
    if version > schema::VERSION {
        return Err(refuse(format!(
            "its schema version is {version}, newer than this binary's {}: it was written by a newer sipgateio-callevents; run that version, or name another file",
            schema::VERSION
        )));
    }
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .map_err(|error| refuse(describe(&error)))?;
    // Before WAL is switched on, which writes to the file: the lock another process holds
    // (a second server on the same file) is found while the file is still untouched.
    connection
        .execute_batch("BEGIN IMMEDIATE; COMMIT;")
        .map_err(|error| {
            refuse(format!(
                "cannot take its write lock ({}); is another server writing to it?",
                describe(&error)
            ))
        })?;
    let mode: String = connection
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(|error| {
            refuse(format!(
                "cannot switch it to WAL mode: {}",
                describe(&error)
            ))
        })?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(refuse(format!(
            "cannot keep its write-ahead log beside it (journal mode stays {mode:?}); the folder {} must be writable",
            folder.display()
        )));
    }
    let synchronous = match settings.sync {
        CallLogSync::Normal => "NORMAL",
        CallLogSync::Full => "FULL",
    };
    connection
        .pragma_update(None, "synchronous", synchronous)
        .map_err(|error| refuse(describe(&error)))?;
    if version < schema::VERSION {
        let mut connection = connection;
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|error| refuse(describe(&error)))?;
        schema::migrate(&transaction, version)
            .and_then(|()| transaction.commit())
            .map_err(|error| {
                refuse(format!(
                    "cannot bring its schema from version {version} to {}: {}",
                    schema::VERSION,
                    describe(&error)
                ))
            })?;
        if version > 0 {
            log::info!(
                "call journal {}: schema brought from version {version} to {}",
                path.display(),
                schema::VERSION
            );
        }
        return Ok(connection);
    }
    Ok(connection)
}

/// An SQLite error in words, with SQLite's own message where it has one.
fn describe(error: &rusqlite::Error) -> String {
    match error {
        rusqlite::Error::SqliteFailure(code, Some(message)) => {
            format!("{message} ({:?})", code.code)
        }
        other => other.to_string(),
    }
}

/// The kinds of [`NotCommitted`], as the log and the metrics name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Write,
    Late,
    Lost,
}

impl Failure {
    fn label(self) -> &'static str {
        match self {
            Failure::Write => "write",
            Failure::Late => "late",
            Failure::Lost => "lost",
        }
    }
}

/// Episodes of trouble: the first failure is logged, the rest counted until a commit
/// succeeds again, and that end is logged with the counts.
struct Failures {
    path: PathBuf,
    metrics: Option<JournalMetrics>,
    episode: Mutex<Option<Episode>>,
}

struct Episode {
    since: Instant,
    answered_first: u64,
    lost: u64,
}

impl Failures {
    fn new(path: PathBuf, metrics: Option<JournalMetrics>) -> Failures {
        Failures {
            path,
            metrics,
            episode: Mutex::new(None),
        }
    }

    /// `events` were answered without being in the journal, because of `cause`.
    fn failed(&self, kind: Failure, cause: &str, events: u64) {
        if let Some(metrics) = &self.metrics {
            metrics.failed(kind.label(), events as usize);
        }
        let mut episode = self.episode.lock().unwrap_or_else(PoisonError::into_inner);
        let episode = episode.get_or_insert_with(|| {
            log::error!(
                "call journal {}: events are answered and printed without being journaled first: {cause}; writing is retried, and its recovery logged",
                self.path.display()
            );
            Episode {
                since: Instant::now(),
                answered_first: 0,
                lost: 0,
            }
        });
        episode.answered_first += events;
        if kind == Failure::Lost {
            episode.lost += events;
        }
    }

    /// Backlog events dropped by the writer: they were already counted as answered first.
    fn dropped(&self, events: u64) {
        if let Some(metrics) = &self.metrics {
            metrics.failed(Failure::Lost.label(), events as usize);
        }
        if let Some(episode) = self
            .episode
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            episode.lost += events;
        }
    }

    /// A commit succeeded and nothing waits for a retry: the episode, if any, is over.
    fn recovered(&self) {
        let Some(episode) = self
            .episode
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        let kept = episode.answered_first - episode.lost;
        log::warn!(
            "call journal {}: events are journaled before their answer again, after {:.1} s; {} event(s) were answered first, {kept} of them are in the journal now{}",
            self.path.display(),
            episode.since.elapsed().as_secs_f64(),
            episode.answered_first,
            match episode.lost {
                0 => String::new(),
                lost =>
                    format!(", {lost} are not (their lines went to stdout when they were answered)"),
            }
        );
    }
}

#[cfg(test)]
mod tests;
