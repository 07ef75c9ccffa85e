//! The rules file (`CALL_RULES_FILE`, TOML) read into checked rules and menus, with every
//! answer rendered once, at load. A problem is reported with the file, the line and what
//! to write instead.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::hours::Hours;
use super::{Answer, Conditions, Menu, NumberPattern, Rule, Rules};
use crate::answer::{Action, AnswerError, Dial, Gather, Number, Play, RejectReason, Response, Url};
use crate::config::WebhookUrl;
use crate::event::Direction;
use crate::exchange::RuleRef;
use crate::routes::{self, subscription};

/// A rules file that cannot be used: `FILE:LINE: problem`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesError {
    pub file: String,
    /// 1-based; `None` when the file could not be read at all.
    pub line: Option<usize>,
    pub problem: String,
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.problem),
            None => write!(f, "{}: {}", self.file, self.problem),
        }
    }
}

impl std::error::Error for RulesError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    #[serde(default)]
    rule: Vec<Spanned<RuleDef>>,
    #[serde(default)]
    menu: BTreeMap<String, Spanned<MenuDef>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef {
    name: Option<String>,
    #[serde(rename = "match", default)]
    when: MatchDef,
    answer: Spanned<AnswerDef>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MatchDef {
    from: Option<Spanned<String>>,
    to: Option<Spanned<String>>,
    direction: Option<Spanned<String>>,
    user: Option<String>,
    hours: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerDef {
    dial: Option<Spanned<OneOrMany>>,
    caller_id: Option<Spanned<String>>,
    anonymous: Option<bool>,
    voicemail: Option<bool>,
    reject: Option<Spanned<String>>,
    play: Option<Spanned<String>>,
    hangup: Option<bool>,
    menu: Option<Spanned<String>>,
}

/// `dial = "4915…"` or `dial = ["4915…", "4917…"]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MenuDef {
    play: Option<Spanned<String>>,
    max_digits: Option<Spanned<i64>>,
    timeout_ms: Option<Spanned<i64>>,
    #[serde(default)]
    options: BTreeMap<String, Spanned<AnswerDef>>,
    otherwise: Option<Spanned<AnswerDef>>,
}

/// What the answers are built with: the subscription every answer keeps, and where a
/// menu's digits go.
struct Builder<'a> {
    text: &'a str,
    file: &'a str,
    webhook: &'a WebhookUrl,
    /// Each menu's `<Gather>` answer, once built.
    menus: BTreeMap<String, Answer>,
}

/// Reads `text` (the file `file`); see [`Rules`].
pub(super) fn parse(text: &str, file: &str, webhook: &WebhookUrl) -> Result<Rules, RulesError> {
    let def: FileDef = toml::from_str(text).map_err(|error| RulesError {
        file: file.to_owned(),
        line: error.span().map(|span| line_of(text, span.start)),
        problem: error.message().trim_end().to_owned(),
    })?;
    let mut builder = Builder {
        text,
        file,
        webhook,
        menus: BTreeMap::new(),
    };

    // Every menu's own answer first, so that rules and options can lead to any menu,
    // itself included.
    for (name, menu) in &def.menu {
        let answer = builder.gather(name, menu)?;
        builder.menus.insert(name.clone(), answer);
    }
    let mut menus = BTreeMap::new();
    for (name, menu) in &def.menu {
        let digits = menu_max_digits(menu);
        let mut options = BTreeMap::new();
        for (keys, option) in &menu.get_ref().options {
            if keys.is_empty()
                || !keys
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
            {
                return Err(builder.error(
                    option.span(),
                    format!("menu {name:?}: option {keys:?} is not keypad digits (0-9, * and #)"),
                ));
            }
            if keys.len() > digits as usize {
                return Err(builder.error(
                    option.span(),
                    format!(
                        "menu {name:?}: option {keys:?} has {} digits but max_digits is {digits}, so it can never be chosen",
                        keys.len()
                    ),
                ));
            }
            let answer = builder
                .answer(option)
                .map_err(|error| error.about(&format!("menu {name:?}, option {keys:?}")))?;
            options.insert(keys.clone(), answer);
        }
        let otherwise = match &menu.get_ref().otherwise {
            Some(otherwise) => builder
                .answer(otherwise)
                .map_err(|error| error.about(&format!("menu {name:?}, otherwise")))?,
            None => builder.plain(),
        };
        menus.insert(
            name.clone(),
            Menu {
                answer: builder.menus[name].clone(),
                options,
                otherwise,
            },
        );
    }

    let mut rules = Vec::with_capacity(def.rule.len());
    for (index, rule) in def.rule.iter().enumerate() {
        let id = RuleRef {
            number: index + 1,
            name: rule.get_ref().name.clone(),
        };
        let label = id.to_string();
        let line = line_of(text, rule.span().start);
        let when = builder
            .conditions(&rule.get_ref().when)
            .map_err(|error| error.about(&label))?;
        let answer = builder
            .answer(&rule.get_ref().answer)
            .map_err(|error| error.about(&label))?;
        rules.push(Rule {
            id,
            line,
            when,
            answer,
        });
    }
    Ok(Rules {
        file: file.to_owned(),
        rules,
        menus,
        plain: builder.plain(),
    })
}

fn menu_max_digits(menu: &Spanned<MenuDef>) -> i64 {
    menu.get_ref()
        .max_digits
        .as_ref()
        .map_or(i64::from(Gather::DEFAULT_MAX_DIGITS), |n| *n.get_ref())
}

/// A problem found while building, before it knows which rule or menu it belongs to.
struct Problem {
    error: RulesError,
}

impl Problem {
    fn about(self, whom: &str) -> RulesError {
        RulesError {
            problem: format!("{whom}: {}", self.error.problem),
            ..self.error
        }
    }
}

impl Builder<'_> {
    fn error(&self, span: Range<usize>, problem: String) -> RulesError {
        RulesError {
            file: self.file.to_owned(),
            line: Some(line_of(self.text, span.start)),
            problem,
        }
    }

    fn problem(&self, span: Range<usize>, problem: impl fmt::Display) -> Problem {
        Problem {
            error: self.error(span, problem.to_string()),
        }
    }

    fn subscribed(&self) -> Response {
        subscription(self.webhook)
    }

    /// The answer without a rules file: the subscription only.
    fn plain(&self) -> Answer {
        Answer::new("as the account routes it".to_owned(), &self.subscribed())
    }

    fn gather(&self, name: &str, menu: &Spanned<MenuDef>) -> Result<Answer, RulesError> {
        let whom = format!("menu {name:?}");
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(self.error(
                menu.span(),
                format!("{whom}: a menu name takes letters, digits, - and _ only"),
            ));
        }
        let def = menu.get_ref();
        let on_data = Url::new(
            &self
                .webhook
                .callback_with(routes::ON_DTMF, &format!("menu={name}")),
        )
        .expect("WEBHOOK_URL is an absolute URL");
        let mut gather = Gather::new(on_data);
        let mut description = format!("menu {name}");
        if let Some(max_digits) = &def.max_digits {
            gather = gather
                .max_digits(self.u32_of(max_digits, &whom, "max_digits")?)
                .map_err(|error| self.problem(max_digits.span(), error).about(&whom))?;
        }
        if let Some(timeout_ms) = &def.timeout_ms {
            gather = gather
                .timeout_ms(self.u32_of(timeout_ms, &whom, "timeout_ms")?)
                .map_err(|error| self.problem(timeout_ms.span(), error).about(&whom))?;
        }
        if let Some(play) = &def.play {
            let url = Url::new(play.get_ref())
                .map_err(|error| self.problem(play.span(), error).about(&whom))?;
            gather = gather.play(Play { url });
        }
        let digits = gather.max_digit_count();
        description.push_str(&format!(
            " (up to {digits} digit{}, {} ms{})",
            if digits == 1 { "" } else { "s" },
            gather.timeout(),
            gather
                .announcement()
                .map(|play| format!(", playing {}", play.url))
                .unwrap_or_default()
        ));
        Ok(Answer::new(
            description,
            &self.subscribed().action(Action::Gather(gather)),
        ))
    }

    fn u32_of(&self, value: &Spanned<i64>, whom: &str, key: &str) -> Result<u32, RulesError> {
        u32::try_from(*value.get_ref()).map_err(|_| {
            self.error(
                value.span(),
                format!(
                    "{whom}: {key} {} is not a whole number from 1 to {}",
                    value.get_ref(),
                    u32::MAX
                ),
            )
        })
    }

    fn conditions(&self, def: &MatchDef) -> Result<Conditions, Problem> {
        let pattern = |value: &Option<Spanned<String>>, key: &str| {
            value
                .as_ref()
                .map(|value| {
                    NumberPattern::parse(value.get_ref()).map_err(|problem| {
                        self.problem(value.span(), format!("match {key}: {problem}"))
                    })
                })
                .transpose()
        };
        let direction = def
            .direction
            .as_ref()
            .map(|value| match value.get_ref().as_str() {
                "in" => Ok(Direction::In),
                "out" => Ok(Direction::Out),
                other => Err(self.problem(
                    value.span(),
                    format!("match direction {other:?} is unknown: expected in or out"),
                )),
            })
            .transpose()?;
        let hours = def
            .hours
            .as_ref()
            .map(|value| {
                Hours::parse(value.get_ref())
                    .map_err(|problem| self.problem(value.span(), format!("match {problem}")))
            })
            .transpose()?;
        Ok(Conditions {
            from: pattern(&def.from, "from")?,
            to: pattern(&def.to, "to")?,
            direction,
            user: def.user.clone(),
            hours,
        })
    }

    fn answer(&self, def: &Spanned<AnswerDef>) -> Result<Answer, Problem> {
        let span = def.span();
        let def = def.get_ref();
        let kinds: Vec<&str> = [
            ("dial", def.dial.is_some()),
            ("voicemail", def.voicemail.is_some()),
            ("reject", def.reject.is_some()),
            ("play", def.play.is_some()),
            ("hangup", def.hangup.is_some()),
            ("menu", def.menu.is_some()),
        ]
        .into_iter()
        .filter_map(|(kind, given)| given.then_some(kind))
        .collect();
        const KINDS: &str = "dial, voicemail, reject, play, hangup or menu";
        match kinds.as_slice() {
            [] => return Err(self.problem(span, format!("an answer needs one of {KINDS}"))),
            [_] => {}
            several => {
                return Err(self.problem(
                    span,
                    format!(
                        "an answer takes one of {KINDS}, not {}",
                        several.join(" and ")
                    ),
                ));
            }
        }
        if (def.caller_id.is_some() || def.anonymous.is_some())
            && def.dial.is_none()
            && def.voicemail.is_none()
        {
            return Err(self.problem(span, "caller_id and anonymous go with dial or voicemail"));
        }
        let on = |flag: Option<bool>, kind: &str| match flag {
            Some(false) => Err(self.problem(
                span.clone(),
                format!("{kind} = false means nothing: leave it out, or set {kind} = true"),
            )),
            _ => Ok(()),
        };
        on(def.voicemail, "voicemail")?;
        on(def.hangup, "hangup")?;

        let (description, action) = if let Some(dial) = &def.dial {
            let texts = match dial.get_ref() {
                OneOrMany::One(one) => vec![one.clone()],
                OneOrMany::Many(many) => many.clone(),
            };
            let numbers = texts
                .iter()
                .map(|text| Number::new(text))
                .collect::<Result<Vec<_>, AnswerError>>()
                .map_err(|error| self.problem(dial.span(), format!("dial: {error}")))?;
            let dial_to =
                Dial::numbers(numbers.clone()).map_err(|error| self.problem(dial.span(), error))?;
            let list = numbers
                .iter()
                .map(Number::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            self.dial_options(def, dial_to, format!("dial {list}"))?
        } else if def.voicemail.is_some() {
            self.dial_options(def, Dial::voicemail(), "voicemail".to_owned())?
        } else if let Some(reason) = &def.reject {
            let reason: RejectReason = reason
                .get_ref()
                .parse()
                .map_err(|error| self.problem(reason.span(), error))?;
            (
                format!("reject ({})", reason.as_str()),
                Some(Action::Reject(reason)),
            )
        } else if let Some(play) = &def.play {
            let url = Url::new(play.get_ref())
                .map_err(|error| self.problem(play.span(), format!("play: {error}")))?;
            (format!("play {url}"), Some(Action::Play(Play { url })))
        } else if def.hangup.is_some() {
            ("hang up".to_owned(), Some(Action::Hangup))
        } else if let Some(menu) = &def.menu {
            let name = menu.get_ref();
            return self.menus.get(name).cloned().ok_or_else(|| {
                let known = self.menus.keys().map(String::as_str).collect::<Vec<_>>();
                self.problem(
                    menu.span(),
                    if known.is_empty() {
                        format!("menu {name:?} is not defined: add a [menu.{name}] table")
                    } else {
                        format!("menu {name:?} is not defined (menus: {})", known.join(", "))
                    },
                )
            });
        } else {
            unreachable!("exactly one kind was checked above")
        };
        let mut response = self.subscribed();
        if let Some(action) = action {
            response = response.action(action);
        }
        Ok(Answer::new(description, &response))
    }

    fn dial_options(
        &self,
        def: &AnswerDef,
        mut dial: Dial,
        mut description: String,
    ) -> Result<(String, Option<Action>), Problem> {
        if let Some(caller_id) = &def.caller_id {
            let number = Number::new(caller_id.get_ref())
                .map_err(|error| self.problem(caller_id.span(), format!("caller_id: {error}")))?;
            description.push_str(&format!(", caller id {number}"));
            dial = dial.caller_id(number);
        }
        if let Some(anonymous) = def.anonymous {
            if anonymous {
                description.push_str(", anonymous");
            }
            dial = dial.anonymous(anonymous);
        }
        Ok((description, Some(Action::Dial(dial))))
    }
}

impl Answer {
    fn new(description: String, response: &Response) -> Answer {
        Answer {
            description,
            xml: Arc::from(response.to_xml()),
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
