//! `signature::decode_signature` and `Verifier::verify` on arbitrary header + body.
//! Input: the header value up to the first `\n` (absent when there is no `\n`), then the body.
//!
//! Properties: decoding is canonical (whatever decodes re-encodes to the trimmed header, so
//! two spellings of one signature cannot exist), and nothing but the two real signed
//! fixtures ever verifies under sipgate's key.
#![no_main]

use std::sync::LazyLock;

use base64ct::{Base64, Encoding};
use libfuzzer_sys::fuzz_target;
use sipgateio_callevents::signature::{SignatureError, Verifier, decode_signature};

static VERIFIER: LazyLock<Verifier> = LazyLock::new(Verifier::sipgate);

const GENUINE: [(&[u8], &str); 2] = [
    (
        include_bytes!("../../tests/fixtures/18-signed-real-capture.form"),
        include_str!("../../tests/fixtures/18-signed-real-capture.sig"),
    ),
    (
        include_bytes!("../../tests/fixtures/19-signed-nodelib-testvector.form"),
        include_str!("../../tests/fixtures/19-signed-nodelib-testvector.sig"),
    ),
];

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (Some(String::from_utf8_lossy(&data[..at])), &data[at + 1..]),
        None => (None, data),
    };
    let header = header.as_deref();

    if let Some(value) = header {
        match decode_signature(value) {
            Ok(bytes) => {
                assert!(!bytes.is_empty());
                assert_eq!(
                    Base64::encode_string(&bytes),
                    value.trim(),
                    "non-canonical base64 accepted"
                );
            }
            Err(error) => assert_eq!(error, SignatureError::Undecodable),
        }
    }

    let result = VERIFIER.verify(body, header);
    match header {
        None => assert_eq!(result, Err(SignatureError::Missing)),
        Some(value) => {
            if result.is_ok() {
                let signature = decode_signature(value).unwrap();
                let genuine = GENUINE.iter().any(|(genuine_body, genuine_sig)| {
                    *genuine_body == body && decode_signature(genuine_sig).unwrap() == signature
                });
                assert!(genuine, "a signature verified that sipgate never made");
            }
        }
    }
});
