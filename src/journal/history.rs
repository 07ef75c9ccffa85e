//! The `calls` subcommand: the call history from the journal's `calls` view, newest first,
//! as a table for people or as JSON lines or CSV for programs. It reads while the server
//! writes (WAL lets both go on at once) and never writes itself.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use rusqlite::{Connection, OpenFlags, params};
use serde::Serialize;
use serde_json::Value;

use super::{describe, schema};
use crate::output::Printable;

pub const USAGE: &str = "\
Usage: sipgateio-callevents calls [--since 24h|7d|DATE] [--missed] [--from NUMBER]
                                  [--limit N] [--format table|json|csv] [--file PATH]

Shows the call history from the call journal, newest first. Works while the server runs.

Options:
  --since WHEN     calls started since then: 30m, 24h, 7d, 2w ago, or a date or time in
                   TIMEZONE: 2026-12-01, 2026-12-01T08:00 (default: all)
  --missed         only missed calls (cancelled, not answered, or no answer before the hangup)
  --from NUMBER    only calls from this number, as sipgate sends it (4921112345678; a
                   leading + and spaces are ignored)
  --limit N        at most N calls (default 50)
  --format FORMAT  table (default; local times in TIMEZONE), json (one object per line,
                   with the calls view's column names) or csv (a header and a row per call)
  --file PATH      the journal to read (default: CALL_LOG_FILE)
  -h, --help       this text

The columns are those of the journal's calls view (docs/journal.md).
";

/// Calls shown when `--limit` is not given.
const DEFAULT_LIMIT: u32 = 50;

/// The options of one `calls` run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    since: Option<Since>,
    missed: bool,
    from: Option<String>,
    limit: u32,
    format: Format,
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Table,
    Json,
    Csv,
}

/// `--since`: a time ago, or a local date or time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Since {
    Ago(Duration),
    Local(DateTime),
}

impl Options {
    /// Reads the options of `calls`.
    ///
    /// # Errors
    /// An unknown option or a bad value, in one line that says what would do.
    pub fn from_args(args: &[String]) -> Result<Options, String> {
        let mut options = Options {
            since: None,
            missed: false,
            from: None,
            limit: DEFAULT_LIMIT,
            format: Format::Table,
            file: None,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) if name.starts_with("--") => (name, Some(value.to_owned())),
                _ => (arg.as_str(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next().cloned())
                    .ok_or_else(|| format!("{name} needs a value (see calls --help)"))
            };
            match name {
                "--since" => options.since = Some(parse_since(&value()?)?),
                "--missed" => options.missed = true,
                "--from" => {
                    let number = value()?;
                    let digits: String = number
                        .chars()
                        .filter(|c| !matches!(c, '+' | ' ' | '-' | '/' | '(' | ')'))
                        .collect();
                    if digits.is_empty() {
                        return Err(format!(
                            "--from {number:?}: expected a number such as 4921112345678"
                        ));
                    }
                    options.from = Some(digits);
                }
                "--limit" => {
                    let text = value()?;
                    options.limit =
                        text.parse()
                            .ok()
                            .filter(|limit| *limit > 0)
                            .ok_or_else(|| {
                                format!("--limit {text:?}: expected a whole number from 1")
                            })?;
                }
                "--format" => {
                    let text = value()?;
                    options.format = match text.as_str() {
                        "table" => Format::Table,
                        "json" => Format::Json,
                        "csv" => Format::Csv,
                        _ => {
                            return Err(format!("--format {text:?}: expected table, json or csv"));
                        }
                    };
                }
                "--file" => options.file = Some(PathBuf::from(value()?)),
                other => {
                    return Err(format!(
                        "unknown option {other:?} for calls (see calls --help)"
                    ));
                }
            }
        }
        Ok(options)
    }
}

/// `30m`, `24h`, `7d`, `2w`, or a date (`2026-12-01`) or date and time in the local zone.
fn parse_since(text: &str) -> Result<Since, String> {
    let bad = || {
        format!(
            "--since {text:?}: expected a time ago (30m, 24h, 7d, 2w) or a date or time (2026-12-01, 2026-12-01T08:00)"
        )
    };
    let trimmed = text.trim();
    if let Some(unit) = trimmed.chars().last().filter(char::is_ascii_alphabetic) {
        let count: u64 = trimmed[..trimmed.len() - 1].parse().map_err(|_| bad())?;
        let seconds = match unit {
            'm' => 60,
            'h' => 3600,
            'd' => 24 * 3600,
            'w' => 7 * 24 * 3600,
            _ => return Err(bad()),
        };
        return count
            .checked_mul(seconds)
            .map(|seconds| Since::Ago(Duration::from_secs(seconds)))
            .ok_or_else(bad);
    }
    // A date alone reads as its midnight.
    trimmed
        .replacen(' ', "T", 1)
        .parse::<DateTime>()
        .map(Since::Local)
        .map_err(|_| bad())
}

/// One row of the `calls` view; serialized in the view's column order.
#[derive(Serialize)]
struct Call {
    call_id: String,
    direction: Option<String>,
    from_number: Option<String>,
    to_number: Option<String>,
    /// A JSON array of the users the call rang for.
    users: Value,
    started_at: Option<String>,
    answered_at: Option<String>,
    ended_at: Option<String>,
    answered_by: Option<String>,
    ring_seconds: Option<f64>,
    talk_seconds: Option<f64>,
    cause: Option<String>,
    result: String,
}

/// The view's columns, in its order: the JSON keys and the CSV header.
const COLUMNS: [&str; 13] = [
    "call_id",
    "direction",
    "from_number",
    "to_number",
    "users",
    "started_at",
    "answered_at",
    "ended_at",
    "answered_by",
    "ring_seconds",
    "talk_seconds",
    "cause",
    "result",
];

/// The history `options` ask for, from `file`, with times shown in `timezone`.
///
/// # Errors
/// The file cannot be read as a journal; one line naming it and the cause.
pub fn show(
    options: &Options,
    file: &Path,
    timezone: &TimeZone,
    now: Timestamp,
) -> Result<String, String> {
    let cannot =
        |problem: String| format!("cannot read the call journal {}: {problem}", file.display());
    if !file.exists() {
        return Err(cannot(
            "it does not exist; the server creates it when it starts with CALL_LOG_FILE set"
                .to_owned(),
        ));
    }
    // Read-write, without create: a read-only open of a WAL file fails when its shared
    // memory file has to be made. query_only makes sure nothing is written.
    let connection = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|error| cannot(describe(&error)))?;
    connection
        .pragma_update(None, "query_only", true)
        .map_err(|error| cannot(describe(&error)))?;
    let _ = connection.busy_timeout(Duration::from_secs(5));
    let version = schema::version_of(&connection)
        .map_err(|error| cannot(format!("not an SQLite database ({})", describe(&error))))?;
    match version {
        0 => return Err(cannot("it holds no call journal (no schema)".to_owned())),
        v if v > schema::VERSION => {
            return Err(cannot(format!(
                "its schema version {v} is newer than this binary's {}; use a newer sipgateio-callevents",
                schema::VERSION
            )));
        }
        v if v < schema::VERSION => {
            return Err(cannot(format!(
                "its schema version {v} is older than this binary's {}; start the server on it once to bring it up to date",
                schema::VERSION
            )));
        }
        _ => {}
    }
    let since = options.since.map(|since| match since {
        Since::Ago(ago) => now
            .checked_sub(jiff::SignedDuration::try_from(ago).unwrap_or(jiff::SignedDuration::MAX))
            .unwrap_or(Timestamp::MIN),
        Since::Local(local) => local
            .to_zoned_datetime(timezone.clone())
            .map_or(Timestamp::MIN, |zoned| zoned.timestamp()),
    });
    let since_text = since.map(|at| format!("{at:.3}"));
    let mut statement = connection
        .prepare(
            "SELECT call_id, direction, from_number, to_number, users, started_at, answered_at,
                    ended_at, answered_by, ring_seconds, talk_seconds, cause, result
             FROM calls
             WHERE (?1 IS NULL OR started_at >= ?1)
               AND (?2 = 0 OR result = 'missed')
               AND (?3 IS NULL OR replace(from_number, '+', '') = ?3)
             ORDER BY started_at DESC, call_id
             LIMIT ?4",
        )
        .map_err(|error| cannot(describe(&error)))?;
    let calls = statement
        .query_map(
            params![since_text, options.missed, options.from, options.limit],
            |row| {
                Ok(Call {
                    call_id: row.get(0)?,
                    direction: row.get(1)?,
                    from_number: row.get(2)?,
                    to_number: row.get(3)?,
                    users: row
                        .get::<_, Option<String>>(4)?
                        .and_then(|users| serde_json::from_str(&users).ok())
                        .unwrap_or(Value::Array(Vec::new())),
                    started_at: row.get(5)?,
                    answered_at: row.get(6)?,
                    ended_at: row.get(7)?,
                    answered_by: row.get(8)?,
                    ring_seconds: row.get(9)?,
                    talk_seconds: row.get(10)?,
                    cause: row.get(11)?,
                    result: row.get(12)?,
                })
            },
        )
        .and_then(Iterator::collect::<rusqlite::Result<Vec<Call>>>)
        .map_err(|error| cannot(describe(&error)))?;
    Ok(match options.format {
        Format::Table => table(&calls, options, timezone, file),
        Format::Json => calls.iter().map(|call| json(call) + "\n").collect(),
        Format::Csv => csv(&calls),
    })
}

/// What an empty history says, naming the filters that emptied it.
pub fn nothing_found(options: &Options, file: &Path) -> String {
    let mut filters = Vec::new();
    if options.since.is_some() {
        filters.push("--since");
    }
    if options.missed {
        filters.push("--missed");
    }
    if options.from.is_some() {
        filters.push("--from");
    }
    if filters.is_empty() {
        format!("no calls in the journal {} yet", file.display())
    } else {
        format!(
            "no calls in the journal {} match {}",
            file.display(),
            filters.join(" ")
        )
    }
}

/// Whether `show`'s output holds no call.
pub fn is_empty(output: &str, options: &Options) -> bool {
    match options.format {
        Format::Csv => output.lines().count() <= 1,
        Format::Table | Format::Json => output.is_empty(),
    }
}

fn table(calls: &[Call], options: &Options, timezone: &TimeZone, file: &Path) -> String {
    if calls.is_empty() {
        return String::new();
    }
    let header = [
        "STARTED",
        "DIR",
        "FROM",
        "TO",
        "RESULT",
        "RANG",
        "TALKED",
        "ANSWERED BY",
    ];
    let rows: Vec<[String; 8]> = calls
        .iter()
        .map(|call| {
            let text = |value: &Option<String>| {
                value
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), |value| Printable(value).to_string())
            };
            [
                call.started_at
                    .as_deref()
                    .and_then(|at| local_time(at, timezone))
                    .unwrap_or_else(|| "-".to_owned()),
                text(&call.direction),
                text(&call.from_number),
                text(&call.to_number),
                call.result.clone(),
                call.ring_seconds.map_or_else(|| "-".to_owned(), duration),
                call.talk_seconds.map_or_else(|| "-".to_owned(), duration),
                text(&call.answered_by),
            ]
        })
        .collect();
    let mut widths = header.map(|title| title.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (cell, width) in cells.zip(widths) {
            let _ = write!(text, "{cell:<width$}  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(String::as_str));
    }
    if calls.len() as u64 == u64::from(options.limit) {
        let _ = writeln!(
            out,
            "(the newest {}; --limit N shows more, from {})",
            options.limit,
            file.display()
        );
    }
    out
}

/// A stored UTC time as local time in `timezone`, to the second.
fn local_time(stored: &str, timezone: &TimeZone) -> Option<String> {
    let at: Timestamp = stored.parse().ok()?;
    Some(
        at.to_zoned_datetime(timezone.clone())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string(),
    )
}

/// Seconds as `12s`, `1m 05s` or `1h 02m 05s`, rounded to the second.
fn duration(seconds: f64) -> String {
    let total = seconds.max(0.0).round() as u64;
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, _) => format!("{minutes}m {seconds:02}s"),
        _ => format!("{hours}h {minutes:02}m {seconds:02}s"),
    }
}

fn json(call: &Call) -> String {
    serde_json::to_string(call).unwrap_or_default()
}

fn csv(calls: &[Call]) -> String {
    let mut out = COLUMNS.join(",");
    out.push_str("\r\n");
    for call in calls {
        let number = |value: Option<f64>| value.map(|value| value.to_string()).unwrap_or_default();
        let cells = [
            call.call_id.clone(),
            call.direction.clone().unwrap_or_default(),
            call.from_number.clone().unwrap_or_default(),
            call.to_number.clone().unwrap_or_default(),
            call.users.to_string(),
            call.started_at.clone().unwrap_or_default(),
            call.answered_at.clone().unwrap_or_default(),
            call.ended_at.clone().unwrap_or_default(),
            call.answered_by.clone().unwrap_or_default(),
            number(call.ring_seconds),
            number(call.talk_seconds),
            call.cause.clone().unwrap_or_default(),
            call.result.clone(),
        ];
        let row: Vec<String> = cells.iter().map(|cell| csv_cell(cell)).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

/// RFC 4180: a cell with a comma, a quote or a line break is quoted, its quotes doubled.
fn csv_cell(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn options_are_read_with_their_values() {
        let options = Options::from_args(&args(
            "--since 7d --missed --from +49-211 --limit 3 --format=csv",
        ))
        .unwrap();
        assert_eq!(
            options.since,
            Some(Since::Ago(Duration::from_secs(7 * 86400)))
        );
        assert!(options.missed);
        assert_eq!(options.from.as_deref(), Some("49211"));
        assert_eq!(options.limit, 3);
        assert_eq!(options.format, Format::Csv);
        assert_eq!(
            Options::from_args(&args("--since 2026-12-01"))
                .unwrap()
                .since,
            Some(Since::Local("2026-12-01T00:00".parse().unwrap()))
        );
        assert_eq!(
            Options::from_args(&args("--since 2026-12-01T08:30"))
                .unwrap()
                .since,
            Some(Since::Local("2026-12-01T08:30".parse().unwrap()))
        );
    }

    #[test]
    fn bad_options_say_what_would_do() {
        for (given, says) in [
            ("--since yesterday", "expected a time ago"),
            ("--since 5y", "expected a time ago"),
            ("--limit 0", "from 1"),
            ("--format xml", "table, json or csv"),
            ("--from +", "expected a number"),
            ("--since", "needs a value"),
            ("--color", "unknown option"),
        ] {
            let error = Options::from_args(&args(given)).unwrap_err();
            assert!(error.contains(says), "{given}: {error}");
        }
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(duration(0.2), "0s");
        assert_eq!(duration(12.4), "12s");
        assert_eq!(duration(65.0), "1m 05s");
        assert_eq!(duration(3725.0), "1h 02m 05s");
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(
            csv_cell("[\"Alice\",\"Bob\"]"),
            "\"[\"\"Alice\"\",\"\"Bob\"\"]\""
        );
        assert_eq!(csv_cell("a\nb"), "\"a\nb\"");
    }
}
