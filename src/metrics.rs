//! `GET /metrics` (with `METRICS=true`): what the server did, in the Prometheus text format,
//! through `prometheus-client`.
//!
//! Counted as it happens: accepted events (by event, hangup cause, rule and menu option),
//! refused requests (by reason), and the time each event request took to answer. Read when
//! scraped, through collectors: connections, calls tracked, event lines waiting. A request
//! pays an atomic add per counter it moves and one histogram observation (a short lock
//! inside prometheus-client); label sets that can be known at start are resolved then.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::event::{CallEvent, HangupCause};
use crate::exchange::{AnsweredBy, Reply};

/// Answer-time buckets, in seconds: fine below a millisecond, where this server answers,
/// and up to sipgate's 10-second limit, past which the answer is lost.
const ANSWER_BUCKETS: [f64; 14] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Events per journal commit: one when calls come one by one, more under load.
const GROUP_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 64.0, 256.0, 1024.0];

/// The documented hangup causes; anything else is counted as `other`, so a label cannot
/// take unbounded values.
const CAUSES: [&str; 7] = [
    "normalClearing",
    "busy",
    "cancel",
    "noAnswer",
    "congestion",
    "notFound",
    "forwarded",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: &'static str,
    /// The hangup cause; empty for the other events.
    cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    reason: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    /// The rule's name, or `rule N`; `none` when no rule fitted.
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MenuLabels {
    menu: String,
    /// The digits of the option, or `otherwise`.
    option: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JournalFailureLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// The counters and the registry they are encoded from.
pub struct Metrics {
    registry: Mutex<Registry>,
    new_calls: Counter,
    answers: Counter,
    dtmfs: Counter,
    /// One per entry of [`CAUSES`], then `other`.
    hangups: [Counter; CAUSES.len() + 1],
    refused: Family<RefusalLabels, Counter>,
    rule_answers: Family<RuleLabels, Counter>,
    menu_choices: Family<MenuLabels, Counter>,
    answer_seconds: Histogram,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// The metrics of a process started at `started`.
    pub fn new(started: SystemTime) -> Metrics {
        let mut registry = Registry::default();
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "sipgateio_events",
            "Call events accepted (answered 200 with their line), by event and, for hangups, cause",
            events.clone(),
        );
        let event = |event, cause| events.get_or_create_owned(&EventLabels { event, cause });
        let hangups = std::array::from_fn(|index| {
            event("hangup", CAUSES.get(index).copied().unwrap_or("other"))
        });
        let refused = Family::default();
        registry.register(
            "sipgateio_requests_refused",
            "Requests answered with an error, by reason and status",
            refused.clone(),
        );
        let rule_answers = Family::default();
        registry.register(
            "sipgateio_rule_answers",
            "newCalls answered by each call rule (none: no rule fitted)",
            rule_answers.clone(),
        );
        let menu_choices = Family::default();
        registry.register(
            "sipgateio_menu_choices",
            "Keypad menu digits answered, by menu and option (otherwise: no option fitted)",
            menu_choices.clone(),
        );
        let answer_seconds = Histogram::new(ANSWER_BUCKETS);
        registry.register(
            "sipgateio_answer_seconds",
            "Time from a POST's head to its answer written; sipgate waits 10 s at most",
            answer_seconds.clone(),
        );
        registry.register(
            "sipgateio_build",
            "The version of this server",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        let start_time = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        start_time.set(
            started
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
        );
        registry.register(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds",
            start_time,
        );
        Metrics {
            new_calls: event("newCall", ""),
            answers: event("answer", ""),
            dtmfs: event("dtmf", ""),
            hangups,
            registry: Mutex::new(registry),
            refused,
            rule_answers,
            menu_choices,
            answer_seconds,
        }
    }

    /// Registers the call journal's metrics (`CALL_LOG_FILE`) and returns where it counts.
    pub fn journal(&self) -> JournalMetrics {
        let metrics = JournalMetrics {
            commit_seconds: Histogram::new(ANSWER_BUCKETS),
            events_per_commit: Histogram::new(GROUP_BUCKETS),
            failures: Family::default(),
        };
        let mut registry = self.registry();
        registry.register(
            "sipgateio_journal_commit_seconds",
            "Time to commit one group of events to the call journal",
            metrics.commit_seconds.clone(),
        );
        registry.register(
            "sipgateio_journal_events_per_commit",
            "Events committed together in one transaction of the call journal",
            metrics.events_per_commit.clone(),
        );
        registry.register(
            "sipgateio_journal_failures",
            "Events answered without being in the call journal first, by kind: write (the commit failed; retried), late (not committed in time; written later), lost (not kept: the queue or the retry backlog was full)",
            metrics.failures.clone(),
        );
        metrics
    }

    /// Adds a source of values read at each scrape (gauges of the server's state).
    pub fn register_collector(&self, collector: impl Collector) {
        self.registry().register_collector(Box::new(collector));
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts the answer to a POST: the event it accepted, or why it was refused, and how
    /// long it took.
    pub fn answered(&self, reply: &Reply, took: Duration) {
        self.answer_seconds.observe(took.as_secs_f64());
        if reply.status >= 400 {
            self.refused(reply);
        }
        let Some(accepted) = &reply.accepted else {
            return;
        };
        match &accepted.event {
            CallEvent::NewCall(_) => self.new_calls.inc(),
            CallEvent::Answer(_) => self.answers.inc(),
            CallEvent::Dtmf(_) => self.dtmfs.inc(),
            CallEvent::Hangup(hangup) => {
                let cause = hangup.cause.as_ref().map_or("", HangupCause::as_str);
                let index = CAUSES
                    .iter()
                    .position(|known| *known == cause)
                    .unwrap_or(CAUSES.len());
                self.hangups[index].inc()
            }
        };
        match &accepted.answered_by {
            Some(AnsweredBy::Rule(rule)) => {
                let rule = rule.as_ref().map_or_else(
                    || "none".to_owned(),
                    |rule| match &rule.name {
                        Some(name) => name.clone(),
                        None => format!("rule {}", rule.number),
                    },
                );
                self.rule_answers.get_or_create(&RuleLabels { rule }).inc();
            }
            Some(AnsweredBy::Menu { menu, option }) => {
                let labels = MenuLabels {
                    menu: menu.clone(),
                    option: option.clone().unwrap_or_else(|| "otherwise".to_owned()),
                };
                self.menu_choices.get_or_create(&labels).inc();
            }
            // The menu name came from the request, not the rules: not a label value.
            Some(AnsweredBy::UnknownMenu(_)) => {
                let labels = MenuLabels {
                    menu: "(unknown)".to_owned(),
                    option: "otherwise".to_owned(),
                };
                self.menu_choices.get_or_create(&labels).inc();
            }
            None => {}
        }
    }

    /// Counts an error answer to a request that is not a POST (a GET of an unknown path).
    pub fn refused(&self, reply: &Reply) {
        self.refused
            .get_or_create(&RefusalLabels {
                reason: reply.reason,
                status: reply.status,
            })
            .inc();
    }

    /// The page: every metric in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry())
            .expect("writing to a String cannot fail");
        text
    }
}

/// Where the call journal counts (`METRICS=true` with `CALL_LOG_FILE`).
#[derive(Debug, Clone)]
pub struct JournalMetrics {
    commit_seconds: Histogram,
    events_per_commit: Histogram,
    failures: Family<JournalFailureLabels, Counter>,
}

impl JournalMetrics {
    /// A group of `events` committed in `took`.
    pub fn committed(&self, events: usize, took: Duration) {
        self.commit_seconds.observe(took.as_secs_f64());
        self.events_per_commit.observe(events as f64);
    }

    /// `events` answered without being in the journal, for the reason `kind`.
    pub fn failed(&self, kind: &'static str, events: usize) {
        self.failures
            .get_or_create(&JournalFailureLabels { kind })
            .inc_by(events as u64);
    }
}

/// A gauge or counter read at each scrape from a function.
pub struct Sampled<F> {
    name: &'static str,
    help: &'static str,
    kind: SampleKind,
    read: F,
}

#[derive(Debug, Clone, Copy)]
enum SampleKind {
    Gauge,
    Counter,
}

impl<F> fmt::Debug for Sampled<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl<F: Fn() -> u64> Sampled<F> {
    pub fn gauge(name: &'static str, help: &'static str, read: F) -> Sampled<F> {
        Sampled {
            name,
            help,
            kind: SampleKind::Gauge,
            read,
        }
    }

    pub fn counter(name: &'static str, help: &'static str, read: F) -> Sampled<F> {
        Sampled {
            name,
            help,
            kind: SampleKind::Counter,
            read,
        }
    }
}

impl<F: Fn() -> u64 + Send + Sync + 'static> Collector for Sampled<F> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let value = (self.read)();
        match self.kind {
            SampleKind::Gauge => {
                let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
                let metric =
                    encoder.encode_descriptor(self.name, self.help, None, gauge.metric_type())?;
                gauge.encode(metric)
            }
            SampleKind::Counter => {
                let counter = ConstCounter::new(value);
                let metric =
                    encoder.encode_descriptor(self.name, self.help, None, counter.metric_type())?;
                counter.encode(metric)
            }
        }
    }
}
