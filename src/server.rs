//! The HTTP side: the listener, the handler threads, body reading, and writing replies.
//!
//! This is the only module that names tiny_http's types. A fixed set of workers calls
//! `recv()` on one shared tiny_http server. Bodies tiny_http has already buffered (up to
//! 1 KiB, which covers every sipgate event) are handled on the worker; anything whose body
//! is still on the wire goes to a thread of its own, so a slow or stalled body never holds
//! a worker (tiny_http has no read timeouts, and answering a request drains its unread
//! body). A connection's requests are served one at a time, so a client that pipelines and
//! never reads its answers holds one worker at most (tiny_http has no write timeouts).

use std::collections::VecDeque;
use std::fmt;
use std::fs;
use std::io::{self, Cursor, Read};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use tiny_http::{Header, Headers, Request, Response, StatusCode};

use crate::output::EventSink;
use crate::router::{Incoming, Method, Reply};

/// What answers requests: the app's router, or a stand-in in tests.
pub type Handler = dyn Fn(&Incoming<'_>) -> Reply + Send + Sync;

/// tiny_http reads bodies up to this size (without `Expect`) before it hands the request
/// over; larger ones are read from the socket by whoever holds the request.
const BUFFERED_BODY_LIMIT: usize = 1024;

/// At most this many requests with unbuffered bodies are read at once; more get 503, so a
/// flood of large bodies cannot buffer without bound.
const LARGE_BODY_SLOTS: usize = 64;

/// Connection threads tiny_http keeps waiting. Its pool decides whether to start a thread
/// from a count that lags behind wake-ups, so in a burst of new connections larger than
/// its idle threads, some connections get no thread until another connection closes
/// (measured: 44 of 48 keep-alive connections stalled). Enough idle threads for a burst
/// avoid that; each costs a few KiB of memory.
const CONNECTION_THREADS: usize = 64;

/// The settings the HTTP side needs.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub listen_addr: SocketAddr,
    pub workers: usize,
    pub max_body_bytes: usize,
}

/// The listening socket could not be set up.
#[derive(Debug)]
pub struct BindError {
    pub addr: SocketAddr,
    pub source: io::Error,
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.source.kind() {
            io::ErrorKind::AddrInUse => write!(
                f,
                "cannot listen on {}: the address is already in use; stop the program using it or set LISTEN_ADDR to another port",
                self.addr
            ),
            io::ErrorKind::AddrNotAvailable => write!(
                f,
                "cannot listen on {}: no network interface has this address; set LISTEN_ADDR to an address of this machine, such as 127.0.0.1:8080",
                self.addr
            ),
            io::ErrorKind::PermissionDenied => write!(
                f,
                "cannot listen on {}: permission denied (ports below 1024 need privileges); set LISTEN_ADDR to a port above 1023",
                self.addr
            ),
            _ => write!(f, "cannot listen on {}: {}", self.addr, self.source),
        }
    }
}

impl std::error::Error for BindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The server stopped for a reason other than a requested stop.
#[derive(Debug)]
pub struct ServeError(io::Error);

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the HTTP listener failed and accepts no more connections ({}); exiting so a supervisor can restart the server",
            self.0
        )
    }
}

impl std::error::Error for ServeError {}

enum Notice {
    StopRequested,
    WorkerDone,
    ListenerFailed(io::Error),
}

/// A running server. Drop it only after [`Server::wait`]; the threads live on otherwise.
pub struct Server {
    local_addr: SocketAddr,
    workers: usize,
    stopper: Stopper,
    notices: Receiver<Notice>,
    in_flight_large: Arc<AtomicUsize>,
    accept_thread: AcceptThreadWatch,
}

/// Stops a server gracefully; clone it into a signal handler.
#[derive(Clone)]
pub struct Stopper {
    /// A handle on the listening socket, to shut it so no new connection is accepted.
    listener: Arc<TcpListener>,
    /// When the stop came; unset while serving.
    stopped_at: Arc<OnceLock<Instant>>,
    notices: Sender<Notice>,
}

impl Stopper {
    /// Stops accepting connections; the workers answer what has been received, and end once
    /// no request has come for a moment. Calling it again does nothing.
    pub fn stop(&self) {
        if self.stopped_at.set(Instant::now()).is_err() {
            return;
        }
        // Shutting the listening socket wakes tiny_http's accept thread with an error, and
        // new connections are refused from here on.
        if let Err(error) = socket2::SockRef::from(&*self.listener).shutdown(Shutdown::Both) {
            log::debug!("could not shut the listening socket: {error}");
        }
        let _ = self.notices.send(Notice::StopRequested);
    }
}

struct Context {
    handler: Arc<Handler>,
    sink: EventSink,
    max_body_bytes: usize,
    in_flight_large: Arc<AtomicUsize>,
    headers: ReplyHeaders,
    /// The connections (by peer address) a worker is serving, each with the requests
    /// that wait for it to answer the one before; see [`claim`]. At most one entry per
    /// worker, so a scan is cheaper than hashing the address (about 900 instructions
    /// a request under callgrind).
    serving: Mutex<Vec<(SocketAddr, VecDeque<Request>)>>,
    /// Held while taking a request from tiny_http and claiming its connection.
    receiving: Mutex<()>,
}

/// Reply headers built once: tiny_http parses and validates each header it is given.
struct ReplyHeaders {
    xml: Header,
    text: Header,
    server: Header,
    /// The `Date` header and the second it was built for. tiny_http would format and
    /// validate a new one for every reply (about 1,600 instructions, 1.8 % of the
    /// baseline's request under callgrind).
    date: Mutex<(u64, Header)>,
}

impl ReplyHeaders {
    fn new() -> ReplyHeaders {
        let header = |name: &str, value: &str| {
            Header::from_bytes(name, value).expect("a valid constant header")
        };
        ReplyHeaders {
            xml: header("Content-Type", crate::router::ContentType::Xml.as_str()),
            text: header("Content-Type", crate::router::ContentType::Text.as_str()),
            server: header(
                "Server",
                concat!("sipgateio-callevents/", env!("CARGO_PKG_VERSION")),
            ),
            date: Mutex::new((0, header("Date", "Thu, 01 Jan 1970 00:00:00 GMT"))),
        }
    }

    /// `Date` for now, rebuilt once a second.
    fn date(&self) -> Header {
        let now = SystemTime::now();
        let second = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let mut cached = self.date.lock().unwrap_or_else(PoisonError::into_inner);
        if cached.0 != second {
            let value = httpdate::fmt_http_date(now);
            *cached = (
                second,
                Header::from_bytes("Date", value).expect("an HTTP date is a valid header value"),
            );
        }
        cached.1.clone()
    }
}

impl Server {
    /// Listens on `options.listen_addr` and starts the workers.
    ///
    /// # Errors
    /// The address cannot be listened on (in use, not local, not permitted).
    pub fn start(
        options: &ServerOptions,
        handler: Arc<Handler>,
        sink: EventSink,
    ) -> Result<Server, BindError> {
        let addr = options.listen_addr;
        let bind_error = |source| BindError { addr, source };
        let listener = TcpListener::bind(addr).map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let socket = socket2::SockRef::from(&listener);
        // Accepted sockets inherit both. Without NODELAY a reply written in two pieces waits
        // for the peer's delayed ACK (about 40 ms) on keep-alive connections; keepalive
        // probes free the thread of a peer that vanished without closing.
        socket.set_tcp_nodelay(true).map_err(bind_error)?;
        socket
            .set_tcp_keepalive(
                &socket2::TcpKeepalive::new()
                    .with_time(Duration::from_secs(60))
                    .with_interval(Duration::from_secs(10))
                    .with_retries(3),
            )
            .map_err(bind_error)?;
        let listener_handle = Arc::new(listener.try_clone().map_err(bind_error)?);
        let accept_thread = AcceptThreadWatch::new(&listener, &listener_handle);
        let config = tiny_http::ServerConfig::new_http(local_addr)
            .map_err(bind_error)?
            .set_min_threads(CONNECTION_THREADS);
        let http = tiny_http::Server::from_listener(listener, local_addr.into(), config)
            .map_err(|e| bind_error(io::Error::other(e.to_string())))?;
        let http = Arc::new(http);

        let (notice_sender, notices) = mpsc::channel();
        let stopper = Stopper {
            listener: listener_handle,
            stopped_at: Arc::new(OnceLock::new()),
            notices: notice_sender.clone(),
        };
        let in_flight_large = Arc::new(AtomicUsize::new(0));
        let context = Arc::new(Context {
            handler,
            sink,
            max_body_bytes: options.max_body_bytes,
            in_flight_large: Arc::clone(&in_flight_large),
            headers: ReplyHeaders::new(),
            serving: Mutex::new(Vec::with_capacity(options.workers)),
            receiving: Mutex::new(()),
        });
        for index in 0..options.workers {
            let http = Arc::clone(&http);
            let context = Arc::clone(&context);
            let stopped_at = Arc::clone(&stopper.stopped_at);
            let notices = notice_sender.clone();
            thread::Builder::new()
                .name(format!("worker-{index}"))
                .spawn(move || work(&http, &context, &stopped_at, &notices))
                .map_err(bind_error)?;
        }
        Ok(Server {
            local_addr,
            workers: options.workers,
            stopper,
            notices,
            in_flight_large,
            accept_thread,
        })
    }

    /// The address the server listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that stops the server.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Blocks until the server is stopped, then gives requests in progress up to `grace`
    /// to be answered.
    ///
    /// # Errors
    /// The listener failed: tiny_http's accept thread has ended and nothing more would
    /// ever be accepted.
    pub fn wait(self, grace: Duration) -> Result<(), ServeError> {
        let mut failure = None;
        let mut workers_done = 0;
        loop {
            let error = match self.notices.recv_timeout(ACCEPT_THREAD_CHECK_EVERY) {
                Ok(Notice::StopRequested) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(Notice::WorkerDone) => {
                    workers_done += 1;
                    continue;
                }
                Ok(Notice::ListenerFailed(error)) => error,
                Err(RecvTimeoutError::Timeout) if self.accept_thread.has_ended() => {
                    io::Error::other(
                        "its accept thread ended, most likely for want of file descriptors: raise `ulimit -n` or the unit's LimitNOFILE",
                    )
                }
                Err(RecvTimeoutError::Timeout) => continue,
            };
            failure = Some(ServeError(error));
            self.stopper.stop();
        }
        let deadline = Instant::now() + grace;
        while workers_done < self.workers {
            match self
                .notices
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(Notice::WorkerDone) => workers_done += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        while self.in_flight_large.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        let stuck = self.workers - workers_done + self.in_flight_large.load(Ordering::SeqCst);
        if stuck > 0 {
            log::warn!("stopping with {stuck} request(s) still in progress after {grace:?}");
        }
        failure.map_or(Ok(()), Err)
    }
}

/// How often [`Server::wait`] looks whether tiny_http's accept thread is still there.
const ACCEPT_THREAD_CHECK_EVERY: Duration = Duration::from_millis(200);

/// Tells whether tiny_http's accept thread has ended without a word.
///
/// The thread reports a failing `accept()` through `recv()`, which the workers see. But
/// it can also end silently: it panics when the descriptor it duplicates for a new
/// connection is not there (`ulimit -n` reached one descriptor after `accept()`), and it
/// stops when its pool cannot start a thread. Either way the listener it owns is dropped,
/// so its descriptor no longer names our socket; the socket itself stays open through
/// our duplicate, so connections would queue up unanswered forever. Linux shows what a
/// descriptor names in `/proc/self/fd`; where that is missing the watch is off.
struct AcceptThreadWatch {
    /// tiny_http's descriptor for the listener, in `/proc/self/fd`.
    link: PathBuf,
    /// What the link read when the server started, e.g. `socket:[123456]`.
    socket: Option<PathBuf>,
}

impl AcceptThreadWatch {
    fn new(given_to_tiny_http: &TcpListener, ours: &TcpListener) -> AcceptThreadWatch {
        let link = |listener: &TcpListener| {
            PathBuf::from(format!("/proc/self/fd/{}", listener.as_raw_fd()))
        };
        let socket = fs::read_link(link(ours)).ok();
        AcceptThreadWatch {
            link: link(given_to_tiny_http),
            socket,
        }
    }

    fn has_ended(&self) -> bool {
        self.socket
            .as_ref()
            .is_some_and(|socket| fs::read_link(&self.link).ok().as_ref() != Some(socket))
    }
}

/// How often an idle worker looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// After a stop, a worker ends once no request has come for this long. Requests whose
/// bodies were still arriving at the stop reach the queue late; this lets them in.
const QUIET_BEFORE_EXIT: Duration = Duration::from_millis(250);

/// ... but no later than this after the stop, so that keep-alive clients that go on
/// sending cannot keep the server running.
const DRAIN_AT_MOST: Duration = Duration::from_secs(1);

fn work(
    http: &tiny_http::Server,
    context: &Arc<Context>,
    stopped_at: &OnceLock<Instant>,
    notices: &Sender<Notice>,
) {
    // Set when this worker first sees the stop, and again at every request after it.
    let mut quiet_since: Option<Instant> = None;
    loop {
        // Taking a request and claiming its connection happen under one lock, so a
        // connection's requests are claimed in the order tiny_http queued them.
        let received = {
            let _turn = context
                .receiving
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            http.recv_timeout(POLL).map(|received| {
                received.map(|request| request.map(|request| claim(context, request)))
            })
        };
        match received {
            Ok(Ok(Some(claimed))) => {
                if let Some((request, peer)) = claimed {
                    serve_connection(context, request, peer, stopped_at);
                }
                quiet_since = quiet_since.map(|_| Instant::now());
            }
            // tiny_http has answered these itself (400, 417) or the client went away.
            Ok(Err(read_error)) => {
                let text = read_error.to_string();
                if text.starts_with("[ReadIoError]") {
                    log::debug!("connection ended: {text}");
                } else {
                    log::warn!("rejected a malformed request: {text}");
                }
            }
            Ok(Ok(None)) => {}
            // The accept thread ended: expected after a stop, which shuts the listener.
            Err(error) => {
                if stopped_at.get().is_none() {
                    let _ = notices.send(Notice::ListenerFailed(error));
                    break;
                }
            }
        }
        if let Some(stopped) = stopped_at.get() {
            let quiet = *quiet_since.get_or_insert_with(Instant::now);
            if quiet.elapsed() >= QUIET_BEFORE_EXIT || stopped.elapsed() >= DRAIN_AT_MOST {
                break;
            }
        }
    }
    let _ = notices.send(Notice::WorkerDone);
}

/// A connection's requests are served one at a time, in order, by the worker that claimed
/// the connection. tiny_http writes a connection's answers in request order, so a second
/// worker on a pipelined request would only wait for the first; and when a client
/// pipelines without reading its answers, the write blocks for good (no write timeouts),
/// so every worker would end up waiting on that one connection. Here its later requests
/// wait in line instead, holding no worker, and the event lines keep the order the
/// requests were sent in.
///
/// Returns the request and its peer if the connection was free (the caller serves it),
/// or `None` if it joined the line of a connection another worker is serving.
fn claim(context: &Context, request: Request) -> Option<(Request, Option<SocketAddr>)> {
    let Some(&peer) = request.remote_addr() else {
        return Some((request, None));
    };
    let mut serving = context
        .serving
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some((_, line)) = serving.iter_mut().find(|(served, _)| *served == peer) {
        line.push_back(request);
        return None;
    }
    serving.push((peer, VecDeque::new()));
    Some((request, Some(peer)))
}

/// Serves a claimed request, then the requests that queued behind it on its connection,
/// until [`DRAIN_AT_MOST`] after a stop.
fn serve_connection(
    context: &Arc<Context>,
    request: Request,
    peer: Option<SocketAddr>,
    stopped_at: &OnceLock<Instant>,
) {
    let Some(peer) = peer else {
        dispatch(context, request);
        return;
    };
    let mut next = Some(request);
    while let Some(request) = next {
        dispatch(context, request);
        if stopped_at
            .get()
            .is_some_and(|stopped| stopped.elapsed() >= DRAIN_AT_MOST)
        {
            // What is still queued goes unanswered; the process is about to exit.
            return;
        }
        let mut serving = context
            .serving
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(index) = serving.iter().position(|(served, _)| *served == peer) else {
            return;
        };
        next = serving[index].1.pop_front();
        if next.is_none() {
            serving.swap_remove(index);
        }
    }
}

/// Handles `request` here if its body is already in memory; otherwise on a thread of its
/// own, since reading or draining that body waits on the client.
fn dispatch(context: &Arc<Context>, request: Request) {
    let headers = request.headers();
    let has_transfer_encoding = headers.get("Transfer-Encoding").is_some();
    let buffered = !has_transfer_encoding
        && headers.get("Expect").is_none()
        && request
            .body_length()
            .is_none_or(|length| length <= BUFFERED_BODY_LIMIT);
    if buffered {
        handle(context, request, has_transfer_encoding);
        return;
    }
    let has_slot = context
        .in_flight_large
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < LARGE_BODY_SLOTS).then_some(n + 1)
        })
        .is_ok();
    if !has_slot {
        context.in_flight_large.fetch_add(1, Ordering::SeqCst);
    }
    let thread_context = Arc::clone(context);
    let spawned = thread::Builder::new()
        .name("large-body".into())
        .spawn(move || {
            if has_slot {
                handle(&thread_context, request, has_transfer_encoding);
            } else {
                let reply =
                    Reply::text(503, "too many large requests in progress; try again later");
                respond(&thread_context, request, &reply);
            }
            thread_context
                .in_flight_large
                .fetch_sub(1, Ordering::SeqCst);
        });
    if let Err(error) = spawned {
        // The request went down with the closure; tiny_http answered it with an empty 500.
        context.in_flight_large.fetch_sub(1, Ordering::SeqCst);
        log::error!("could not start a thread for a large request: {error}");
    }
}

/// `has_transfer_encoding`: the request has a `Transfer-Encoding` header (looked up once,
/// by [`dispatch`]).
fn handle(context: &Context, mut request: Request, has_transfer_encoding: bool) {
    let (received, received_utc) = (Instant::now(), SystemTime::now());
    let reply = match read_body(&mut request, context.max_body_bytes, has_transfer_encoding) {
        Err(problem) => Reply::text(problem.status(), problem.to_string()),
        Ok(body) => {
            let url = request.url();
            let incoming = Incoming {
                method: method_of(&request),
                path: url.split_once('?').map_or(url, |(path, _)| path),
                content_type: request.headers().get("Content-Type").map(|v| v.as_str()),
                signature: request
                    .headers()
                    .get("X-Sipgate-Signature")
                    .map(|v| v.as_str()),
                body: &body,
                received,
                received_utc,
            };
            catch_unwind(AssertUnwindSafe(|| (context.handler)(&incoming))).unwrap_or_else(|_| {
                log::error!(
                    "the handler panicked on {} {}; answered 500",
                    request.method(),
                    incoming.path
                );
                Reply::internal_error()
            })
        }
    };
    if let Some(accepted) = &reply.accepted {
        // Queued before the reply goes out; the binary writes the queue out before it
        // exits, so every 200 has its line.
        context.sink.emit(accepted);
    }
    respond(context, request, &reply);
}

/// Why a body was not read: answered with [`BodyError::status`] and the error's text.
#[derive(Debug)]
enum BodyError {
    /// `Content-Length` is not a number.
    InvalidLength(String),
    /// Over `MAX_BODY_BYTES`, as declared or as read.
    TooLarge { declared: Option<u64>, max: usize },
    /// The connection ended before `Content-Length` bytes arrived.
    Truncated { received: usize, declared: u64 },
    /// A chunked body: one cut short inside a chunk reads as complete, so it cannot be
    /// trusted to be whole. sipgate sends `Content-Length`.
    Chunked,
    /// The socket failed, or a chunked body was malformed.
    Read(io::Error),
}

impl BodyError {
    fn status(&self) -> u16 {
        match self {
            BodyError::TooLarge { .. } => 413,
            BodyError::Chunked => 411,
            BodyError::InvalidLength(_) | BodyError::Truncated { .. } | BodyError::Read(_) => 400,
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::InvalidLength(value) => {
                write!(
                    f,
                    "invalid Content-Length {value:?}; expected a number of bytes"
                )
            }
            BodyError::TooLarge {
                declared: Some(length),
                max,
            } => {
                write!(
                    f,
                    "a body of {length} bytes is over the limit of {max} bytes (MAX_BODY_BYTES)"
                )
            }
            BodyError::TooLarge {
                declared: None,
                max,
            } => {
                write!(
                    f,
                    "the body is over the limit of {max} bytes (MAX_BODY_BYTES)"
                )
            }
            BodyError::Truncated { received, declared } => {
                write!(
                    f,
                    "the body ended after {received} of its {declared} bytes (Content-Length)"
                )
            }
            BodyError::Chunked => f.write_str(
                "send the body with a Content-Length header; chunked request bodies are refused",
            ),
            BodyError::Read(error) => write!(f, "could not read the request body: {error}"),
        }
    }
}

/// Reads the whole body, up to `max` bytes.
fn read_body(
    request: &mut Request,
    max: usize,
    has_transfer_encoding: bool,
) -> Result<Vec<u8>, BodyError> {
    // tiny_http takes an unparsable Content-Length for "no body"; refuse it instead of
    // guessing where the body ends.
    let declared = match request.headers().get("Content-Length") {
        None => None,
        Some(value) => Some(
            value
                .as_str()
                .trim()
                .parse::<u64>()
                .map_err(|_| BodyError::InvalidLength(value.as_str().to_owned()))?,
        ),
    };
    if declared.is_some_and(|length| length > max as u64) {
        return Err(BodyError::TooLarge { declared, max });
    }
    let mut body = Vec::with_capacity(declared.map_or(0, |length| length as usize));
    request
        .as_reader()
        .take(max as u64 + 1)
        .read_to_end(&mut body)
        .map_err(BodyError::Read)?;
    if body.len() > max {
        return Err(BodyError::TooLarge {
            declared: None,
            max,
        });
    }
    // Refused only now, after the body was read to its end: left unread, its bytes would
    // be parsed as the connection's next request.
    if has_transfer_encoding {
        return Err(BodyError::Chunked);
    }
    if let Some(declared) = declared.filter(|&length| (body.len() as u64) < length) {
        return Err(BodyError::Truncated {
            received: body.len(),
            declared,
        });
    }
    Ok(body)
}

fn method_of(request: &Request) -> Method {
    match request.method() {
        tiny_http::Method::Get => Method::Get,
        tiny_http::Method::Head => Method::Head,
        tiny_http::Method::Post => Method::Post,
        _ => Method::Other,
    }
}

fn respond(context: &Context, request: Request, reply: &Reply) {
    if reply.status >= 400 {
        log::warn!(
            "{} {} from {}: {} {}",
            request.method(),
            request.url().split('?').next().unwrap_or_default(),
            request
                .remote_addr()
                .map_or_else(|| "?".to_owned(), ToString::to_string),
            reply.status,
            reply.body
        );
    } else {
        log::debug!("{} {}: {}", request.method(), request.url(), reply.status);
    }
    let content_type = match reply.content_type {
        crate::router::ContentType::Xml => &context.headers.xml,
        crate::router::ContentType::Text => &context.headers.text,
    };
    let mut headers = Headers::with_capacity(4);
    headers.push(context.headers.date());
    headers.push(context.headers.server.clone());
    headers.push(content_type.clone());
    if let Some(allow) = reply.allow {
        headers.push(Header::from_bytes("Allow", allow).expect("Allow values are constants"));
    }
    let response = Response::new(
        StatusCode(reply.status),
        headers,
        Cursor::new(reply.body.as_bytes()),
        Some(reply.body.len()),
        None,
    );
    if let Err(error) = request.respond(response) {
        log::debug!("could not send the reply: {error}");
    }
}
