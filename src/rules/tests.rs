use std::time::{Duration, SystemTime};

use jiff::tz::TimeZone;

use super::*;

const EXAMPLE: &str = include_str!("../../examples/call-rules.toml");
const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

fn webhook() -> WebhookUrl {
    WebhookUrl::parse("https://calls.example.com/hooks?token=a&b=c").unwrap()
}

fn rules(text: &str) -> Rules {
    Rules::parse(text, "rules.toml", &webhook()).unwrap()
}

fn error(text: &str) -> String {
    Rules::parse(text, "rules.toml", &webhook())
        .unwrap_err()
        .to_string()
}

fn berlin() -> TimeZone {
    TimeZone::get("Europe/Berlin").unwrap()
}

/// A wall-clock time in Berlin, as the instant the server would see.
fn berlin_time(civil: &str) -> SystemTime {
    let zoned = civil
        .parse::<jiff::civil::DateTime>()
        .unwrap()
        .to_zoned_datetime(berlin())
        .unwrap();
    SystemTime::UNIX_EPOCH + Duration::from_millis(zoned.timestamp().as_millisecond() as u64)
}

fn call(from: &str, to: &str, direction: Direction) -> NewCall {
    NewCall {
        call_id: "c1".into(),
        from: from.into(),
        to: to.into(),
        direction: Some(direction),
        users: vec!["Alice Smith".into()],
        ..NewCall::default()
    }
}

const SUBSCRIPTION: &str = "onAnswer=\"https://calls.example.com/hooks/on-answer?token=a&amp;b=c\" onHangup=\"https://calls.example.com/hooks/on-hangup?token=a&amp;b=c\"";

fn answer(actions: &str) -> String {
    format!("{DECLARATION}<Response {SUBSCRIPTION}>{actions}</Response>\n")
}

fn decide(rules: &Rules, call: &NewCall, at: &str) -> Decision {
    rules.decide(call, berlin_time(at), &berlin())
}

// 2026-12-02 is a Wednesday, 2026-12-05 a Saturday.
const WEDNESDAY_NOON: &str = "2026-12-02T12:00";

#[test]
fn the_example_file_answers_each_kind_of_call() {
    let rules = rules(EXAMPLE);
    let anonymous = decide(
        &rules,
        &call("anonymous", "4921100000000", Direction::In),
        WEDNESDAY_NOON,
    );
    assert_eq!(
        anonymous.rule.as_ref().map(ToString::to_string).as_deref(),
        Some("\"no anonymous callers\"")
    );
    assert_eq!(&*anonymous.xml, answer("<Reject reason=\"busy\" />"));

    let office = decide(
        &rules,
        &call("491701234567", "4921100000000", Direction::In),
        WEDNESDAY_NOON,
    );
    assert_eq!(
        office.rule.as_ref().map(ToString::to_string).as_deref(),
        Some("\"office hours\"")
    );
    assert_eq!(
        &*office.xml,
        answer(
            "<Dial callerId=\"4921100000000\"><Number>4915790000000</Number><Number>4915790000001</Number></Dial>"
        )
    );

    let menu = decide(
        &rules,
        &call("491701234567", "4921155555", Direction::In),
        WEDNESDAY_NOON,
    );
    assert_eq!(
        menu.rule.as_ref().map(ToString::to_string).as_deref(),
        Some("\"menu line\"")
    );
    assert_eq!(
        &*menu.xml,
        answer(
            "<Gather onData=\"https://calls.example.com/hooks/on-dtmf?token=a&amp;b=c&amp;menu=main\" maxDigits=\"1\" timeout=\"5000\"><Play><Url>https://example.com/menu.wav</Url></Play></Gather>"
        )
    );

    let other = decide(
        &rules,
        &call("491701234567", "4930123456", Direction::In),
        WEDNESDAY_NOON,
    );
    assert_eq!(other.rule, None);
    assert_eq!(
        &*other.xml,
        format!("{DECLARATION}<Response {SUBSCRIPTION} />\n")
    );
}

#[test]
fn hours_are_read_in_the_time_zone() {
    let rules = rules(EXAMPLE);
    let office = call("491701234567", "4921100000000", Direction::In);
    for (at, rule) in [
        ("2026-12-02T09:00", "\"office hours\""),
        ("2026-12-02T16:59", "\"office hours\""),
        ("2026-12-02T17:00", "\"after hours\""),
        ("2026-12-02T08:59", "\"after hours\""),
        ("2026-12-05T12:00", "\"after hours\""),
        // Summer time: 09:30 in Berlin is 07:30 UTC.
        ("2026-07-01T09:30", "\"office hours\""),
    ] {
        assert_eq!(
            decide(&rules, &office, at)
                .rule
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some(rule),
            "{at}"
        );
    }
    // The same instant read in UTC is an hour earlier in winter: 09:30 Berlin is 08:30 UTC.
    let utc = rules.decide(&office, berlin_time("2026-12-02T09:30"), &TimeZone::UTC);
    assert_eq!(
        utc.rule.as_ref().map(ToString::to_string).as_deref(),
        Some("\"after hours\"")
    );
}

#[test]
fn every_given_condition_must_fit() {
    let rules = rules(
        r#"
[[rule]]
match = { from = "+4917*", direction = "out", user = "alice smith" }
answer = { hangup = true }
[[rule]]
match = { from = "491701234567" }
answer = { play = "https://example.com/hello.wav" }
"#,
    );
    let out = call("491701234567", "4930123456", Direction::Out);
    assert_eq!(
        decide(&rules, &out, WEDNESDAY_NOON)
            .rule
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("rule 1")
    );
    let incoming = call("491701234567", "4930123456", Direction::In);
    let played = decide(&rules, &incoming, WEDNESDAY_NOON);
    assert_eq!(
        played.rule.as_ref().map(ToString::to_string).as_deref(),
        Some("rule 2")
    );
    assert_eq!(
        &*played.xml,
        answer("<Play><Url>https://example.com/hello.wav</Url></Play>")
    );
    let mut bob = out.clone();
    bob.users = vec!["Bob".into()];
    assert_eq!(
        decide(&rules, &bob, WEDNESDAY_NOON)
            .rule
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("rule 2")
    );
    // An empty `from` is how sipgate once sent an anonymous caller.
    let anonymous = rules_for_anonymous();
    assert!(
        decide(&anonymous, &call("", "1", Direction::In), WEDNESDAY_NOON)
            .rule
            .is_some()
    );
    assert!(
        decide(
            &anonymous,
            &call("Anonymous", "1", Direction::In),
            WEDNESDAY_NOON
        )
        .rule
        .is_some()
    );
    assert!(
        decide(
            &anonymous,
            &call("4917", "1", Direction::In),
            WEDNESDAY_NOON
        )
        .rule
        .is_none()
    );
}

fn rules_for_anonymous() -> Rules {
    rules("[[rule]]\nmatch = { from = \"anonymous\" }\nanswer = { reject = \"rejected\" }\n")
}

#[test]
fn menu_digits_choose_an_option_or_otherwise() {
    let rules = rules(EXAMPLE);
    let one = rules.choose("main", Some("1")).unwrap();
    assert_eq!(one.option.as_deref(), Some("1"));
    assert_eq!(
        &*one.xml,
        answer("<Dial><Number>4915790000000</Number></Dial>")
    );
    let two = rules.choose("main", Some("2")).unwrap();
    assert_eq!(&*two.xml, answer("<Dial><Voicemail /></Dial>"));
    let again = rules.choose("main", Some("9")).unwrap();
    assert!(again.xml.contains(
        "<Gather onData=\"https://calls.example.com/hooks/on-dtmf?token=a&amp;b=c&amp;menu=main\""
    ));
    for digits in [Some("7"), Some(""), None] {
        let otherwise = rules.choose("main", digits).unwrap();
        assert_eq!(otherwise.option, None);
        assert_eq!(&*otherwise.xml, answer("<Hangup />"));
    }
    assert_eq!(rules.choose("gone", Some("1")), None);
}

#[test]
fn a_menu_without_otherwise_lets_the_call_go_on() {
    let rules = rules("[menu.m]\nmax_digits = 2\noptions = { \"12\" = { hangup = true } }\n");
    let otherwise = rules.choose("m", Some("1")).unwrap();
    assert_eq!(
        &*otherwise.xml,
        format!("{DECLARATION}<Response {SUBSCRIPTION} />\n")
    );
}

#[test]
fn bad_files_name_the_line_and_the_problem() {
    for (text, message) in [
        (
            "[[rule]]\nanswer = { hangup = true\n",
            "rules.toml:2: unclosed inline table, expected `}`",
        ),
        (
            "[[rule]]\nmatch = { form = \"1\" }\nanswer = { hangup = true }\n",
            "rules.toml:2: unknown field `form`, expected one of `from`, `to`, `direction`, `user`, `hours`",
        ),
        (
            "[[rules]]\nanswer = { hangup = true }\n",
            "rules.toml:1: unknown field `rules`, expected `rule` or `menu`",
        ),
        (
            "[[rule]]\nname = \"r\"\nanswer = { menu = \"sales\" }\n[menu.main]\n",
            "rules.toml:3: \"r\": menu \"sales\" is not defined (menus: main)",
        ),
        (
            "[[rule]]\nanswer = { menu = \"sales\" }\n",
            "rules.toml:2: rule 1: menu \"sales\" is not defined: add a [menu.sales] table",
        ),
        (
            "[[rule]]\nanswer = { dial = [\"4915790000001\", \"4915790000002\", \"4915790000003\", \"4915790000004\", \"4915790000005\", \"4915790000006\"] }\n",
            "rules.toml:2: rule 1: dial has 6 numbers; sipgate rings 1 to 5 at once",
        ),
        (
            "\n[[rule]]\nanswer = { dial = \"0211 123\" }\n",
            "rules.toml:3: rule 1: dial: \"0211 123\" is not a phone number sipgate can dial: expected E.164 digits without spaces, such as 4915790000000 (a leading + is allowed)",
        ),
        (
            "[[rule]]\nmatch = { to = \"49211x*\" }\nanswer = { hangup = true }\n",
            "rules.toml:2: rule 1: match to: \"49211x*\" is not a number pattern: expected E.164 digits (4921100000000), anonymous, or a prefix ending in * (49211*)",
        ),
        (
            "[[rule]]\nmatch = { hours = \"Mo-Fr 9-17\" }\nanswer = { hangup = true }\n",
            "rules.toml:2: rule 1: match hours \"Mo-Fr 9-17\": \"Mo\" is not a weekday (Mon, Tue, Wed, Thu, Fri, Sat, Sun); expected windows such as \"Mon-Fri 09:00-17:00, Sat 10:00-13:00\"",
        ),
        (
            "[[rule]]\nmatch = { direction = \"inbound\" }\nanswer = { hangup = true }\n",
            "rules.toml:2: rule 1: match direction \"inbound\" is unknown: expected in or out",
        ),
        (
            "[[rule]]\nanswer = { reject = \"now\" }\n",
            "rules.toml:2: rule 1: reject reason \"now\" is unknown: expected busy or rejected",
        ),
        (
            "[[rule]]\nanswer = { play = \"/menu.wav\" }\n",
            "rules.toml:2: rule 1: play: \"/menu.wav\" is not an absolute URL: expected http:// or https:// with a host, such as https://example.com/menu.wav",
        ),
        (
            "[[rule]]\nanswer = { dial = \"4915790000000\", voicemail = true }\n",
            "rules.toml:2: rule 1: an answer takes one of dial, voicemail, reject, play, hangup or menu, not dial and voicemail",
        ),
        (
            "[[rule]]\nanswer = {}\n",
            "rules.toml:2: rule 1: an answer needs one of dial, voicemail, reject, play, hangup or menu",
        ),
        (
            "[[rule]]\nanswer = { hangup = false }\n",
            "rules.toml:2: rule 1: hangup = false means nothing: leave it out, or set hangup = true",
        ),
        (
            "[[rule]]\nanswer = { reject = \"busy\", caller_id = \"4915790000000\" }\n",
            "rules.toml:2: rule 1: caller_id and anonymous go with dial or voicemail",
        ),
        (
            "[[rule]]\nmatch = { to = \"1\" }\n",
            "rules.toml:1: missing field `answer`",
        ),
        (
            "[menu.main]\nmax_digits = 0\n",
            "rules.toml:2: menu \"main\": max_digits 0 is too small: at least 1 digit",
        ),
        (
            "[menu.main]\ntimeout_ms = -5\n",
            "rules.toml:2: menu \"main\": timeout_ms -5 is not a whole number from 1 to 4294967295",
        ),
        (
            "[menu.main]\noptions = { \"12\" = { hangup = true } }\n",
            "rules.toml:2: menu \"main\": option \"12\" has 2 digits but max_digits is 1, so it can never be chosen",
        ),
        (
            "[menu.main]\noptions = { \"a\" = { hangup = true } }\n",
            "rules.toml:2: menu \"main\": option \"a\" is not keypad digits (0-9, * and #)",
        ),
        (
            "[menu.main]\noptions = { \"1\" = { menu = \"nope\" } }\n",
            "rules.toml:2: menu \"main\", option \"1\": menu \"nope\" is not defined (menus: main)",
        ),
        (
            "[menu.\"main menu\"]\n",
            "rules.toml:1: menu \"main menu\": a menu name takes letters, digits, - and _ only",
        ),
    ] {
        assert_eq!(error(text), message, "{text}");
    }
}

#[test]
fn an_unreadable_file_is_named() {
    let error = Rules::load(Path::new("/nonexistent/rules.toml"), &webhook()).unwrap_err();
    assert_eq!(error.line, None);
    assert!(
        error
            .to_string()
            .starts_with("/nonexistent/rules.toml: cannot read the rules file: "),
        "{error}"
    );
}

#[test]
fn described_as_understood() {
    let rules = rules(EXAMPLE);
    assert_eq!(
        rules.describe("Europe/Berlin"),
        "rules.toml: 4 rules and 1 menu\n\
         \"no anonymous callers\" (line 10): from anonymous → reject (busy)\n\
         \"office hours\" (line 15): to 4921100000000, direction in, hours Mon-Fri 09:00-17:00 (Europe/Berlin) → dial 4915790000000, 4915790000001, caller id 4921100000000\n\
         \"after hours\" (line 22): to 4921100000000 → voicemail\n\
         \"menu line\" (line 27): to 49211* → menu main (up to 1 digit, 5000 ms, playing https://example.com/menu.wav)\n\
         menu main (up to 1 digit, 5000 ms, playing https://example.com/menu.wav): 1 → dial 4915790000000; 2 → voicemail; 9 → menu main (up to 1 digit, 5000 ms, playing https://example.com/menu.wav); otherwise → hang up\n\
         no rule fits → as the account routes it\n"
    );
}

#[test]
fn fifty_rules_are_tried_in_order_to_the_last() {
    let mut text = String::new();
    for n in 0..49 {
        text.push_str(&format!(
            "[[rule]]\nmatch = {{ to = \"49{n:03}*\", hours = \"Mon-Fri 09:00-17:00\" }}\nanswer = {{ hangup = true }}\n"
        ));
    }
    text.push_str("[[rule]]\nanswer = { voicemail = true }\n");
    let rules = rules(&text);
    let call = call("491701234567", "4930123456", Direction::In);
    assert_eq!(
        decide(&rules, &call, WEDNESDAY_NOON)
            .rule
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("rule 50")
    );
}
