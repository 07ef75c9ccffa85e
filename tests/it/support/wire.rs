//! Raw TCP, for requests an HTTP client would not send or would send otherwise.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Writes `bytes` on a fresh connection, half-closes it, and returns everything the
/// server sends until it closes or `wait` passes. A server may answer and close before it
/// has read everything (a 413, say): a failed write is no error then; the answer decides.
pub fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    read_until_closed(&mut stream, wait)
}

pub fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> String {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received);
    String::from_utf8_lossy(&received).into_owned()
}

/// The status codes of every response in `text`, in order.
pub fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.")
        .filter_map(|(at, _)| text[at..].split(' ').nth(1)?.parse().ok())
        .collect()
}
