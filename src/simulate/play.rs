//! Playing the call: each event posted the way sipgate posts it, the URLs of the server's
//! XML followed, and every request and answer printed.

use std::io::Write;
use std::thread;
use std::time::Duration;

use super::Error;
use super::args::{MAX_MENU_ROUNDS, Options};
use super::bodies::Call;
use super::post::{Step, agent, check_xml_answer, followable, post, print_failed};
use super::response::{Shown, answering_number, ending_cause, first_gather};
use crate::answer::Response;
use crate::event::{Direction, HangupCause};
use crate::routes;

/// Whether sipgate sends `answer` before a hangup with this cause. A forwarded leg is not
/// answered either: in a real capture (https://github.com/sipgate/sipgate.io/issues/134),
/// the hangup with `cause=forwarded` follows the newCall directly and carries no
/// answeringNumber.
fn was_answered(cause: &HangupCause) -> bool {
    *cause == HangupCause::NormalClearing
}

pub(crate) fn simulate(options: &Options, call: &Call, out: &mut dyn Write) -> Result<(), Error> {
    let agent = agent();
    let say = |out: &mut dyn Write, text: &str| -> Result<(), Error> {
        writeln!(out, "{text}").map_err(print_failed)
    };

    say(
        out,
        &format!(
            "Simulating an {} call from {} to {} against {}, as sipgate would (unsigned)",
            match &call.direction {
                Direction::In => "incoming",
                Direction::Out => "outgoing",
                // Not reached: parse_args takes in and out only.
                Direction::Other(other) => other,
            },
            call.from,
            call.to,
            options.url
        ),
    )?;
    say(out, "")?;

    let new_call_url = options.url.callback(routes::NEW_CALL);
    let answer = post(
        &agent,
        out,
        Step::NewCall,
        &new_call_url,
        &call.new_call_body(),
    )?;
    let xml = check_xml_answer(
        Step::NewCall,
        &new_call_url,
        &answer,
        call.direction.clone(),
    )?;
    describe(out, &xml)?;
    let mut sent = vec!["newCall"];
    if xml.on_answer_url().is_none()
        && xml.on_hangup_url().is_none()
        && first_gather(&xml).is_none()
    {
        // Nothing subscribed: sipgate would send nothing more, so there is nothing to wait for.
        return say(
            out,
            &format!(
                "The call went through: the server accepted newCall and subscribed to no further events (callId {}).",
                call.ids.call_id
            ),
        );
    }

    let mut ending = options.cause.clone().map(|cause| (cause, false));
    if ending.is_none() {
        ending = ending_cause(&xml).map(|cause| (cause, true));
    }
    let mut paused = false;
    // The answer that decides whom the call reaches: the newCall's, or, when menus are
    // followed, the last answer to digits.
    let mut deciding = xml.clone();
    let mut next_menu = first_gather(&xml).cloned();
    let groups = options.digit_groups();
    let menus = if options.follow_menus {
        MAX_MENU_ROUNDS
    } else {
        1
    };
    let mut menu = 0;
    while let Some(gather) = next_menu.take() {
        if menu == menus {
            if options.follow_menus {
                say(
                    out,
                    &format!(
                        "(the server asked for digits {menu} times in a row; the simulator answers no more menus and lets the call end)"
                    ),
                )?;
            }
            break;
        }
        let group = groups.get(menu).copied().unwrap_or("");
        menu += 1;
        let max_digits = gather.max_digit_count();
        pause(
            out,
            options.ring,
            if paused {
                "the caller listens and presses keys"
            } else {
                "ringing; the caller listens and presses keys"
            },
        )?;
        paused = true;
        let digits: String = group.chars().take(max_digits as usize).collect();
        if digits.len() < group.len() {
            say(
                out,
                &format!(
                    "(sipgate stops after maxDigits={max_digits}: sending {digits:?} of {group:?})"
                ),
            )?;
        }
        let step = Step::Dtmf { menu };
        let url = followable(step, gather.on_data().as_str())?;
        let answer = post(&agent, out, step, url, &call.dtmf_body(&digits))?;
        sent.push("dtmf");
        if !answer.body.trim().is_empty() {
            let dtmf_xml = check_xml_answer(step, url, &answer, call.direction.clone())?;
            describe(out, &dtmf_xml)?;
            if ending.is_none() {
                ending = ending_cause(&dtmf_xml).map(|cause| (cause, true));
            }
            if options.follow_menus {
                deciding = dtmf_xml.clone();
            }
            next_menu = first_gather(&dtmf_xml).cloned();
        }
    }
    if options.follow_menus && menu > 0 && menu < groups.len() {
        say(
            out,
            &format!(
                "(the call left the menus after {menu} of the {} --digits groups)",
                groups.len()
            ),
        )?;
    }

    // `guessed`: the XML ended the call, which was then never answered, whatever the cause.
    let (cause, guessed) = ending.unwrap_or((HangupCause::NormalClearing, false));
    if guessed {
        say(
            out,
            &format!(
                "(the XML ends the call unanswered; the simulator sends hangup cause {}, its best guess, as sipgate documents none; --cause overrides it)",
                cause.as_str()
            ),
        )?;
    }
    let answered = !guessed && was_answered(&cause);
    let answering_number = answering_number(&deciding, &call.to).to_owned();

    if answered {
        if let Some(url) = xml.on_answer_url() {
            if !paused {
                pause(out, options.ring, "ringing")?;
            }
            let url = followable(Step::Answer, url.as_str())?;
            // sipgate discards the body of this answer; post() already checked the status.
            post(
                &agent,
                out,
                Step::Answer,
                url,
                &call.answer_body(&answering_number),
            )?;
            sent.push("answer");
        } else {
            say(
                out,
                "(no onAnswer in the XML, so sipgate sends no answer event)",
            )?;
        }
        pause(out, options.talk, "talking")?;
    } else if !paused {
        pause(out, options.ring, "ringing, never answered")?;
    }

    if let Some(url) = xml.on_hangup_url() {
        let url = followable(Step::Hangup, url.as_str())?;
        let body = call.hangup_body(&cause, answered.then_some(answering_number.as_str()));
        post(&agent, out, Step::Hangup, url, &body)?;
        sent.push("hangup");
    } else {
        say(
            out,
            "(no onHangup in the XML, so sipgate sends no hangup event)",
        )?;
    }

    say(
        out,
        &format!(
            "The call went through: the server accepted {} (callId {}).",
            sent.join(", "),
            call.ids.call_id
        ),
    )
}

fn pause(out: &mut dyn Write, duration: Duration, what: &str) -> Result<(), Error> {
    if !duration.is_zero() {
        writeln!(out, "... {what} for {} ms\n", duration.as_millis())
            .and_then(|()| out.flush())
            .map_err(print_failed)?;
        thread::sleep(duration);
    }
    Ok(())
}

/// Shows what the XML asks sipgate to do.
fn describe(out: &mut dyn Write, xml: &Response) -> Result<(), Error> {
    let mut lines = vec!["The answer is valid sipgate XML:".to_owned()];
    for (name, url) in [
        ("answer", xml.on_answer_url()),
        ("hangup", xml.on_hangup_url()),
    ] {
        if let Some(url) = url {
            lines.push(format!("  sends {name} to {url}"));
        }
    }
    for action in xml.actions() {
        lines.push(format!("  {}", Shown(action)));
    }
    if lines.len() == 1 {
        lines.push("  no actions, no follow-up events: sipgate routes the call normally".into());
    }
    lines.push(String::new());
    writeln!(out, "{}", lines.join("\n")).map_err(print_failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_normal_clearing_was_answered() {
        for cause in HangupCause::DOCUMENTED {
            assert_eq!(
                was_answered(&cause),
                cause == HangupCause::NormalClearing,
                "{cause:?}"
            );
        }
    }
}
