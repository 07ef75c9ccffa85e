//! Where accepted events go: one line each on stdout, as text for people or as JSON for
//! programs.
//!
//! A writer thread owns stdout, so a handler never waits on it: a terminal paused with
//! Ctrl-S or a pipe nobody reads must not stop the server from answering sipgate. Lines
//! wait in a bounded buffer, which the writer takes whole. When stdout fails (closed), has
//! blocked for over a second (nobody reads it), or the buffer is full, the line goes to
//! the error log on stderr instead, so an event is never lost without a trace.

use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::calls::CallSummary;
use crate::event::CallEvent;
use crate::router::Accepted;

/// Lines that may wait for a slow stdout before further ones go to the error log.
const QUEUE_LINES: usize = 8192;

/// After each write the writer waits this long before it takes the next lines, so that
/// under load one write carries many lines. Woken for every line or two, it cost a
/// `write` and a context switch each time: about 0.3 of each per request at 25,000
/// requests/s. A person watching does not see a millisecond.
const GATHER_FOR: Duration = Duration::from_millis(1);

/// A buffer that grew larger than this while stdout was slow is freed after the write.
const KEEP_BUFFER_BYTES: usize = 64 * 1024;

/// A write to stdout that has not returned for this long means nobody is reading it;
/// new lines then go to the error log rather than pile up behind it.
const STALLED_AFTER: Duration = Duration::from_secs(1);

/// How event lines are written (`EVENT_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventFormat {
    /// A sentence per event, for a person watching a terminal.
    #[default]
    Text,
    /// One JSON object per line, for `jq`, log shippers and scripts.
    Json,
}

impl FromStr for EventFormat {
    type Err = ();

    fn from_str(value: &str) -> Result<EventFormat, ()> {
        match value.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(EventFormat::Text),
            "json" => Ok(EventFormat::Json),
            _ => Err(()),
        }
    }
}

impl EventFormat {
    /// The line for `accepted`, without the newline.
    pub fn line(self, accepted: &Accepted) -> String {
        match self {
            EventFormat::Text => text_line(accepted),
            EventFormat::Json => json_line(accepted),
        }
    }
}

fn text_line(accepted: &Accepted) -> String {
    // Room for a typical line, so the formatting does not regrow it.
    let mut line = String::with_capacity(256);
    let _ = write!(line, "{}", accepted.event);
    if let Some(summary) = &accepted.summary {
        let _ = write!(line, ", rang {}", Seconds(summary.rang));
        match summary.talked {
            Some(talked) => {
                let _ = write!(line, ", talked {}", Seconds(talked));
            }
            None => line.push_str(", never answered"),
        }
    }
    line
}

/// A duration as `12.3 s`.
struct Seconds(Duration);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1} s", self.0.as_secs_f64())
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonLine<'a> {
    #[serde(flatten)]
    event: &'a CallEvent,
    received_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    answered: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ring_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    talk_seconds: Option<f64>,
}

fn json_line(accepted: &Accepted) -> String {
    let summary: Option<&CallSummary> = accepted.summary.as_ref();
    let line = JsonLine {
        event: &accepted.event,
        received_at: rfc3339(accepted.received_utc),
        answered: summary.map(|s| s.talked.is_some()),
        ring_seconds: summary.map(|s| millis_as_seconds(s.rang)),
        talk_seconds: summary.and_then(|s| s.talked).map(millis_as_seconds),
    };
    serde_json::to_string(&line)
        .expect("event fields are strings and numbers, which always serialize")
}

fn millis_as_seconds(duration: Duration) -> f64 {
    duration.as_millis() as f64 / 1000.0
}

/// UTC with millisecond precision, e.g. `2026-11-27T05:40:00.123Z`.
fn rfc3339(time: SystemTime) -> String {
    match jiff::Timestamp::try_from(time) {
        Ok(timestamp) => format!("{timestamp:.3}"),
        // Only for clocks outside years -9999..=9999.
        Err(_) => "unknown".to_owned(),
    }
}

/// The event-line writer shared by all handler threads.
#[derive(Clone)]
pub struct EventSink {
    format: EventFormat,
    shared: Arc<Shared>,
}

struct Shared {
    /// Lines handed over and not yet written (or given up on).
    pending: AtomicUsize,
    /// When the write in progress started, in milliseconds since `epoch`; 0 when idle.
    writing_since_ms: AtomicU64,
    epoch: Instant,
    /// Lines waiting for the writer, which takes them all at once; at exit,
    /// [`EventSink::finish`] takes what a stuck stdout never got, to log it.
    queue: Mutex<Queue>,
    /// Signalled when a line arrives while the writer waits for one.
    line_arrived: Condvar,
}

#[derive(Default)]
struct Queue {
    /// Whole lines, each ending in `\n`.
    text: String,
    lines: usize,
    /// The writer is waiting on `line_arrived` (and needs waking).
    writer_idle: bool,
}

impl EventSink {
    /// Lines go to standard output (logs go to standard error).
    pub fn stdout(format: EventFormat) -> EventSink {
        EventSink::new(io::stdout(), format)
    }

    /// Lines go to `out` (tests pass a buffer). The writer thread lives as long as the
    /// process.
    pub fn new(out: impl Write + Send + 'static, format: EventFormat) -> EventSink {
        let shared = Arc::new(Shared {
            pending: AtomicUsize::new(0),
            writing_since_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            queue: Mutex::new(Queue::default()),
            line_arrived: Condvar::new(),
        });
        let writer_shared = Arc::clone(&shared);
        thread::Builder::new()
            .name("event-lines".into())
            .spawn(move || write_lines(out, &writer_shared))
            .expect("cannot start the event-line writer thread");
        EventSink { format, shared }
    }

    /// Hands the event's line to the writer thread; never waits for stdout.
    pub fn emit(&self, accepted: &Accepted) {
        let line = self.format.line(accepted);
        if let Some(stalled) = self.shared.stalled_for() {
            log::error!(
                "could not write the event line to stdout (a write has been blocked for {:.1} s: nobody is reading it); the event was: {line}",
                stalled.as_secs_f64()
            );
            return;
        }
        let mut queue = self.shared.queue();
        if queue.lines >= QUEUE_LINES {
            drop(queue);
            log::error!(
                "could not write the event line to stdout (it is not being read: {QUEUE_LINES} lines are waiting); the event was: {line}"
            );
            return;
        }
        queue.text.push_str(&line);
        queue.text.push('\n');
        queue.lines += 1;
        self.shared.pending.fetch_add(1, Ordering::SeqCst);
        // Only a waiting writer needs the signal, which is a system call even when
        // nobody waits.
        if std::mem::take(&mut queue.writer_idle) {
            self.shared.line_arrived.notify_one();
        }
    }

    /// Waits until every line handed over so far is written, for up to `limit`. Returns
    /// whether it got there.
    pub fn wait_written(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.shared.pending.load(Ordering::SeqCst) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// At exit: waits up to `limit` for the lines still queued, then logs any that stdout
    /// never took, so they are not lost with the process.
    pub fn finish(&self, limit: Duration) {
        if self.wait_written(limit) {
            return;
        }
        // The writer is stuck in a write and does not hold the queue.
        let mut queue = self.shared.queue();
        let waiting = std::mem::take(&mut queue.text);
        queue.lines = 0;
        drop(queue);
        for line in waiting.lines() {
            log::error!(
                "could not write the event line to stdout before exit; the event was: {line}"
            );
        }
        if waiting.is_empty() {
            log::error!(
                "stdout did not take the last event line before exit; it is in the log above or on stdout"
            );
        }
    }
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Every change to the queue is complete before the lock is released, so a panic
        // elsewhere while it was held leaves nothing half done.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn millis_since_epoch(&self) -> u64 {
        // +1 keeps 0 free to mean "idle" in the first millisecond.
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// How long the write in progress has been blocked, if longer than [`STALLED_AFTER`].
    fn stalled_for(&self) -> Option<Duration> {
        let since = self.writing_since_ms.load(Ordering::SeqCst);
        if since == 0 {
            return None;
        }
        let blocked = Duration::from_millis(self.millis_since_epoch().saturating_sub(since));
        (blocked > STALLED_AFTER).then_some(blocked)
    }
}

/// The writer thread: takes every line waiting, writes them at once, and waits
/// [`GATHER_FOR`] before it looks again.
fn write_lines(mut out: impl Write, shared: &Shared) {
    let mut batch = String::new();
    loop {
        let count = {
            let mut queue = shared.queue();
            while queue.lines == 0 {
                queue.writer_idle = true;
                queue = shared
                    .line_arrived
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            std::mem::swap(&mut batch, &mut queue.text);
            std::mem::take(&mut queue.lines)
        };
        shared
            .writing_since_ms
            .store(shared.millis_since_epoch(), Ordering::SeqCst);
        let written = out.write_all(batch.as_bytes()).and_then(|()| out.flush());
        shared.writing_since_ms.store(0, Ordering::SeqCst);
        if let Err(error) = written {
            for line in batch.lines() {
                log::error!(
                    "could not write the event line to stdout ({error}); the event was: {line}"
                );
            }
        }
        if batch.capacity() > KEEP_BUFFER_BYTES {
            batch = String::new();
        } else {
            batch.clear();
        }
        shared.pending.fetch_sub(count, Ordering::SeqCst);
        thread::sleep(GATHER_FOR);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{self, EventKind};

    fn accepted(kind: EventKind, body: &str, summary: Option<CallSummary>) -> Accepted {
        Accepted {
            event: event::parse(kind, body.as_bytes()).unwrap(),
            received_utc: SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_000_000_123),
            summary,
        }
    }

    #[test]
    fn text_hangup_lines_carry_the_durations() {
        let body = "event=hangup&cause=normalClearing&callId=x";
        let answered = CallSummary {
            rang: Duration::from_millis(4_040),
            talked: Some(Duration::from_millis(65_960)),
        };
        let never = CallSummary {
            rang: Duration::from_millis(12_500),
            talked: None,
        };
        assert_eq!(
            EventFormat::Text.line(&accepted(EventKind::Hangup, body, Some(answered))),
            "The call has been hung up, cause normalClearing, callId x, rang 4.0 s, talked 66.0 s"
        );
        assert_eq!(
            EventFormat::Text.line(&accepted(EventKind::Hangup, body, Some(never))),
            "The call has been hung up, cause normalClearing, callId x, rang 12.5 s, never answered"
        );
        assert_eq!(
            EventFormat::Text.line(&accepted(EventKind::Hangup, body, None)),
            "The call has been hung up, cause normalClearing, callId x"
        );
    }

    #[test]
    fn json_lines_have_every_field_with_sipgate_names() {
        let line = EventFormat::Json.line(&accepted(
            EventKind::NewCall,
            "event=newCall&direction=in&from=0049&to=492&callId=c&user%5B%5D=A+B&user%5B%5D=&userId%5B%5D=w0",
            None,
        ));
        assert_eq!(
            line,
            r#"{"event":"newCall","callId":"c","from":"0049","to":"492","direction":"in","user":["A B",""],"userId":["w0"],"receivedAt":"2026-11-18T11:06:40.123Z"}"#
        );
        let summary = CallSummary {
            rang: Duration::from_millis(4_000),
            talked: Some(Duration::from_millis(1_250)),
        };
        let line = EventFormat::Json.line(&accepted(
            EventKind::Hangup,
            "callId=c&cause=busy",
            Some(summary),
        ));
        assert_eq!(
            line,
            r#"{"event":"hangup","callId":"c","cause":"busy","receivedAt":"2026-11-18T11:06:40.123Z","answered":true,"ringSeconds":4.0,"talkSeconds":1.25}"#
        );
        let line = EventFormat::Json.line(&accepted(EventKind::Dtmf, "callId=c&dtmf=007", None));
        assert_eq!(
            line,
            r#"{"event":"dtmf","callId":"c","dtmf":"007","receivedAt":"2026-11-18T11:06:40.123Z"}"#
        );
    }

    #[test]
    fn hostile_names_give_valid_json_on_one_line() {
        let body = "from=1&to=2&callId=%22%5C%0A%00%1F&user%5B%5D=%22quoted%22+%5Cback%5Cslash%0D%0Anext&user%5B%5D=%FF%FEbad%C3";
        let line = EventFormat::Json.line(&accepted(EventKind::NewCall, body, None));
        assert!(!line.contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["callId"], "\"\\\n\u{0}\u{1f}");
        assert_eq!(value["user"][0], "\"quoted\" \\back\\slash\r\nnext");
        assert_eq!(value["user"][1], "\u{FFFD}\u{FFFD}bad\u{FFFD}");
    }

    /// An in-memory stdout the test can read while the writer thread holds a clone.
    #[derive(Clone, Default)]
    struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

    impl Write for SharedBuffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_from_every_thread_is_written_whole_and_in_order() {
        let out = SharedBuffer::default();
        let sink = EventSink::new(out.clone(), EventFormat::Text);
        thread::scope(|scope| {
            for thread in 0..4 {
                let sink = sink.clone();
                scope.spawn(move || {
                    for number in 0..500 {
                        let body = format!("callId=t{thread}-{number}&dtmf=1");
                        sink.emit(&accepted(EventKind::Dtmf, &body, None));
                    }
                });
            }
        });
        assert!(sink.wait_written(Duration::from_secs(10)));
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(text.ends_with('\n'));
        for thread in 0..4 {
            let prefix = format!("DTMF digits 1, callId t{thread}-");
            let numbers: Vec<usize> = text
                .lines()
                .filter_map(|line| line.strip_prefix(&prefix))
                .map(|number| number.parse().unwrap())
                .collect();
            assert_eq!(numbers, (0..500).collect::<Vec<_>>());
        }
        assert_eq!(text.lines().count(), 2000);
    }

    #[test]
    fn format_names_parse_in_any_case() {
        assert_eq!("JSON".parse(), Ok(EventFormat::Json));
        assert_eq!(" text ".parse(), Ok(EventFormat::Text));
        assert_eq!("yaml".parse::<EventFormat>(), Err(()));
    }
}
