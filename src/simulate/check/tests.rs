//! The checker's tests: every documented action read, every wrong answer explained.

use super::*;
use crate::event::HangupCause;
use crate::simulate::response::{answering_number, ending_cause, first_gather};

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
        first_gather(&doc).map(|gather| (gather.on_data().as_str(), gather.max_digit_count())),
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
            "<Response><Dial><Number>4915799912345</Number><Voicemail/></Dial></Response>".into(),
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

/// The renderer and the checker agree: whatever the answer model can build, the checker
/// accepts and reads back as the same value, in either direction of the call.
#[test]
fn every_answer_the_model_renders_is_accepted_and_read_back_equal() {
    let five = [
        "4915799912345",
        "+4915799912346",
        "492111234567",
        "4930123456",
        "112",
    ]
    .map(number)
    .to_vec();
    let dials = [
        Dial::numbers(vec![number("4915799912345")]).unwrap(),
        Dial::numbers(five.clone()).unwrap(),
        Dial::numbers(five)
            .unwrap()
            .caller_id(number("+492111234567"))
            .anonymous(false),
        Dial::numbers(vec![number("4915799912345")])
            .unwrap()
            .anonymous(true),
        Dial::voicemail(),
        Dial::voicemail()
            .caller_id(number("492111234567"))
            .anonymous(true),
    ];
    let announcement = Play {
        url: url("https://h.example/menu.wav?lang=de&v=\"2\"&w=<3>"),
    };
    let others = [
        Action::Play(announcement.clone()),
        Action::Gather(Gather::new(url("http://h.example/on-dtmf?menu=main&x='1'"))),
        Action::Gather(
            Gather::new(url("HTTP://h.example:8080/on-dtmf"))
                .max_digits(4)
                .unwrap()
                .timeout_ms(10_000)
                .unwrap()
                .play(announcement),
        ),
        Action::Reject(RejectReason::Busy),
        Action::Reject(RejectReason::Rejected),
        Action::Hangup,
    ];
    let actions: Vec<Action> = dials.into_iter().map(Action::Dial).chain(others).collect();

    let on_answer = url("http://localhost:8080/hooks/on-answer?token=a&b=c");
    let on_hangup = url("https://h.example/on-hangup");
    let subscriptions = [
        Response::new(),
        Response::new().on_answer(on_answer.clone()),
        Response::new().on_hangup(on_hangup.clone()),
        Response::new().on_answer(on_answer).on_hangup(on_hangup),
    ];
    for subscribed in subscriptions {
        let mut responses = vec![subscribed.clone()];
        responses.extend(
            actions
                .iter()
                .map(|action| subscribed.clone().action(action.clone())),
        );
        responses.push(actions.iter().cloned().fold(subscribed, Response::action));
        for response in responses {
            let xml = response.to_xml();
            for direction in [Direction::In, Direction::Out] {
                assert_eq!(
                    check_response(&xml, direction.clone()).as_ref(),
                    Ok(&response),
                    "{direction:?}: {xml}"
                );
            }
        }
    }
}
