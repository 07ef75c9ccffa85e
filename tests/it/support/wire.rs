//! Raw TCP, for requests an HTTP client would not send or would send otherwise.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// What came back on one connection.
pub struct Exchange {
    pub text: String,
    /// The server closed the connection within the wait.
    pub closed: bool,
}

/// Writes `bytes` on a fresh connection, half-closes it if `half_close` (a client that has
/// nothing more to say), and returns what the server sends until it closes or `wait`
/// passes. A server may answer and close before it has read everything (a 413, say): a
/// failed write is no error then; the answer decides.
pub fn exchange(addr: SocketAddr, bytes: &[u8], half_close: bool, wait: Duration) -> Exchange {
    let mut stream = TcpStream::connect(addr).unwrap();
    let _ = stream.write_all(bytes);
    if half_close {
        let _ = stream.shutdown(Shutdown::Write);
    }
    read_until_closed(&mut stream, wait)
}

/// Everything the server sends on `stream` until it closes it or `wait` passes.
pub fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> Exchange {
    let deadline = Instant::now() + wait;
    let mut received = Vec::new();
    let mut buffer = [0u8; 64 * 1024];
    let closed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buffer) {
            Ok(0) => break true,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false;
            }
            // A reset after the answer: the server closed with our unread bytes pending.
            Err(_) => break true,
        }
    };
    Exchange {
        text: String::from_utf8_lossy(&received).into_owned(),
        closed,
    }
}

/// The status of every response in `text`, in order, any HTTP version (tiny_http answers
/// an `HTTP/0.9` request with an `HTTP/0.9` status line). Responses follow each other
/// without a separator, so this looks for `HTTP/d.d ddd ` anywhere; no body in these tests
/// contains one.
pub fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/")
        .filter_map(|(at, _)| {
            let line = text.get(at..at + 13)?.as_bytes();
            let shaped = line[5].is_ascii_digit()
                && line[6] == b'.'
                && line[7].is_ascii_digit()
                && line[8] == b' '
                && line[12] == b' ';
            shaped.then(|| text[at + 9..at + 12].parse().ok())?
        })
        .collect()
}
