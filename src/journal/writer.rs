//! The journal's writer thread: the only connection that writes. It commits the events
//! that wait in one transaction (group commit), keeps those a failed commit could not
//! write for a retry, and removes events past `CALL_LOG_DAYS` in small batches between
//! groups, so that no answer waits on more than one batch.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::{CachedStatement, Connection, OptionalExtension, TransactionBehavior, params};

use super::entry::{Entry, timestamp};
use super::{Failure, Failures, NotCommitted, describe};
use crate::calls::CallSummary;
use crate::metrics::JournalMetrics;

/// Most events committed in one transaction: a bound on how long the first of them waits
/// for the last.
const MAX_GROUP: usize = 1024;

/// Events a failing disk leaves for a retry at most; past that, the oldest are dropped
/// (their lines went to stdout when they were answered).
const BACKLOG_LIMIT: usize = 10_000;

/// How often a failed write is retried when no new event comes to try it.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Old events removed per statement, and how often retention runs.
const RETENTION_BATCH: u32 = 500;
const RETENTION_EVERY: Duration = Duration::from_secs(24 * 3600);

/// How long the writer sleeps when nothing is due; any event wakes it.
const IDLE: Duration = Duration::from_secs(3600);

pub(super) enum Message {
    // Boxed: the queue's slots are allocated up front, and most stay empty.
    Event(Box<Pending>),
    /// Write what is queued, then close the file.
    Stop,
}

/// An event and where its handler waits for the outcome.
pub(super) struct Pending {
    pub(super) entry: Entry,
    pub(super) done: SyncSender<Result<Option<CallSummary>, NotCommitted>>,
}

pub(super) struct Writer {
    connection: Connection,
    queue: Receiver<Message>,
    failures: Arc<Failures>,
    metrics: Option<JournalMetrics>,
    /// Events a failed commit could not write, oldest first.
    backlog: VecDeque<Entry>,
    retry_at: Option<Instant>,
    /// `CALL_LOG_DAYS` (none for 0), when retention runs next, and what it removed so far
    /// in this round.
    retention: Option<Retention>,
}

struct Retention {
    days: u32,
    next: Instant,
    removed: usize,
}

impl Writer {
    pub(super) fn new(
        connection: Connection,
        queue: Receiver<Message>,
        failures: Arc<Failures>,
        metrics: Option<JournalMetrics>,
        days: u32,
    ) -> Writer {
        Writer {
            connection,
            queue,
            failures,
            metrics,
            backlog: VecDeque::new(),
            retry_at: None,
            retention: (days > 0).then(|| Retention {
                days,
                next: Instant::now(),
                removed: 0,
            }),
        }
    }

    pub(super) fn run(mut self) {
        loop {
            let now = Instant::now();
            let due = [self.retry_at, self.retention.as_ref().map(|r| r.next)]
                .into_iter()
                .flatten()
                .min()
                .map_or(IDLE, |at| at.saturating_duration_since(now));
            match self.queue.recv_timeout(due) {
                Ok(Message::Event(first)) => {
                    let mut group = vec![*first];
                    let mut stop = false;
                    while group.len() < MAX_GROUP {
                        match self.queue.try_recv() {
                            Ok(Message::Event(pending)) => group.push(*pending),
                            Ok(Message::Stop) => {
                                stop = true;
                                break;
                            }
                            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                        }
                    }
                    self.commit(group);
                    if stop {
                        return self.finish();
                    }
                }
                Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => return self.finish(),
                Err(RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            if self.retry_at.is_some_and(|at| at <= now) {
                self.retry_backlog();
            }
            if self.retention.as_ref().is_some_and(|r| r.next <= now) {
                self.remove_old_events();
            }
        }
    }

    /// Commits `group`, answers each waiting handler, and keeps the events of a failed
    /// commit for a retry. Kept events go first, in the same transaction, so that the
    /// journal stays in the order events came and a hangup finds its call's newCall.
    fn commit(&mut self, group: Vec<Pending>) {
        let started = Instant::now();
        let kept = self.backlog.len().min(MAX_GROUP);
        let entries = self
            .backlog
            .iter()
            .take(kept)
            .chain(group.iter().map(|pending| &pending.entry));
        match write(&mut self.connection, entries) {
            Ok(summaries) => {
                if let Some(metrics) = &self.metrics {
                    metrics.committed(kept + group.len(), started.elapsed());
                }
                self.backlog.drain(..kept);
                for (pending, summary) in group.into_iter().zip(summaries.into_iter().skip(kept)) {
                    // A handler that stopped waiting has counted its event as late.
                    let _ = pending.done.try_send(Ok(summary));
                }
                if self.backlog.is_empty() {
                    self.retry_at = None;
                    self.failures.recovered();
                } else {
                    self.retry_at = Some(Instant::now());
                }
            }
            Err(error) => {
                let mut waiting = 0;
                for pending in group {
                    if pending
                        .done
                        .try_send(Err(NotCommitted::WriteFailed))
                        .is_ok()
                    {
                        waiting += 1;
                    }
                    self.keep(pending.entry);
                }
                self.failures
                    .failed(Failure::Write, &describe(&error), waiting);
                self.retry_at
                    .get_or_insert_with(|| Instant::now() + RETRY_EVERY);
            }
        }
    }

    /// Keeps an event for a retry, dropping the oldest kept one when the backlog is full.
    fn keep(&mut self, entry: Entry) {
        if self.backlog.len() >= BACKLOG_LIMIT {
            self.backlog.pop_front();
            self.failures.dropped(1);
        }
        self.backlog.push_back(entry);
    }

    /// Writes the oldest kept events; when none are left, the trouble is over.
    fn retry_backlog(&mut self) {
        let chunk = self.backlog.len().min(MAX_GROUP);
        let started = Instant::now();
        match write(&mut self.connection, self.backlog.iter().take(chunk)) {
            Ok(_) => {
                if let Some(metrics) = &self.metrics {
                    metrics.committed(chunk, started.elapsed());
                }
                self.backlog.drain(..chunk);
                if self.backlog.is_empty() {
                    self.retry_at = None;
                    self.failures.recovered();
                } else {
                    self.retry_at = Some(Instant::now());
                }
            }
            Err(_) => self.retry_at = Some(Instant::now() + RETRY_EVERY),
        }
    }

    /// One batch of events older than `CALL_LOG_DAYS`; the next batch follows after the
    /// waiting events have been committed.
    fn remove_old_events(&mut self) {
        let Some(retention) = self.retention.as_mut() else {
            return;
        };
        let cutoff = SystemTime::now()
            .checked_sub(Duration::from_secs(u64::from(retention.days) * 24 * 3600))
            .map_or_else(|| "0000".to_owned(), timestamp);
        let removed = self.connection.execute(
            "DELETE FROM events WHERE id IN
                (SELECT id FROM events WHERE received_at < ?1 ORDER BY received_at LIMIT ?2)",
            params![cutoff, RETENTION_BATCH],
        );
        match removed {
            Ok(removed) if removed == RETENTION_BATCH as usize => {
                retention.removed += removed;
                retention.next = Instant::now();
            }
            Ok(removed) => {
                retention.removed += removed;
                if retention.removed > 0 {
                    log::info!(
                        "call journal: removed {} event(s) older than {} days (CALL_LOG_DAYS)",
                        retention.removed,
                        retention.days
                    );
                }
                retention.removed = 0;
                retention.next = Instant::now() + RETENTION_EVERY;
            }
            Err(error) => {
                log::warn!(
                    "call journal: could not remove events older than {} days, trying again in an hour: {}",
                    retention.days,
                    describe(&error)
                );
                retention.next = Instant::now() + IDLE;
            }
        }
    }

    /// At a stop: the queue and the backlog written, if the disk takes them.
    fn finish(mut self) {
        let mut group = Vec::new();
        while let Ok(message) = self.queue.try_recv() {
            if let Message::Event(pending) = message {
                group.push(*pending);
            }
        }
        if !group.is_empty() {
            self.commit(group);
        }
        while !self.backlog.is_empty() {
            let before = self.backlog.len();
            self.retry_backlog();
            if self.backlog.len() == before {
                log::error!(
                    "call journal: {before} event(s) could not be written before the stop; their lines went to stdout"
                );
                break;
            }
        }
    }
}

/// Inserts `entries` in one transaction; for each hangup, its call's summary as the
/// journal knows it (its newCall and answer may be in the same group).
fn write<'a>(
    connection: &mut Connection,
    entries: impl Iterator<Item = &'a Entry>,
) -> rusqlite::Result<Vec<Option<CallSummary>>> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut summaries = Vec::new();
    {
        let mut insert = transaction.prepare_cached(
            "INSERT INTO events (received_at, event, call_id, direction, from_number, to_number,
                                 answering_number, cause, dtmf, rule, fields)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        // Two equality lookups, each one seek in the (call_id, event) index; `IN` with
        // `ORDER BY id` read every event of the call.
        let mut times = transaction.prepare_cached(
            "SELECT received_at FROM events
             WHERE call_id = ?1 AND event = ?2 ORDER BY id LIMIT 1",
        )?;
        for entry in entries {
            insert.execute(params![
                entry.received_at,
                entry.event,
                entry.call_id,
                entry.direction,
                entry.from_number,
                entry.to_number,
                entry.answering_number,
                entry.cause,
                entry.dtmf,
                entry.rule,
                entry.fields,
            ])?;
            summaries.push(if entry.event == "hangup" {
                summary(&mut times, entry)?
            } else {
                None
            });
        }
    }
    transaction.commit()?;
    Ok(summaries)
}

/// The ring and talk times of `hangup`'s call from the times of its first newCall and
/// answer; `None` when the journal has no newCall for it.
fn summary(
    times: &mut CachedStatement<'_>,
    hangup: &Entry,
) -> rusqlite::Result<Option<CallSummary>> {
    let mut first = |event: &str| -> rusqlite::Result<Option<i64>> {
        let at: Option<String> = times
            .query_row(params![hangup.call_id, event], |row| row.get(0))
            .optional()?;
        Ok(at.as_deref().and_then(millis))
    };
    let started = first("newCall")?;
    let answered = first("answer")?;
    let (Some(started), Some(ended)) = (started, millis(&hangup.received_at)) else {
        return Ok(None);
    };
    // A clock set back between the events gives zero, not a negative time.
    let between = |from: i64, to: i64| Duration::from_millis(u64::try_from(to - from).unwrap_or(0));
    Ok(Some(CallSummary {
        rang: between(started, answered.unwrap_or(ended)),
        talked: answered.map(|answered| between(answered, ended)),
    }))
}

/// Milliseconds since the epoch of a stored `received_at`.
fn millis(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(jiff::Timestamp::as_millisecond)
}
