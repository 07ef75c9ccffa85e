//! What a server's answer asks sipgate to do, once `check` has accepted it, and what that
//! means for the rest of the call.

use std::fmt;

use crate::event::HangupCause;

/// A `<Response>` that passed the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResponseXml {
    pub(crate) on_answer: Option<String>,
    pub(crate) on_hangup: Option<String>,
    pub(crate) actions: Vec<Action>,
}

/// One child of `<Response>`: an action of sipgate's Push API reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    Dial {
        caller_id: Option<String>,
        anonymous: Option<bool>,
        /// Empty for `<Voicemail/>`.
        numbers: Vec<String>,
    },
    Play {
        url: String,
    },
    Gather {
        on_data: String,
        max_digits: u32,
        timeout_ms: u32,
        play: Option<String>,
    },
    Reject {
        busy: bool,
    },
    Hangup,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Dial {
                caller_id,
                anonymous,
                numbers,
            } => {
                if numbers.is_empty() {
                    f.write_str("Dial to voicemail")?;
                } else {
                    write!(f, "Dial {}", numbers.join(", "))?;
                }
                if let Some(caller_id) = caller_id {
                    write!(f, ", callerId {caller_id}")?;
                }
                if let Some(anonymous) = anonymous {
                    write!(f, ", anonymous {anonymous}")?;
                }
                Ok(())
            }
            Action::Play { url } => write!(f, "Play {url}"),
            Action::Gather {
                on_data,
                max_digits,
                timeout_ms,
                play,
            } => {
                write!(
                    f,
                    "Gather up to {max_digits} digits (timeout {timeout_ms} ms) for {on_data}"
                )?;
                if let Some(url) = play {
                    write!(f, ", playing {url}")?;
                }
                Ok(())
            }
            Action::Reject { busy: true } => f.write_str("Reject as busy"),
            Action::Reject { busy: false } => f.write_str("Reject"),
            Action::Hangup => f.write_str("Hangup"),
        }
    }
}

impl ResponseXml {
    /// The first `<Gather>`, unless a `<Reject>` or `<Hangup>` ends the call before it.
    pub(crate) fn gather(&self) -> Option<(&str, u32)> {
        for action in &self.actions {
            match action {
                Action::Gather {
                    on_data,
                    max_digits,
                    ..
                } => return Some((on_data, *max_digits)),
                Action::Reject { .. } | Action::Hangup => return None,
                _ => {}
            }
        }
        None
    }

    /// The hangup cause when the XML ends the call unanswered. sipgate documents no cause
    /// for these; `noAnswer` is its cause for a rejecting callee and `normalClearing` the
    /// plain one, so these are the best guesses.
    pub(crate) fn ending_cause(&self) -> Option<HangupCause> {
        self.actions.iter().find_map(|action| match action {
            Action::Reject { busy: true } => Some(HangupCause::Busy),
            Action::Reject { busy: false } => Some(HangupCause::NoAnswer),
            Action::Hangup => Some(HangupCause::NormalClearing),
            _ => None,
        })
    }

    /// The number sipgate reports as `answeringNumber`: the first `<Dial>` target, or the
    /// dialled number.
    pub(crate) fn answering_number<'a>(&'a self, to: &'a str) -> &'a str {
        self.actions
            .iter()
            .find_map(|action| match action {
                Action::Dial { numbers, .. } => numbers.first().map(|n| n.trim_start_matches('+')),
                _ => None,
            })
            .unwrap_or(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Direction;
    use crate::simulate::check::check_response;

    #[test]
    fn gather_defaults_and_what_ends_a_call() {
        let doc = check_response(
            "<Response><Gather onData=\"http://h/d\"/></Response>",
            Direction::In,
        )
        .unwrap();
        assert_eq!(doc.gather(), Some(("http://h/d", 1)));
        assert_eq!(doc.ending_cause(), None);
        assert_eq!(doc.answering_number("4930"), "4930");
        let doc = check_response(
            "<Response><Hangup/><Gather onData=\"http://h/d\"/></Response>",
            Direction::In,
        )
        .unwrap();
        assert_eq!(doc.gather(), None, "the call ends before the Gather");
        assert_eq!(doc.ending_cause(), Some(HangupCause::NormalClearing));
        let doc = check_response("<Response><Reject/></Response>", Direction::In).unwrap();
        assert_eq!(doc.ending_cause(), Some(HangupCause::NoAnswer));
    }
}
