//! Escaping for the XML answers (`crate::answer` builds them).

use std::fmt::Write;

/// Escapes text for an XML attribute value in double quotes, or for element text. URLs carry `&` in their query.
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
    fn control_characters_become_character_references() {
        assert_eq!(escape("a\tb\nc\rd\u{7f}"), "a&#9;b&#10;c&#13;d&#127;");
    }
}
