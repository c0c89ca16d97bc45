//! The OpenPGP [`SignatureVerifier`] for boot sources: a keyring (binary, as
//! `ubuntu-cloudimage-keyring.gpg` is, or armored) and the checks `gpgv` makes for MAAS.
//!
//! Built on rPGP (`pgp`): pure Rust like sequoia's RustCrypto backend, but without sequoia's
//! build-time grammar generation and mandatory post-quantum crates, so it compiles in less
//! time; it parses binary keyrings, cleartext-signed messages and detached signatures.

use std::io::Cursor;

use maas_simplestreams::{SignatureVerifier, VerifyError};
use pgp::composed::{CleartextSignedMessage, Deserializable, DetachedSignature, SignedPublicKey};
use pgp::packet::Signature;
use pgp::types::KeyDetails;
use thiserror::Error;

/// The signing keys of one keyring: every primary key and every subkey whose binding
/// signature verifies.
pub struct OpenPgpVerifier {
    keys: Vec<SignedPublicKey>,
}

#[derive(Debug, Error)]
pub enum KeyringError {
    #[error("keyring holds no OpenPGP public key")]
    Empty,
    #[error("keyring is not OpenPGP data: {reason}")]
    Unreadable { reason: String },
}

impl std::fmt::Debug for OpenPgpVerifier {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fingerprints: Vec<String> = self
            .keys
            .iter()
            .map(|key| key.fingerprint().to_string())
            .collect();
        formatter
            .debug_struct("OpenPgpVerifier")
            .field("keys", &fingerprints)
            .finish()
    }
}

impl OpenPgpVerifier {
    /// Reads a keyring: concatenated transferable public keys, binary or armored. Keys that
    /// fail to parse are skipped as long as one key is usable.
    pub fn from_keyring(data: &[u8]) -> Result<OpenPgpVerifier, KeyringError> {
        let (keys, _headers) =
            SignedPublicKey::from_reader_many(Cursor::new(data)).map_err(|error| {
                KeyringError::Unreadable {
                    reason: error.to_string(),
                }
            })?;
        let mut usable = Vec::new();
        for key in keys {
            match key {
                Ok(key) => match key.verify_bindings() {
                    Ok(()) => usable.push(key),
                    Err(error) => {
                        tracing::warn!(fingerprint = %key.fingerprint(), %error, "skipping keyring key whose self-signatures do not verify");
                    }
                },
                Err(error) => tracing::warn!(%error, "skipping unreadable keyring entry"),
            }
        }
        if usable.is_empty() {
            return Err(KeyringError::Empty);
        }
        Ok(OpenPgpVerifier { keys: usable })
    }

    /// Fingerprints of the keys in use, upper-case hex.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|key| key.fingerprint().to_string().to_uppercase())
            .collect()
    }

    /// Whether `signature` verifies over `content` with the primary key or a subkey of
    /// some key in the keyring.
    fn check(&self, signature: &Signature, content: &[u8]) -> bool {
        self.keys.iter().any(|key| {
            signature.verify(&key.primary_key, content).is_ok()
                || key
                    .public_subkeys
                    .iter()
                    .any(|subkey| signature.verify(&subkey.key, content).is_ok())
        })
    }

    fn verify_signatures<'s>(
        &self,
        signatures: impl IntoIterator<Item = &'s Signature>,
        content: &[u8],
    ) -> Result<(), VerifyError> {
        let mut issuers = Vec::new();
        for signature in signatures {
            if self.check(signature, content) {
                return Ok(());
            }
            issuers.extend(
                signature
                    .issuer_fingerprint()
                    .into_iter()
                    .map(|fingerprint| fingerprint.to_string().to_uppercase()),
            );
            issuers.extend(
                signature
                    .issuer_key_id()
                    .into_iter()
                    .map(|key_id| upper_hex(key_id.as_ref())),
            );
        }
        let known = issuers.iter().any(|issuer| {
            self.keys.iter().any(|key| {
                let fingerprint = key.fingerprint().to_string().to_uppercase();
                fingerprint.ends_with(issuer.as_str())
                    || key.public_subkeys.iter().any(|subkey| {
                        subkey
                            .key
                            .fingerprint()
                            .to_string()
                            .to_uppercase()
                            .ends_with(issuer.as_str())
                    })
            })
        });
        if known || issuers.is_empty() {
            Err(VerifyError::BadSignature)
        } else {
            Err(VerifyError::UnknownSigner {
                issuer: issuers.join(","),
            })
        }
    }
}

fn upper_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02X}")).collect()
}

impl SignatureVerifier for OpenPgpVerifier {
    fn verify_clearsigned(&self, document: &[u8]) -> Result<Vec<u8>, VerifyError> {
        let text = std::str::from_utf8(document).map_err(|_| VerifyError::MalformedSignature {
            reason: "document is not UTF-8".to_owned(),
        })?;
        let (message, _headers) = CleartextSignedMessage::from_string(text).map_err(|error| {
            VerifyError::MalformedSignature {
                reason: error.to_string(),
            }
        })?;
        // The text the signature covers (dash-unescaped, CRLF-normalised), and nothing else.
        let signed = message.signed_text();
        self.verify_signatures(message.signatures(), signed.as_bytes())?;
        Ok(signed.into_bytes())
    }

    fn verify_detached(&self, content: &[u8], signature: &[u8]) -> Result<(), VerifyError> {
        let (detached, _headers) = DetachedSignature::from_reader_single(Cursor::new(signature))
            .map_err(|error| VerifyError::MalformedSignature {
                reason: error.to_string(),
            })?;
        self.verify_signatures([&detached.signature], content)
    }
}
