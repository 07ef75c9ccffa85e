//! Micro-benchmark (`bench/run.sh`): what one signature check costs, in release mode.
//!
//! Times `Verifier::verify` on the real signed capture (fixture 18, RSA-4096) and, to show
//! where the time goes, its parts: the base64 decode of the header, SHA-256 of the body,
//! and ring's RSA verify alone. Also times building the `Verifier` (PEM, SPKI and PKCS#1
//! parsing), which the server does once at start, never per request.
//!
//! `cargo run --release --example verify_cost [ITERATIONS]` (default 2000, for each
//! figure). The last line,
//! `verify_us=…`, is what `bench/run.sh` reads.

use std::hint::black_box;
use std::time::Duration;

#[path = "support/timing.rs"]
mod timing;
use timing::time;

use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use sipgateio_callevents::signature::{SIPGATE_PUBLIC_KEY_PEM, Verifier, decode_signature};
use spki::der::DecodePem;

const BODY: &[u8] = include_bytes!("../tests/fixtures/18-signed-real-capture.form");
const SIGNATURE: &str = include_str!("../tests/fixtures/18-signed-real-capture.sig");

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn main() {
    let iterations: u32 = std::env::args()
        .nth(1)
        .map_or(2000, |n| n.parse().expect("ITERATIONS is a whole number"));
    let signature = SIGNATURE.trim();

    let verifier = Verifier::sipgate();
    assert_eq!(
        verifier.verify(BODY, Some(signature)),
        Ok(()),
        "fixture 18 must verify"
    );

    let build = time(iterations.div_ceil(10), || {
        black_box(Verifier::sipgate());
    });
    let verify = time(iterations, || {
        black_box(verifier.verify(black_box(BODY), black_box(Some(signature)))).unwrap();
    });
    let decode = time(iterations, || {
        black_box(decode_signature(black_box(signature))).unwrap();
    });
    let digest = time(iterations, || {
        black_box(ring::digest::digest(&ring::digest::SHA256, black_box(BODY)));
    });
    // ring alone, on the inner PKCS#1 key and an already decoded signature.
    let spki = spki::SubjectPublicKeyInfoOwned::from_pem(SIPGATE_PUBLIC_KEY_PEM.trim())
        .expect("the embedded key is an SPKI PEM");
    let rsa_der = spki
        .subject_public_key
        .as_bytes()
        .expect("whole bytes")
        .to_vec();
    let key = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, rsa_der);
    let raw_signature = decode_signature(signature).unwrap();
    let ring_only = time(iterations, || {
        key.verify(black_box(BODY), black_box(&raw_signature))
            .unwrap();
    });

    println!(
        "fixture 18: {} body bytes, RSA-4096 PKCS#1 v1.5 SHA-256, {iterations} iterations",
        BODY.len()
    );
    println!(
        "  Verifier::sipgate() (once at start):       {:>8.1} µs",
        micros(build)
    );
    println!(
        "  Verifier::verify (per request):             {:>8.1} µs",
        micros(verify)
    );
    println!(
        "    of which base64 decode of the header:     {:>8.2} µs",
        micros(decode)
    );
    println!(
        "    of which SHA-256 of the body:             {:>8.2} µs",
        micros(digest)
    );
    println!(
        "    ring UnparsedPublicKey::verify alone:     {:>8.1} µs",
        micros(ring_only)
    );
    println!(
        "verify_us={:.1} ring_us={:.1} build_us={:.1}",
        micros(verify),
        micros(ring_only),
        micros(build)
    );
}
