//! Reading a request body within `MAX_BODY_BYTES`.
//!
//! tiny_http has already read bodies of up to 1 KiB (every sipgate event) with the head;
//! larger ones, chunked ones and those after `Expect: 100-continue` are read here, from
//! the socket, on the connection's thread.

use std::fmt;
use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tiny_http::Request;

use super::Shared;

/// tiny_http reads bodies up to this size (without `Expect`) with the head.
const BUFFERED_BODY_LIMIT: usize = 1024;

/// At most this many bodies are read from the socket at once; more get 503, so that slow
/// large bodies on many connections cannot hold `MAX_BODY_BYTES` each without bound.
const LARGE_BODY_SLOTS: usize = 64;

/// A body buffer starts at most this large and grows as bytes arrive, so a declared
/// length reserves no memory before the bytes come.
const FIRST_CAPACITY: usize = 16 * 1024;

/// One of the [`LARGE_BODY_SLOTS`], held while a body is read from the socket.
pub(super) struct LargeBody<'a>(&'a AtomicUsize);

impl<'a> LargeBody<'a> {
    /// `Ok(None)` when the body is already in memory, `Ok(Some(slot))` when it is to be
    /// read, and `Err` when every slot is taken (answer 503).
    pub(super) fn admit(
        request: &Request,
        has_transfer_encoding: bool,
        shared: &'a Shared,
    ) -> Result<Option<LargeBody<'a>>, AllTaken> {
        let buffered = !has_transfer_encoding
            && request.headers().get("Expect").is_none()
            && request
                .body_length()
                .is_none_or(|length| length <= BUFFERED_BODY_LIMIT);
        if buffered {
            return Ok(None);
        }
        let slots = &shared.large_bodies;
        slots
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < LARGE_BODY_SLOTS).then_some(n + 1)
            })
            .map(|_| Some(LargeBody(slots)))
            .map_err(|_| AllTaken)
    }
}

/// Every one of the [`LARGE_BODY_SLOTS`] is taken.
#[derive(Debug)]
pub(super) struct AllTaken;

impl Drop for LargeBody<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Why a body was not read: answered with [`BodyError::status`] and the error's text.
#[derive(Debug)]
pub(super) enum BodyError {
    /// `Content-Length` is not a number.
    InvalidLength(String),
    /// Over `MAX_BODY_BYTES`, as declared or as read.
    TooLarge { declared: Option<u64>, max: usize },
    /// The connection ended before `Content-Length` bytes arrived.
    Truncated { received: usize, declared: u64 },
    /// No byte of the body came for `READ_TIMEOUT_SECONDS`.
    Stalled,
    /// The body was still arriving `READ_TIMEOUT_SECONDS` after its head: trickled a few
    /// bytes at a time, each just inside the read timeout.
    TooSlow { limit: Duration },
    /// A chunked body: one cut short inside a chunk reads as complete, so it cannot be
    /// trusted to be whole. sipgate sends `Content-Length`.
    Chunked,
    /// The socket failed, or a chunked body was malformed.
    Read(io::Error),
}

impl BodyError {
    pub(super) fn status(&self) -> u16 {
        match self {
            BodyError::TooLarge { .. } => 413,
            BodyError::Chunked => 411,
            BodyError::Stalled | BodyError::TooSlow { .. } => 408,
            BodyError::InvalidLength(_) | BodyError::Truncated { .. } | BodyError::Read(_) => 400,
        }
    }

    /// Whether the connection's next request starts where tiny_http will look for it: the
    /// body was read to its end (chunked), or tiny_http drains it by its declared length.
    /// Otherwise the connection must end after the answer.
    pub(super) fn leaves_next_request_intact(&self) -> bool {
        matches!(
            self,
            BodyError::Chunked
                | BodyError::TooLarge {
                    declared: Some(_),
                    ..
                }
        )
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
            BodyError::Stalled => f.write_str(
                "the body stopped arriving: no byte came for READ_TIMEOUT_SECONDS; send it whole and at once",
            ),
            BodyError::TooSlow { limit } => write!(
                f,
                "the body was not complete {} s after its head (READ_TIMEOUT_SECONDS); send it whole and at once",
                limit.as_secs_f64()
            ),
            BodyError::Chunked => f.write_str(
                "send the body with a Content-Length header; chunked request bodies are refused",
            ),
            BodyError::Read(error) => write!(f, "could not read the request body: {error}"),
        }
    }
}

/// Reads the whole body, up to `max` bytes, within `time_limit` of being called.
pub(super) fn read(
    request: &mut Request,
    max: usize,
    has_transfer_encoding: bool,
    time_limit: Duration,
) -> Result<Vec<u8>, BodyError> {
    let declared = declared_length(request.headers().get("Content-Length").map(|v| v.as_str()))?;
    if declared.is_some_and(|length| length > max as u64) {
        return Err(BodyError::TooLarge { declared, max });
    }
    let capacity = declared.map_or(0, |length| (length as usize).min(FIRST_CAPACITY));
    let mut body = Vec::with_capacity(capacity);
    let mut reader = Deadline::new(request.as_reader(), time_limit);
    let read = (&mut reader).take(max as u64 + 1).read_to_end(&mut body);
    if let Err(error) = read {
        return Err(match error.kind() {
            _ if reader.expired => BodyError::TooSlow { limit: time_limit },
            // The socket's read timeout, as Linux reports it.
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => BodyError::Stalled,
            _ => BodyError::Read(error),
        });
    }
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

/// A reader that fails once its time is up. The socket's read timeout only bounds the wait
/// for each read, and a client that sends a byte just inside it could keep a body, and
/// the connection's thread, going for as long as it liked; this bounds the whole body
/// (to the limit, plus at most one read timeout for the read under way).
struct Deadline<R> {
    inner: R,
    until: Instant,
    expired: bool,
}

impl<R> Deadline<R> {
    fn new(inner: R, time_limit: Duration) -> Deadline<R> {
        Deadline {
            inner,
            until: Instant::now() + time_limit,
            expired: false,
        }
    }
}

impl<R: Read> Read for Deadline<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if Instant::now() >= self.until {
            self.expired = true;
            return Err(io::Error::from(io::ErrorKind::TimedOut));
        }
        self.inner.read(buf)
    }
}

/// tiny_http takes an unparsable `Content-Length` for "no body"; refuse it instead of
/// guessing where the body ends.
fn declared_length(header: Option<&str>) -> Result<Option<u64>, BodyError> {
    header
        .map(|value| {
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| BodyError::InvalidLength(value.to_owned()))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_is_a_number_or_refused() {
        assert_eq!(declared_length(None).unwrap(), None);
        assert_eq!(declared_length(Some(" 42 ")).unwrap(), Some(42));
        for bad in ["", "abc", "-1", "18446744073709551616", "1 2"] {
            let error = declared_length(Some(bad)).unwrap_err();
            assert_eq!(error.status(), 400, "{bad:?}");
            assert!(error.to_string().contains(&format!("{bad:?}")), "{error}");
        }
    }

    #[test]
    fn only_a_body_read_to_its_end_or_drained_keeps_the_connection() {
        let declared = BodyError::TooLarge {
            declared: Some(10),
            max: 5,
        };
        let undeclared = BodyError::TooLarge {
            declared: None,
            max: 5,
        };
        assert!(declared.leaves_next_request_intact());
        assert!(BodyError::Chunked.leaves_next_request_intact());
        assert!(!undeclared.leaves_next_request_intact());
        assert!(!BodyError::Stalled.leaves_next_request_intact());
        assert!(
            !BodyError::Truncated {
                received: 1,
                declared: 2
            }
            .leaves_next_request_intact()
        );
        assert_eq!(BodyError::Stalled.status(), 408);
        let too_slow = BodyError::TooSlow {
            limit: Duration::from_secs(10),
        };
        assert!(!too_slow.leaves_next_request_intact());
        assert_eq!(too_slow.status(), 408);
        assert!(too_slow.to_string().contains("10 s"), "{too_slow}");
    }

    /// Bytes that keep coming, as a trickle does.
    struct Endless;

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            std::thread::sleep(Duration::from_millis(5));
            buf[0] = b'x';
            Ok(1)
        }
    }

    #[test]
    fn a_deadline_ends_a_reader_that_never_stops() {
        let started = Instant::now();
        let mut reader = Deadline::new(Endless, Duration::from_millis(50));
        let error = reader.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(reader.expired);
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(1));

        let mut in_time = Deadline::new(&b"whole"[..], Duration::from_secs(60));
        let mut body = Vec::new();
        in_time.read_to_end(&mut body).unwrap();
        assert_eq!((body.as_slice(), in_time.expired), (&b"whole"[..], false));
    }
}
