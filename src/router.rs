//! The routing table and the handlers: a request in, a reply out, no I/O.
//!
//! [`App::route`] is the one place that says which path does what. Handlers return a
//! [`Reply`]; the server writes it and prints the accepted event.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use jiff::tz::TimeZone;

use crate::answer::{Response, Url};
use crate::calls::{CallSummary, CallTracker};
use crate::config::{Config, WebhookUrl};
use crate::event::{self, CallEvent, EventKind};
use crate::metrics::{Metrics, Sampled};
use crate::rules::{RuleRef, Rules, RulesError};
use crate::signature::{SignatureError, Verifier};
use crate::warnings::HostCheck;

/// The routes, relative to `WEBHOOK_URL`'s path prefix.
pub mod paths {
    pub const NEW_CALL: &str = "/new-call";
    pub const ON_ANSWER: &str = "/on-answer";
    pub const ON_HANGUP: &str = "/on-hangup";
    pub const ON_DTMF: &str = "/on-dtmf";
    pub const HEALTH: &str = "/health";
    pub const METRICS: &str = "/metrics";
}

/// The request methods the routes tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    /// Any other method; only ever answered with 405 or 404.
    Other,
}

/// What the router sees of a request.
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
    /// The metrics page.
    OpenMetrics,
}

impl ContentType {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Xml => "application/xml; charset=UTF-8",
            ContentType::Text => "text/plain; charset=UTF-8",
            ContentType::OpenMetrics => crate::metrics::CONTENT_TYPE,
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

    fn with_accepted(self, accepted: Accepted) -> Reply {
        Reply {
            accepted: Some(accepted),
            ..self
        }
    }
}

/// The application: routes and handlers with everything they need, built once at start.
pub struct App {
    path_prefix: String,
    /// `None` when verification is skipped.
    verifier: Option<Verifier>,
    /// The answer to every newCall without rules; it depends only on the configuration.
    new_call_xml: Arc<str>,
    calls: Arc<CallTracker>,
    webhook: WebhookUrl,
    rules: Option<RulesSlot>,
    timezone: TimeZone,
    metrics: Option<Arc<Metrics>>,
    hosts: HostCheck,
}

/// The rules in use, replaced whole by a reload, so a request sees the old rules or the
/// new ones, never a mix.
struct RulesSlot {
    path: PathBuf,
    current: RwLock<Arc<Rules>>,
}

impl App {
    /// Builds the app; `verifier` is `None` to accept unsigned requests.
    pub fn new(config: &Config, verifier: Option<Verifier>) -> App {
        let url = &config.webhook_url;
        let doc = subscription(url);
        App {
            path_prefix: url.path_prefix().to_owned(),
            verifier,
            new_call_xml: Arc::from(doc.to_xml()),
            calls: Arc::new(CallTracker::new(
                Duration::from_secs(config.call_ttl_seconds),
                config.max_tracked_calls,
            )),
            webhook: url.clone(),
            rules: None,
            timezone: config.timezone.clone(),
            metrics: None,
            hosts: HostCheck::new(url),
        }
    }

    /// Serves `GET /metrics` from `metrics`, with the calls this app tracks.
    #[must_use]
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> App {
        let calls = Arc::clone(&self.calls);
        metrics.register_collector(Sampled::gauge(
            "sipgateio_calls_tracked",
            "Calls whose start is remembered for the ring and talk times of their hangup",
            move || calls.len() as u64,
        ));
        let calls = Arc::clone(&self.calls);
        metrics.register_collector(Sampled::counter(
            "sipgateio_calls_without_followup",
            "newCalls that got no answer or hangup event within CALL_TTL_SECONDS: sipgate could not reach the URLs built from WEBHOOK_URL",
            move || calls.unfollowed_total(),
        ));
        App {
            metrics: Some(metrics),
            ..self
        }
    }

    /// Forgets calls past `CALL_TTL_SECONDS`, and logs those that never had an answer or a
    /// hangup event. Called now and then; `now` is the monotonic clock.
    pub fn sweep_calls(&self, now: Instant) {
        let unfollowed = self.calls.take_unfollowed(now);
        if unfollowed.call_ids.is_empty() {
            return;
        }
        let ids: Vec<&str> = unfollowed.call_ids.iter().map(|id| &**id).collect();
        let more = match unfollowed.more {
            0 => String::new(),
            more => format!(" and {more} more"),
        };
        log::info!(
            "no answer or hangup event came within CALL_TTL_SECONDS of the newCall of call {}{more}; if no call ever gets one, sipgate cannot reach {}",
            ids.join(", "),
            self.webhook.callback(paths::ON_HANGUP)
        );
    }

    /// Answers newCalls by `rules`, read from `path` (which a reload reads again).
    #[must_use]
    pub fn with_rules(self, path: PathBuf, rules: Rules) -> App {
        App {
            rules: Some(RulesSlot {
                path,
                current: RwLock::new(Arc::new(rules)),
            }),
            ..self
        }
    }

    /// The rules in use, if there is a rules file.
    pub fn rules(&self) -> Option<Arc<Rules>> {
        let slot = self.rules.as_ref()?;
        Some(Arc::clone(
            &slot.current.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }

    /// Reads the rules file again and, if it is good, uses it from the next request on.
    /// `None` without a rules file; otherwise the new rules' summary, or why the file was
    /// refused (the rules in use stay).
    pub fn reload_rules(&self) -> Option<Result<String, RulesError>> {
        let slot = self.rules.as_ref()?;
        Some(Rules::load(&slot.path, &self.webhook).map(|rules| {
            let summary = rules.summary();
            *slot.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(rules);
            summary
        }))
    }

    /// Answers one request.
    pub fn route(&self, request: &Incoming<'_>) -> Reply {
        let Some(path) = request.path.strip_prefix(self.path_prefix.as_str()) else {
            return Reply::not_found(request.path);
        };
        use paths::*;
        match (request.method, path) {
            (Method::Post, NEW_CALL) => self.on_event(request, EventKind::NewCall),
            (Method::Post, ON_ANSWER) => self.on_event(request, EventKind::Answer),
            (Method::Post, ON_HANGUP) => self.on_event(request, EventKind::Hangup),
            (Method::Post, ON_DTMF) => self.on_event(request, EventKind::Dtmf),
            (_, NEW_CALL | ON_ANSWER | ON_HANGUP | ON_DTMF) => Reply::method_not_allowed("POST"),
            (Method::Get | Method::Head, HEALTH) => Reply::text(200, "ok"),
            (_, HEALTH) => Reply::method_not_allowed("GET, HEAD"),
            (method, METRICS) => match (&self.metrics, method) {
                (Some(metrics), Method::Get | Method::Head) => metrics_page(metrics),
                (Some(_), _) => Reply::method_not_allowed("GET, HEAD"),
                (None, _) => Reply::not_found(request.path),
            },
            _ => Reply::not_found(request.path),
        }
    }

    fn on_event(&self, request: &Incoming<'_>, expected: EventKind) -> Reply {
        if let Some(verifier) = &self.verifier {
            if let Err(problem) = verifier.verify(request.body, request.signature) {
                let reason = match problem {
                    SignatureError::Missing => "signature_missing",
                    SignatureError::Undecodable | SignatureError::Mismatch => "signature_invalid",
                };
                return Reply::refused(403, reason, format!("forbidden: {problem}"));
            }
        }
        if !is_form_urlencoded(request.content_type) {
            return Reply::text(
                415,
                format!(
                    "unsupported Content-Type {:?}; sipgate sends application/x-www-form-urlencoded",
                    request.content_type.unwrap_or("(none)")
                ),
            );
        }
        let event = match event::parse(expected, request.body) {
            Ok(event) => event,
            Err(problem) => return Reply::text(400, problem.to_string()),
        };
        if let CallEvent::NewCall(_) = &event {
            if let Some(warning) = self.hosts.check(request.forwarded_host.or(request.host)) {
                log::warn!("{warning}");
            }
        }
        // The rules are looked up only for the events they answer.
        let (reply, answered_by) = match &event {
            CallEvent::NewCall(call) => match self.rules() {
                Some(rules) => {
                    let decision = rules.decide(call, request.received_utc, &self.timezone);
                    (
                        Reply::xml(decision.xml),
                        Some(AnsweredBy::Rule(decision.rule)),
                    )
                }
                None => (Reply::xml(Arc::clone(&self.new_call_xml)), None),
            },
            CallEvent::Dtmf(dtmf) => match (self.rules(), menu_of(request.query)) {
                (Some(rules), Some(menu)) => match rules.choose(&menu, dtmf.digits.as_deref()) {
                    Some(choice) => (
                        Reply::xml(choice.xml),
                        Some(AnsweredBy::Menu {
                            menu,
                            option: choice.option,
                        }),
                    ),
                    None => (
                        Reply::xml(Arc::clone(&self.new_call_xml)),
                        Some(AnsweredBy::UnknownMenu(menu)),
                    ),
                },
                _ => (Reply::text(200, ""), None),
            },
            CallEvent::Answer(_) | CallEvent::Hangup(_) => (Reply::text(200, ""), None),
        };
        let summary = self.calls.observe(&event, request.received);
        reply.with_accepted(Accepted {
            event,
            received_utc: request.received_utc,
            summary,
            answered_by,
        })
    }
}

/// The answer that only subscribes to the call's answer and hangup events, at
/// `WEBHOOK_URL`'s routes: every newCall's answer without rules, and the start of every
/// answer with them.
pub fn subscription(webhook: &WebhookUrl) -> Response {
    let url = |route| Url::new(&webhook.callback(route)).expect("WEBHOOK_URL is an absolute URL");
    Response::new()
        .on_answer(url(paths::ON_ANSWER))
        .on_hangup(url(paths::ON_HANGUP))
}

/// The metrics page.
fn metrics_page(metrics: &Metrics) -> Reply {
    Reply {
        content_type: ContentType::OpenMetrics,
        ..Reply::text(200, metrics.encode())
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

/// The `menu` parameter of a query: the menu whose `<Gather>` posted the digits.
fn menu_of(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(name, _)| name == "menu")
        .map(|(_, menu)| menu.into_owned())
}

/// `application/x-www-form-urlencoded`, in any case, with or without parameters.
fn is_form_urlencoded(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|value| {
        let media_type = value.split(';').next().unwrap_or("").trim();
        media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WebhookUrl;

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded; charset=UTF-8");

    fn app(url: &str) -> App {
        let config = Config {
            webhook_url: WebhookUrl::parse(url).unwrap(),
            listen_addr: "127.0.0.1:0".parse().unwrap(),
            skip_signature_verification: true,
            public_key_file: None,
            read_timeout: std::time::Duration::from_secs(10),
            write_timeout: std::time::Duration::from_secs(10),
            max_connections: None,
            max_body_bytes: 65536,
            event_format: crate::output::EventFormat::Text,
            call_ttl_seconds: 3600,
            max_tracked_calls: 100,
            call_rules_file: None,
            timezone: TimeZone::UTC,
            metrics: false,
            retired_settings: Vec::new(),
        };
        App::new(&config, None)
    }

    fn request<'a>(method: Method, path: &'a str, body: &'a [u8]) -> Incoming<'a> {
        Incoming {
            method,
            path,
            query: None,
            host: None,
            forwarded_host: None,
            content_type: FORM,
            signature: None,
            body,
            received: Instant::now(),
            received_utc: SystemTime::now(),
        }
    }

    #[test]
    fn routing_table() {
        let app = app("https://h.example/hooks/abc?t=1");
        let body = b"event=newCall&from=1&to=2&callId=x";
        let cases: &[(Method, &str, &[u8], u16)] = &[
            (Method::Post, "/hooks/abc/new-call", body, 200),
            (Method::Post, "/hooks/abc/on-answer", b"callId=x", 200),
            (Method::Post, "/hooks/abc/on-hangup", b"callId=x", 200),
            (Method::Post, "/hooks/abc/on-dtmf", b"callId=x", 200),
            (Method::Get, "/hooks/abc/health", b"", 200),
            (Method::Head, "/hooks/abc/health", b"", 200),
            (Method::Get, "/hooks/abc/new-call", b"", 405),
            (Method::Other, "/hooks/abc/on-hangup", b"", 405),
            (Method::Post, "/hooks/abc/health", b"", 405),
            (Method::Post, "/new-call", body, 404),
            (Method::Post, "/hooks/abcd/new-call", body, 404),
            (Method::Post, "/hooks/abc/new-call/", body, 404),
            (Method::Get, "/", b"", 404),
        ];
        for &(method, path, body, status) in cases {
            assert_eq!(
                app.route(&request(method, path, body)).status,
                status,
                "{method:?} {path}"
            );
        }
        let reply = app.route(&request(Method::Get, "/hooks/abc/new-call", b""));
        assert_eq!(reply.allow, Some("POST"));
    }

    #[test]
    fn new_call_answers_the_subscription_xml_and_reports_the_event() {
        let app = app("https://h.example/hooks/?t=1&u=2");
        let reply = app.route(&request(
            Method::Post,
            "/hooks/new-call",
            b"event=newCall&from=1&to=2&callId=x",
        ));
        assert_eq!(reply.status, 200);
        assert_eq!(reply.content_type, ContentType::Xml);
        assert_eq!(
            &*reply.body,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response onAnswer=\"https://h.example/hooks/on-answer?t=1&amp;u=2\" onHangup=\"https://h.example/hooks/on-hangup?t=1&amp;u=2\" />\n"
        );
        assert_eq!(reply.accepted.unwrap().event.call_id(), "x");
    }

    #[test]
    fn hangup_after_answer_carries_the_durations() {
        let app = app("http://localhost:8080");
        let t0 = Instant::now();
        let at = |seconds: u64, path: &'static str, body: &'static [u8]| Incoming {
            received: t0 + Duration::from_secs(seconds),
            ..request(Method::Post, path, body)
        };
        app.route(&at(0, "/new-call", b"from=1&to=2&callId=c"));
        app.route(&at(3, "/on-answer", b"callId=c"));
        let reply = app.route(&at(10, "/on-hangup", b"callId=c&cause=normalClearing"));
        let summary = reply.accepted.unwrap().summary.unwrap();
        assert_eq!(summary.rang, Duration::from_secs(3));
        assert_eq!(summary.talked, Some(Duration::from_secs(7)));
        let unknown = app.route(&at(11, "/on-hangup", b"callId=other"));
        assert_eq!(unknown.accepted.unwrap().summary, None);
    }

    #[test]
    fn content_type_must_be_form_urlencoded() {
        let app = app("http://localhost:8080");
        for (content_type, status) in [
            (Some("application/x-www-form-urlencoded"), 200),
            (
                Some("Application/X-WWW-Form-Urlencoded ; charset=utf-8"),
                200,
            ),
            (Some("application/json"), 415),
            (Some("text/plain"), 415),
            (None, 415),
        ] {
            let incoming = Incoming {
                content_type,
                ..request(Method::Post, "/on-hangup", b"callId=x")
            };
            let reply = app.route(&incoming);
            assert_eq!(reply.status, status, "{content_type:?}");
            assert_eq!(reply.accepted.is_some(), status == 200);
        }
    }

    #[test]
    fn bad_events_get_400_without_an_event() {
        let app = app("http://localhost:8080");
        let reply = app.route(&request(
            Method::Post,
            "/on-answer",
            b"event=hangup&callId=x",
        ));
        assert_eq!(reply.status, 400);
        assert!(reply.body.contains("hangup") && reply.body.contains("answer"));
        assert_eq!(reply.accepted, None);
    }
}
