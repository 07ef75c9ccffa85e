//! Raw TCP, for requests an HTTP client would not send or would send otherwise.

use std::fmt::Display;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::FORM;

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

/// A POST to write on a raw connection: Host `x`, the form Content-Type sipgate sends, and
/// a Content-Length that matches the body unless the test declares another.
#[derive(Clone)]
pub struct RawPost {
    path: String,
    host: String,
    headers: Vec<(String, String)>,
    length: Option<String>,
    chunk_size: Option<usize>,
    body: Vec<u8>,
}

pub fn raw_post(path: &str) -> RawPost {
    RawPost {
        path: path.to_owned(),
        host: "x".to_owned(),
        headers: Vec::new(),
        length: None,
        chunk_size: None,
        body: Vec::new(),
    }
}

impl RawPost {
    pub fn host(self, host: &str) -> RawPost {
        RawPost {
            host: host.to_owned(),
            ..self
        }
    }

    /// Adds a header after the Content-Type; a name may come more than once.
    pub fn header(mut self, name: &str, value: impl Display) -> RawPost {
        self.headers.push((name.to_owned(), value.to_string()));
        self
    }

    pub fn close(self) -> RawPost {
        self.header("Connection", "close")
    }

    /// Declares `length` as the Content-Length whatever the body, to send less than it
    /// promises (or a length no body could have).
    pub fn length(self, length: impl Display) -> RawPost {
        RawPost {
            length: Some(length.to_string()),
            ..self
        }
    }

    /// Sends the body in chunks of `size` bytes, with `Transfer-Encoding: chunked` in place
    /// of the Content-Length.
    pub fn chunked(self, size: usize) -> RawPost {
        RawPost {
            chunk_size: Some(size),
            ..self
        }
    }

    pub fn body(self, body: impl AsRef<[u8]>) -> RawPost {
        RawPost {
            body: body.as_ref().to_vec(),
            ..self
        }
    }

    /// The request line and the headers, up to and including the empty line.
    pub fn head(&self) -> Vec<u8> {
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: {FORM}\r\n",
            self.path, self.host
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        match (&self.length, self.chunk_size) {
            (_, Some(_)) => head.push_str("Transfer-Encoding: chunked\r\n"),
            (Some(length), None) => head.push_str(&format!("Content-Length: {length}\r\n")),
            (None, None) => head.push_str(&format!("Content-Length: {}\r\n", self.body.len())),
        }
        head.push_str("\r\n");
        head.into_bytes()
    }

    /// The whole request: the head, then the body as it goes on the wire.
    pub fn bytes(&self) -> Vec<u8> {
        let mut bytes = self.head();
        match self.chunk_size {
            Some(size) => {
                for chunk in self.body.chunks(size) {
                    bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    bytes.extend_from_slice(chunk);
                    bytes.extend_from_slice(b"\r\n");
                }
                bytes.extend_from_slice(b"0\r\n\r\n");
            }
            None => bytes.extend_from_slice(&self.body),
        }
        bytes
    }
}

/// A client trickling a byte every 200 ms on a copy of a connection, until the server
/// closes it or the `Trickle` is dropped.
pub struct Trickle {
    stop: Arc<AtomicBool>,
    writer: Option<thread::JoinHandle<()>>,
}

impl Trickle {
    pub fn on(stream: &TcpStream) -> Trickle {
        let mut stream = stream.try_clone().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_writing = Arc::clone(&stop);
        let writer = thread::spawn(move || {
            while !stop_writing.load(Ordering::SeqCst) && stream.write_all(b"p").is_ok() {
                thread::sleep(Duration::from_millis(200));
            }
        });
        Trickle {
            stop,
            writer: Some(writer),
        }
    }
}

impl Drop for Trickle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}
