//! Decoding `application/x-www-form-urlencoded` bodies, as sipgate sends its events.
//!
//! On its own because it is the hot part of parsing an event and is fuzzed on its own
//! (`fuzz/fuzz_targets/form_pairs.rs`) against `form_urlencoded`, whose results it must
//! give exactly.

use std::borrow::Cow;

/// A decoded form body: `+` is a space, `%XX` are UTF-8 bytes (invalid ones become U+FFFD),
/// and `user%5B%5D` and `user[]` are the same key.
/// Values borrow from the body where no decoding was needed.
pub(crate) struct Form<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'a> Form<'a> {
    pub(crate) fn parse(body: &'a [u8]) -> Form<'a> {
        Form(form_pairs(body))
    }

    /// The first value of `key`, if present. A repeated single-valued key keeps its first
    /// value, as most form parsers do.
    pub(crate) fn first(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value.as_ref())
    }

    /// Like [`Form::first`], but an empty value counts as absent.
    pub(crate) fn first_non_empty(&self, key: &str) -> Option<&str> {
        self.first(key).filter(|value| !value.is_empty())
    }

    /// [`Form::first_non_empty`], owned.
    pub(crate) fn non_empty(&self, key: &str) -> Option<String> {
        self.first_non_empty(key).map(str::to_owned)
    }

    /// Every value of the array parameters `names` (sent as `name[]` or `name`), in order,
    /// in one pass over the pairs rather than one per name.
    pub(crate) fn arrays<const N: usize>(&self, names: [&str; N]) -> [Vec<String>; N] {
        let mut values: [Vec<String>; N] = std::array::from_fn(|_| Vec::new());
        for (key, value) in &self.0 {
            let key = key.strip_suffix("[]").unwrap_or(key);
            if let Some(index) = names.iter().position(|name| *name == key) {
                values[index].push(value.clone().into_owned());
            }
        }
        values
    }

    /// A single-valued user field: sipgate sends `user` on answer, but `user[]` elsewhere.
    pub(crate) fn single_user_field(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .filter(|(k, _)| k.strip_suffix("[]").unwrap_or(k) == name)
            .map(|(_, value)| value.as_ref())
            .find(|value| !value.is_empty())
            .map(str::to_owned)
    }
}

/// The decoded name-value pairs of a form body, exactly as `form_urlencoded::parse` gives
/// them (a test and the `form_pairs` fuzz target compare the two).
///
/// form_urlencoded decodes every pair, walking each byte several times, and that was the
/// largest cost of handling an event (BENCHMARKS.md, "Instructions"). Most of sipgate's
/// pairs (`callId=54566B…`, `direction=in`) hold no `%` or `+`, so decoding would leave
/// them as they are: those are borrowed straight from the body. So are the values of the
/// array names sipgate always encodes (`userId%5B%5D=w0`), whose decoded names are
/// constants. form_urlencoded decodes the rest. One pass over the bytes finds each pair's
/// end, its `=` and whether it needs decoding; splitting with `str::split` and
/// `split_once` and then looking for `%` and `+` took three.
pub fn form_pairs(body: &[u8]) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    let Ok(text) = std::str::from_utf8(body) else {
        // Rare enough to leave to form_urlencoded, which replaces invalid UTF-8.
        return form_urlencoded::parse(body).collect();
    };
    // sipgate sends up to a dozen parameters.
    let mut pairs = Vec::with_capacity(16);
    let mut start = 0;
    while start < text.len() {
        let pair = Pair::scan(text.as_bytes(), start);
        // `&`, `=`, `%` and `+` are ASCII, so every index here is a char boundary.
        let (name, value) = match pair.equals {
            Some(equals) => (&text[start..equals], &text[equals + 1..pair.end]),
            None => (&text[start..pair.end], ""),
        };
        if pair.end == start {
            // An empty pair (`&&`): form_urlencoded skips it.
        } else if !pair.encoded_name && !pair.encoded_value {
            pairs.push((Cow::Borrowed(name), Cow::Borrowed(value)));
        } else if let Some(decoded) = encoded_array_name(name).filter(|_| !pair.encoded_value) {
            pairs.push((Cow::Borrowed(decoded), Cow::Borrowed(value)));
        } else {
            pairs.extend(form_urlencoded::parse(&body[start..pair.end]));
        }
        start = pair.end + 1;
    }
    pairs
}

/// One `name=value` pair of a form body, as found by [`Pair::scan`].
struct Pair {
    /// Where the pair ends: its `&`, or the end of the body.
    end: usize,
    /// Its first `=`, if any.
    equals: Option<usize>,
    /// Whether the name, or the value, holds a `%` or a `+`.
    encoded_name: bool,
    encoded_value: bool,
}

impl Pair {
    fn scan(bytes: &[u8], start: usize) -> Pair {
        let mut pair = Pair {
            end: bytes.len(),
            equals: None,
            encoded_name: false,
            encoded_value: false,
        };
        for (offset, &byte) in bytes[start..].iter().enumerate() {
            match byte {
                b'&' => {
                    pair.end = start + offset;
                    break;
                }
                b'=' if pair.equals.is_none() => pair.equals = Some(start + offset),
                b'%' | b'+' if pair.equals.is_none() => pair.encoded_name = true,
                b'%' | b'+' => pair.encoded_value = true,
                _ => {}
            }
        }
        pair
    }
}

/// The decoded name of an array parameter in the spelling sipgate sends
/// (`user%5B%5D=Alice`), as in every capture in `tests/fixtures/`.
fn encoded_array_name(name: &str) -> Option<&'static str> {
    match name {
        "user%5B%5D" => Some("user[]"),
        "userId%5B%5D" => Some("userId[]"),
        "fullUserId%5B%5D" => Some("fullUserId[]"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_pairs_match_form_urlencoded() {
        let bodies: [&[u8]; 18] = [
            b"",
            b"&&&",
            b"a=1&b=2",
            b"a=b=c&=x&y&&z=",
            b"user%5B%5D=Alice+Smith&user[]=Bob&userId%5B%5D=w0",
            b"name=J%C3%BCrgen&to=%2B4915791234567&from=+49+211",
            b"bad=%zz&half=%4&tail=%",
            b"lone=%E2%82&invalid=\xff\xfe&mixed=\xc3\xa4%20",
            b"emoji=%F0%9F%93%9E&raw=\xf0\x9f\x93\x9e",
            b"plus=%2B&space=+&both=a+%2B+b",
            b"nul=%00&cr=%0D%0A&ctl=\x01",
            b"==&=&=a",
            b"%3D=%26&k%3Dv=1",
            b"event=newCall&direction=in&from=492111234567&to=4915791234567&callId=54566B15&xcid=8419b3450b75cd19",
            b"trailing&",
            b"&leading=1",
            b"fullUserId%5B%5D=1234567w0&userId%5B%5D=&userId%5B%5D=x=y&user%5B%5D==",
            b"user%5B%5D=a%20b&user%5B%5D=a+b&user%5b%5d=lower&user%5B%5D%5B0%5D=nested&user%5B%5D",
        ];
        for body in bodies {
            let ours = form_pairs(body);
            let theirs: Vec<_> = form_urlencoded::parse(body).collect();
            assert_eq!(ours, theirs, "{:?}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn form_pairs_match_form_urlencoded_on_bodies_built_from_the_awkward_pieces() {
        let pieces: [&[u8]; 16] = [
            b"a",
            b"callId",
            b"user%5B%5D",
            b"userId%5B%5D",
            b"fullUserId%5B%5D",
            b"=",
            b"&",
            b"%",
            b"+",
            b"%2",
            b"%20",
            b"%zz",
            b"\xff",
            "ü".as_bytes(),
            b"[]",
            b"%5b%5d",
        ];
        // xorshift64: the same 20,000 bodies in every run.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let length = next() % 12;
            let body: Vec<u8> = (0..length)
                .flat_map(|_| pieces[(next() % pieces.len() as u64) as usize])
                .copied()
                .collect();
            let theirs: Vec<_> = form_urlencoded::parse(&body).collect();
            assert_eq!(
                form_pairs(&body),
                theirs,
                "{:?}",
                String::from_utf8_lossy(&body)
            );
        }
    }
}
