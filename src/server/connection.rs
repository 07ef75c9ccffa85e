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
//!
//! The socket timeouts bound each read, not a whole head: a client that sends a byte
//! just inside the read timeout could keep its head, or a body tiny_http reads or
//! drains, going for as long as it liked. A thread found inside tiny_http for that long
//! and reading its socket is such a client's, and [`watch_stuck`] shuts that socket
//! down; the thread sees the connection end and returns. Telling what a thread waits
//! for, and which socket it reads, takes Linux (see [`platform`]); elsewhere such
//! threads count as stuck.

use std::fmt::Display;
use std::io;
use std::net::Shutdown;
use std::os::fd::RawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use tiny_http::Request;

use super::body;
use super::platform::{self, Blocked, Descriptors};
use super::reply::{log_reply, method_of, respond};
use super::{ServeError, Shared};
use crate::exchange::{Incoming, Reply};

/// A connection thread's stack. Handling a request (tiny_http's parser, the app, the
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
            let _ = send(shared, &slot, request, &reply, Instant::now());
            false
        } else {
            handle(shared, &slot, request)
        };
        drop(busy);
        if !keep_serving {
            return;
        }
    }
}

/// Answers one request; `false` when the connection must end (its framing is lost, or the
/// client does not take its answers).
fn handle(shared: &Shared, slot: &Slot<'_>, mut request: Request) -> bool {
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
        let _ = send(shared, slot, request, &reply, received);
        return false;
    }
    let has_transfer_encoding = headers.get("Transfer-Encoding").is_some();
    let large_body = match body::LargeBody::admit(&request, has_transfer_encoding, shared) {
        Ok(slot) => slot,
        Err(body::AllTaken) => {
            let reply = Reply::text(503, "too many large requests in progress; try again later");
            let _ = send(shared, slot, request, &reply, received);
            return false;
        }
    };
    let body = body::read(
        &mut request,
        shared.max_body_bytes,
        has_transfer_encoding,
        shared.body_time_limit,
    );
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
    match send(shared, slot, request, &reply, received) {
        Ok(()) => keep_serving,
        Err(error) => {
            log::debug!("could not send the reply, closing the connection: {error}");
            false
        }
    }
}

/// Writes `reply` and counts it in the metrics, if they are on: the time since `received`
/// for a POST (sipgate's requests), and an error answer by its reason.
fn send(
    shared: &Shared,
    slot: &Slot<'_>,
    request: Request,
    reply: &Reply,
    received: Instant,
) -> io::Result<()> {
    let is_post = *request.method() == tiny_http::Method::Post;
    // Logged outside the time inside tiny_http: a thread waiting for the log's lock is
    // not stuck there.
    log_reply(&request, reply);
    // Inside tiny_http: after writing, dropping the request reads what is left of a
    // refused body from the socket, for as long as the client sends it.
    slot.entering_tiny_http();
    let written = respond(&shared.headers, request, reply);
    slot.back();
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
    /// For each slot, the entry (as in `slots`) at which its thread was found waiting on a
    /// futex past `stuck_after`: deadlocked for good, so not looked at again.
    deadlocked: Box<[AtomicU64]>,
    /// Copies a connection's socket by its number, to cut it; `None` where that cannot
    /// be done, and then nothing is cut.
    descriptors: Option<Descriptors>,
    free: Mutex<Vec<usize>>,
    /// Inside tiny_http for longer than this, a thread is stuck, or kept there by a client
    /// that trickles: reading a head gives up after the read timeout, and answering a bad
    /// one after the write timeout.
    stuck_after: Duration,
}

impl Registry {
    /// Room for `capacity` threads at once.
    pub(super) fn new(capacity: usize, stuck_after: Duration) -> Registry {
        Registry {
            epoch: Instant::now(),
            slots: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            thread_ids: (0..capacity).map(|_| AtomicU32::new(0)).collect(),
            deadlocked: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            descriptors: platform::trickle_cutter(),
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
            self.thread_ids[index].store(platform::current_thread_id(), Ordering::Relaxed);
        }
        Slot {
            registry: self,
            index,
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Counts the threads inside tiny_http for longer than `stuck_after` as stuck, and
    /// with `look_closer` also those inside for over [`FUTEX_GRACE`] that wait on a futex;
    /// but a thread past `stuck_after` that is reading its socket belongs to a client
    /// trickling its request, and its socket is shut down instead.
    ///
    /// A live connection thread inside tiny_http waits on its socket; the deadlocked ones
    /// wait on a channel, that is a futex. Where the system tells which (Linux), they can
    /// be counted at once instead of after `stuck_after`. Asking is not free (a file read
    /// per waiting thread), so the caller asks only when the count matters.
    pub(super) fn sweep(&self, look_closer: bool) -> Sweep {
        let now = self.now();
        let millis = |duration: Duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let (after, grace) = (millis(self.stuck_after), millis(FUTEX_GRACE));
        let mut sweep = Sweep::default();
        for index in 0..self.slots.len() {
            let entered = self.slots[index].load(Ordering::Acquire);
            if entered == 0 {
                continue;
            }
            let inside = now.saturating_sub(entered);
            let thread_id = self.thread_ids[index].load(Ordering::Relaxed);
            if inside > after {
                if self.deadlocked[index].load(Ordering::Relaxed) == entered {
                    sweep.stuck += 1;
                    continue;
                }
                match platform::blocked_in(thread_id) {
                    Blocked::Reading(descriptor) if self.cut(index, entered, descriptor) => {
                        sweep.cut += 1;
                    }
                    Blocked::Futex => {
                        self.deadlocked[index].store(entered, Ordering::Relaxed);
                        sweep.stuck += 1;
                    }
                    _ => sweep.stuck += 1,
                }
            } else if look_closer
                && inside > grace
                && platform::blocked_in(thread_id) == Blocked::Futex
            {
                sweep.stuck += 1;
            }
        }
        sweep
    }

    /// Shuts down socket `descriptor`, read by the thread in slot `index`, if that thread
    /// is still in the call into tiny_http it began at `entered`.
    ///
    /// The descriptor is copied first and the slot checked after: while the thread is in
    /// the same call, its connection, which owns the descriptor, is alive, so the copy is
    /// of that connection's socket. Checked the other way round, the connection could end
    /// and its number be reused by a new connection in between, which would be cut instead.
    fn cut(&self, index: usize, entered: u64, descriptor: RawFd) -> bool {
        let Some(descriptors) = &self.descriptors else {
            return false;
        };
        let Ok(copy) = descriptors.copy(descriptor) else {
            return false;
        };
        if self.slots[index].load(Ordering::Acquire) != entered {
            return false;
        }
        socket2::Socket::from(copy).shutdown(Shutdown::Both).is_ok()
    }
}

/// One look at the connection threads inside tiny_http.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Sweep {
    /// Deadlocked, or held longer than any live client can: see [`Registry::sweep`].
    pub stuck: usize,
    /// Connections whose request was still trickling in, shut down.
    pub cut: usize,
}

/// A thread inside tiny_http may wait on a lock for a moment (the log's, say); one that
/// waits on a futex for longer is taken for deadlocked.
const FUTEX_GRACE: Duration = Duration::from_secs(1);

/// A connection thread's place in the [`Registry`]; `None` if the registry is full,
/// which the connection limit keeps from happening.
struct Slot<'a> {
    registry: &'a Registry,
    index: Option<usize>,
}

impl Slot<'_> {
    fn entering_tiny_http(&self) {
        if let Some(index) = self.index {
            self.registry.slots[index].store(self.registry.now(), Ordering::Release);
        }
    }

    /// Back from tiny_http; before the connection, and with it the socket, can end, so
    /// that [`Registry::cut`] can tell.
    fn back(&self) {
        if let Some(index) = self.index {
            self.registry.slots[index].store(0, Ordering::Release);
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Some(index) = self.index {
            self.registry.slots[index].store(0, Ordering::Release);
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

/// Counts stuck connection threads and cuts trickling ones until the server stops;
/// returns the failure when there are more than `bound` stuck. A growing stuck count and
/// the cut connections are logged, at most every few seconds.
pub(super) fn watch_stuck(shared: &Shared, bound: usize) -> Option<ServeError> {
    const LOG_EVERY: Duration = Duration::from_secs(10);
    let mut logged = 0;
    let mut logged_at: Option<Instant> = None;
    let mut cut_unlogged = 0;
    let mut cut_logged_at: Option<Instant> = None;
    while shared.stopped_at.get().is_none() {
        thread::sleep(WATCH_EVERY);
        // Only near the bound does an exact count matter enough to look at every thread,
        // and only where the system tells what a thread waits for.
        let look_closer =
            platform::SEES_BLOCKED_CALLS && shared.open.load(Ordering::SeqCst) > bound;
        let Sweep { stuck, cut } = shared.registry.sweep(look_closer);
        shared.stuck.store(stuck, Ordering::SeqCst);
        if stuck > bound {
            return Some(ServeError::Stuck {
                threads: stuck,
                bound,
            });
        }
        if stuck > logged && logged_at.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            log::warn!(
                "{stuck} connection thread(s) stuck inside tiny_http (HTTP/2.0 or HTTP/3.0 request lines, or \
                 requests trickled in where they cannot be cut); the server exits past {bound}"
            );
            logged = stuck;
            logged_at = Some(Instant::now());
        }
        shared.cut.fetch_add(cut as u64, Ordering::Relaxed);
        cut_unlogged += cut;
        if cut_unlogged > 0 && cut_logged_at.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            log::warn!(
                "closed {cut_unlogged} connection(s) whose request was still arriving {} s after the server began \
                 to read it (sent a little at a time, each part inside READ_TIMEOUT_SECONDS)",
                shared.registry.stuck_after.as_secs_f64()
            );
            cut_unlogged = 0;
            cut_logged_at = Some(Instant::now());
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
        assert_eq!(registry.sweep(false).stuck, 0, "not yet past the bound");
        thread::sleep(Duration::from_millis(60));
        assert_eq!(
            registry.sweep(false),
            Sweep { stuck: 1, cut: 0 },
            "this thread, seen reading its own /proc file: no socket to cut"
        );
        drop(inside);
        assert_eq!(
            registry.sweep(false).stuck,
            0,
            "a thread that ends frees its slot"
        );
        let again = registry.claim();
        assert!(again.index.is_some(), "the freed slot is taken again");
        assert!(registry.claim().index.is_none(), "both slots are taken");
    }

    /// A thread that has been reading its socket inside tiny_http for too long has the
    /// socket shut down, and its read ends; one that waits on a channel is counted stuck.
    /// Where the system does not tell the two apart, both count as stuck.
    #[test]
    fn a_thread_reading_its_socket_too_long_is_cut_and_one_on_a_channel_is_stuck() {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};

        let registry = Arc::new(Registry::new(4, Duration::from_millis(200)));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut served, _) = listener.accept().unwrap();
        let (entered_sender, entered) = std::sync::mpsc::channel();

        let reader_registry = Arc::clone(&registry);
        let reader = thread::spawn(move || {
            let slot = reader_registry.claim();
            slot.entering_tiny_http();
            entered_sender.send(()).unwrap();
            let mut read = 0;
            let mut byte = [0u8; 1];
            // As a trickled head: bytes keep coming, so no read times out.
            while let Ok(1) = served.read(&mut byte) {
                read += 1;
            }
            slot.back();
            read
        });
        let (keep_waiting, receiver) = std::sync::mpsc::channel::<()>();
        let waiter_registry = Arc::clone(&registry);
        let (waiter_entered, waiter_is_in) = std::sync::mpsc::channel();
        let waiter = thread::spawn(move || {
            let slot = waiter_registry.claim();
            slot.entering_tiny_http();
            waiter_entered.send(()).unwrap();
            let _ = receiver.recv_timeout(Duration::from_secs(5));
            slot.back();
        });
        entered.recv().unwrap();
        waiter_is_in.recv().unwrap();

        if !platform::SEES_BLOCKED_CALLS {
            // Nothing tells the reader from the waiter: past the bound both count as stuck,
            // and no socket is cut.
            let _ = client.write_all(b"x");
            thread::sleep(Duration::from_millis(300));
            assert_eq!(registry.sweep(false), Sweep { stuck: 2, cut: 0 });
            drop(client);
            assert!(
                reader.join().unwrap() > 0,
                "it read until the client closed"
            );
            drop(keep_waiting);
            waiter.join().unwrap();
            assert_eq!(registry.sweep(false), Sweep::default());
            return;
        }
        let started = Instant::now();
        let mut cut = 0;
        while cut == 0 && started.elapsed() < Duration::from_secs(3) {
            let _ = client.write_all(b"x");
            thread::sleep(Duration::from_millis(50));
            let sweep = registry.sweep(false);
            cut += sweep.cut;
            if sweep.cut == 1 {
                assert_eq!(sweep.stuck, 1, "the thread on the channel");
            }
        }
        assert_eq!(cut, 1, "the reading thread was not cut");
        assert!(started.elapsed() >= Duration::from_millis(200));
        let read = reader.join().unwrap();
        assert!(read > 0, "it read the trickle until it was cut");
        assert_eq!(
            registry.sweep(false),
            Sweep { stuck: 1, cut: 0 },
            "the waiter is stuck, and not looked at again"
        );
        drop(keep_waiting);
        waiter.join().unwrap();
        assert_eq!(registry.sweep(false), Sweep::default());
    }
}
