//! `form::form_pairs` against `form_urlencoded::parse`, the decoder it stands in for on
//! pairs that need no decoding and on sipgate's encoded array names. Input: any bytes, as a form body. The two must give the
//! same pairs, byte for byte, for every input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipgateio_callevents::form::form_pairs;

fuzz_target!(|body: &[u8]| {
    let ours = form_pairs(body);
    let reference: Vec<_> = form_urlencoded::parse(body).collect();
    assert_eq!(ours, reference);
});
