//! Where accepted events go: one line each on stdout, as text for people or as JSON for
//! programs.
//!
//! A writer thread owns stdout, so a handler never waits on it: a terminal paused with
//! Ctrl-S or a pipe nobody reads must not stop the server from answering sipgate. Lines
//! wait in a bounded buffer, which the writer takes whole. When stdout fails (closed), has
//! blocked for over a second (nobody reads it), or the buffer stays full for half a second
//! while the writer is merely behind (busy cores), the line goes to the error log on
//! stderr instead, so an event is never lost without a trace.

use std::str::FromStr;

use crate::router::Accepted;

mod line;
mod sink;

pub use line::Printable;
pub use sink::EventSink;

/// How event lines are written (`EVENT_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventFormat {
    /// A sentence per event, for a person watching a terminal.
    #[default]
    Text,
    /// One JSON object per line, for `jq`, log shippers and scripts.
    Json,
}

impl FromStr for EventFormat {
    type Err = ();

    fn from_str(value: &str) -> Result<EventFormat, ()> {
        match value.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(EventFormat::Text),
            "json" => Ok(EventFormat::Json),
            _ => Err(()),
        }
    }
}

impl EventFormat {
    /// The line for `accepted`, without the newline.
    pub fn line(self, accepted: &Accepted) -> String {
        match self {
            EventFormat::Text => line::text(accepted),
            EventFormat::Json => line::json(accepted),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::calls::CallSummary;
    use crate::event::{self, EventKind};

    /// `body` accepted as `kind`, at a fixed time.
    pub(crate) fn accepted(kind: EventKind, body: &str, summary: Option<CallSummary>) -> Accepted {
        Accepted {
            event: event::parse(kind, body.as_bytes()).unwrap(),
            received_utc: SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_000_000_123),
            summary,
            answered_by: None,
        }
    }

    #[test]
    fn format_names_parse_in_any_case() {
        assert_eq!("JSON".parse(), Ok(EventFormat::Json));
        assert_eq!(" text ".parse(), Ok(EventFormat::Text));
        assert_eq!("yaml".parse::<EventFormat>(), Err(()));
    }
}
