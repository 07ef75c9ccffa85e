//! The words a request and its reply are said in, shared by the server and the app: what
//! the app sees of a request ([`Incoming`]), what it answers ([`Reply`]), and the accepted
//! event the server prints ([`Accepted`]). Plain data, no I/O; every other module may use
//! it, and it uses nothing above the event types.

use std::fmt;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::calls::CallSummary;
use crate::event::CallEvent;

/// The request methods the routes tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    /// Any other method; only ever answered with 405 or 404.
    Other,
}

/// What the app sees of a request.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub method: Method,
    /// The request path without the query string, as sent (not percent-decoded).
    pub path: &'a str,
    /// The query string without `?`, if any.
    pub query: Option<&'a str>,
    /// The `Host` header, and `X-Forwarded-Host` (set by a proxy in front), if any.
    pub host: Option<&'a str>,
    pub forwarded_host: Option<&'a str>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<&'a str>,
    /// The `X-Sipgate-Signature` header, if any.
    pub signature: Option<&'a str>,
    /// The raw body, exactly as received.
    pub body: &'a [u8],
    /// When the request arrived: the monotonic clock for durations, the wall clock for
    /// the event line.
    pub received: Instant,
    pub received_utc: SystemTime,
}

/// An accepted event, with what the server knows around it: printed as the event line.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub event: CallEvent,
    pub received_utc: SystemTime,
    /// For a hangup of a call whose newCall this server saw: how long it rang and talked.
    pub summary: Option<CallSummary>,
    /// What the call rules made of it; `None` without rules.
    pub answered_by: Option<AnsweredBy>,
}

/// How the call rules answered an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnsweredBy {
    /// A newCall: the rule that fitted, or `None` when none did.
    Rule(Option<RuleRef>),
    /// A menu's digits: the option chosen, `None` for `otherwise`.
    Menu {
        menu: String,
        option: Option<String>,
    },
    /// Digits for a menu the rules no longer have (a reload removed it); the call goes on
    /// as the account routes it.
    UnknownMenu(String),
}

/// The media types of our replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    Xml,
    Text,
    /// The metrics page: the OpenMetrics text format, which Prometheus reads.
    OpenMetrics,
}

impl ContentType {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Xml => "application/xml; charset=UTF-8",
            ContentType::Text => "text/plain; charset=UTF-8",
            ContentType::OpenMetrics => {
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
            }
        }
    }
}

/// A reply, and the event it accepted, for the server to print before it answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub content_type: ContentType,
    /// Shared, so the newCall answer built at start is sent without a copy per request.
    pub body: Arc<str>,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
    /// Why an error answer refused the request, as the metrics count it (`ok` below 400).
    pub reason: &'static str,
    /// The accepted event; `None` for everything else.
    pub accepted: Option<Accepted>,
}

impl Reply {
    /// 200 with an XML document.
    pub fn xml(body: impl Into<Arc<str>>) -> Reply {
        Reply {
            status: 200,
            content_type: ContentType::Xml,
            body: body.into(),
            allow: None,
            reason: "ok",
            accepted: None,
        }
    }

    /// A short plain-text reply; for errors, `message` says what is wrong.
    pub fn text(status: u16, message: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: ContentType::Text,
            body: Arc::from(message.into()),
            allow: None,
            reason: reason_of(status),
            accepted: None,
        }
    }

    /// An error answer whose reason says more than its status.
    pub fn refused(status: u16, reason: &'static str, message: impl Into<String>) -> Reply {
        Reply {
            reason,
            ..Reply::text(status, message)
        }
    }

    /// 404 for a path no route serves.
    pub fn not_found(path: &str) -> Reply {
        Reply::text(404, format!("no route for {path:?}"))
    }

    /// 405 naming the methods the path does take.
    pub fn method_not_allowed(allow: &'static str) -> Reply {
        Reply {
            allow: Some(allow),
            ..Reply::text(405, format!("method not allowed; this path takes {allow}"))
        }
    }

    /// 500 for a handler that panicked.
    pub fn internal_error() -> Reply {
        Reply::text(500, "internal error; the server log has the details")
    }

    /// This reply, carrying `accepted` for the server to print.
    #[must_use]
    pub fn with_accepted(self, accepted: Accepted) -> Reply {
        Reply {
            accepted: Some(accepted),
            ..self
        }
    }
}

/// The metrics' name for an error status; `ok` below 400.
fn reason_of(status: u16) -> &'static str {
    match status {
        0..=399 => "ok",
        400 => "bad_request",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "timeout",
        411 => "length_required",
        413 => "too_large",
        415 => "unsupported_media_type",
        500 => "internal_error",
        503 => "unavailable",
        _ => "other",
    }
}

/// Which call rule: its place in the file (1 for the first) and its `name`, if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    pub number: usize,
    pub name: Option<String>,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name:?}"),
            None => write!(f, "rule {}", self.number),
        }
    }
}
