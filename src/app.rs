//! The application: the routing table and the call logic, a request in, a reply out. Its
//! one wait is for the call journal (`CALL_LOG_FILE`), whose writer thread commits each
//! accepted event before the reply goes out. [`App::from_config`] builds it from the
//! settings, for the binary and the tests alike.
//!
//! [`App::route`] is the one place that says which path does what. Handlers return a
//! [`Reply`]; the server writes it and prints the accepted event.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use jiff::tz::TimeZone;

use crate::calls::CallTracker;
use crate::config::{Config, WebhookUrl};
use crate::event::{self, CallEvent, EventKind};
use crate::exchange::{Accepted, AnsweredBy, ContentType, Incoming, Method, Reply};
use crate::journal::{Entry, Journal, JournalError};
use crate::metrics::{Metrics, Sampled};
use crate::routes::{self, subscription};
use crate::rules::{Rules, RulesError};
use crate::signature::{KeyError, SignatureError, Verifier};
use crate::warnings::HostCheck;

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
    /// The call journal, with `CALL_LOG_FILE`.
    journal: Option<Journal>,
    /// This process among others: `GET /health?instance` answers `ok ID`, so `doctor` can
    /// tell that the public URL reaches this very server.
    instance: String,
}

/// The rules in use, replaced whole by a reload, so a request sees the old rules or the
/// new ones, never a mix.
struct RulesSlot {
    path: PathBuf,
    current: RwLock<Arc<Rules>>,
}

/// The settings name a key or a rules file that cannot be used.
#[derive(Debug)]
pub enum AppError {
    Key(KeyError),
    Rules(RulesError),
    Journal(JournalError),
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Key(error) => error.fmt(f),
            AppError::Rules(error) => error.fmt(f),
            AppError::Journal(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for AppError {}

impl App {
    /// The app the settings describe: the signature check with sipgate's key, or the one
    /// in `SIPGATE_PUBLIC_KEY_FILE` (none with `SKIP_SIGNATURE_VERIFICATION`); the call
    /// rules of `CALL_RULES_FILE`; metrics with `METRICS=true`; the call journal of
    /// `CALL_LOG_FILE`. The binary and the tests'
    /// server both build it here, so a test server runs as the binary does.
    ///
    /// # Errors
    /// The key file, the rules file or the journal file cannot be used.
    pub fn from_config(config: &Config) -> Result<App, AppError> {
        let verifier = if config.skip_signature_verification {
            log::warn!(
                "SKIP_SIGNATURE_VERIFICATION is on: anyone who finds the URL can send fake call events; use this for local testing only"
            );
            None
        } else if let Some(path) = &config.public_key_file {
            Some(Verifier::from_pem_file(path).map_err(AppError::Key)?)
        } else {
            Some(Verifier::sipgate())
        };
        let mut app = App::new(config, verifier);
        if let Some(path) = &config.call_rules_file {
            let rules = Rules::load(path, &config.webhook_url).map_err(AppError::Rules)?;
            log::info!(
                "answering calls by {} in {} (SIGHUP reloads it)",
                rules.summary(),
                path.display()
            );
            app = app.with_rules(path.clone(), rules);
        }
        if config.metrics {
            app = app.with_metrics(Arc::new(Metrics::new(SystemTime::now())));
            log::info!(
                "serving metrics at {}; keep that path off the public side (docs/operations.md)",
                config.webhook_url.callback(routes::METRICS)
            );
        }
        if let Some(call_log) = &config.call_log {
            let metrics = app.metrics.as_ref().map(|metrics| metrics.journal());
            let journal = Journal::open(call_log, metrics).map_err(AppError::Journal)?;
            log::info!(
                "committing every event to the call journal {} before answering it",
                journal.path().display()
            );
            app.journal = Some(journal);
        }
        Ok(app)
    }

    /// Writes the events still queued for the call journal and closes it, waiting
    /// `grace` at most; for the end of the process.
    pub fn close_journal(&self, grace: Duration) {
        if let Some(journal) = &self.journal {
            journal.close(grace);
        }
    }

    /// Where the app counts, with `METRICS=true`; the server adds its own counters there.
    pub fn metrics(&self) -> Option<Arc<Metrics>> {
        self.metrics.clone()
    }

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
            journal: None,
            instance: instance_id(),
        }
    }

    /// Serves `GET /metrics` from `metrics`, with the calls this app tracks.
    #[must_use]
    fn with_metrics(self, metrics: Arc<Metrics>) -> App {
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
            self.webhook.callback(routes::ON_HANGUP)
        );
    }

    /// Answers newCalls by `rules`, read from `path` (which a reload reads again).
    #[must_use]
    fn with_rules(self, path: PathBuf, rules: Rules) -> App {
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
        use routes::*;
        match (request.method, path) {
            (Method::Post, NEW_CALL) => self.on_event(request, EventKind::NewCall),
            (Method::Post, ON_ANSWER) => self.on_event(request, EventKind::Answer),
            (Method::Post, ON_HANGUP) => self.on_event(request, EventKind::Hangup),
            (Method::Post, ON_DTMF) => self.on_event(request, EventKind::Dtmf),
            (_, NEW_CALL | ON_ANSWER | ON_HANGUP | ON_DTMF) => Reply::method_not_allowed("POST"),
            (Method::Get | Method::Head, HEALTH) if asks_for(request.query, "instance") => {
                Reply::text(200, format!("ok {}", self.instance))
            }
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
        let mut accepted = Accepted {
            summary: self.calls.observe(&event, request.received),
            event,
            received_utc: request.received_utc,
            answered_by,
        };
        if let Some(journal) = &self.journal {
            // The journal's times outlive a restart; the memory's stand in when it failed.
            // A journal without the call's newCall (it was not on yet, or could not be
            // written then) leaves the memory's times.
            if let Ok(Some(summary)) = journal.record(Entry::new(&accepted, request.body)) {
                accepted.summary = Some(summary);
            }
        }
        reply.with_accepted(accepted)
    }
}

/// The metrics page.
fn metrics_page(metrics: &Metrics) -> Reply {
    Reply {
        content_type: ContentType::OpenMetrics,
        ..Reply::text(200, metrics.encode())
    }
}

/// Sixteen hex digits that differ from process to process: std's randomly keyed hasher
/// over the time and the process id. An id, not a secret.
fn instance_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

/// Whether a query has a parameter `name`, with or without a value.
fn asks_for(query: Option<&str>, name: &str) -> bool {
    query.is_some_and(|query| form_urlencoded::parse(query.as_bytes()).any(|(key, _)| key == name))
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

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded; charset=UTF-8");

    /// The app for `WEBHOOK_URL=url`, signatures unchecked, the rest on its defaults.
    fn app(url: &str) -> App {
        let config = Config::from_lookup(|name| match name {
            "WEBHOOK_URL" => Some(url.to_owned()),
            "SKIP_SIGNATURE_VERIFICATION" => Some("true".to_owned()),
            _ => None,
        })
        .unwrap();
        App::from_config(&config).unwrap()
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
