//! The portable path, for systems other than Linux (and for Linux builds with the
//! `portable` feature, to test it): nothing tells what a thread is blocked in, so no
//! client is cut early; and each accepted socket gets its timeouts from here, because
//! macOS does not copy them from the listener.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::Duration;

use socket2::{Socket, Type};

use super::{Blocked, Descriptors};

/// Nothing tells what a thread is blocked in; see [`blocked_in`].
pub(in crate::server) const SEES_BLOCKED_CALLS: bool = false;

/// Set the timeouts on the listening socket as well: FreeBSD copies them to accepted
/// sockets, and on macOS, which does not, they do no harm (its `accept()` ignores them).
/// The tests of this path on Linux leave them off, so that what they test is
/// [`AcceptedSockets`] setting them, as on macOS.
pub(in crate::server) const TIMEOUTS_ON_LISTENER: bool = !cfg!(target_os = "linux");

/// No client is cut here: says so once, at start.
pub(in crate::server) fn trickle_cutter() -> Option<Descriptors> {
    log::info!(
        "on this system, connections that trickle their requests in (a byte inside each READ_TIMEOUT_SECONDS) \
         are not ended early: they count as stuck, and many of them make the server exit for a supervisor to \
         restart it. A reverse proxy in front ends them (docs/limits.md)"
    );
    None
}

/// The calling thread's id, which nothing here uses: 0.
pub(in crate::server) fn current_thread_id() -> u32 {
    0
}

/// Not known here.
pub(in crate::server) fn blocked_in(_thread_id: u32) -> Blocked {
    Blocked::Other
}

/// Gives each socket that tiny_http accepts the read and write timeouts.
///
/// tiny_http accepts the connection and keeps the socket to itself, so the socket is
/// found among the process's descriptors: a TCP connection to the listening address
/// without timeouts. It is looked for where the accept most likely put it first (see
/// [`AcceptedSockets::prepare_new`]), then among the numbers that are new since the last
/// look, then among all.
pub(in crate::server) struct AcceptedSockets {
    descriptors: Option<Descriptors>,
    listening_on: SocketAddr,
    read_timeout: Duration,
    write_timeout: Duration,
    /// The descriptors open after the last accept, sorted.
    known: Vec<RawFd>,
}

impl AcceptedSockets {
    pub(in crate::server) fn new(
        listening_on: SocketAddr,
        read_timeout: Duration,
        write_timeout: Duration,
    ) -> Self {
        let descriptors = Descriptors::open()
            .inspect_err(|error| {
                log::warn!(
                    "cannot set READ_TIMEOUT_SECONDS and WRITE_TIMEOUT_SECONDS on connections here ({error}); \
                     idle and stalled connections stay open until their clients close them. A reverse proxy \
                     in front times them out (docs/limits.md)"
                );
            })
            .ok();
        AcceptedSockets {
            descriptors,
            listening_on,
            read_timeout,
            write_timeout,
            known: Vec::new(),
        }
    }

    /// Sets the timeouts of the socket accepted last, before any thread reads from it: a
    /// read already blocked would not see them.
    pub(in crate::server) fn prepare_new(&mut self) {
        let Some(descriptors) = &self.descriptors else {
            return;
        };
        let give = |number| self.give_timeouts(descriptors, number).unwrap_or(false);
        // An accept takes the lowest free numbers: while no connection has closed since the
        // last look, those are the lowest ones not known to be open, and nothing needs
        // listing. With thousands of connections open, listing them at every accept
        // would make accepting the slow part.
        let guesses = lowest_unknown(&self.known);
        if let Some(found) = guesses.iter().position(|&number| give(number)) {
            for number in &guesses[..=found] {
                if let Err(at) = self.known.binary_search(number) {
                    self.known.insert(at, *number);
                }
            }
            return;
        }
        let open = match open_descriptors() {
            Ok(open) => open,
            Err(error) => {
                log::debug!("cannot list this process's descriptors: {error}");
                return;
            }
        };
        // One socket per accept: the first found is the one. Numbers freed by connections
        // that closed since the last look are reused, and those of the latest connections
        // are usually the highest, so the search starts at the top.
        let found = open
            .iter()
            .rev()
            .filter(|number| self.known.binary_search(number).is_err())
            .any(|&number| give(number))
            || open.iter().rev().any(|&number| give(number));
        if !found {
            log::debug!("found no socket without timeouts after an accept");
        }
        self.known = open;
    }

    /// Sets the timeouts of descriptor `number` if it is a TCP connection accepted on the
    /// listening address that has none; whether it did. The address keeps this process's
    /// own client connections, if it has any, as they are.
    fn give_timeouts(&self, descriptors: &Descriptors, number: RawFd) -> io::Result<bool> {
        let socket = Socket::from(descriptors.copy(number)?);
        // Most descriptors are connections given their timeouts before: asked first.
        if socket.read_timeout()?.is_some()
            || socket.r#type()? != Type::STREAM
            || socket.peer_addr()?.as_socket().is_none()
            || !self.is_listening_address(socket.local_addr()?.as_socket())
        {
            return Ok(false);
        }
        socket.set_read_timeout(Some(self.read_timeout))?;
        socket.set_write_timeout(Some(self.write_timeout))?;
        Ok(true)
    }

    /// Whether a connection with the local address `local` came through the listener.
    fn is_listening_address(&self, local: Option<SocketAddr>) -> bool {
        local.is_some_and(|local| {
            local.port() == self.listening_on.port()
                && (self.listening_on.ip().is_unspecified() || local.ip() == self.listening_on.ip())
        })
    }
}

/// The two lowest descriptor numbers missing from `known` (sorted): where an accept puts
/// its socket and tiny_http's copy of it, if no number has been freed meanwhile.
fn lowest_unknown(known: &[RawFd]) -> [RawFd; 2] {
    let mut found = [0; 2];
    let mut taken = 0;
    let mut candidate: RawFd = 0;
    let mut numbers = known.iter().peekable();
    while taken < found.len() {
        while numbers.next_if(|&&number| number < candidate).is_some() {}
        if numbers.next_if_eq(&&candidate).is_none() {
            found[taken] = candidate;
            taken += 1;
        }
        candidate += 1;
    }
    found
}

/// The numbers of this process's open descriptors, sorted.
fn open_descriptors() -> io::Result<Vec<RawFd>> {
    let mut numbers = Vec::new();
    for entry in std::fs::read_dir("/dev/fd")? {
        if let Some(number) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) {
            numbers.push(number);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use socket2::SockRef;

    use super::*;

    #[test]
    fn the_lowest_unknown_numbers_fill_gaps_first() {
        assert_eq!(lowest_unknown(&[]), [0, 1]);
        assert_eq!(lowest_unknown(&[0, 1, 2]), [3, 4]);
        assert_eq!(lowest_unknown(&[0, 1, 3, 5]), [2, 4]);
        assert_eq!(lowest_unknown(&[1, 2, 3]), [0, 4]);
    }

    /// Each accepted socket gets the timeouts, also when its descriptors take the numbers
    /// of a connection closed since the last accept; a socket with timeouts of its own,
    /// the listener and the client side of the connection are left as they are.
    #[test]
    fn accepted_sockets_get_the_timeouts() {
        let (read, write) = (Duration::from_secs(7), Duration::from_secs(9));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut sockets = AcceptedSockets::new(listener.local_addr().unwrap(), read, write);
        assert!(
            sockets.descriptors.is_some(),
            "descriptors can be copied here"
        );
        let mut kept = Vec::new();
        for round in 0..3 {
            let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (accepted, _) = listener.accept().unwrap();
            let copy = accepted.try_clone().unwrap();
            assert_eq!(accepted.read_timeout().unwrap(), None);
            sockets.prepare_new();
            for socket in [&accepted, &copy] {
                assert_eq!(socket.read_timeout().unwrap(), Some(read), "round {round}");
                assert_eq!(
                    socket.write_timeout().unwrap(),
                    Some(write),
                    "round {round}"
                );
            }
            assert_eq!(
                client.read_timeout().unwrap(),
                None,
                "the client side is not ours"
            );
            if round == 1 {
                // The next accept takes these numbers again.
                drop((accepted, copy, client));
            } else {
                kept.push((accepted, copy, client));
            }
        }
        assert_eq!(SockRef::from(&listener).read_timeout().unwrap(), None);

        let own = Duration::from_secs(3);
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        accepted.set_read_timeout(Some(own)).unwrap();
        sockets.prepare_new();
        assert_eq!(accepted.read_timeout().unwrap(), Some(own), "left alone");
    }
}
