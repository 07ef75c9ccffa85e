//! One connection, served on a thread of its own: tiny_http reads each request's head,
//! and this thread reads its body, routes it, queues its event line and answers it before
//! it asks for the next. No queue, no hand-off: a client that stalls, pipelines without
//! reading or sends a huge body holds its own thread and nothing else, and the socket
//! timeouts (set on the listener) end it.
//!
//! tiny_http never gives one kind of connection thread back: a request line with
//! `HTTP/2.0` or `HTTP/3.0` makes its `ClientConnection::next` wait forever on its own
//! second response writer (see `docs/limits.md`). No socket timeout reaches a thread
//! waiting on a channel, so the [`Registry`] notes when each thread went into tiny_http;
//! [`watch_stuck`] counts those inside for longer than any live client can keep them (and,
//! near the bound, those waiting there on a futex), and past the bound the server exits
//! for a supervisor to restart it.

use std::fmt::Display;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use tiny_http::Request;

use super::body;
use super::reply::{method_of, respond};
use super::{ServeError, Shared};
use crate::router::{Incoming, Reply};

/// A connection thread's stack. Handling a request (tiny_http's parser, the router, the
/// RSA check, the event line) needs a small part of it; threads stuck in tiny_http keep
/// theirs for the life of the process, so it is kept small.
const STACK_SIZE: usize = 256 * 1024;

/// Starts a thread that serves `connection`'s requests until it ends.
///
/// # Errors
/// No thread could be started; the connection is closed.
pub(super) fn spawn<C, E>(connection: C, shared: &Arc<Shared>) -> io::Result<()>
where
    C: Iterator<Item = Result<Request, E>> + Send + 'static,
    E: Display,
{
    // Counted before the thread runs, so the accept loop sees it at once; the thread gives
    // it back when it ends, also by a panic inside tiny_http.
    shared.open.fetch_add(1, Ordering::SeqCst);
    let for_thread = Arc::clone(shared);
    let started = thread::Builder::new()
        .name("connection".into())
        .stack_size(STACK_SIZE)
        .spawn(move || {
            let _open = Counted::adopt(&for_thread.open);
            serve(connection, &for_thread);
        });
    if started.is_err() {
        shared.open.fetch_sub(1, Ordering::SeqCst);
    }
    started.map(drop)
}

/// One unit of a counter, given back when dropped.
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    fn new(counter: &'a AtomicUsize) -> Counted<'a> {
        counter.fetch_add(1, Ordering::SeqCst);
        Counted(counter)
    }

    /// Takes over a unit counted elsewhere.
    fn adopt(counter: &'a AtomicUsize) -> Counted<'a> {
        Counted(counter)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn serve<C, E>(mut connection: C, shared: &Shared)
where
    C: Iterator<Item = Result<Request, E>>,
    E: Display,
{
    let slot = shared.registry.claim();
    loop {
        slot.entering_tiny_http();
        let next = connection.next();
        slot.back();
        let request = match next {
            None => return,
            // tiny_http has answered these itself (400, 417), or the client went away or
            // sent nothing for READ_TIMEOUT_SECONDS.
            Some(Err(error)) => {
                let text = error.to_string();
                if text.starts_with("[ReadIoError]") {
                    log::debug!("connection ended: {text}");
                } else {
                    log::warn!("rejected a malformed request: {text}");
                }
                return;
            }
            Some(Ok(request)) => request,
        };
        let busy = Counted::new(&shared.busy);
        shared.received.fetch_add(1, Ordering::Relaxed);
        let keep_serving = if shared.closed.load(Ordering::SeqCst) {
            let reply = Reply::text(503, "the server is stopping; try again in a moment");
            let _ = send(shared, request, &reply, Instant::now());
            false
        } else {
            handle(shared, request)
        };
        drop(busy);
        if !keep_serving {
            return;
        }
    }
}

/// Answers one request; `false` when the connection must end (its framing is lost, or the
/// client does not take its answers).
fn handle(shared: &Shared, mut request: Request) -> bool {
    let (received, received_utc) = (Instant::now(), SystemTime::now());
    let headers = request.headers();
    // tiny_http hands the raw socket over as the body of an upgrade request, to be read
    // until the client closes; nothing here speaks another protocol, so refuse it unread.
    if headers
        .get("Connection")
        .is_some_and(|value| mentions_upgrade(value.as_str()))
    {
        let reply = Reply::text(
            400,
            "protocol upgrades (Connection: upgrade) are not supported; send plain HTTP/1.1 requests",
        );
        let _ = send(shared, request, &reply, received);
        return false;
    }
    let has_transfer_encoding = headers.get("Transfer-Encoding").is_some();
    let large_body = match body::LargeBody::admit(&request, has_transfer_encoding, shared) {
        Ok(slot) => slot,
        Err(body::AllTaken) => {
            let reply = Reply::text(503, "too many large requests in progress; try again later");
            let _ = send(shared, request, &reply, received);
            return false;
        }
    };
    let body = body::read(&mut request, shared.max_body_bytes, has_transfer_encoding);
    drop(large_body);
    let (reply, keep_serving) = match body {
        Err(problem) => (
            Reply::text(problem.status(), problem.to_string()),
            problem.leaves_next_request_intact(),
        ),
        Ok(body) => (route(shared, &request, &body, received, received_utc), true),
    };
    if let Some(accepted) = &reply.accepted {
        // Queued before the reply goes out; the binary writes the queue out before it
        // exits, so every 200 has its line.
        shared.sink.emit(accepted);
    }
    match send(shared, request, &reply, received) {
        Ok(()) => keep_serving,
        Err(error) => {
            log::debug!("could not send the reply, closing the connection: {error}");
            false
        }
    }
}

/// Writes `reply` and counts it in the metrics, if they are on: the time since `received`
/// for a POST (sipgate's requests), and an error answer by its reason.
fn send(shared: &Shared, request: Request, reply: &Reply, received: Instant) -> io::Result<()> {
    let is_post = *request.method() == tiny_http::Method::Post;
    let written = respond(&shared.headers, request, reply);
    if let Some(metrics) = &shared.metrics {
        if is_post {
            metrics.answered(reply, received.elapsed());
        } else if reply.status >= 400 {
            metrics.refused(reply);
        }
    }
    written
}

fn route(
    shared: &Shared,
    request: &Request,
    body: &[u8],
    received: Instant,
    received_utc: SystemTime,
) -> Reply {
    let url = request.url();
    let headers = request.headers();
    let incoming = Incoming {
        method: method_of(request),
        path: url.split_once('?').map_or(url, |(path, _)| path),
        query: url.split_once('?').map(|(_, query)| query),
        host: headers.get("Host").map(|v| v.as_str()),
        forwarded_host: headers.get("X-Forwarded-Host").map(|v| v.as_str()),
        content_type: headers.get("Content-Type").map(|v| v.as_str()),
        signature: headers.get("X-Sipgate-Signature").map(|v| v.as_str()),
        body,
        received,
        received_utc,
    };
    catch_unwind(AssertUnwindSafe(|| (shared.handler)(&incoming))).unwrap_or_else(|_| {
        log::error!(
            "the handler panicked on {} {}; answered 500",
            request.method(),
            incoming.path
        );
        Reply::internal_error()
    })
}

/// tiny_http's own test for an upgrade request: `upgrade` anywhere in `Connection`, in
/// any case. A stricter test here would let through what tiny_http still takes for one.
fn mentions_upgrade(connection: &str) -> bool {
    connection
        .as_bytes()
        .windows(b"upgrade".len())
        .any(|window| window.eq_ignore_ascii_case(b"upgrade"))
}

/// Where each connection thread is: a slot per thread, holding when the thread went into
/// tiny_http (milliseconds since `epoch`, plus one), or 0 while it runs our code; and the
/// thread's id in the kernel, to look at what it waits for.
pub(super) struct Registry {
    epoch: Instant,
    slots: Box<[AtomicU64]>,
    thread_ids: Box<[AtomicU32]>,
    free: Mutex<Vec<usize>>,
    /// Inside tiny_http for longer than this, a thread is stuck: reading a head gives up
    /// after the read timeout, and answering a bad one after the write timeout.
    stuck_after: Duration,
}

impl Registry {
    /// Room for `capacity` threads at once.
    pub(super) fn new(capacity: usize, stuck_after: Duration) -> Registry {
        Registry {
            epoch: Instant::now(),
            slots: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            thread_ids: (0..capacity).map(|_| AtomicU32::new(0)).collect(),
            free: Mutex::new((0..capacity).rev().collect()),
            stuck_after,
        }
    }

    /// A slot for the calling thread.
    fn claim(&self) -> Slot<'_> {
        let index = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        if let Some(index) = index {
            self.thread_ids[index].store(current_thread_id().unwrap_or(0), Ordering::Relaxed);
        }
        Slot {
            registry: self,
            index,
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Threads inside tiny_http for longer than `stuck_after`; with `look_closer`, also
    /// those inside for over [`FUTEX_GRACE`] that wait on a futex.
    ///
    /// A live connection thread inside tiny_http waits on its socket; the deadlocked ones
    /// wait on a channel, that is a futex. Linux tells which in
    /// `/proc/self/task/TID/syscall`, so they can be counted at once instead of after
    /// `stuck_after`. Reading a file per waiting thread is not free, so the caller asks
    /// for it only when the count matters.
    pub(super) fn count_stuck(&self, look_closer: bool) -> usize {
        let now = self.now();
        let millis = |duration: Duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let (after, grace) = (millis(self.stuck_after), millis(FUTEX_GRACE));
        self.slots
            .iter()
            .zip(self.thread_ids.iter())
            .filter(|(slot, thread_id)| {
                let entered = slot.load(Ordering::Relaxed);
                if entered == 0 {
                    return false;
                }
                let inside = now - entered;
                inside > after
                    || (look_closer
                        && inside > grace
                        && waits_on_futex(thread_id.load(Ordering::Relaxed)))
            })
            .count()
    }
}

/// A thread inside tiny_http may wait on a lock for a moment (the log's, say); one that
/// waits on a futex for longer is taken for deadlocked.
const FUTEX_GRACE: Duration = Duration::from_secs(1);

/// The kernel's id of the calling thread, from `/proc/thread-self` (`PID/task/TID`).
fn current_thread_id() -> Option<u32> {
    std::fs::read_link("/proc/thread-self")
        .ok()?
        .file_name()?
        .to_str()?
        .parse()
        .ok()
}

/// Whether thread `thread_id` of this process is blocked in the futex system call.
fn waits_on_futex(thread_id: u32) -> bool {
    if thread_id == 0 {
        return false;
    }
    std::fs::read_to_string(format!("/proc/self/task/{thread_id}/syscall"))
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<i64>().ok())
        .is_some_and(|number| number == libc::SYS_futex)
}

/// A connection thread's place in the [`Registry`]; `None` if the registry is full,
/// which the connection limit keeps from happening.
struct Slot<'a> {
    registry: &'a Registry,
    index: Option<usize>,
}

impl Slot<'_> {
    fn entering_tiny_http(&self) {
        if let Some(index) = self.index {
            self.registry.slots[index].store(self.registry.now(), Ordering::Relaxed);
        }
    }

    fn back(&self) {
        if let Some(index) = self.index {
            self.registry.slots[index].store(0, Ordering::Relaxed);
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Some(index) = self.index {
            self.registry.slots[index].store(0, Ordering::Relaxed);
            self.registry.thread_ids[index].store(0, Ordering::Relaxed);
            self.registry
                .free
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(index);
        }
    }
}

/// How often the stuck threads are counted.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// Counts stuck connection threads until the server stops; returns the failure when
/// there are more than `bound`. A growing count is logged, at most every few seconds.
pub(super) fn watch_stuck(shared: &Shared, bound: usize) -> Option<ServeError> {
    let mut logged = 0;
    let mut logged_at: Option<Instant> = None;
    while shared.stopped_at.get().is_none() {
        thread::sleep(WATCH_EVERY);
        // Only near the bound does an exact count matter enough to look at every thread.
        let look_closer = shared.open.load(Ordering::SeqCst) > bound;
        let stuck = shared.registry.count_stuck(look_closer);
        shared.stuck.store(stuck, Ordering::SeqCst);
        if stuck > bound {
            return Some(ServeError::Stuck {
                threads: stuck,
                bound,
            });
        }
        if stuck > logged && logged_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
            log::warn!(
                "{stuck} connection thread(s) stuck inside tiny_http (HTTP/2.0 request lines, or heads trickled \
                 slower than the timeouts allow); the server exits past {bound}"
            );
            logged = stuck;
            logged_at = Some(Instant::now());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_is_found_wherever_tiny_http_would_find_it() {
        assert!(mentions_upgrade("Upgrade"));
        assert!(mentions_upgrade("keep-alive, UPGRADE"));
        assert!(mentions_upgrade("x-upgraded"));
        assert!(!mentions_upgrade("keep-alive"));
        assert!(!mentions_upgrade("upgrad"));
    }

    #[test]
    fn a_thread_counts_as_stuck_only_while_inside_tiny_http_past_the_bound() {
        let registry = Registry::new(2, Duration::from_millis(30));
        let inside = registry.claim();
        let outside = registry.claim();
        inside.entering_tiny_http();
        outside.entering_tiny_http();
        outside.back();
        assert_eq!(registry.count_stuck(false), 0, "not yet past the bound");
        thread::sleep(Duration::from_millis(60));
        assert_eq!(registry.count_stuck(false), 1);
        drop(inside);
        assert_eq!(
            registry.count_stuck(false),
            0,
            "a thread that ends frees its slot"
        );
        let again = registry.claim();
        assert!(again.index.is_some(), "the freed slot is taken again");
        assert!(registry.claim().index.is_none(), "both slots are taken");
    }

    /// The deadlock waits on a channel: a thread blocked receiving from one is seen waiting
    /// on a futex; a sleeping one and a running one are not.
    #[test]
    fn a_thread_waiting_on_a_channel_is_seen_waiting_on_a_futex() {
        let spawn_waiting = |wait: fn(std::sync::mpsc::Receiver<()>)| {
            let (stop, receiver) = std::sync::mpsc::channel::<()>();
            let (id_sender, id) = std::sync::mpsc::channel();
            let handle = thread::spawn(move || {
                id_sender.send(current_thread_id()).unwrap();
                wait(receiver);
            });
            let id = id.recv().unwrap().expect("Linux has /proc/thread-self");
            (stop, handle, id)
        };
        let (stop_receiving, receiving, receiving_id) = spawn_waiting(|receiver| {
            let _ = receiver.recv();
        });
        let (stop_sleeping, sleeping, sleeping_id) = spawn_waiting(|_| {
            thread::sleep(Duration::from_millis(300));
        });
        thread::sleep(Duration::from_millis(100));
        assert!(waits_on_futex(receiving_id));
        assert!(!waits_on_futex(sleeping_id));
        assert!(
            !waits_on_futex(current_thread_id().unwrap()),
            "this thread runs"
        );
        assert!(!waits_on_futex(0));
        drop((stop_receiving, stop_sleeping));
        receiving.join().unwrap();
        sleeping.join().unwrap();
    }
}
