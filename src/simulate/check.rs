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
mod tests {
    use super::*;
    use crate::event::HangupCause;
    use crate::simulate::response::{answering_number, ending_cause, gather};

    fn url(text: &str) -> Url {
        Url::new(text).unwrap()
    }

    fn number(text: &str) -> Number {
        Number::new(text).unwrap()
    }

    #[test]
    fn the_servers_own_answer_is_valid() {
        let doc = Response::new()
            .on_answer(url("http://localhost:8080/on-answer?t=1&u=2"))
            .on_hangup(url("http://localhost:8080/on-hangup"));
        let xml = check_response(&doc.to_xml(), Direction::In).unwrap();
        assert_eq!(
            xml.on_answer_url().map(Url::as_str),
            Some("http://localhost:8080/on-answer?t=1&u=2")
        );
        assert_eq!(
            xml.on_hangup_url().map(Url::as_str),
            Some("http://localhost:8080/on-hangup")
        );
        assert_eq!(xml.actions(), []);
        assert_eq!(xml, doc);
        let empty = check_response("<Response/>", Direction::In).unwrap();
        assert_eq!((empty.on_answer_url(), empty.actions().len()), (None, 0));
    }

    #[test]
    fn every_documented_action_is_read() {
        let xml = "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
            <!-- from the spec -->\n\
            <Response onHangup='https://h.example/x?a=1&amp;b=&#x32;'>\n\
            \t<Dial callerId=\"492111234567\" anonymous=\"false\">\n\
            \t\t<Number>4915799912345</Number>\n\
            \t\t<Number>+492111234567</Number>\n\
            \t</Dial>\n\
            \t<Dial><Voicemail /></Dial>\n\
            \t<Play><Url>https://example.com/example.wav</Url></Play>\n\
            \t<Gather onData=\"http://h.example/dtmf\" maxDigits=\"3\" timeout=\"10000\">\n\
            \t\t<Play><Url> https://example.com/example.wav </Url></Play>\n\
            \t</Gather>\n\
            \t<Reject reason=\"busy\" />\n\
            \t<Reject/>\n\
            \t<Hangup></Hangup>\n\
            </Response>\n";
        let doc = check_response(xml, Direction::In).unwrap();
        assert_eq!(
            doc.on_hangup_url().map(Url::as_str),
            Some("https://h.example/x?a=1&b=2")
        );
        let wav = || Play {
            url: url("https://example.com/example.wav"),
        };
        assert_eq!(
            doc.actions(),
            [
                Action::Dial(
                    // The answer model holds numbers as sipgate dials them: without the +.
                    Dial::numbers(vec![number("4915799912345"), number("492111234567")])
                        .unwrap()
                        .caller_id(number("492111234567"))
                        .anonymous(false)
                ),
                Action::Dial(Dial::voicemail()),
                Action::Play(wav()),
                Action::Gather(
                    Gather::new(url("http://h.example/dtmf"))
                        .max_digits(3)
                        .unwrap()
                        .timeout_ms(10000)
                        .unwrap()
                        .play(wav())
                ),
                Action::Reject(RejectReason::Busy),
                Action::Reject(RejectReason::Rejected),
                Action::Hangup,
            ]
        );
        assert_eq!(
            gather(&doc).map(|gather| (gather.on_data().as_str(), gather.max_digit_count())),
            Some(("http://h.example/dtmf", 3))
        );
        assert_eq!(answering_number(&doc, "49"), "4915799912345");
        assert_eq!(ending_cause(&doc), Some(HangupCause::Busy));
    }

    #[test]
    fn wrong_answers_are_explained() {
        let six = "<Number>4915799912345</Number>".repeat(6);
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "the answer is empty"),
            ("  \n".into(), "the answer is empty"),
            (
                "ok".into(),
                "expected the <Response> element (line 1, column 1, at \"ok\")",
            ),
            ("{\"ok\":true}".into(), "expected the <Response> element"),
            (
                "<html><body>hi</body></html>".into(),
                "the root element is <html>; sipgate expects <Response>",
            ),
            (
                "\n<?xml version=\"1.0\"?><Response/>".into(),
                "must be the very first characters",
            ),
            (
                "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><Response/>".into(),
                "encoding \"ISO-8859-1\"",
            ),
            (
                "<Response onAnswer=\"http://h/a?x=1&y=2\"/>".into(),
                "a bare & at \"&y=2\"; XML needs &amp;",
            ),
            (
                "<Response onAnswer=\"/on-answer\"/>".into(),
                "<Response onAnswer=\"/on-answer\">: sipgate needs an absolute http:// or https:// URL",
            ),
            ("<Response onAnswer=\"http:///x\"/>".into(), "no host name"),
            (
                "<Response onanswer=\"http://h/a\"/>".into(),
                "unknown attribute onanswer on <Response>; sipgate knows onAnswer, onHangup",
            ),
            (
                "<Response onData=\"http://h/a\"/>".into(),
                "unknown attribute onData on <Response>",
            ),
            (
                "<Response onAnswer=\"http://h/a\" onAnswer=\"http://h/b\"/>".into(),
                "appears twice",
            ),
            (
                "<Response onAnswer=http://h/a/>".into(),
                "expected the value of onAnswer in quotes",
            ),
            (
                "<Response onAnswer=\"http://h/a\"onHangup=\"http://h/b\"/>".into(),
                "expected a space, > or /> in <Response>",
            ),
            (
                "<Response>".into(),
                "<Response> is not closed; expected </Response>",
            ),
            (
                "<Response></Respons>".into(),
                "</Respons> closes <Response>",
            ),
            (
                "<Response/><Response/>".into(),
                "content after the end of <Response>",
            ),
            (
                "<Response/>trailing".into(),
                "content after the end of <Response>",
            ),
            (
                "<Response>hello</Response>".into(),
                "text \"hello\" inside <Response>",
            ),
            ("<!DOCTYPE x><Response/>".into(), "DOCTYPE"),
            ("<Response><![CDATA[x]]></Response>".into(), "CDATA"),
            (
                "<Response><Voicemail/></Response>".into(),
                "<Dial><Voicemail/></Dial>",
            ),
            (
                "<Response><dial/></Response>".into(),
                "unknown action <dial>",
            ),
            (
                "<Response><Dial/></Response>".into(),
                "<Dial> has no target",
            ),
            (
                "<Response><Dial><Number>0800 123</Number></Dial></Response>".into(),
                "is not a phone number",
            ),
            (
                "<Response><Dial anonymous=\"undefined\"><Voicemail/></Dial></Response>".into(),
                "anonymous=\"undefined\"> must be \"true\" or \"false\"",
            ),
            (
                "<Response><Dial><Number>4915799912345</Number><Voicemail/></Dial></Response>"
                    .into(),
                "both <Number> and <Voicemail/>",
            ),
            (
                format!("<Response><Dial>{six}</Dial></Response>"),
                "at most 5",
            ),
            (
                "<Response><Play>http://h/a.wav</Play></Response>".into(),
                "<Play> must hold exactly one <Url>",
            ),
            (
                "<Response><Play><Url>a.wav</Url></Play></Response>".into(),
                "<Url>a.wav</Url>: sipgate needs an absolute",
            ),
            (
                "<Response><Gather maxDigits=\"3\"/></Response>".into(),
                "<Gather> lacks onData",
            ),
            (
                "<Response><Gather onData=\"http://h/d\" maxDigits=\"0\"/></Response>".into(),
                "maxDigits=\"0\"> must be a whole number of at least 1",
            ),
            (
                "<Response><Gather onData=\"http://h/d\" type=\"speech\"/></Response>".into(),
                "type=\"dtmf\"",
            ),
            (
                "<Response><Gather onData=\"http://h/d\"><Hangup/></Gather></Response>".into(),
                "<Hangup> inside <Gather>",
            ),
            (
                "<Response><Reject reason=\"nope\"/></Response>".into(),
                "reason=\"busy\"",
            ),
            (
                "<Response><Hangup>now</Hangup></Response>".into(),
                "text \"now\" inside <Hangup>",
            ),
            (
                "<Response><Hangup/><!-- open</Response>".into(),
                "comment <!-- is not closed",
            ),
            (
                "<Response><A><A><A><A><A><A><A><A><A><A><A><A><A><A><A><A><A><A>".into(),
                "nested more than 16 deep",
            ),
        ];
        for (xml, expected) in &cases {
            let problem = check_response(xml, Direction::In).unwrap_err();
            assert!(problem.contains(expected), "{xml:?}: {problem}");
        }
        // The answer model holds 1 to 5 numbers whatever the direction, and E.164's 2 to 15
        // digits, so an outgoing call's six numbers, a one-digit and a 16-digit number are
        // refused too.
        for (xml, direction, expected) in [
            (
                format!("<Response><Dial>{six}</Dial></Response>"),
                Direction::Out,
                "<Dial> has 6 <Number>s; sipgate rings 1 to 5 at once",
            ),
            (
                "<Response><Dial><Number>1</Number></Dial></Response>".into(),
                Direction::In,
                "<Number>1</Number> is not a phone number",
            ),
            (
                "<Response><Dial><Number>1234567890123456</Number></Dial></Response>".into(),
                Direction::In,
                "<Number>1234567890123456</Number> is not a phone number",
            ),
            (
                "<Response><Dial callerId=\"1\"><Voicemail/></Dial></Response>".into(),
                Direction::In,
                "<Dial callerId=\"1\"> is not a phone number",
            ),
            (
                "<Response onAnswer=\"http://#a\"/>".into(),
                Direction::In,
                "<Response onAnswer=\"http://#a\">: the URL has no host name",
            ),
        ] {
            let problem = check_response(&xml, direction).unwrap_err();
            assert!(problem.contains(expected), "{xml:?}: {problem}");
        }
    }
}
