//! The form bodies of one call, field for field like sipgate's captures in
//! `tests/fixtures`.

use std::time::SystemTime;

use super::args::Options;
use crate::event::{Direction, HangupCause};

/// The fixed user ids of the simulated account, in sipgate's format.
const USER_ID: &str = "w0";
const FULL_USER_ID: &str = "1234567w0";

/// The random identifiers of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ids {
    /// 76 upper-case hex characters, like sipgate's since about 2018.
    pub(crate) call_id: String,
    /// 16 lower-case hex characters.
    pub(crate) xcid: String,
}

impl Ids {
    /// Fresh ids, different in every run so the server cannot confuse two simulated calls.
    pub(crate) fn random() -> Ids {
        Ids {
            call_id: random_hex(76).to_ascii_uppercase(),
            xcid: random_hex(16),
        }
    }
}

/// Lower-case hex from std's randomly keyed hasher: the ids need only differ between runs,
/// not resist guessing, so no random-number crate is needed.
fn random_hex(len: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    let state = std::collections::hash_map::RandomState::new();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let mut hex = String::with_capacity(len + 16);
    let mut block = 0_u64;
    while hex.len() < len {
        let mut hasher = state.build_hasher();
        hasher.write_u128(nanos);
        hasher.write_u64(block);
        hex.push_str(&format!("{:016x}", hasher.finish()));
        block += 1;
    }
    hex.truncate(len);
    hex
}

/// Everything the event bodies of one call are made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Call {
    pub(crate) direction: Direction,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) caller_name: String,
    pub(crate) ids: Ids,
}

impl Call {
    pub(crate) fn new(options: &Options, ids: &Ids) -> Call {
        Call {
            direction: options.direction.clone(),
            from: options.from.clone(),
            to: options.to.clone(),
            caller_name: options.caller_name.clone(),
            ids: ids.clone(),
        }
    }

    /// The newCall body, fields in the order of sipgate's captures (fixture 01).
    pub(crate) fn new_call_body(&self) -> String {
        form(&[
            ("event", "newCall"),
            ("direction", self.direction.as_str()),
            ("from", &self.from),
            ("to", &self.to),
            ("callId", &self.ids.call_id),
            ("origCallId", &self.ids.call_id),
            ("user[]", &self.caller_name),
            ("userId[]", USER_ID),
            ("fullUserId[]", FULL_USER_ID),
            ("xcid", &self.ids.xcid),
        ])
    }

    /// The answer body (fixtures 07, 08). Only incoming calls name the user who answered.
    pub(crate) fn answer_body(&self, answering_number: &str) -> String {
        let mut fields = vec![("event", "answer"), ("callId", self.ids.call_id.as_str())];
        if self.direction == Direction::In {
            fields.extend([
                ("user", self.caller_name.as_str()),
                ("userId", USER_ID),
                ("fullUserId", FULL_USER_ID),
            ]);
        }
        fields.extend([
            ("from", self.from.as_str()),
            ("to", self.to.as_str()),
            ("direction", self.direction.as_str()),
            ("answeringNumber", answering_number),
            ("origCallId", &self.ids.call_id),
            ("xcid", &self.ids.xcid),
        ]);
        form(&fields)
    }

    /// The hangup body (fixtures 09, 10, 12); `answering_number` only if it was answered.
    pub(crate) fn hangup_body(
        &self,
        cause: &HangupCause,
        answering_number: Option<&str>,
    ) -> String {
        let mut fields = vec![
            ("event", "hangup"),
            ("cause", cause.as_str()),
            ("callId", self.ids.call_id.as_str()),
            ("from", &self.from),
            ("to", &self.to),
            ("direction", self.direction.as_str()),
        ];
        if let Some(number) = answering_number {
            fields.push(("answeringNumber", number));
        }
        fields.extend([
            ("origCallId", self.ids.call_id.as_str()),
            ("xcid", &self.ids.xcid),
        ]);
        form(&fields)
    }

    /// The dtmf body (fixtures 13, 14): without input, sipgate leaves `dtmf` out.
    pub(crate) fn dtmf_body(&self, digits: &str) -> String {
        let mut fields = vec![("event", "dtmf")];
        if !digits.is_empty() {
            fields.push(("dtmf", digits));
        }
        fields.push(("callId", &self.ids.call_id));
        form(&fields)
    }
}

/// Encodes like sipgate: `[]` as `%5B%5D`, spaces as `+`, UTF-8 percent-escapes.
fn form(fields: &[(&str, &str)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        serializer.append_pair(name, value);
    }
    serializer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::args::tests::options;

    const CID: &str =
        "54566B150B0C0D3A5D534D5F565D7C5F54535A5C5B53525A7E5B5D5745504457444C425D5057";
    const CID_OUT: &str =
        "54566B150B0C0D3A5D50435A5D5A7E5B525551575452535A7C50565745514058474144555A56";

    fn call(list: &[&str], call_id: &str, xcid: &str) -> Call {
        Call::new(
            &options(list),
            &Ids {
                call_id: call_id.into(),
                xcid: xcid.into(),
            },
        )
    }

    #[test]
    fn bodies_match_sipgates_captures_byte_for_byte() {
        let incoming = call(&[], CID, "8419b3450b75cd19");
        assert_eq!(
            incoming.new_call_body(),
            include_str!("../../tests/fixtures/01-newcall-in.form")
        );
        assert_eq!(
            incoming.answer_body("4915791234567"),
            include_str!("../../tests/fixtures/07-answer-in.form")
        );
        assert_eq!(
            incoming.hangup_body(&HangupCause::NormalClearing, Some("4915791234567")),
            include_str!("../../tests/fixtures/09-hangup-normalclearing.form")
        );

        let outgoing = call(
            &["--direction", "out", "--to", "4915799912345"],
            CID_OUT,
            "0a1b2c3d4e5f6789",
        );
        assert_eq!(
            outgoing.new_call_body(),
            include_str!("../../tests/fixtures/04-newcall-out.form")
        );
        assert_eq!(
            outgoing.answer_body("4915799912345"),
            include_str!("../../tests/fixtures/08-answer-out.form")
        );
        assert_eq!(
            outgoing.hangup_body(&HangupCause::Busy, None),
            include_str!("../../tests/fixtures/12-hangup-busy-out.form")
        );

        let keys = call(
            &[],
            "54566B150B0C0D3A5D564D5F565F735B54565B54505E535E78595756455045544647465F5A57",
            "x",
        );
        assert_eq!(
            keys.dtmf_body("0815"),
            include_str!("../../tests/fixtures/13-dtmf-digits.form")
        );
        assert_eq!(
            keys.dtmf_body(""),
            include_str!("../../tests/fixtures/14-dtmf-omitted.form")
        );
    }

    #[test]
    fn each_menu_gets_its_group_of_digits_and_no_group_is_no_input() {
        let keys = call(&["--digits", "0815,*#,"], CID, "x");
        let bodies: Vec<String> = options(&["--digits", "0815,*#,"])
            .digit_groups()
            .into_iter()
            .map(|group| keys.dtmf_body(group))
            .collect();
        assert_eq!(
            bodies,
            [
                format!("event=dtmf&dtmf=0815&callId={CID}"),
                format!("event=dtmf&dtmf=*%23&callId={CID}"),
                // As sipgate sent it when a Gather timed out:
                // https://github.com/sipgate/sipgate.io/issues/144
                format!("event=dtmf&callId={CID}"),
            ]
        );
    }

    #[test]
    fn names_are_encoded_like_sipgate_does() {
        let body = call(&["--caller-name", "Jörg Müller"], "C", "x").new_call_body();
        assert!(
            body.contains("&user%5B%5D=J%C3%B6rg+M%C3%BCller&"),
            "{body}"
        );
        let body = call(&["--caller-name", "a&b=c+d"], "C", "x").new_call_body();
        assert!(body.contains("&user%5B%5D=a%26b%3Dc%2Bd&"), "{body}");
    }

    #[test]
    fn random_ids_have_sipgates_shape_and_differ() {
        let (a, b) = (Ids::random(), Ids::random());
        assert_ne!(a, b);
        for ids in [a, b] {
            assert_eq!(ids.call_id.len(), 76);
            assert!(
                ids.call_id
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'))
            );
            assert_eq!(ids.xcid.len(), 16);
            assert!(
                ids.xcid
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            );
        }
    }
}
