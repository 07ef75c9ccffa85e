//! `xml::ResponseDoc::to_xml` must produce a well-formed document whose attributes parse
//! back to exactly the values given. The parser below is a strict XML 1.0 reader for this
//! one document shape (declaration, one empty element, attributes), including the
//! attribute-value normalisation every conforming parser applies.
//!
//! Input: one flag byte (bit 0 onAnswer present, bit 1 onHangup present, bit 2 build the
//! values the way the app does, from `WebhookUrl::parse` of the rest), then the two
//! values separated by a 0xFF byte (never part of UTF-8).
//!
//! Values the app cannot produce are out of scope in the arbitrary-value mode: control
//! characters, which `WebhookUrl::parse` refuses. `to_xml` writes them as numeric character
//! references, which the reader below does not decode, so they are skipped here; the
//! WebhookUrl mode checks that no configured URL can reach them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipgateio_callevents::config::WebhookUrl;
use sipgateio_callevents::router::paths;
use sipgateio_callevents::xml::ResponseDoc;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let doc = if flags & 4 != 0 {
        let Ok(url) = WebhookUrl::parse(&String::from_utf8_lossy(rest)) else {
            return;
        };
        ResponseDoc {
            on_answer: (flags & 1 != 0).then(|| url.callback(paths::ON_ANSWER)),
            on_hangup: (flags & 2 != 0).then(|| url.callback(paths::ON_HANGUP)),
        }
    } else {
        let mut values = rest.splitn(2, |&b| b == 0xFF);
        let first = String::from_utf8_lossy(values.next().unwrap_or_default()).into_owned();
        let second = String::from_utf8_lossy(values.next().unwrap_or_default()).into_owned();
        if [&first, &second]
            .iter()
            .any(|value| value.chars().any(char::is_control))
        {
            return;
        }
        ResponseDoc {
            on_answer: (flags & 1 != 0).then_some(first),
            on_hangup: (flags & 2 != 0).then_some(second),
        }
    };

    let xml = doc.to_xml();
    let attributes = parse_response(&xml).unwrap_or_else(|e| panic!("{e}: {xml:?}"));
    let expected: Vec<(&str, &str)> = [("onAnswer", &doc.on_answer), ("onHangup", &doc.on_hangup)]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value.as_deref()?)))
        .collect();
    let got: Vec<(&str, &str)> = attributes
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(got, expected, "{xml:?}");
});

const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// XML 1.0 `Char`.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// The attributes of the document's only element, `<Response … />`, in order.
fn parse_response(xml: &str) -> Result<Vec<(String, String)>, String> {
    let rest = xml
        .strip_prefix(DECLARATION)
        .ok_or("no XML declaration")?;
    let rest = rest.trim_start_matches(is_space);
    let mut rest = rest.strip_prefix("<Response").ok_or("no <Response")?;
    let mut attributes: Vec<(String, String)> = Vec::new();
    loop {
        let trimmed = rest.trim_start_matches(is_space);
        let had_space = trimmed.len() < rest.len();
        rest = trimmed;
        if let Some(after) = rest.strip_prefix("/>") {
            if !after.chars().all(is_space) {
                return Err(format!("content after the element: {after:?}"));
            }
            return Ok(attributes);
        }
        if !had_space {
            return Err("attributes must be separated by white space".into());
        }
        let name_len = rest
            .char_indices()
            .find(|&(i, c)| {
                !(c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && (c.is_ascii_digit() || c == '.' || c == '-')))
            })
            .map_or(rest.len(), |(i, _)| i);
        if name_len == 0 {
            return Err(format!("expected an attribute name at {rest:?}"));
        }
        let name = rest[..name_len].to_owned();
        rest = rest[name_len..].trim_start_matches(is_space);
        rest = rest.strip_prefix('=').ok_or("expected =")?;
        rest = rest.trim_start_matches(is_space);
        let quote = rest.chars().next().filter(|&q| q == '"' || q == '\'').ok_or("expected a quote")?;
        rest = &rest[1..];
        let end = rest.find(quote).ok_or("unterminated attribute value")?;
        let value = decode_value(&rest[..end])?;
        rest = &rest[end + 1..];
        if attributes.iter().any(|(n, _)| *n == name) {
            return Err(format!("attribute {name} twice"));
        }
        attributes.push((name, value));
    }
}

/// Replaces references and normalises white space as XML 1.0 §3.3.3 says for CDATA attributes.
fn decode_value(raw: &str) -> Result<String, String> {
    let mut value = String::with_capacity(raw.len());
    let mut chars = raw.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '<' => return Err("< in an attribute value".into()),
            '&' => {
                let end = raw[at..].find(';').ok_or("& without ;")? + at;
                let reference = &raw[at + 1..end];
                let decoded = match reference {
                    "amp" => '&',
                    "lt" => '<',
                    "gt" => '>',
                    "quot" => '"',
                    "apos" => '\'',
                    _ => {
                        let code = if let Some(hex) = reference.strip_prefix("#x") {
                            u32::from_str_radix(hex, 16)
                        } else if let Some(dec) = reference.strip_prefix('#') {
                            dec.parse()
                        } else {
                            return Err(format!("unknown entity &{reference};"));
                        }
                        .map_err(|_| format!("bad character reference &{reference};"))?;
                        char::from_u32(code)
                            .filter(|&c| is_xml_char(c))
                            .ok_or(format!("reference to a non-character &{reference};"))?
                    }
                };
                value.push(decoded);
                while chars.next().is_some_and(|(i, _)| i < end) {}
            }
            c if !is_xml_char(c) => return Err(format!("{c:?} is not an XML character")),
            '\t' | '\r' | '\n' => value.push(' '),
            c => value.push(c),
        }
    }
    Ok(value)
}
