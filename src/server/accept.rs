//! The accept loop: one thread takes new connections and starts a thread for each.
//!
//! tiny_http's own accept thread ends for good on the first failed `accept()` and panics
//! when it cannot duplicate an accepted socket, so a burst of connections that uses up the
//! descriptors left the server deaf. This loop tells the failures apart: those that pass
//! (a timeout, an aborted handshake) are retried at once; running out of descriptors,
//! memory or threads is waited out with a growing pause, logged once per episode; only a
//! listener that is gone ends it.

use std::io;
use std::net::TcpListener;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Once};
use std::thread;
use std::time::{Duration, Instant};

use super::platform::{self, AcceptedSockets};
use super::{ServeError, Shared, connection};

/// The first pause after running out of descriptors or threads; it doubles up to
/// [`MOST_BACKOFF`] while the shortage lasts.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MOST_BACKOFF: Duration = Duration::from_millis(500);

/// How often the loop looks for a free place while `MAX_CONNECTIONS` are open.
const AT_LIMIT_POLL: Duration = Duration::from_millis(5);

/// The connection limit is logged at most this often.
const AT_LIMIT_LOG_EVERY: Duration = Duration::from_secs(60);

/// What to do about a failed `accept()`.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// Nothing is wrong with the listener: the timeout passed, or the connection was
    /// gone before it was accepted.
    Retry,
    /// The process is out of descriptors, memory or threads: wait until some are freed.
    Starved,
    /// The listener is closed or broken.
    Fatal,
}

fn classify(error: &io::Error) -> Failure {
    use io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted, TimedOut, WouldBlock};
    if matches!(
        error.kind(),
        WouldBlock | TimedOut | Interrupted | ConnectionAborted | ConnectionReset
    ) {
        return Failure::Retry;
    }
    match error.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => Failure::Starved,
        // accept(2), Linux: errors already pending on the new connection are reported by
        // accept() and should be treated like EAGAIN; EPERM is a firewall's refusal.
        Some(
            libc::EPROTO
            | libc::ENOPROTOOPT
            | libc::EHOSTDOWN
            | libc::EHOSTUNREACH
            | libc::EOPNOTSUPP
            | libc::ENETUNREACH
            | libc::ENETDOWN
            | libc::EPERM,
        ) => Failure::Retry,
        Some(errno) if platform::PENDING_CONNECTION_ERRORS.contains(&errno) => Failure::Retry,
        _ => Failure::Fatal,
    }
}

/// Accepts connections until the server stops or the listener fails; the listener closes
/// when it returns.
pub(super) fn run(
    socket: TcpListener,
    mut sockets: AcceptedSockets,
    shared: &Arc<Shared>,
    max_connections: usize,
) -> Result<(), ServeError> {
    let listener = tiny_http::Listener::from(socket);
    let plain =
        tiny_http::SslContextWrap::build_ssl_capabilities(None).expect("no TLS settings given");
    keep_accept_panics_quiet();
    let mut shortage = Shortage::default();
    let mut limit_logged: Option<Instant> = None;
    while shared.stopped_at.get().is_none() {
        let open = shared.open.load(Ordering::SeqCst);
        let live = open.saturating_sub(shared.stuck.load(Ordering::SeqCst));
        if live >= max_connections {
            if limit_logged.is_none_or(|at| at.elapsed() >= AT_LIMIT_LOG_EVERY) {
                limit_logged = Some(Instant::now());
                log::warn!(
                    "{live} connections are open, the most MAX_CONNECTIONS={max_connections} allows: \
                     new ones wait to be accepted until one closes (idle ones close after READ_TIMEOUT_SECONDS)"
                );
            }
            thread::sleep(AT_LIMIT_POLL);
            continue;
        }
        // tiny_http panics when the accepted socket cannot be duplicated (no descriptor
        // left); the socket is closed as the panic unwinds.
        let accepted = catch_unwind(AssertUnwindSafe(|| {
            tiny_http::Server::accept_connection(&listener, &plain)
        }));
        let error = match accepted {
            // The stop's own connection, or one that came with it: closed unserved, as
            // those still waiting in the backlog are when the listener closes.
            Ok(Ok(Some(_))) if shared.stopped_at.get().is_some() => break,
            Ok(Ok(Some(accepted))) => {
                sockets.prepare_new();
                match connection::spawn(accepted, shared) {
                    Ok(()) => shortage.over(),
                    Err(error) => shortage.wait("could not start a connection thread", &error),
                }
                continue;
            }
            Ok(Ok(None)) => continue,
            Ok(Err(error)) => error,
            Err(_) => {
                let error = io::Error::other("no descriptor left to duplicate its socket");
                shortage.wait("could not take a new connection", &error);
                continue;
            }
        };
        match classify(&error) {
            Failure::Retry => {}
            Failure::Starved => shortage.wait("cannot accept connections", &error),
            Failure::Fatal if shared.stopped_at.get().is_some() => {}
            Failure::Fatal => return Err(ServeError::Listener(error)),
        }
    }
    Ok(())
}

/// A run of failures for want of descriptors, memory or threads.
#[derive(Default)]
struct Shortage {
    since: Option<Instant>,
    pause: Duration,
    failures: u64,
}

impl Shortage {
    /// Logs the first failure of a shortage, then pauses a little longer each time.
    fn wait(&mut self, what: &str, error: &io::Error) {
        if self.since.is_none() {
            self.since = Some(Instant::now());
            self.pause = FIRST_BACKOFF;
            log::warn!(
                "{what}: {error}; connections wait to be accepted until some close. \
                 If this lasts, raise `ulimit -n` (LimitNOFILE= in a systemd unit) or lower MAX_CONNECTIONS"
            );
        }
        self.failures += 1;
        thread::sleep(self.pause);
        self.pause = (self.pause * 2).min(MOST_BACKOFF);
    }

    /// A connection was accepted and started: the shortage, if there was one, is over.
    fn over(&mut self) {
        if let Some(since) = self.since.take() {
            log::info!(
                "accepting connections again after {:.1} s ({} failed attempts)",
                since.elapsed().as_secs_f64(),
                self.failures
            );
            self.failures = 0;
        }
    }
}

/// The accept thread's panics are tiny_http failing to duplicate a socket, which [`run`]
/// catches and logs in its own words; the default hook would print each one to stderr.
fn keep_accept_panics_quiet() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if thread::current().name() != Some("accept") {
                default_hook(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_told_apart() {
        let os = io::Error::from_raw_os_error;
        assert_eq!(classify(&io::ErrorKind::WouldBlock.into()), Failure::Retry);
        assert_eq!(classify(&os(libc::ECONNABORTED)), Failure::Retry);
        assert_eq!(classify(&os(libc::EPROTO)), Failure::Retry);
        assert_eq!(classify(&os(libc::EMFILE)), Failure::Starved);
        assert_eq!(classify(&os(libc::ENFILE)), Failure::Starved);
        assert_eq!(classify(&os(libc::ENOMEM)), Failure::Starved);
        assert_eq!(classify(&os(libc::EINVAL)), Failure::Fatal);
        assert_eq!(classify(&os(libc::EBADF)), Failure::Fatal);
    }
}
