//! `answer::Response::to_xml` must produce a document that `simulate::xml_reader`, the
//! reader the simulator checks a server's answers with, reads back to exactly the values
//! given: the `<Response>` attributes, and the URL of a `<Play>` and of a `<Gather>`.
//!
//! Input: one flag byte (bit 0 onAnswer present, bit 1 onHangup present, bit 2 build the
//! values the way the app does, from `WebhookUrl::parse` of the rest, bit 3 add a `<Play>`
//! of the first value, bit 4 a `<Gather>` posting to the second), then the two values
//! separated by a 0xFF byte (never part of UTF-8). In the arbitrary-value mode each value is
//! the path and query of an `https://h.example/` URL; the values `answer::Url` refuses
//! (white space, control characters) cannot be built, so they are skipped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipgateio_callevents::answer::{Action, Gather, Play, Response, Url};
use sipgateio_callevents::config::WebhookUrl;
use sipgateio_callevents::routes;
use sipgateio_callevents::simulate::xml_reader::parse_document;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (first, second) = if flags & 4 != 0 {
        let Ok(url) = WebhookUrl::parse(&String::from_utf8_lossy(rest)) else {
            return;
        };
        (
            url.callback(routes::ON_ANSWER),
            url.callback(routes::ON_HANGUP),
        )
    } else {
        let mut values = rest.splitn(2, |&b| b == 0xFF);
        let mut value = || {
            let text = String::from_utf8_lossy(values.next().unwrap_or_default()).into_owned();
            format!("https://h.example/{text}")
        };
        (value(), value())
    };
    let (Ok(first), Ok(second)) = (Url::new(&first), Url::new(&second)) else {
        assert!(
            flags & 4 == 0,
            "the app's callback URLs are URLs: {first:?} {second:?}"
        );
        return;
    };

    let mut doc = Response::new();
    let mut expected = Vec::new();
    if flags & 1 != 0 {
        doc = doc.on_answer(first.clone());
        expected.push(("onAnswer", first.as_str()));
    }
    if flags & 2 != 0 {
        doc = doc.on_hangup(second.clone());
        expected.push(("onHangup", second.as_str()));
    }
    if flags & 8 != 0 {
        doc = doc.action(Action::Play(Play { url: first.clone() }));
    }
    if flags & 16 != 0 {
        doc = doc.action(Action::Gather(Gather::new(second.clone())));
    }

    let xml = doc.to_xml();
    let root = parse_document(&xml).unwrap_or_else(|e| panic!("{e}: {xml:?}"));
    assert_eq!(root.name, "Response", "{xml:?}");
    let got: Vec<(&str, &str)> = root
        .attributes
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(got, expected, "{xml:?}");
    let mut children = root.children.iter();
    if flags & 8 != 0 {
        let play = children.next().expect("a Play element");
        assert_eq!(play.name, "Play", "{xml:?}");
        assert_eq!(play.children[0].text, first.as_str(), "{xml:?}");
    }
    if flags & 16 != 0 {
        let gather = children.next().expect("a Gather element");
        assert_eq!(gather.attribute("onData"), Some(second.as_str()), "{xml:?}");
    }
    assert!(children.next().is_none(), "{xml:?}");
});
