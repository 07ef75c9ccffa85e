//! What a server's answer asks sipgate to do, once `check` has read it into the crate's
//! answer model, and what that means for the rest of the call.

use std::fmt;

use crate::answer::{Action, DialTarget, Gather, Number, RejectReason, Response};
use crate::event::HangupCause;

/// An action as the transcript shows it.
pub(crate) struct Shown<'a>(pub(crate) &'a Action);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Action::Dial(dial) => {
                match dial.target() {
                    DialTarget::Voicemail => f.write_str("Dial to voicemail")?,
                    DialTarget::Numbers(numbers) => {
                        let numbers: Vec<&str> = numbers.iter().map(Number::as_str).collect();
                        write!(f, "Dial {}", numbers.join(", "))?;
                    }
                }
                if let Some(caller_id) = dial.caller_id_number() {
                    write!(f, ", callerId {caller_id}")?;
                }
                if let Some(anonymous) = dial.is_anonymous() {
                    write!(f, ", anonymous {anonymous}")?;
                }
                Ok(())
            }
            Action::Play(play) => write!(f, "Play {}", play.url),
            Action::Gather(gather) => {
                write!(
                    f,
                    "Gather up to {} digits (timeout {} ms) for {}",
                    gather.max_digit_count(),
                    gather.timeout(),
                    gather.on_data()
                )?;
                if let Some(play) = gather.announcement() {
                    write!(f, ", playing {}", play.url)?;
                }
                Ok(())
            }
            Action::Reject(RejectReason::Busy) => f.write_str("Reject as busy"),
            Action::Reject(RejectReason::Rejected) => f.write_str("Reject"),
            Action::Hangup => f.write_str("Hangup"),
        }
    }
}

/// The first `<Gather>`, unless a `<Reject>` or `<Hangup>` ends the call before it.
pub(crate) fn first_gather(response: &Response) -> Option<&Gather> {
    for action in response.actions() {
        match action {
            Action::Gather(gather) => return Some(gather),
            Action::Reject(_) | Action::Hangup => return None,
            _ => {}
        }
    }
    None
}

/// The hangup cause when the XML ends the call before anyone answers it. sipgate documents
/// no cause for these. `busy` is its cause for a busy callee and `noAnswer` for one that
/// refuses the call, which is what `<Reject>` and a `<Hangup/>` before pickup do; not
/// `normalClearing`, which is the cause of a call that was established.
pub(crate) fn ending_cause(response: &Response) -> Option<HangupCause> {
    response.actions().iter().find_map(|action| match action {
        Action::Reject(RejectReason::Busy) => Some(HangupCause::Busy),
        Action::Reject(RejectReason::Rejected) | Action::Hangup => Some(HangupCause::NoAnswer),
        _ => None,
    })
}

/// The number sipgate reports as `answeringNumber`: the first `<Dial>` target, or the
/// dialled number.
pub(crate) fn answering_number<'a>(response: &'a Response, to: &'a str) -> &'a str {
    response
        .actions()
        .iter()
        .find_map(|action| match action {
            Action::Dial(dial) => match dial.target() {
                DialTarget::Numbers(numbers) => numbers.first().map(Number::as_str),
                DialTarget::Voicemail => None,
            },
            _ => None,
        })
        .unwrap_or(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Direction;
    use crate::simulate::check::check_response;

    /// The `<Gather>`'s URL and digit count, as the test reads them.
    fn gather_of(doc: &Response) -> Option<(&str, u32)> {
        first_gather(doc).map(|gather| (gather.on_data().as_str(), gather.max_digit_count()))
    }

    #[test]
    fn gather_defaults_and_what_ends_a_call() {
        let doc = check_response(
            "<Response><Gather onData=\"http://h/d\"/></Response>",
            Direction::In,
        )
        .unwrap();
        assert_eq!(gather_of(&doc), Some(("http://h/d", 1)));
        assert_eq!(ending_cause(&doc), None);
        assert_eq!(answering_number(&doc, "4930"), "4930");
        let doc = check_response(
            "<Response><Hangup/><Gather onData=\"http://h/d\"/></Response>",
            Direction::In,
        )
        .unwrap();
        assert_eq!(gather_of(&doc), None, "the call ends before the Gather");
        assert_eq!(ending_cause(&doc), Some(HangupCause::NoAnswer));
        let doc = check_response("<Response><Reject/></Response>", Direction::In).unwrap();
        assert_eq!(ending_cause(&doc), Some(HangupCause::NoAnswer));
    }
}
