//! `hours = "Mon-Fri 09:00-17:00, Sat 10:00-14:00"`: weekly time windows, read in the
//! setting `TIMEZONE`.
//!
//! A window is an optional day or day range (`Mon`, `Mon-Fri`, `Fri-Mon` wraps; no days:
//! every day) and a time range. A range that ends at or before its start runs past
//! midnight into the next day (`Fri 22:00-06:00` is Friday night until Saturday 6:00).
//! `24:00` ends a day.

use std::fmt;

use jiff::civil::Weekday;

const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const FULL_DAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];
const MINUTES_PER_DAY: u16 = 24 * 60;

/// Weekly windows; a time is inside when any window holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hours {
    windows: Vec<Window>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Window {
    /// The first and last day (Monday is 0), a run that may wrap past Sunday; `None`:
    /// every day.
    days: Option<(usize, usize)>,
    /// Minutes since midnight.
    start: u16,
    /// Minutes since midnight; at or before `start` for a window past midnight.
    end: u16,
}

impl Hours {
    /// # Errors
    /// A sentence naming the part that is not understood and what is expected.
    pub fn parse(text: &str) -> Result<Hours, String> {
        let windows = text
            .split(',')
            .map(str::trim)
            .map(|window| {
                Window::parse(window).map_err(|problem| {
                    format!("hours {text:?}: {problem}; expected windows such as \"Mon-Fri 09:00-17:00, Sat 10:00-13:00\"")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Hours { windows })
    }

    /// Whether `weekday` at `minute` (since midnight) is inside a window.
    pub fn contains(&self, weekday: Weekday, minute: u16) -> bool {
        let today = day_index(weekday);
        let yesterday = (today + 6) % 7;
        self.windows.iter().any(|window| {
            if window.start < window.end {
                window.on(today) && (window.start..window.end).contains(&minute)
            } else {
                (window.on(today) && minute >= window.start)
                    || (window.on(yesterday) && minute < window.end)
            }
        })
    }
}

impl Window {
    fn parse(text: &str) -> Result<Window, String> {
        if text.is_empty() {
            return Err("an empty window".to_owned());
        }
        let (days, times) = match text.rsplit_once(char::is_whitespace) {
            Some((days, times)) => (Some(parse_days(days.trim())?), times),
            None => (None, text),
        };
        let (start, end) = times
            .split_once('-')
            .ok_or_else(|| format!("{times:?} is not a time range such as 09:00-17:00"))?;
        let start = parse_time(start)?;
        let end = parse_time(end)?;
        if start == MINUTES_PER_DAY {
            return Err("24:00 can only end a range".to_owned());
        }
        // An end of 00:00 is midnight at the end of the day, as 24:00 is.
        let end = if end == 0 { MINUTES_PER_DAY } else { end };
        if start == end {
            return Err(format!(
                "{times:?} is empty; for the whole day write 00:00-24:00"
            ));
        }
        Ok(Window { days, start, end })
    }

    fn on(&self, day: usize) -> bool {
        match self.days {
            None => true,
            Some((first, last)) if first <= last => (first..=last).contains(&day),
            Some((first, last)) => day >= first || day <= last,
        }
    }
}

fn parse_days(text: &str) -> Result<(usize, usize), String> {
    match text.split_once('-') {
        Some((first, last)) => Ok((parse_day(first.trim())?, parse_day(last.trim())?)),
        None => parse_day(text).map(|day| (day, day)),
    }
}

fn parse_day(text: &str) -> Result<usize, String> {
    let lower = text.to_ascii_lowercase();
    FULL_DAY_NAMES
        .iter()
        .position(|name| lower == *name || (lower.len() == 3 && name.starts_with(&lower)))
        .ok_or_else(|| format!("{text:?} is not a weekday ({})", DAY_NAMES.join(", ")))
}

/// `9:00`, `09:00` or `24:00`, as minutes since midnight.
fn parse_time(text: &str) -> Result<u16, String> {
    let bad = || format!("{text:?} is not a time of day such as 09:00");
    let (hours, minutes) = text.trim().split_once(':').ok_or_else(bad)?;
    let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(hours) || hours.len() > 2 || minutes.len() != 2 || !all_digits(minutes) {
        return Err(bad());
    }
    let (hours, minutes): (u16, u16) = (
        hours.parse().map_err(|_| bad())?,
        minutes.parse().map_err(|_| bad())?,
    );
    if minutes >= 60 || hours > 24 || (hours == 24 && minutes > 0) {
        return Err(bad());
    }
    Ok(hours * 60 + minutes)
}

fn day_index(weekday: Weekday) -> usize {
    usize::from(weekday.to_monday_zero_offset().unsigned_abs())
}

impl fmt::Display for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, window) in self.windows.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            window.fmt(f)?;
        }
        Ok(())
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.days {
            Some((first, last)) if first == last => write!(f, "{} ", DAY_NAMES[first])?,
            Some((first, last)) => write!(f, "{}-{} ", DAY_NAMES[first], DAY_NAMES[last])?,
            None => {}
        }
        let time = |minutes: u16| format!("{:02}:{:02}", minutes / 60, minutes % 60);
        write!(f, "{}-{}", time(self.start), time(self.end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Weekday::*;

    fn at(hours: &str, weekday: Weekday, time: &str) -> bool {
        Hours::parse(hours)
            .unwrap()
            .contains(weekday, parse_time(time).unwrap())
    }

    #[test]
    fn office_hours_on_weekdays() {
        let hours = "Mon-Fri 09:00-17:00";
        assert!(at(hours, Monday, "09:00"));
        assert!(at(hours, Friday, "16:59"));
        assert!(!at(hours, Friday, "17:00"));
        assert!(!at(hours, Tuesday, "08:59"));
        assert!(!at(hours, Saturday, "12:00"));
        assert!(!at(hours, Sunday, "12:00"));
    }

    #[test]
    fn several_windows_days_without_a_range_and_every_day() {
        let hours = "Mon-Fri 9:00-12:30, Mon-Fri 13:30-17:00, Sat 10:00-14:00";
        assert!(at(hours, Wednesday, "12:29"));
        assert!(!at(hours, Wednesday, "13:00"));
        assert!(at(hours, Saturday, "10:00"));
        assert!(!at(hours, Sunday, "10:00"));
        assert!(at("08:00-20:00", Sunday, "19:59"));
        assert!(at("sunday 00:00-24:00", Sunday, "23:59"));
        assert!(!at("sunday 00:00-24:00", Monday, "00:00"));
    }

    #[test]
    fn ranges_past_midnight_and_past_sunday() {
        let night = "Fri 22:00-06:00";
        assert!(at(night, Friday, "23:00"));
        assert!(at(night, Saturday, "05:59"));
        assert!(!at(night, Saturday, "06:00"));
        assert!(!at(night, Friday, "05:00"));
        assert!(!at(night, Saturday, "23:00"));
        let weekend = "Sat-Sun 00:00-24:00, Fri-Mon 18:00-19:00";
        assert!(at(weekend, Sunday, "12:00"));
        assert!(at(weekend, Monday, "18:30"));
        assert!(!at(weekend, Tuesday, "18:30"));
        assert!(at("22:00-24:00", Monday, "23:59"));
        assert!(!at("22:00-24:00", Tuesday, "00:00"));
    }

    #[test]
    fn bad_hours_say_which_part_and_what_is_expected() {
        for (text, problem) in [
            ("Mon-Fry 09:00-17:00", "\"Fry\" is not a weekday"),
            ("Mon-Fri 9-17", "\"9\" is not a time of day"),
            ("Mon-Fri 09:00", "\"09:00\" is not a time range"),
            ("Mon 25:00-26:00", "\"25:00\" is not a time of day"),
            ("Mon 09:60-10:00", "\"09:60\" is not a time of day"),
            ("Mon 10:00-10:00", "\"10:00-10:00\" is empty"),
            ("Mon 24:00-02:00", "24:00 can only end a range"),
            ("Mon 09:00-17:00,", "an empty window"),
            ("", "an empty window"),
        ] {
            let error = Hours::parse(text).unwrap_err();
            assert!(error.contains(problem), "{text:?}: {error}");
            assert!(error.starts_with(&format!("hours {text:?}: ")), "{error}");
        }
    }

    #[test]
    fn written_back_in_a_normal_form() {
        for (text, shown) in [
            ("mon-fri 9:00-17:00", "Mon-Fri 09:00-17:00"),
            ("Fri-Mon 18:00-02:00", "Fri-Mon 18:00-02:00"),
            (
                "09:00-17:00, Sat 10:00-24:00",
                "09:00-17:00, Sat 10:00-24:00",
            ),
            ("Sunday 00:00-24:00", "Sun 00:00-24:00"),
        ] {
            assert_eq!(Hours::parse(text).unwrap().to_string(), shown);
        }
    }
}
