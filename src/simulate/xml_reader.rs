//! A reader for the small XML subset sipgate uses: elements, attributes, text, the five
//! named entities and character references, comments, an XML declaration. Anything else
//! (DOCTYPE, CDATA, processing instructions) is refused, which no sipgate answer needs.
//!
//! `simulate` reads a server's answers with it before `check` holds them against what
//! sipgate accepts; the fuzz target `xml_roundtrip` reads `answer::Response::to_xml` back
//! with it. It is not a full XML 1.0 parser: attribute values are not white-space
//! normalised (a raw tab stays a tab), and references to characters XML 1.0 forbids, such
//! as `&#1;`, are decoded.

use crate::output::Printable;

/// One element, with its text content joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The name as written; names are case-sensitive.
    pub name: String,
    /// In document order, values decoded; a name appears at most once.
    pub attributes: Vec<(String, String)>,
    /// The child elements in document order.
    pub children: Vec<Element>,
    /// The text between the children, decoded and joined, white space kept.
    pub text: String,
}

impl Element {
    /// The decoded value of the attribute `name`, if present.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// sipgate's documents are two or three levels deep; the bound keeps a hostile answer from
/// overflowing the stack.
const MAX_DEPTH: usize = 16;

/// Reads a whole document: an optional byte order mark and XML declaration (UTF-8 only),
/// one root element, and around it only white space and comments.
///
/// # Errors
/// One sentence saying what is wrong; syntax errors name the line and column and show the
/// text there.
pub fn parse_document(text: &str) -> Result<Element, String> {
    let mut reader = Reader {
        text: text.strip_prefix('\u{feff}').unwrap_or(text),
        pos: 0,
    };
    if reader.text.trim().is_empty() {
        return Err(
            "the answer is empty; sipgate expects an XML document such as <Response/>".into(),
        );
    }
    if reader.rest().starts_with("<?xml") {
        reader.declaration()?;
    } else if reader.text.trim_start().starts_with("<?xml") {
        return Err(
            "something (a blank line or spaces) comes before <?xml …?>, which must be the very first characters of the answer"
                .into(),
        );
    }
    reader.misc()?;
    if !reader.rest().starts_with('<') {
        return Err(reader.error("expected the <Response> element"));
    }
    let root = reader.element(0)?;
    reader.misc()?;
    if !reader.rest().is_empty() {
        return Err(reader.error(&format!(
            "content after the end of <{}>; a document has one root element",
            root.name
        )));
    }
    Ok(root)
}

struct Reader<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    /// `message`, with the line and column and a glimpse of the text there.
    fn error(&self, message: &str) -> String {
        let before = &self.text[..self.pos];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |at| at + 1) + 1;
        let glimpse: String = self.rest().chars().take(24).collect();
        if glimpse.is_empty() {
            format!("{message} (line {line}, column {column}, at the end)")
        } else {
            format!(
                "{message} (line {line}, column {column}, at {:?})",
                Printable(&glimpse).to_string()
            )
        }
    }

    fn skip_whitespace(&mut self) -> bool {
        let rest = self.rest();
        let trimmed = rest.trim_start_matches([' ', '\t', '\r', '\n']);
        self.pos += rest.len() - trimmed.len();
        trimmed.len() != rest.len()
    }

    fn expect(&mut self, token: &str, what: &str) -> Result<(), String> {
        if self.rest().starts_with(token) {
            self.pos += token.len();
            Ok(())
        } else {
            Err(self.error(&format!("expected {what}")))
        }
    }

    /// `<?xml version="1.0" encoding="UTF-8"?>`: only UTF-8, as the answer is read as UTF-8.
    fn declaration(&mut self) -> Result<(), String> {
        let Some(end) = self.rest().find("?>") else {
            return Err(self.error("the XML declaration <?xml … is not closed with ?>"));
        };
        let inside = self.rest()["<?xml".len()..end].to_owned();
        if let Some(at) = inside.find("encoding=") {
            let value = inside[at + "encoding=".len()..]
                .trim_start_matches(['"', '\''])
                .split(['"', '\''])
                .next()
                .unwrap_or("");
            if !value.eq_ignore_ascii_case("utf-8") {
                return Err(format!(
                    "the XML declaration names encoding {value:?}; send UTF-8 and declare encoding=\"UTF-8\""
                ));
            }
        }
        self.pos += end + 2;
        Ok(())
    }

    /// Whitespace and comments between elements.
    fn misc(&mut self) -> Result<(), String> {
        loop {
            self.skip_whitespace();
            if self.rest().starts_with("<!--") {
                self.comment()?;
            } else if self.rest().starts_with("<!") || self.rest().starts_with("<?") {
                return Err(self.error(
                    "DOCTYPE, CDATA and processing instructions are not part of sipgate's XML",
                ));
            } else {
                return Ok(());
            }
        }
    }

    fn comment(&mut self) -> Result<(), String> {
        match self.rest()[4..].find("-->") {
            Some(end) => {
                self.pos += 4 + end + 3;
                Ok(())
            }
            None => Err(self.error("a comment <!-- is not closed with -->")),
        }
    }

    fn name(&mut self, what: &str) -> Result<String, String> {
        let rest = self.rest();
        let len = rest
            .char_indices()
            .find(|&(at, c)| {
                let allowed = c.is_alphabetic() || c == '_' || c == ':';
                !(allowed || (at > 0 && (c.is_alphanumeric() || c == '-' || c == '.')))
            })
            .map_or(rest.len(), |(at, _)| at);
        if len == 0 {
            return Err(self.error(&format!("expected {what}")));
        }
        let name = rest[..len].to_owned();
        self.pos += len;
        Ok(name)
    }

    fn element(&mut self, depth: usize) -> Result<Element, String> {
        if depth > MAX_DEPTH {
            return Err(self.error(&format!(
                "elements nested more than {MAX_DEPTH} deep; sipgate's XML is three levels deep"
            )));
        }
        self.expect("<", "<")?;
        let name = self.name("an element name after <")?;
        let mut element = Element {
            name,
            attributes: Vec::new(),
            children: Vec::new(),
            text: String::new(),
        };
        loop {
            let spaced = self.skip_whitespace();
            if self.rest().starts_with("/>") {
                self.pos += 2;
                return Ok(element);
            }
            if self.rest().starts_with('>') {
                self.pos += 1;
                break;
            }
            if self.rest().is_empty() {
                return Err(self.error(&format!("<{} is not closed with > or />", element.name)));
            }
            if !spaced {
                return Err(self.error(&format!("expected a space, > or /> in <{}>", element.name)));
            }
            let attribute =
                self.name(&format!("an attribute name, > or /> in <{}>", element.name))?;
            self.skip_whitespace();
            self.expect("=", &format!("= after the attribute name {attribute}"))?;
            self.skip_whitespace();
            let quote = match self.rest().chars().next() {
                Some(quote @ ('"' | '\'')) => quote,
                _ => {
                    return Err(self.error(&format!("expected the value of {attribute} in quotes")));
                }
            };
            self.pos += 1;
            let Some(end) = self.rest().find(quote) else {
                return Err(self.error(&format!(
                    "the value of {attribute} is not closed with {quote}"
                )));
            };
            let raw = &self.rest()[..end];
            if raw.contains('<') {
                return Err(self.error(&format!("the value of {attribute} holds a <; write &lt;")));
            }
            let value = decode(raw).map_err(|problem| {
                self.error(&format!("in the value of {attribute}: {problem}"))
            })?;
            if element.attribute(&attribute).is_some() {
                return Err(self.error(&format!(
                    "the attribute {attribute} appears twice in <{}>",
                    element.name
                )));
            }
            element.attributes.push((attribute, value));
            self.pos += end + 1;
        }
        loop {
            let rest = self.rest();
            if rest.starts_with("</") {
                self.pos += 2;
                let closing = self.name("an element name after </")?;
                if closing != element.name {
                    return Err(self.error(&format!(
                        "</{closing}> closes <{}>; expected </{}>",
                        element.name, element.name
                    )));
                }
                self.skip_whitespace();
                self.expect(">", &format!("> to end </{closing}"))?;
                return Ok(element);
            } else if rest.starts_with("<!--") {
                self.comment()?;
            } else if rest.starts_with("<!") || rest.starts_with("<?") {
                return Err(
                    self.error("CDATA and processing instructions are not part of sipgate's XML")
                );
            } else if rest.starts_with('<') {
                let child = self.element(depth + 1)?;
                element.children.push(child);
            } else if rest.is_empty() {
                return Err(self.error(&format!(
                    "<{}> is not closed; expected </{}>",
                    element.name, element.name
                )));
            } else {
                let end = rest.find('<').unwrap_or(rest.len());
                let text = decode(&rest[..end]).map_err(|problem| self.error(&problem))?;
                element.text.push_str(&text);
                self.pos += end;
            }
        }
    }
}

/// Replaces entity and character references; a bare `&` is an error, the usual one being an
/// unescaped `&` between a URL's query parameters.
fn decode(raw: &str) -> Result<String, String> {
    let mut decoded = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        decoded.push_str(&rest[..at]);
        rest = &rest[at..];
        // Bytes, not a slice of the str: the twelfth byte can fall inside a character.
        let end = rest.bytes().take(12).position(|b| b == b';');
        let reference = end.map(|end| &rest[1..end]);
        let c = match reference {
            Some("amp") => Some('&'),
            Some("lt") => Some('<'),
            Some("gt") => Some('>'),
            Some("quot") => Some('"'),
            Some("apos") => Some('\''),
            Some(number) if number.starts_with('#') => {
                let code = match number.strip_prefix("#x") {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => number[1..].parse::<u32>().ok(),
                };
                code.and_then(char::from_u32)
            }
            _ => None,
        };
        match (c, end) {
            (Some(c), Some(end)) => {
                decoded.push(c);
                rest = &rest[end + 1..];
            }
            _ => {
                let glimpse: String = rest.chars().take(12).collect();
                return Err(format!(
                    "a bare & at {glimpse:?}; XML needs &amp; for & (also between a URL's query parameters)"
                ));
            }
        }
    }
    decoded.push_str(rest);
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_next_to_multibyte_characters_are_read() {
        let root = parse_document("<Response onAnswer=\"http://h/a?x=1&amp;y=ééé\"/>").unwrap();
        assert_eq!(root.attribute("onAnswer"), Some("http://h/a?x=1&y=ééé"));
        let problem = parse_document("<Response onAnswer=\"http://h/a?x=1&éééééé\"/>").unwrap_err();
        assert!(problem.contains("a bare & at \"&ééé"), "{problem}");
    }
}
