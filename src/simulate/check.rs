//! The check of a newCall or dtmf answer against the XML sipgate accepts, with one sentence
//! for what is wrong. What it accepts is read into the crate's answer model, whose values
//! sipgate would all take.

use super::xml_reader::{Element, parse_document};
use crate::answer::{
    Action, Dial, Gather, MAX_DIAL_NUMBERS, Number, Play, RejectReason, Response, Url,
};
use crate::event::Direction;
use crate::output::Printable;

/// Checks an answer body against what sipgate accepts (the XML of its Push API reference)
/// and reads it.
///
/// # Errors
/// One sentence saying what is wrong, with the line and column for syntax errors.
pub(crate) fn check_response(xml: &str, direction: Direction) -> Result<Response, String> {
    let root = parse_document(xml)?;
    if root.name != "Response" {
        return Err(format!(
            "the root element is <{}>; sipgate expects <Response>",
            root.name
        ));
    }
    only_attributes(&root, &["onAnswer", "onHangup"])?;
    no_text(&root)?;
    let mut response = Response::new();
    if let Some(url) = url_attribute(&root, "onAnswer")? {
        response = response.on_answer(url);
    }
    if let Some(url) = url_attribute(&root, "onHangup")? {
        response = response.on_hangup(url);
    }
    for child in &root.children {
        response = response.action(check_action(child, &direction)?);
    }
    Ok(response)
}

fn check_action(element: &Element, direction: &Direction) -> Result<Action, String> {
    match element.name.as_str() {
        "Dial" => check_dial(element, direction).map(Action::Dial),
        "Play" => check_play(element).map(Action::Play),
        "Gather" => {
            only_attributes(element, &["onData", "type", "maxDigits", "timeout"])?;
            no_text(element)?;
            let on_data = url_attribute(element, "onData")?.ok_or(
                "<Gather> lacks onData, the URL sipgate POSTs the digits to; add onData=\"http://…/on-dtmf\"",
            )?;
            if let Some(kind) = element.attribute("type") {
                if kind != "dtmf" {
                    return Err(format!(
                        "<Gather type={kind:?}>: sipgate knows only type=\"dtmf\" (the default)"
                    ));
                }
            }
            let max_digits = positive_attribute(element, "maxDigits", Gather::DEFAULT_MAX_DIGITS)?;
            let timeout_ms = positive_attribute(element, "timeout", Gather::DEFAULT_TIMEOUT_MS)?;
            // positive_attribute has refused what these refuse, with the checker's message.
            let mut gather = Gather::new(on_data)
                .max_digits(max_digits)
                .and_then(|gather| gather.timeout_ms(timeout_ms))
                .map_err(|error| error.to_string())?;
            let mut nested = false;
            for child in &element.children {
                if child.name != "Play" || nested {
                    return Err(format!(
                        "<{}> inside <Gather>; only one <Play> may be nested there",
                        child.name
                    ));
                }
                gather = gather.play(check_play(child)?);
                nested = true;
            }
            Ok(Action::Gather(gather))
        }
        "Reject" => {
            only_attributes(element, &["reason"])?;
            no_children(element)?;
            no_text(element)?;
            match element.attribute("reason") {
                None => Ok(Action::Reject(RejectReason::Rejected)),
                Some(reason) => reason.parse().map(Action::Reject).map_err(|_| format!(
                    "<Reject reason={reason:?}>: sipgate knows reason=\"rejected\" (the default) and reason=\"busy\""
                )),
            }
        }
        "Hangup" => {
            only_attributes(element, &[])?;
            no_children(element)?;
            no_text(element)?;
            Ok(Action::Hangup)
        }
        "Voicemail" => Err(
            "<Voicemail/> directly in <Response>; sipgate wants it inside <Dial>: <Dial><Voicemail/></Dial>"
                .into(),
        ),
        other => Err(format!(
            "unknown action <{other}>; sipgate knows <Dial>, <Play>, <Gather>, <Reject> and <Hangup> (names are case-sensitive)"
        )),
    }
}

fn check_dial(element: &Element, direction: &Direction) -> Result<Dial, String> {
    only_attributes(element, &["callerId", "anonymous"])?;
    no_text(element)?;
    let caller_id = match element.attribute("callerId") {
        None => None,
        Some(id) => Some(Number::new(id).map_err(|_| {
            format!(
                "<Dial callerId={id:?}> is not a phone number; write E.164 digits such as 492111234567"
            )
        })?),
    };
    let anonymous = match element.attribute("anonymous") {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(format!(
                "<Dial anonymous={other:?}> must be \"true\" or \"false\"; leave it out for the account's setting"
            ));
        }
    };
    let mut numbers = Vec::new();
    let mut voicemail = false;
    for child in &element.children {
        match child.name.as_str() {
            "Number" => {
                only_attributes(child, &[])?;
                no_children(child)?;
                let number = child.text.trim();
                numbers.push(Number::new(number).map_err(|_| {
                    format!(
                        "<Number>{number}</Number> is not a phone number; write E.164 digits such as 4915799912345"
                    )
                })?);
            }
            "Voicemail" => {
                only_attributes(child, &[])?;
                no_children(child)?;
                no_text(child)?;
                voicemail = true;
            }
            other => {
                return Err(format!(
                    "<{other}> inside <Dial>; sipgate knows <Number> and <Voicemail/> there"
                ));
            }
        }
    }
    let dial = match (numbers.len(), voicemail) {
        (0, false) => {
            return Err(
                "<Dial> has no target; put <Number>…</Number> or <Voicemail/> inside".into(),
            );
        }
        (1.., true) => {
            return Err(
                "<Dial> holds both <Number> and <Voicemail/>; sipgate dials either numbers or the voicemail"
                    .into(),
            );
        }
        (_, true) if element.children.len() > 1 => {
            return Err("<Dial> holds <Voicemail/> more than once".into());
        }
        (_, true) => Dial::voicemail(),
        (count, false) if count > MAX_DIAL_NUMBERS => {
            return Err(if *direction == Direction::In {
                format!(
                    "<Dial> has {count} <Number>s; sipgate redirects an incoming call to at most {MAX_DIAL_NUMBERS}"
                )
            } else {
                format!(
                    "<Dial> has {count} <Number>s; sipgate rings 1 to {MAX_DIAL_NUMBERS} at once"
                )
            });
        }
        (_, false) => Dial::numbers(numbers).map_err(|error| error.to_string())?,
    };
    let dial = match caller_id {
        Some(number) => dial.caller_id(number),
        None => dial,
    };
    Ok(match anonymous {
        Some(anonymous) => dial.anonymous(anonymous),
        None => dial,
    })
}

fn check_play(element: &Element) -> Result<Play, String> {
    only_attributes(element, &[])?;
    match element.children.as_slice() {
        [url] if url.name == "Url" && element.text.trim().is_empty() => {
            only_attributes(url, &[])?;
            no_children(url)?;
            // sipgate reads the URL with the white space around it left out.
            let text = url.text.trim();
            let url =
                absolute_url(text).map_err(|problem| format!("<Url>{text}</Url>: {problem}"))?;
            Ok(Play { url })
        }
        _ => Err(
            "<Play> must hold exactly one <Url>https://…/file.wav</Url> and nothing else".into(),
        ),
    }
}

fn only_attributes(element: &Element, known: &[&str]) -> Result<(), String> {
    for (name, _) in &element.attributes {
        if !known.contains(&name.as_str()) {
            let expected = if known.is_empty() {
                "sipgate knows none there".to_owned()
            } else {
                format!("sipgate knows {} (case-sensitive)", known.join(", "))
            };
            return Err(format!(
                "unknown attribute {name} on <{}>; {expected}",
                element.name
            ));
        }
    }
    Ok(())
}

fn no_text(element: &Element) -> Result<(), String> {
    let text = element.text.trim();
    if text.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "text {:?} inside <{}>, where only elements belong",
            Printable(text).to_string(),
            element.name
        ))
    }
}

fn no_children(element: &Element) -> Result<(), String> {
    match element.children.first() {
        None => Ok(()),
        Some(child) => Err(format!(
            "<{}> inside <{}>, which takes no elements",
            child.name, element.name
        )),
    }
}

fn url_attribute(element: &Element, name: &str) -> Result<Option<Url>, String> {
    let Some(value) = element.attribute(name) else {
        return Ok(None);
    };
    absolute_url(value)
        .map(Some)
        .map_err(|problem| format!("<{} {name}={value:?}>: {problem}", element.name))
}

/// sipgate calls the URLs in the XML from outside, so they must be absolute.
fn absolute_url(value: &str) -> Result<Url, String> {
    let lower = value.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
    else {
        return Err("sipgate needs an absolute http:// or https:// URL here".into());
    };
    if rest.is_empty() || rest.starts_with(['/', '?', '#', ':']) {
        return Err("the URL has no host name".into());
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a URL cannot hold spaces; percent-encode them as %20".into());
    }
    // The checks above are Url::new's, each with its own message; this names the value
    // should the two ever part.
    Url::new(value).map_err(|error| error.to_string())
}

fn positive_attribute(element: &Element, name: &str, default: u32) -> Result<u32, String> {
    match element.attribute(name) {
        None => Ok(default),
        Some(value) => value
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                format!(
                    "<{} {name}={value:?}> must be a whole number of at least 1",
                    element.name
                )
            }),
    }
}

#[cfg(test)]
mod tests;
