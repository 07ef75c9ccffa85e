//! Every fixture parses into the typed fields `tests/fixtures/README.md` lists.

use sipgateio_callevents::event::{
    Answer, CallEvent, Direction, Dtmf, Hangup, HangupCause, NewCall, parse,
};

use crate::support::{CID1, CID2, CID3, fixture, kind_of};

fn s(value: &str) -> String {
    value.to_owned()
}

fn v(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| s(value)).collect()
}

fn check(name: &str, expected: CallEvent) {
    assert_eq!(
        parse(kind_of(name), &fixture(name)).unwrap(),
        expected,
        "{name}"
    );
}

#[test]
fn new_call_fixtures() {
    let base = |from: &str, to: &str, direction: Direction, call_id: &str, xcid: &str| NewCall {
        call_id: s(call_id),
        from: s(from),
        to: s(to),
        direction: Some(direction),
        orig_call_id: Some(s(call_id)),
        users: v(&["Alice Smith"]),
        user_ids: v(&["w0"]),
        full_user_ids: v(&["1234567w0"]),
        xcid: Some(s(xcid)),
        diversion: None,
    };
    check(
        "01-newcall-in.form",
        CallEvent::NewCall(base(
            "492111234567",
            "4915791234567",
            Direction::In,
            CID1,
            "8419b3450b75cd19",
        )),
    );
    check(
        "02-newcall-in-group.form",
        CallEvent::NewCall(NewCall {
            users: v(&["Alice Smith", "Bob Jones", "Carol"]),
            user_ids: v(&["w0", "w1", "w2"]),
            full_user_ids: v(&["1234567w0", "1234567w1", "1234567w2"]),
            ..base(
                "492111234567",
                "4921100000000",
                Direction::In,
                CID1,
                "5aada1e696b94cec",
            )
        }),
    );
    check(
        "03-newcall-in-anonymous.form",
        CallEvent::NewCall(base(
            "anonymous",
            "4915791234567",
            Direction::In,
            CID3,
            "1f2e3d4c5b6a7980",
        )),
    );
    check(
        "04-newcall-out.form",
        CallEvent::NewCall(base(
            "492111234567",
            "4915799912345",
            Direction::Out,
            CID2,
            "0a1b2c3d4e5f6789",
        )),
    );
    check(
        "05-newcall-in-forwarded-voicemail.form",
        CallEvent::NewCall(NewCall {
            orig_call_id: Some(s(CID1)),
            users: v(&["voicemail"]),
            user_ids: vec![],
            full_user_ids: vec![],
            diversion: Some(s("492031234567")),
            ..base(
                "491781234567",
                "492031234567",
                Direction::In,
                CID2,
                "5aada1e696b94cec",
            )
        }),
    );
    check(
        "06-newcall-in-utf8-name.form",
        CallEvent::NewCall(NewCall {
            users: v(&["Jörg Müller"]),
            user_ids: v(&["w3"]),
            full_user_ids: v(&["1234567w3"]),
            ..base(
                "4930123456789",
                "4921100000000",
                Direction::In,
                CID3,
                "9988776655443322",
            )
        }),
    );
    let legacy = |from: &str, to: &str, direction: Direction, call_id: &str| NewCall {
        call_id: s(call_id),
        from: s(from),
        to: s(to),
        direction: Some(direction),
        ..NewCall::default()
    };
    check(
        "16-legacy-newcall-in-minimal.form",
        CallEvent::NewCall(legacy(
            "anonymous",
            "445603000514",
            Direction::In,
            "4932215337270853042",
        )),
    );
    check(
        "17-legacy-newcall-out-extension-from.form",
        CallEvent::NewCall(legacy(
            "1452406e0",
            "491714100300",
            Direction::Out,
            "5930108064835725888",
        )),
    );
    check(
        "18-signed-real-capture.form",
        CallEvent::NewCall(NewCall {
            users: v(&[""]),
            user_ids: vec![],
            full_user_ids: vec![],
            ..base(
                "491776249000",
                "4928559389086",
                Direction::In,
                CID1,
                "8419b3450b75cd19",
            )
        }),
    );
}

#[test]
fn answer_fixtures() {
    check(
        "07-answer-in.form",
        CallEvent::Answer(Answer {
            call_id: s(CID1),
            from: Some(s("492111234567")),
            to: Some(s("4915791234567")),
            direction: Some(Direction::In),
            user: Some(s("Alice Smith")),
            user_id: Some(s("w0")),
            full_user_id: Some(s("1234567w0")),
            answering_number: Some(s("4915791234567")),
            diversion: None,
            orig_call_id: Some(s(CID1)),
            xcid: Some(s("8419b3450b75cd19")),
        }),
    );
    check(
        "08-answer-out.form",
        CallEvent::Answer(Answer {
            call_id: s(CID2),
            from: Some(s("492111234567")),
            to: Some(s("4915799912345")),
            direction: Some(Direction::Out),
            answering_number: Some(s("4915799912345")),
            orig_call_id: Some(s(CID2)),
            xcid: Some(s("0a1b2c3d4e5f6789")),
            ..Answer::default()
        }),
    );
}

#[test]
fn hangup_fixtures() {
    let hangup = |cause: HangupCause,
                  call_id: &str,
                  from: &str,
                  to: &str,
                  direction: Direction,
                  xcid: &str| Hangup {
        call_id: s(call_id),
        cause: Some(cause),
        from: Some(s(from)),
        to: Some(s(to)),
        direction: Some(direction),
        orig_call_id: Some(s(call_id)),
        xcid: Some(s(xcid)),
        ..Hangup::default()
    };
    check(
        "09-hangup-normalclearing.form",
        CallEvent::Hangup(Hangup {
            answering_number: Some(s("4915791234567")),
            ..hangup(
                HangupCause::NormalClearing,
                CID1,
                "492111234567",
                "4915791234567",
                Direction::In,
                "8419b3450b75cd19",
            )
        }),
    );
    check(
        "10-hangup-cancel-anonymous.form",
        CallEvent::Hangup(hangup(
            HangupCause::Cancel,
            CID3,
            "anonymous",
            "4915791234567",
            Direction::In,
            "1f2e3d4c5b6a7980",
        )),
    );
    check(
        "11-hangup-forwarded.form",
        CallEvent::Hangup(hangup(
            HangupCause::Forwarded,
            CID1,
            "491781234567",
            "492031234567",
            Direction::In,
            "5aada1e696b94cec",
        )),
    );
    check(
        "12-hangup-busy-out.form",
        CallEvent::Hangup(hangup(
            HangupCause::Busy,
            CID2,
            "492111234567",
            "4915799912345",
            Direction::Out,
            "0a1b2c3d4e5f6789",
        )),
    );
}

#[test]
fn dtmf_fixtures() {
    let dtmf = |digits: Option<&str>| {
        CallEvent::Dtmf(Dtmf {
            call_id: s(CID3),
            digits: digits.map(s),
            orig_call_id: None,
        })
    };
    check("13-dtmf-digits.form", dtmf(Some("0815")));
    check("14-dtmf-omitted.form", dtmf(None));
    check("15-dtmf-empty.form", dtmf(None));
}
