//! Where accepted events go: one line each on stdout, as text for people or as JSON for
//! programs.
//!
//! A writer thread owns stdout, so a handler never waits on it: a terminal paused with
//! Ctrl-S or a pipe nobody reads must not stop the server from answering sipgate. Lines
//! wait in a bounded buffer, which the writer takes whole. When stdout fails (closed), has
//! blocked for over a second (nobody reads it), or the buffer stays full for half a second
//! while the writer is merely behind (busy cores), the line goes to the error log on
//! stderr instead, so an event is never lost without a trace.

use crate::config::EventFormat;
use crate::exchange::Accepted;

mod line;
mod sink;

pub use line::Printable;
pub use sink::EventSink;

/// The line for `accepted` in `format`, without the newline.
pub fn event_line(format: EventFormat, accepted: &Accepted) -> String {
    match format {
        EventFormat::Text => line::text(accepted),
        EventFormat::Json => line::json(accepted),
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
}
