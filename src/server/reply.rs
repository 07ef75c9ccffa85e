//! Writing answers through tiny_http, and the access and error log.

use std::io::{self, Cursor};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use tiny_http::{Header, Headers, Request, Response, StatusCode};

use crate::exchange::{ContentType, Method, Reply};

/// Reply headers built once: tiny_http parses and validates each header it is given.
pub(super) struct ReplyHeaders {
    xml: Header,
    text: Header,
    open_metrics: Header,
    server: Header,
    /// The `Date` header and the second it was built for; tiny_http would format and
    /// validate a new one for every reply.
    date: Mutex<(u64, Header)>,
}

impl ReplyHeaders {
    pub(super) fn new() -> ReplyHeaders {
        let header = |name: &str, value: &str| {
            Header::from_bytes(name, value).expect("a valid constant header")
        };
        ReplyHeaders {
            xml: header("Content-Type", ContentType::Xml.as_str()),
            text: header("Content-Type", ContentType::Text.as_str()),
            open_metrics: header("Content-Type", ContentType::OpenMetrics.as_str()),
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

pub(super) fn method_of(request: &Request) -> Method {
    match request.method() {
        tiny_http::Method::Get => Method::Get,
        tiny_http::Method::Head => Method::Head,
        tiny_http::Method::Post => Method::Post,
        _ => Method::Other,
    }
}

/// Logs the request and the status of its `reply`: an error answer as a warning.
pub(super) fn log_reply(request: &Request, reply: &Reply) {
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
}

/// Writes `reply`.
///
/// # Errors
/// The answer could not be written: the client took no byte of it for
/// `WRITE_TIMEOUT_SECONDS`, or the socket failed. (tiny_http counts a client that has
/// closed as answered.)
pub(super) fn respond(headers: &ReplyHeaders, request: Request, reply: &Reply) -> io::Result<()> {
    let content_type = match reply.content_type {
        ContentType::Xml => &headers.xml,
        ContentType::Text => &headers.text,
        ContentType::OpenMetrics => &headers.open_metrics,
    };
    let mut list = Headers::with_capacity(4);
    list.push(headers.date());
    list.push(headers.server.clone());
    list.push(content_type.clone());
    if let Some(allow) = reply.allow {
        list.push(Header::from_bytes("Allow", allow).expect("Allow values are constants"));
    }
    let response = Response::new(
        StatusCode(reply.status),
        list,
        Cursor::new(reply.body.as_bytes()),
        Some(reply.body.len()),
        None,
    );
    request.respond(response)
}
