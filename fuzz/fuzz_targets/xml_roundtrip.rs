//! `xml::ResponseDoc::to_xml` must produce a document that `simulate::xml_reader`, the
//! reader the simulator checks a server's answers with, reads back as one `<Response>`
//! element without children or text whose attributes are exactly the values given.
//!
//! Input: one flag byte (bit 0 onAnswer present, bit 1 onHangup present, bit 2 build the
//! values the way the app does, from `WebhookUrl::parse` of the rest), then the two
//! values separated by a 0xFF byte (never part of UTF-8).
//!
//! Control characters are in scope in the arbitrary-value mode: `to_xml` writes them as
//! character references (`&#9;`), which the reader decodes. XML 1.0 allows no reference to
//! most C0 controls (`&#1;`), so the WebhookUrl mode checks that the app never writes one:
//! `WebhookUrl::parse` refuses control characters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipgateio_callevents::config::WebhookUrl;
use sipgateio_callevents::router::paths;
use sipgateio_callevents::simulate::xml_reader::parse_document;
use sipgateio_callevents::xml::ResponseDoc;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let doc = if flags & 4 != 0 {
        let Ok(url) = WebhookUrl::parse(&String::from_utf8_lossy(rest)) else {
            return;
        };
        let doc = ResponseDoc {
            on_answer: (flags & 1 != 0).then(|| url.callback(paths::ON_ANSWER)),
            on_hangup: (flags & 2 != 0).then(|| url.callback(paths::ON_HANGUP)),
        };
        for value in [&doc.on_answer, &doc.on_hangup].into_iter().flatten() {
            assert!(!value.chars().any(char::is_control), "{value:?}");
        }
        doc
    } else {
        let mut values = rest.splitn(2, |&b| b == 0xFF);
        let first = String::from_utf8_lossy(values.next().unwrap_or_default()).into_owned();
        let second = String::from_utf8_lossy(values.next().unwrap_or_default()).into_owned();
        ResponseDoc {
            on_answer: (flags & 1 != 0).then_some(first),
            on_hangup: (flags & 2 != 0).then_some(second),
        }
    };

    let xml = doc.to_xml();
    let root = parse_document(&xml).unwrap_or_else(|e| panic!("{e}: {xml:?}"));
    assert_eq!(root.name, "Response", "{xml:?}");
    assert!(root.children.is_empty() && root.text.is_empty(), "{xml:?}");
    let expected: Vec<(&str, &str)> = [("onAnswer", &doc.on_answer), ("onHangup", &doc.on_hangup)]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value.as_deref()?)))
        .collect();
    let got: Vec<(&str, &str)> = root
        .attributes
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(got, expected, "{xml:?}");
});
