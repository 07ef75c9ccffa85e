//! The listening socket, and what the descriptor limit allows.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, TcpKeepalive, Type};

use super::{ServerOptions, platform};

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

/// A bound, listening socket.
pub(super) struct Bound {
    /// Given to the accept loop, which alone holds it.
    pub socket: TcpListener,
    pub local_addr: SocketAddr,
}

/// Connections waiting to be accepted: as many as the kernel allows (it caps the value at
/// `net.core.somaxconn`; docs/limits.md has its default). When the queue is full, a new
/// connection's SYN is dropped and the client sends it again only after 1 s, then 3 s, so
/// a burst of connections larger than the queue waits seconds for nothing; and while
/// `MAX_CONNECTIONS` are open, connections wait here instead of being refused.
const BACKLOG: i32 = i32::MAX;

/// Opens the listening socket. The options are set before `listen()`, so that Linux
/// copies them to every accepted socket: the timeouts reach sockets that only tiny_http
/// holds. Where the timeouts are not copied, [`platform::AcceptedSockets`] sets them.
pub(super) fn bind(options: &ServerOptions) -> Result<Bound, BindError> {
    let addr = options.listen_addr;
    let bind_error = |source| BindError { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(bind_error)?;
    // As std's TcpListener::bind does: a restart can listen at once, even with the last
    // run's connections in TIME_WAIT.
    socket.set_reuse_address(true).map_err(bind_error)?;
    // Without NODELAY a reply written in two pieces waits for the peer's delayed ACK
    // (about 40 ms) on keep-alive connections.
    socket.set_tcp_nodelay(true).map_err(bind_error)?;
    // Frees the thread of a peer that vanished without closing, also mid-write.
    socket
        .set_tcp_keepalive(
            &TcpKeepalive::new()
                .with_time(Duration::from_secs(60))
                .with_interval(Duration::from_secs(10))
                .with_retries(3),
        )
        .map_err(bind_error)?;
    if platform::TIMEOUTS_ON_LISTENER {
        socket
            .set_read_timeout(Some(options.read_timeout))
            .map_err(bind_error)?;
        socket
            .set_write_timeout(Some(options.write_timeout))
            .map_err(bind_error)?;
    }
    socket.bind(&addr.into()).map_err(bind_error)?;
    socket.listen(BACKLOG).map_err(bind_error)?;
    let socket = TcpListener::from(socket);
    let local_addr = socket.local_addr().map_err(bind_error)?;
    Ok(Bound { socket, local_addr })
}

/// Each connection holds its socket twice: tiny_http duplicates it to read and write
/// from separate handles.
const DESCRIPTORS_PER_CONNECTION: u64 = 2;

/// Descriptors kept for everything but connections: the standard streams, the listener
/// and a wake-up connection to it, the signal pipe, a key file being read, the logger.
const RESERVED_DESCRIPTORS: u64 = 32;

/// The default `MAX_CONNECTIONS` stays at or under this whatever the descriptor limit,
/// since every connection is also a thread; a hard limit of a million descriptors is
/// common, and that many threads is not.
const DEFAULT_MAX_CONNECTIONS_CAP: usize = 10_000;

/// How many connections the server serves at once, and how many stuck connection
/// threads it lives with, from the descriptor limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Limits {
    /// The soft open-file limit, after raising it.
    pub descriptors: u64,
    pub max_connections: usize,
    /// Past this many stuck connection threads, the process exits. They hold half the
    /// descriptors then, so live connections keep the other half.
    pub stuck_bound: usize,
}

impl Limits {
    /// Raises the soft open-file limit to the hard one first, as Go's runtime does: many
    /// systems start programs with a soft limit of 1024 under a far higher hard limit.
    pub(super) fn new(configured: Option<usize>) -> Limits {
        let descriptors = match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(soft) => soft,
            Err(error) => {
                log::debug!("could not raise the open-file limit: {error}");
                rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
            }
        };
        let limits = Limits::from_descriptors(descriptors, configured);
        if let Some(wanted) = configured {
            if wanted > connections_allowed(descriptors) {
                log::warn!(
                    "MAX_CONNECTIONS={wanted} needs {} descriptors, but the open-file limit is {descriptors}; \
                     connections past that wait to be accepted. Raise `ulimit -n` (LimitNOFILE= in a systemd unit)",
                    wanted as u64 * DESCRIPTORS_PER_CONNECTION + RESERVED_DESCRIPTORS
                );
            }
        }
        limits
    }

    /// The limits for a descriptor limit of `descriptors`; pure, for the tests.
    pub(super) fn from_descriptors(descriptors: u64, configured: Option<usize>) -> Limits {
        let connections = connections_allowed(descriptors);
        Limits {
            descriptors,
            max_connections: configured
                .unwrap_or_else(|| connections.min(DEFAULT_MAX_CONNECTIONS_CAP)),
            stuck_bound: (connections / 2).max(1),
        }
    }
}

/// How many connections `descriptors` hold, after the reserve; at least one.
fn connections_allowed(descriptors: u64) -> usize {
    let connections = descriptors.saturating_sub(RESERVED_DESCRIPTORS) / DESCRIPTORS_PER_CONNECTION;
    usize::try_from(connections).unwrap_or(usize::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_share_the_descriptors_left_after_the_reserve() {
        let limits = Limits::from_descriptors(1024, None);
        assert_eq!(limits.max_connections, (1024 - 32) / 2);
        assert_eq!(limits.stuck_bound, (1024 - 32) / 4);
        assert_eq!(
            Limits::from_descriptors(20_000, None).max_connections,
            9_984
        );
    }

    #[test]
    fn a_large_limit_is_capped_and_a_setting_wins() {
        let limits = Limits::from_descriptors(1 << 20, None);
        assert_eq!(limits.max_connections, DEFAULT_MAX_CONNECTIONS_CAP);
        assert_eq!(limits.stuck_bound, ((1 << 20) - 32) / 4);
        // The room a setting is checked against is what the descriptors hold, not the cap.
        assert_eq!(connections_allowed(1 << 20), ((1 << 20) - 32) / 2);
        assert_eq!(
            Limits::from_descriptors(1024, Some(5000)).max_connections,
            5000
        );
    }

    #[test]
    fn a_tiny_limit_still_serves_one_connection() {
        let limits = Limits::from_descriptors(10, None);
        assert_eq!((limits.max_connections, limits.stuck_bound), (1, 1));
    }
}
