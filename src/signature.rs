//! The `X-Sipgate-Signature` check: RSA PKCS#1 v1.5 with SHA-256 over the raw body bytes,
//! base64 in the header, against sipgate's public key.
//!
//! The key is read and checked once, at start. ring does the RSA; it takes the PKCS#1
//! `RSAPublicKey` inside the SPKI PEM that sipgate publishes, which pkcs1/spki unwrap.

use std::fmt;
use std::path::{Path, PathBuf};

use pkcs1::der::Decode;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use spki::der::DecodePem;

/// sipgate's push-API public key (RSA 4096, SubjectPublicKeyInfo), as published in
/// sipgateio-node `lib/webhook/signatureVerifier.ts`; SHA-256 of its DER:
/// 893cfd6caad92efc277a5977daec63dee1597223b1df5b2bf69ef56cd92305b3.
pub const SIPGATE_PUBLIC_KEY_PEM: &str = include_str!("sipgate-push-pubkey.pem");

/// rsaEncryption, the only key algorithm sipgate's signatures use.
const RSA_ENCRYPTION: spki::ObjectIdentifier =
    spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// Checks request signatures against one public key.
#[derive(Debug)]
pub struct Verifier {
    key: UnparsedPublicKey<Vec<u8>>,
}

/// Why a request's signature was refused. Answered with 403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    /// The request has no `X-Sipgate-Signature` header.
    Missing,
    /// The header is not standard base64.
    Undecodable,
    /// The signature does not match the body under the key.
    Mismatch,
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignatureError::Missing => "missing X-Sipgate-Signature header",
            SignatureError::Undecodable => "X-Sipgate-Signature header is not valid base64",
            SignatureError::Mismatch => "X-Sipgate-Signature does not match the request body",
        })
    }
}

impl std::error::Error for SignatureError {}

/// A public key that cannot be used.
#[derive(Debug)]
pub struct KeyError {
    /// The file it came from; `None` for the embedded key.
    pub path: Option<PathBuf>,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(
                f,
                "invalid SIPGATE_PUBLIC_KEY_FILE {:?}: {}; expected a PEM file with an RSA public key (-----BEGIN PUBLIC KEY-----), or unset it to use the embedded sipgate key",
                path.display().to_string(),
                self.reason
            ),
            None => write!(f, "the embedded sipgate key is unusable: {}", self.reason),
        }
    }
}

impl std::error::Error for KeyError {}

impl Verifier {
    /// A verifier for sipgate's published key.
    pub fn sipgate() -> Verifier {
        Verifier::from_pem(SIPGATE_PUBLIC_KEY_PEM)
            .expect("the embedded sipgate key is valid (tested)")
    }

    /// Reads a key file (for a key rotation).
    ///
    /// # Errors
    /// The file cannot be read, or does not hold an RSA public key ring can use.
    pub fn from_pem_file(path: &Path) -> Result<Verifier, KeyError> {
        let with_path = |reason: String| KeyError {
            path: Some(path.to_owned()),
            reason,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| with_path(format!("cannot read it: {e}")))?;
        Verifier::from_pem(&text).map_err(with_path)
    }

    /// Parses an SPKI PEM (`-----BEGIN PUBLIC KEY-----`) holding an RSA key of 2048 to
    /// 8192 bits.
    ///
    /// # Errors
    /// What is wrong with the key.
    pub fn from_pem(pem: &str) -> Result<Verifier, String> {
        // The PEM parser's own words for a file that is no PEM at all (a README, say) are
        // about its "preamble"; this names what is missing.
        if !pem
            .lines()
            .any(|line| line.trim_end() == "-----BEGIN PUBLIC KEY-----")
        {
            return Err(
                "not a PEM public key: it has no -----BEGIN PUBLIC KEY----- line".to_owned(),
            );
        }
        let spki = spki::SubjectPublicKeyInfoOwned::from_pem(pem.trim())
            .map_err(|e| format!("not a PEM public key ({e})"))?;
        if spki.algorithm.oid != RSA_ENCRYPTION {
            return Err(format!("not an RSA key (algorithm {})", spki.algorithm.oid));
        }
        let rsa_der = spki
            .subject_public_key
            .as_bytes()
            .ok_or("the key bits are not whole bytes")?
            .to_vec();
        let rsa = pkcs1::RsaPublicKey::<pkcs1::UintRef<'_>>::from_der(&rsa_der)
            .map_err(|e| format!("not an RSA public key ({e})"))?;
        let bits = significant_bits(rsa.modulus.as_bytes());
        if !(2048..=8192).contains(&bits) {
            return Err(format!(
                "the key has {bits} bits; 2048 to 8192 are supported"
            ));
        }
        Ok(Verifier {
            key: UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, rsa_der),
        })
    }

    /// Checks `header` (the `X-Sipgate-Signature` value, if any) against `body`, the raw
    /// bytes exactly as received.
    ///
    /// # Errors
    /// Which way the signature fails.
    pub fn verify(&self, body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        let signature = decode_signature(header)?;
        self.key
            .verify(body, &signature)
            .map_err(|_| SignatureError::Mismatch)
    }
}

/// Decodes the header value: standard base64 with padding, surrounding spaces tolerated.
///
/// # Errors
/// [`SignatureError::Undecodable`] for anything else, including an empty value.
pub fn decode_signature(header: &str) -> Result<Vec<u8>, SignatureError> {
    use base64ct::{Base64, Encoding};
    let trimmed = header.trim();
    if trimmed.is_empty() {
        return Err(SignatureError::Undecodable);
    }
    Base64::decode_vec(trimmed).map_err(|_| SignatureError::Undecodable)
}

fn significant_bits(big_endian: &[u8]) -> usize {
    match big_endian.iter().position(|&byte| byte != 0) {
        Some(first) => (big_endian.len() - first) * 8 - big_endian[first].leading_zeros() as usize,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY_18: &[u8] = include_bytes!("../tests/fixtures/18-signed-real-capture.form");
    const SIG_18: &str = include_str!("../tests/fixtures/18-signed-real-capture.sig");
    const BODY_19: &[u8] = include_bytes!("../tests/fixtures/19-signed-nodelib-testvector.form");
    const SIG_19: &str = include_str!("../tests/fixtures/19-signed-nodelib-testvector.sig");

    #[test]
    fn real_capture_and_node_test_vector_verify() {
        let verifier = Verifier::sipgate();
        assert_eq!(verifier.verify(BODY_18, Some(SIG_18)), Ok(()));
        assert_eq!(verifier.verify(BODY_19, Some(SIG_19)), Ok(()));
    }

    #[test]
    fn any_change_to_the_body_fails() {
        let verifier = Verifier::sipgate();
        let mut with_newline = BODY_18.to_vec();
        with_newline.push(b'\n');
        assert_eq!(
            verifier.verify(&with_newline, Some(SIG_18)),
            Err(SignatureError::Mismatch)
        );
        let mut flipped = BODY_18.to_vec();
        flipped[10] ^= 1;
        assert_eq!(
            verifier.verify(&flipped, Some(SIG_18)),
            Err(SignatureError::Mismatch)
        );
        let tampered = String::from_utf8(BODY_19.to_vec())
            .unwrap()
            .replace("123456789&originalCallId", "123456779&originalCallId");
        assert_ne!(tampered.as_bytes(), BODY_19);
        assert_eq!(
            verifier.verify(tampered.as_bytes(), Some(SIG_19)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verifier.verify(BODY_18, Some(SIG_19)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_and_garbage_headers_are_told_apart() {
        let verifier = Verifier::sipgate();
        assert_eq!(verifier.verify(BODY_18, None), Err(SignatureError::Missing));
        assert_eq!(
            verifier.verify(BODY_18, Some("")),
            Err(SignatureError::Undecodable)
        );
        assert_eq!(
            verifier.verify(BODY_18, Some("fakeSignature")),
            Err(SignatureError::Undecodable)
        );
        assert_eq!(
            verifier.verify(BODY_18, Some("not base64!")),
            Err(SignatureError::Undecodable)
        );
        // Valid base64 of the wrong length still fails cleanly.
        assert_eq!(
            verifier.verify(BODY_18, Some("AAAA")),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verifier.verify(BODY_18, Some(&format!("  {SIG_18}  "))),
            Ok(())
        );
    }

    #[test]
    fn unusable_keys_say_why() {
        assert_eq!(
            Verifier::from_pem("# A README\n\nwith \0 bytes").unwrap_err(),
            "not a PEM public key: it has no -----BEGIN PUBLIC KEY----- line"
        );
        let certificate_label = SIPGATE_PUBLIC_KEY_PEM.replace("PUBLIC KEY", "CERTIFICATE");
        assert!(Verifier::from_pem(&certificate_label).is_err());
        let error = Verifier::from_pem_file(Path::new("/nonexistent/key.pem"))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(
                "invalid SIPGATE_PUBLIC_KEY_FILE \"/nonexistent/key.pem\": cannot read it"
            ),
            "{error}"
        );
    }
}
