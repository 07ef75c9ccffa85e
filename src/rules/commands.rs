//! The subcommands for writing rules: `check-rules [FILE]` and `answer --from N --to N …`.
//! The binary reads the settings and prints; these do the work and say what went wrong.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{Decision, Rules};
use crate::config::Config;
use crate::event::{Direction, NewCall};
use crate::routes::subscription;

/// `check-rules --help`.
pub const CHECK_RULES_USAGE: &str = "\
Usage: sipgateio-callevents check-rules [FILE]

Checks a call rules file (FILE, or CALL_RULES_FILE) and prints how it is understood: each
rule, its conditions and its answer, and the menus. A file that is not valid is named
with its line and the problem (exit code 2). Settings come from the environment or a .env
file in the working directory, as for the server (TIMEZONE, WEBHOOK_URL).
";

/// `answer --help`.
pub const ANSWER_USAGE: &str = "\
Usage: sipgateio-callevents answer --from NUMBER --to NUMBER [--direction in|out]
       [--user NAME]... [--at TIME]

Prints the XML the call rules in CALL_RULES_FILE give a newCall from --from to --to (the
plain subscription without rules) on stdout, and which rule gave it on stderr. --at is a
local time in TIMEZONE (2026-12-07T09:30) for rules with hours; default now. Settings come
from the environment or a .env file in the working directory, as for the server.
";

/// `check-rules [FILE]`: the rules as understood, or the first problem (`FILE:LINE: …`).
///
/// # Errors
/// No file given or set, or the file is not valid.
pub fn check_rules(args: &[String], config: &Config) -> Result<String, String> {
    let path = match args {
        [] => config.call_rules_file.clone().ok_or_else(|| {
            "no rules file: pass one (check-rules FILE) or set CALL_RULES_FILE".to_owned()
        })?,
        [file] if !file.starts_with('-') => PathBuf::from(file),
        _ => return Err(format!("check-rules takes one FILE, not {args:?}")),
    };
    let rules = Rules::load(&path, &config.webhook_url).map_err(|error| error.to_string())?;
    Ok(rules.describe(
        config
            .timezone
            .iana_name()
            .unwrap_or("the TIMEZONE setting"),
    ))
}

/// What `answer` prints: the XML on stdout, and which rule gave it on stderr.
#[derive(Debug, PartialEq, Eq)]
pub struct Answered {
    pub xml: String,
    pub note: String,
}

/// `answer --from N --to N [--direction in|out] [--user NAME]… [--at TIME]`: the XML a
/// newCall would get from the rules in `CALL_RULES_FILE` (the plain answer without one).
///
/// # Errors
/// A bad or missing option, or a rules file that is not valid.
pub fn answer(args: &[String], config: &Config, now: SystemTime) -> Result<Answered, String> {
    let mut call = NewCall {
        call_id: "answer-subcommand".to_owned(),
        direction: Some(Direction::In),
        ..NewCall::default()
    };
    let (mut from, mut to, mut at) = (None, None, None);
    let mut args = args.iter();
    while let Some(option) = args.next() {
        let mut value = || {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{option} needs a value"))
        };
        match option.as_str() {
            "--from" => from = Some(value()?),
            "--to" => to = Some(value()?),
            "--direction" => {
                call.direction = Some(match value()?.as_str() {
                    "in" => Direction::In,
                    "out" => Direction::Out,
                    other => return Err(format!("--direction {other:?}: expected in or out")),
                });
            }
            "--user" => call.users.push(value()?),
            "--at" => at = Some(parse_time(&value()?, config)?),
            other => {
                return Err(format!(
                    "unknown option {other:?}; answer takes --from N --to N [--direction in|out] [--user NAME] [--at TIME]"
                ));
            }
        }
    }
    call.from = from.ok_or("answer needs --from NUMBER (or --from anonymous)")?;
    call.to = to.ok_or("answer needs --to NUMBER")?;
    let at = at.unwrap_or(now);

    let (decision, file) = match &config.call_rules_file {
        Some(path) => {
            let rules =
                Rules::load(path, &config.webhook_url).map_err(|error| error.to_string())?;
            (rules.decide(&call, at, &config.timezone), Some(path))
        }
        None => (plain_decision(config), None),
    };
    let note = match (&decision.rule, file) {
        (Some(rule), Some(file)) => format!("{rule} of {} answers", display(file)),
        (None, Some(file)) => format!("no rule of {} fits: the plain answer", display(file)),
        (_, None) => "no CALL_RULES_FILE is set: the plain answer".to_owned(),
    };
    Ok(Answered {
        xml: decision.xml.to_string(),
        note,
    })
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn plain_decision(config: &Config) -> Decision {
    Decision {
        rule: None,
        xml: subscription(&config.webhook_url).to_xml().into(),
    }
}

/// `2026-12-02T09:30` (in `TIMEZONE`), or an instant with its offset
/// (`2026-12-02T09:30:00+01:00`, `…Z`).
fn parse_time(text: &str, config: &Config) -> Result<SystemTime, String> {
    let bad = || {
        format!(
            "--at {text:?}: expected a time such as 2026-12-02T09:30 (in TIMEZONE) or 2026-12-02T08:30:00Z"
        )
    };
    let timestamp = match text.parse::<jiff::Timestamp>() {
        Ok(timestamp) => timestamp,
        Err(_) => text
            .replacen(' ', "T", 1)
            .parse::<jiff::civil::DateTime>()
            .map_err(|_| bad())?
            .to_zoned_datetime(config.timezone.clone())
            .map_err(|_| bad())?
            .timestamp(),
    };
    SystemTime::try_from(timestamp).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rules: Option<&str>) -> Config {
        let file = rules.map(|text| {
            let path = std::env::temp_dir().join(format!(
                "sipgateio-rules-{}-{}.toml",
                std::process::id(),
                text.len()
            ));
            std::fs::write(&path, text).unwrap();
            path
        });
        let mut config = Config::from_lookup(|name| match name {
            "TIMEZONE" => Some("Europe/Berlin".to_owned()),
            _ => None,
        })
        .unwrap();
        config.call_rules_file = file;
        config
    }

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    const RULES: &str = "[[rule]]\nname = \"office\"\nmatch = { hours = \"Mon-Fri 09:00-17:00\" }\nanswer = { voicemail = true }\n";

    #[test]
    fn answer_reads_the_time_in_the_time_zone_or_with_its_offset() {
        let config = config(Some(RULES));
        let now = SystemTime::UNIX_EPOCH;
        let inside = answer(
            &args("--from 4917 --to 4921 --at 2026-12-02T09:00"),
            &config,
            now,
        )
        .unwrap();
        assert!(inside.xml.contains("<Voicemail />"), "{inside:?}");
        assert!(inside.note.starts_with("\"office\" of "), "{inside:?}");
        // 08:30 UTC is 09:30 in Berlin in winter.
        let offset = answer(
            &args("--from 4917 --to 4921 --at 2026-12-02T08:30:00Z"),
            &config,
            now,
        )
        .unwrap();
        assert!(offset.xml.contains("<Voicemail />"));
        let outside = answer(
            &args("--from 4917 --to 4921 --at 2026-12-02T08:30"),
            &config,
            now,
        )
        .unwrap();
        assert!(!outside.xml.contains("<Voicemail />"));
        assert!(outside.note.starts_with("no rule of "), "{outside:?}");
    }

    #[test]
    fn answer_without_rules_is_the_plain_answer() {
        let answered = answer(
            &args("--from anonymous --to 4921"),
            &config(None),
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(
            answered.xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response onAnswer=\"http://localhost:8080/on-answer\" onHangup=\"http://localhost:8080/on-hangup\" />\n"
        );
        assert_eq!(answered.note, "no CALL_RULES_FILE is set: the plain answer");
    }

    #[test]
    fn bad_options_say_what_is_expected() {
        let config = config(None);
        let now = SystemTime::now();
        for (line, message) in [
            (
                "--to 4921",
                "answer needs --from NUMBER (or --from anonymous)",
            ),
            ("--from 4917", "answer needs --to NUMBER"),
            ("--from", "--from needs a value"),
            (
                "--from 1 --to 2 --direction up",
                "--direction \"up\": expected in or out",
            ),
            (
                "--from 1 --to 2 --at noon",
                "--at \"noon\": expected a time such as 2026-12-02T09:30 (in TIMEZONE) or 2026-12-02T08:30:00Z",
            ),
            (
                "--from 1 --to 2 --loud",
                "unknown option \"--loud\"; answer takes --from N --to N [--direction in|out] [--user NAME] [--at TIME]",
            ),
        ] {
            assert_eq!(answer(&args(line), &config, now).unwrap_err(), message);
        }
        assert_eq!(
            check_rules(&[], &config).unwrap_err(),
            "no rules file: pass one (check-rules FILE) or set CALL_RULES_FILE"
        );
    }
}
