//! The XML document sipgate expects in answer to a `newCall`, with attribute values escaped.

use std::fmt::Write;

/// `<Response>` with the follow-up subscriptions. Attribute values are absolute URLs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseDoc {
    /// Where sipgate POSTs `event=answer`.
    pub on_answer: Option<String>,
    /// Where sipgate POSTs `event=hangup`.
    pub on_hangup: Option<String>,
}

impl ResponseDoc {
    /// Renders the document: an XML declaration, then one `<Response … />` element.
    pub fn to_xml(&self) -> String {
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response");
        for (name, value) in [("onAnswer", &self.on_answer), ("onHangup", &self.on_hangup)] {
            if let Some(value) = value {
                write!(xml, " {name}=\"{}\"", escape(value))
                    .expect("writing to a String cannot fail");
            }
        }
        xml.push_str(" />\n");
        xml
    }
}

/// Escapes text for an XML attribute value in double quotes. URLs carry `&` in their query.
/// Control characters become character references: a parser would turn a raw tab or
/// newline in an attribute into a space.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            control if control.is_control() => {
                write!(escaped, "&#{};", u32::from(control))
                    .expect("writing to a String cannot fail");
            }
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_both_subscriptions_with_escaping() {
        let doc = ResponseDoc {
            on_answer: Some("https://h.example/on-answer?a=1&b=\"<'>\"".into()),
            on_hangup: Some("https://h.example/on-hangup".into()),
        };
        assert_eq!(
            doc.to_xml(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <Response onAnswer=\"https://h.example/on-answer?a=1&amp;b=&quot;&lt;&apos;&gt;&quot;\" \
             onHangup=\"https://h.example/on-hangup\" />\n"
        );
    }

    #[test]
    fn control_characters_become_character_references() {
        assert_eq!(escape("a\tb\nc\rd\u{7f}"), "a&#9;b&#10;c&#13;d&#127;");
    }

    #[test]
    fn empty_response_means_normal_routing() {
        assert_eq!(
            ResponseDoc::default().to_xml(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response />\n"
        );
    }
}
