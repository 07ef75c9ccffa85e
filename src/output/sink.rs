//! The writer thread that owns stdout, and the queue that feeds it.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::event_line;
use crate::config::EventFormat;
use crate::exchange::Accepted;

/// Bytes of lines that may wait for a slow stdout before further ones go to the error log.
/// Bounded in bytes, not lines, because a line is as
/// long as the fields a request sends; the queue and the batch being written are the
/// largest memory a burst of load can take here.
const QUEUE_BYTES: usize = 256 * 1024;

/// How long a handler waits for room in a full queue while the writer is behind but not
/// blocked on stdout: with many connection threads keeping every core busy, the writer may
/// not run for a while, and slowing one client down keeps the line on stdout. sipgate waits
/// 10 s for an answer.
const WAIT_FOR_WRITER: Duration = Duration::from_millis(500);

/// After each write the writer waits this long before it takes the next lines, so that
/// under load one write carries many lines; woken for every line or two, it made a
/// `write` and a context switch each time (BENCHMARKS.md, "What closed the gap"). A person
/// watching does not see a millisecond.
const GATHER_FOR: Duration = Duration::from_millis(1);

/// The room of each of the two buffers the queue and the writer swap. Both are allocated
/// by the writer (the first by `EventSink::new`), never by a handler: glibc grows a buffer
/// in the malloc arena it came from, so a queue that a handler's line pushes past its room
/// grows and is later freed in the writer's arena. Allocated by whichever connection
/// thread pushed first, the large buffers of a writer that fell behind were freed in many
/// arenas, each keeping its pages (BENCHMARKS.md, "Memory"). A buffer that grew
/// beyond this while stdout was slow is freed after the write.
const BUFFER_BYTES: usize = 64 * 1024;

/// A write to stdout that has not returned for this long means nobody is reading it;
/// new lines then go to the error log rather than pile up behind it.
const STALLED_AFTER: Duration = Duration::from_secs(1);

/// The event-line writer shared by all handler threads.
#[derive(Clone)]
pub struct EventSink {
    format: EventFormat,
    shared: Arc<Shared>,
}

struct Shared {
    /// Lines handed over and not yet written (or given up on).
    pending: AtomicUsize,
    /// Lines written to the error log instead of stdout, ever.
    diverted: AtomicU64,
    /// When the write in progress started, in milliseconds since `epoch`; 0 when idle.
    writing_since_ms: AtomicU64,
    epoch: Instant,
    /// Lines waiting for the writer, which takes them all at once; at exit,
    /// [`EventSink::finish`] takes what a stuck stdout never got, to log it.
    queue: Mutex<Queue>,
    /// Signalled when a line arrives while the writer waits for one.
    line_arrived: Condvar,
    /// Signalled when the writer takes the queue while handlers wait for room in it.
    room_made: Condvar,
}

#[derive(Default)]
struct Queue {
    /// Whole lines, each ending in `\n`.
    text: String,
    lines: usize,
    /// The writer is waiting on `line_arrived` (and needs waking).
    writer_idle: bool,
    /// Handlers waiting on `room_made` for a full queue to empty.
    handlers_waiting: usize,
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
            diverted: AtomicU64::new(0),
            writing_since_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            queue: Mutex::new(Queue {
                text: String::with_capacity(BUFFER_BYTES),
                ..Queue::default()
            }),
            line_arrived: Condvar::new(),
            room_made: Condvar::new(),
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
        let line = event_line(self.format, accepted);
        if let Some(stalled) = self.shared.stalled_for() {
            log::error!(
                "could not write the event line to stdout (a write has been blocked for {:.1} s: nobody is reading it); the event was: {line}",
                stalled.as_secs_f64()
            );
            self.shared.diverted.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut queue = self.shared.queue();
        let deadline = Instant::now() + WAIT_FOR_WRITER;
        // A line longer than the whole queue still goes in, alone.
        while queue.lines > 0 && queue.text.len() + line.len() >= QUEUE_BYTES {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.shared.stalled_for().is_some() {
                let waiting = queue.lines;
                drop(queue);
                log::error!(
                    "could not write the event line to stdout (it is not being read: {waiting} lines are waiting); the event was: {line}"
                );
                self.shared.diverted.fetch_add(1, Ordering::Relaxed);
                return;
            }
            queue.handlers_waiting += 1;
            queue = self
                .shared
                .room_made
                .wait_timeout(queue, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            queue.handlers_waiting -= 1;
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

    /// Lines handed over and not yet written.
    pub fn pending(&self) -> usize {
        self.shared.pending.load(Ordering::Relaxed)
    }

    /// Lines that went to the error log instead of stdout, since start.
    pub fn diverted(&self) -> u64 {
        self.shared.diverted.load(Ordering::Relaxed)
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
            self.shared.diverted.fetch_add(1, Ordering::Relaxed);
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
    let mut batch = String::with_capacity(BUFFER_BYTES);
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
            if queue.handlers_waiting > 0 {
                shared.room_made.notify_all();
            }
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
                shared.diverted.fetch_add(1, Ordering::Relaxed);
            }
        }
        if batch.capacity() > BUFFER_BYTES {
            batch = String::with_capacity(BUFFER_BYTES);
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
    use crate::event::EventKind;
    use crate::output::tests::accepted;

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
    fn a_line_longer_than_the_whole_queue_is_written_alone() {
        let out = SharedBuffer::default();
        let sink = EventSink::new(out.clone(), EventFormat::Text);
        let call_id = "c".repeat(QUEUE_BYTES);
        sink.emit(&accepted(
            EventKind::Dtmf,
            &format!("callId={call_id}&dtmf=1"),
            None,
        ));
        assert!(sink.wait_written(Duration::from_secs(10)));
        assert_eq!(sink.diverted(), 0);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(text.contains(&call_id));
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

    /// A stdout that takes a while for every write, as a writer thread that rarely gets
    /// the CPU looks to the handlers.
    #[derive(Clone, Default)]
    struct SlowBuffer(SharedBuffer);

    impl Write for SlowBuffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            thread::sleep(Duration::from_millis(20));
            self.0.write(bytes)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_writer_that_falls_behind_slows_the_handlers_instead_of_losing_lines_to_the_log() {
        let out = SlowBuffer::default();
        let sink = EventSink::new(out.clone(), EventFormat::Text);
        // Each line is over 32 bytes: every thread alone fills the queue.
        let lines_per_thread = QUEUE_BYTES / 32;
        thread::scope(|scope| {
            for thread in 0..4 {
                let sink = sink.clone();
                scope.spawn(move || {
                    for number in 0..lines_per_thread {
                        let body = format!("callId=t{thread}-{number}&dtmf=1");
                        sink.emit(&accepted(EventKind::Dtmf, &body, None));
                    }
                });
            }
        });
        assert!(sink.wait_written(Duration::from_secs(20)));
        assert_eq!(sink.diverted(), 0);
        let text = String::from_utf8(out.0.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 4 * lines_per_thread);
    }
}
