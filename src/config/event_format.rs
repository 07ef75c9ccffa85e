//! `EVENT_FORMAT`: how event lines are written.

use std::str::FromStr;

/// How event lines are written (`EVENT_FORMAT`); `output` writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventFormat {
    /// A sentence per event, for a person watching a terminal.
    #[default]
    Text,
    /// One JSON object per line, for `jq`, log shippers and scripts.
    Json,
}

impl FromStr for EventFormat {
    type Err = ();

    fn from_str(value: &str) -> Result<EventFormat, ()> {
        match value.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(EventFormat::Text),
            "json" => Ok(EventFormat::Json),
            _ => Err(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_parse_in_any_case() {
        assert_eq!("JSON".parse(), Ok(EventFormat::Json));
        assert_eq!(" text ".parse(), Ok(EventFormat::Text));
        assert_eq!("yaml".parse::<EventFormat>(), Err(()));
    }
}
