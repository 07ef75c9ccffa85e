//! Where accepted events go: one line each, written whole and flushed at once.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

use crate::event::CallEvent;

/// The event-line writer shared by all handler threads. One lock per line keeps lines
/// from interleaving.
#[derive(Clone)]
pub struct EventSink {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl EventSink {
    /// Lines go to standard output (logs go to standard error).
    pub fn stdout() -> EventSink {
        EventSink::new(io::stdout())
    }

    /// Lines go to `out` (tests pass a buffer).
    pub fn new(out: impl Write + Send + 'static) -> EventSink {
        EventSink {
            out: Arc::new(Mutex::new(Box::new(out))),
        }
    }

    /// Writes the event's line. If the line cannot be written (stdout closed, say), the
    /// event goes to the error log instead, so it is never lost without a trace; the
    /// request is still answered, as sipgate's call does not depend on our terminal.
    pub fn emit(&self, event: &CallEvent) {
        let mut line = event.to_string();
        line.push('\n');
        // A poisoned lock only means another thread panicked mid-write; the writer is
        // still usable.
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(error) = out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
            log::error!(
                "could not write the event line to stdout ({error}); the event was: {}",
                line.trim_end()
            );
        }
    }
}
