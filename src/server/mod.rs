//! The HTTP side: our own accept loop, a thread per connection, body reading and replies.
//!
//! This is the only module that names tiny_http's types. tiny_http parses requests and
//! writes answers; everything around that is ours, because tiny_http's own accept thread,
//! thread pool and request queue could not be made safe on a public URL (it has no
//! timeouts, its accept thread ends on the first failed `accept()`, and a few clients
//! could hold every shared worker). Here:
//!
//! - [`listener`] opens the socket with read and write timeouts that every accepted
//!   connection inherits, and finds the descriptor budget.
//! - [`accept`] runs the accept loop: it survives running out of descriptors or threads,
//!   and stops accepting while `MAX_CONNECTIONS` are open.
//! - [`connection`] serves one connection on its own thread: the next request from
//!   tiny_http, its body, the app, the event line, the answer, in order. It also keeps
//!   count of threads that tiny_http never gives back.
//! - [`body`] reads a request body within `MAX_BODY_BYTES`; [`reply`] writes answers.
//! - [`platform`] holds what differs between Linux and other systems, and only that.

mod accept;
mod body;
mod connection;
mod listener;
mod platform;
mod reply;

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::exchange::{Incoming, Reply};
use crate::metrics::{Metrics, Sampled};
use crate::output::EventSink;

pub use listener::BindError;

/// What answers requests: the app's `route`, or a stand-in in tests.
pub type Handler = dyn Fn(&Incoming<'_>) -> Reply + Send + Sync;

/// The settings the HTTP side needs.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub listen_addr: SocketAddr,
    pub max_body_bytes: usize,
    /// A connection on which no byte arrives for this long is closed.
    pub read_timeout: Duration,
    /// A client that takes no byte of an answer for this long is dropped.
    pub write_timeout: Duration,
    /// `None`: derived from the open-file limit.
    pub max_connections: Option<usize>,
    /// Where answers are counted, with `METRICS=true`; the server adds its gauges.
    pub metrics: Option<Arc<Metrics>>,
}

impl ServerOptions {
    /// The HTTP settings of `config`.
    pub fn new(config: &Config) -> ServerOptions {
        ServerOptions {
            listen_addr: config.listen_addr,
            max_body_bytes: config.max_body_bytes,
            read_timeout: config.read_timeout,
            write_timeout: config.write_timeout,
            max_connections: config.max_connections,
            metrics: None,
        }
    }
}

/// The server stopped for a reason other than a requested stop; the binary exits 1 with
/// this text so that a supervisor starts a clean process.
#[derive(Debug)]
pub enum ServeError {
    /// `accept()` failed in a way that retrying cannot mend.
    Listener(io::Error),
    /// Too many connection threads are stuck inside tiny_http for good.
    Stuck { threads: usize, bound: usize },
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Listener(error) => write!(
                f,
                "the HTTP listener failed and accepts no more connections ({error}); exiting so a supervisor can restart the server"
            ),
            ServeError::Stuck { threads, bound } => write!(
                f,
                "{threads} connection threads are stuck inside tiny_http for good (bound {bound}), each holding 2 descriptors; \
                 the usual cause is request lines with HTTP/2.0 or HTTP/3.0, which tiny_http_fork never answers. \
                 Exiting so a supervisor can restart a clean process; a reverse proxy that speaks HTTP/1.1 upstream keeps them out"
            ),
        }
    }
}

impl std::error::Error for ServeError {}

enum Notice {
    StopRequested,
    Failed(ServeError),
}

/// What the accept loop, the connection threads, [`Server::wait`] and the [`Stopper`]
/// share.
struct Shared {
    handler: Arc<Handler>,
    sink: EventSink,
    max_body_bytes: usize,
    /// A large body must arrive within this of its head (see [`body`]).
    body_time_limit: Duration,
    headers: reply::ReplyHeaders,
    /// Connections accepted and not yet ended, stuck ones included.
    open: AtomicUsize,
    /// Connection threads that tiny_http has held longer than any live client can make it.
    stuck: AtomicUsize,
    /// Connections shut down because their request was still trickling in (see
    /// [`connection::watch_stuck`]).
    cut: AtomicU64,
    /// Requests between "received" and "answered".
    busy: AtomicUsize,
    /// Requests received since start; [`Server::wait`] watches it for quiet.
    received: AtomicU64,
    /// Requests whose bodies are still on the wire, being read (see [`body`]).
    large_bodies: AtomicUsize,
    /// When a stop was asked for; unset while serving.
    stopped_at: OnceLock<Instant>,
    /// Set once a stop has let the last requests in: later ones are answered 503 and
    /// print nothing, so that every 200 has its line when the process exits.
    closed: AtomicBool,
    /// Where each connection thread is, for the stuck count.
    registry: connection::Registry,
    metrics: Option<Arc<Metrics>>,
}

/// The server's state as gauges, read at each scrape.
fn register_gauges(metrics: &Metrics, shared: &Arc<Shared>, max_connections: usize) {
    let open = Arc::clone(shared);
    metrics.register_collector(Sampled::gauge(
        "sipgateio_connections_open",
        "Connections being served, threads stuck inside tiny_http not counted",
        move || {
            let (open, stuck) = (
                open.open.load(Ordering::Relaxed),
                open.stuck.load(Ordering::Relaxed),
            );
            open.saturating_sub(stuck) as u64
        },
    ));
    metrics.register_collector(Sampled::gauge(
        "sipgateio_connections_max",
        "MAX_CONNECTIONS: more connections wait to be accepted",
        move || max_connections as u64,
    ));
    let stuck = Arc::clone(shared);
    metrics.register_collector(Sampled::gauge(
        "sipgateio_connection_threads_stuck",
        "Connection threads tiny_http never gives back (HTTP/2.0 request lines)",
        move || stuck.stuck.load(Ordering::Relaxed) as u64,
    ));
    let cut = Arc::clone(shared);
    metrics.register_collector(Sampled::counter(
        "sipgateio_connections_cut",
        "Connections shut down because their request was still trickling in after both timeouts and a second",
        move || cut.cut.load(Ordering::Relaxed),
    ));
    let sink = shared.sink.clone();
    metrics.register_collector(Sampled::gauge(
        "sipgateio_event_lines_waiting",
        "Event lines queued for stdout",
        move || sink.pending() as u64,
    ));
    let sink = shared.sink.clone();
    metrics.register_collector(Sampled::counter(
        "sipgateio_event_lines_diverted",
        "Event lines written to the error log because stdout failed, stalled or was full",
        move || sink.diverted(),
    ));
}

/// A running server. Drop it only after [`Server::wait`]; the threads live on otherwise.
pub struct Server {
    local_addr: SocketAddr,
    max_connections: usize,
    stopper: Stopper,
    notices: Receiver<Notice>,
    shared: Arc<Shared>,
}

/// Stops a server gracefully; clone it into a signal handler.
#[derive(Clone)]
pub struct Stopper {
    /// Where a connection reaches the listening socket, to wake the accept loop.
    wake_addr: SocketAddr,
    shared: Arc<Shared>,
    notices: Sender<Notice>,
}

/// How long the stop waits to connect to its own listener.
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);

impl Stopper {
    /// Stops accepting connections; requests in progress are answered, and keep-alive
    /// connections are served for up to a second. Calling it again does nothing.
    pub fn stop(&self) {
        if self.shared.stopped_at.set(Instant::now()).is_err() {
            return;
        }
        // The accept loop, woken by a connection of our own, sees the stop and closes the
        // listener: new connections are refused from then on. A connection is the one
        // wake-up every system gives a blocked accept(): macOS's ignores the listener's
        // timeout, and shutdown() on a listening socket fails there (ENOTCONN).
        if let Err(error) = TcpStream::connect_timeout(&self.wake_addr, WAKE_TIMEOUT) {
            log::debug!(
                "could not wake the accept loop at {}: {error}",
                self.wake_addr
            );
        }
        let _ = self.notices.send(Notice::StopRequested);
    }
}

/// The address a connection from this machine reaches a listener on `listen` at: the
/// loopback for a listener on every interface (0.0.0.0, [::]), which is no address a
/// connection can go to everywhere.
pub fn reachable(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        ip if !ip.is_unspecified() => ip,
        IpAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
        IpAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
    };
    SocketAddr::new(ip, listen.port())
}

/// After a stop, requests are let in until none has come for this long. Requests whose
/// heads or bodies were still arriving at the stop come a moment late; this lets them in.
const QUIET_BEFORE_CLOSE: Duration = Duration::from_millis(250);

/// ... but no later than this after the stop, so that keep-alive clients that go on
/// sending cannot keep the server running.
const DRAIN_AT_MOST: Duration = Duration::from_secs(1);

/// How often [`Server::wait`] looks at the request counters while stopping.
const STOP_POLL: Duration = Duration::from_millis(5);

impl Server {
    /// Listens on `options.listen_addr` and starts the accept loop.
    ///
    /// # Errors
    /// The address cannot be listened on (in use, not local, not permitted), or no
    /// thread can be started.
    pub fn start(
        options: &ServerOptions,
        handler: Arc<Handler>,
        sink: EventSink,
    ) -> Result<Server, BindError> {
        let listener = listener::bind(options)?;
        let local_addr = listener.local_addr;
        let limits = listener::Limits::new(options.max_connections);
        let shared = Arc::new(Shared {
            handler,
            sink,
            max_body_bytes: options.max_body_bytes,
            body_time_limit: options.read_timeout,
            headers: reply::ReplyHeaders::new(),
            open: AtomicUsize::new(0),
            stuck: AtomicUsize::new(0),
            cut: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            received: AtomicU64::new(0),
            large_bodies: AtomicUsize::new(0),
            stopped_at: OnceLock::new(),
            closed: AtomicBool::new(false),
            registry: connection::Registry::new(
                limits.max_connections + limits.stuck_bound + 1,
                options.read_timeout + options.write_timeout + Duration::from_secs(1),
            ),
            metrics: options.metrics.clone(),
        });
        if let Some(metrics) = &options.metrics {
            register_gauges(metrics, &shared, limits.max_connections);
        }
        let (notice_sender, notices) = mpsc::channel();
        let stopper = Stopper {
            wake_addr: reachable(local_addr),
            shared: Arc::clone(&shared),
            notices: notice_sender.clone(),
        };
        let bind_error = |source| BindError {
            addr: local_addr,
            source,
        };
        {
            let shared = Arc::clone(&shared);
            let notices = notice_sender.clone();
            let socket = listener.socket;
            let sockets = platform::AcceptedSockets::new(
                local_addr,
                options.read_timeout,
                options.write_timeout,
            );
            thread::Builder::new()
                .name("accept".into())
                .spawn(move || {
                    if let Err(error) =
                        accept::run(socket, sockets, &shared, limits.max_connections)
                    {
                        let _ = notices.send(Notice::Failed(error));
                    }
                })
                .map_err(bind_error)?;
        }
        {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("stuck-watch".into())
                .spawn(move || {
                    if let Some(error) = connection::watch_stuck(&shared, limits.stuck_bound) {
                        let _ = notice_sender.send(Notice::Failed(error));
                    }
                })
                .map_err(bind_error)?;
        }
        log::debug!(
            "descriptor limit {}: at most {} connections, exit past {} stuck connection threads",
            limits.descriptors,
            limits.max_connections,
            limits.stuck_bound
        );
        Ok(Server {
            local_addr,
            max_connections: limits.max_connections,
            stopper,
            notices,
            shared,
        })
    }

    /// The address the server listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The most connections served at once: `MAX_CONNECTIONS`, or what the descriptor
    /// limit allows.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// A handle that stops the server.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Blocks until the server is stopped, then gives requests in progress up to `grace`
    /// to be answered.
    ///
    /// # Errors
    /// The server cannot go on serving: the listener failed for good, or too many
    /// connection threads are stuck inside tiny_http.
    pub fn wait(self, grace: Duration) -> Result<(), ServeError> {
        let failure = match self.notices.recv() {
            Ok(Notice::Failed(error)) => {
                self.stopper.stop();
                Some(error)
            }
            Ok(Notice::StopRequested) | Err(_) => None,
        };
        let shared = &self.shared;
        let stopped_at = *shared.stopped_at.get().unwrap_or(&Instant::now());
        let deadline = stopped_at + grace;

        // Let requests in until a quiet moment (or DRAIN_AT_MOST), then close the door.
        let mut seen = shared.received.load(Ordering::SeqCst);
        let mut quiet_since = Instant::now();
        while Instant::now() < deadline {
            let received = shared.received.load(Ordering::SeqCst);
            if received != seen {
                seen = received;
                quiet_since = Instant::now();
            }
            let idle = shared.busy.load(Ordering::SeqCst) == 0;
            if idle
                && (quiet_since.elapsed() >= QUIET_BEFORE_CLOSE
                    || stopped_at.elapsed() >= DRAIN_AT_MOST)
            {
                break;
            }
            thread::sleep(STOP_POLL);
        }
        // A connection thread counts itself busy before it looks at `closed`, and this
        // looks at `busy` after setting it: either the request sees the door closed, or
        // the wait below sees the request.
        shared.closed.store(true, Ordering::SeqCst);
        while shared.busy.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            thread::sleep(STOP_POLL);
        }
        let busy = shared.busy.load(Ordering::SeqCst);
        if busy > 0 {
            log::warn!("stopping with {busy} request(s) still in progress after {grace:?}");
        }
        failure.map_or(Ok(()), Err)
    }
}
