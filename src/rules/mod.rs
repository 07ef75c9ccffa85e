//! Call rules: which answer a `newCall` gets, from a TOML file (`CALL_RULES_FILE`).
//!
//! Rules are tried in order; the first whose `match` fits decides the answer. A rule can
//! lead to a keypad menu, whose digits come back as a `dtmf` push to
//! `/on-dtmf?menu=NAME` and are answered with the chosen option. Every answer is checked
//! and rendered when the file is read, so a request only picks one.
//! `examples/call-rules.toml` shows the format; `docs/rules.md` describes it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use jiff::tz::TimeZone;

use crate::answer::Number;
use crate::config::WebhookUrl;
use crate::event::{Direction, NewCall};
use crate::exchange::RuleRef;

pub mod commands;
mod file;
mod hours;

pub use file::RulesError;
pub use hours::Hours;

/// A checked rules file, with its answers rendered.
#[derive(Debug)]
pub struct Rules {
    file: String,
    rules: Vec<Rule>,
    menus: BTreeMap<String, Menu>,
    /// The subscription only: the answer when no rule fits.
    plain: Answer,
}

#[derive(Debug)]
struct Rule {
    id: RuleRef,
    line: usize,
    when: Conditions,
    answer: Answer,
}

/// A rule's `match`; every condition given must fit.
#[derive(Debug, Default)]
struct Conditions {
    from: Option<NumberPattern>,
    to: Option<NumberPattern>,
    direction: Option<Direction>,
    user: Option<String>,
    hours: Option<Hours>,
}

#[derive(Debug)]
struct Menu {
    /// The `<Gather>` that asks for the digits.
    answer: Answer,
    options: BTreeMap<String, Answer>,
    otherwise: Answer,
}

/// An answer as the rules describe it, and its XML.
#[derive(Debug, Clone)]
struct Answer {
    description: String,
    xml: Arc<str>,
}

/// `from`/`to` in a `match`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NumberPattern {
    /// sipgate sends `anonymous` for a caller who hides the number (once, an empty value).
    Anonymous,
    Exact(Number),
    /// `49211*`: every number that starts with these digits.
    Prefix(String),
}

impl NumberPattern {
    fn parse(text: &str) -> Result<NumberPattern, String> {
        if text.eq_ignore_ascii_case("anonymous") {
            return Ok(NumberPattern::Anonymous);
        }
        if let Some(prefix) = text.strip_suffix('*') {
            let digits = prefix.strip_prefix('+').unwrap_or(prefix);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                return Ok(NumberPattern::Prefix(digits.to_owned()));
            }
        } else if let Ok(number) = Number::new(text) {
            return Ok(NumberPattern::Exact(number));
        }
        Err(format!(
            "{text:?} is not a number pattern: expected E.164 digits (4921100000000), anonymous, or a prefix ending in * (49211*)"
        ))
    }

    fn fits(&self, number: &str) -> bool {
        let digits = number.strip_prefix('+').unwrap_or(number);
        match self {
            NumberPattern::Anonymous => {
                number.is_empty() || number.eq_ignore_ascii_case("anonymous")
            }
            NumberPattern::Exact(exact) => digits == exact.as_str(),
            NumberPattern::Prefix(prefix) => digits.starts_with(prefix.as_str()),
        }
    }
}

impl fmt::Display for NumberPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumberPattern::Anonymous => f.write_str("anonymous"),
            NumberPattern::Exact(number) => number.fmt(f),
            NumberPattern::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// The answer a `newCall` gets from the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The rule that fitted; `None` when none did.
    pub rule: Option<RuleRef>,
    pub xml: Arc<str>,
}

/// The answer to a menu's digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The option the digits chose; `None`: no digits, or digits without an option, so
    /// `otherwise` answered.
    pub option: Option<String>,
    pub xml: Arc<str>,
}

impl Rules {
    /// Reads and checks the rules file at `path`. Menus post their digits to
    /// `WEBHOOK_URL`'s `/on-dtmf`.
    ///
    /// # Errors
    /// The file cannot be read, or a rule or menu is not valid; the error names the file,
    /// the line and the problem.
    pub fn load(path: &Path, webhook: &WebhookUrl) -> Result<Rules, RulesError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| RulesError {
            file: file.clone(),
            line: None,
            problem: format!("cannot read the rules file: {error}"),
        })?;
        Rules::parse(&text, &file, webhook)
    }

    /// [`Rules::load`] for a file's text; `file` names it in errors.
    ///
    /// # Errors
    /// As [`Rules::load`].
    pub fn parse(text: &str, file: &str, webhook: &WebhookUrl) -> Result<Rules, RulesError> {
        file::parse(text, file, webhook)
    }

    /// The answer to `call`, received at `at`; `zone` is where `hours` are read.
    pub fn decide(&self, call: &NewCall, at: SystemTime, zone: &TimeZone) -> Decision {
        let local = jiff::Timestamp::try_from(at)
            .ok()
            .map(|timestamp| timestamp.to_zoned_datetime(zone.clone()));
        let fitting = self.rules.iter().find(|rule| {
            let when = &rule.when;
            when.from
                .as_ref()
                .is_none_or(|pattern| pattern.fits(&call.from))
                && when
                    .to
                    .as_ref()
                    .is_none_or(|pattern| pattern.fits(&call.to))
                && when
                    .direction
                    .as_ref()
                    .is_none_or(|direction| call.direction.as_ref() == Some(direction))
                && when.user.as_ref().is_none_or(|user| {
                    call.users
                        .iter()
                        .any(|name| name.eq_ignore_ascii_case(user))
                })
                && when.hours.as_ref().is_none_or(|hours| {
                    local.as_ref().is_some_and(|local| {
                        let minute =
                            u16::try_from(i32::from(local.hour()) * 60 + i32::from(local.minute()))
                                .unwrap_or(0);
                        hours.contains(local.weekday(), minute)
                    })
                })
        });
        match fitting {
            Some(rule) => Decision {
                rule: Some(rule.id.clone()),
                xml: Arc::clone(&rule.answer.xml),
            },
            None => Decision {
                rule: None,
                xml: Arc::clone(&self.plain.xml),
            },
        }
    }

    /// The answer to `digits` typed in the menu `menu`; `None` when there is no such menu
    /// (it was removed by a reload while the caller was in it).
    pub fn choose(&self, menu: &str, digits: Option<&str>) -> Option<Choice> {
        let menu = self.menus.get(menu)?;
        Some(
            match digits.and_then(|digits| menu.options.get_key_value(digits)) {
                Some((option, answer)) => Choice {
                    option: Some(option.clone()),
                    xml: Arc::clone(&answer.xml),
                },
                None => Choice {
                    option: None,
                    xml: Arc::clone(&menu.otherwise.xml),
                },
            },
        )
    }

    /// How many rules and menus there are, for the log.
    pub fn summary(&self) -> String {
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        format!(
            "{} and {}",
            plural(self.rules.len(), "rule"),
            plural(self.menus.len(), "menu")
        )
    }

    /// The rules as they were understood, one per line, for `check-rules`.
    pub fn describe(&self, zone_name: &str) -> String {
        let mut text = format!("{}: {}\n", self.file, self.summary());
        for rule in &self.rules {
            let when = &rule.when;
            let mut conditions = Vec::new();
            if let Some(from) = &when.from {
                conditions.push(format!("from {from}"));
            }
            if let Some(to) = &when.to {
                conditions.push(format!("to {to}"));
            }
            if let Some(direction) = &when.direction {
                conditions.push(format!("direction {}", direction.as_str()));
            }
            if let Some(user) = &when.user {
                conditions.push(format!("user {user:?}"));
            }
            if let Some(hours) = &when.hours {
                conditions.push(format!("hours {hours} ({zone_name})"));
            }
            let conditions = if conditions.is_empty() {
                "every call".to_owned()
            } else {
                conditions.join(", ")
            };
            text.push_str(&format!(
                "{} (line {}): {conditions} → {}\n",
                rule.id, rule.line, rule.answer.description
            ));
        }
        for menu in self.menus.values() {
            let mut options: Vec<String> = menu
                .options
                .iter()
                .map(|(digits, answer)| format!("{digits} → {}", answer.description))
                .collect();
            options.push(format!("otherwise → {}", menu.otherwise.description));
            text.push_str(&format!(
                "{}: {}\n",
                menu.answer.description,
                options.join("; ")
            ));
        }
        text.push_str(&format!("no rule fits → {}\n", self.plain.description));
        text
    }
}

#[cfg(test)]
mod tests;
