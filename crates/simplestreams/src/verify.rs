//! Signed documents: the verifier port and the policy that decides what must be verified.
//!
//! Policy, stricter than MAAS's (which checks `.sjson` only and trusts any `.json`): a
//! source that verifies accepts a `.sjson` document only with a good clearsigned signature,
//! and a `.json` document only with a good detached signature in `<path>.gpg`. A source
//! configured with `skip_keyring_verification` takes the text of either as it is.

use thiserror::Error;

use crate::clearsign::{ClearsignError, is_clearsigned, parse_clearsigned};

/// Checks OpenPGP signatures against the keys of one boot source's keyring. Implemented
/// outside this crate (the importer's OpenPGP verifier), so this crate stays pure.
pub trait SignatureVerifier: Send + Sync {
    /// Verifies a cleartext-signed document and returns the text its signature covers, so a
    /// caller never parses bytes that were not signed.
    fn verify_clearsigned(&self, document: &[u8]) -> Result<Vec<u8>, VerifyError>;

    /// Verifies a detached signature (binary or armored) over `content`.
    fn verify_detached(&self, content: &[u8], signature: &[u8]) -> Result<(), VerifyError>;
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum VerifyError {
    #[error("signature is malformed: {reason}")]
    MalformedSignature { reason: String },
    #[error("no key in the keyring made this signature (issuer {issuer})")]
    UnknownSigner { issuer: String },
    #[error("signature does not match the document")]
    BadSignature,
    #[error("keyring is unusable: {reason}")]
    BadKeyring { reason: String },
}

/// How a source's documents are trusted.
#[derive(Clone, Copy)]
pub enum Trust<'a> {
    Verify(&'a dyn SignatureVerifier),
    /// `skip_keyring_verification`.
    Unverified,
}

impl std::fmt::Debug for Trust<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Trust::Verify(_) => "Verify",
            Trust::Unverified => "Unverified",
        })
    }
}

/// What signing a document's path implies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signing {
    /// `.sjson`: cleartext-signed.
    Clearsigned,
    /// `.json`: plain, with a detached signature at `<path>.gpg` when verified.
    Detached,
}

impl Signing {
    pub fn of_path(path: &str) -> Signing {
        if path.ends_with(".sjson") {
            Signing::Clearsigned
        } else {
            Signing::Detached
        }
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum OpenError {
    #[error("{path} is not cleartext-signed")]
    NotClearsigned { path: String },
    #[error("{path} has a broken cleartext-signed framing")]
    Framing {
        path: String,
        #[source]
        source: ClearsignError,
    },
    #[error("{path} needs a detached signature ({path}.gpg) and has none")]
    MissingDetachedSignature { path: String },
    #[error("{path} failed signature verification")]
    Verification {
        path: String,
        #[source]
        source: VerifyError,
    },
}

/// The JSON text of a fetched document, checked as `trust` demands. `detached` is the
/// content of `<path>.gpg` when the caller fetched it (needed for `.json` under
/// [`Trust::Verify`]; see [`needs_detached_signature`]).
pub fn open_document(
    path: &str,
    content: &[u8],
    detached: Option<&[u8]>,
    trust: Trust<'_>,
) -> Result<Vec<u8>, OpenError> {
    match (Signing::of_path(path), trust) {
        (Signing::Clearsigned, Trust::Verify(verifier)) => {
            if !is_clearsigned(content) {
                return Err(OpenError::NotClearsigned {
                    path: path.to_owned(),
                });
            }
            verifier
                .verify_clearsigned(content)
                .map_err(|source| OpenError::Verification {
                    path: path.to_owned(),
                    source,
                })
        }
        (Signing::Clearsigned, Trust::Unverified) => parse_clearsigned(content)
            .map(|parsed| parsed.text.into_bytes())
            .map_err(|source| OpenError::Framing {
                path: path.to_owned(),
                source,
            }),
        (Signing::Detached, Trust::Verify(verifier)) => {
            let Some(signature) = detached else {
                return Err(OpenError::MissingDetachedSignature {
                    path: path.to_owned(),
                });
            };
            verifier
                .verify_detached(content, signature)
                .map_err(|source| OpenError::Verification {
                    path: path.to_owned(),
                    source,
                })?;
            Ok(content.to_vec())
        }
        (Signing::Detached, Trust::Unverified) => Ok(content.to_vec()),
    }
}

/// Whether opening `path` under `trust` needs `<path>.gpg`.
pub fn needs_detached_signature(path: &str, trust: Trust<'_>) -> bool {
    matches!(
        (Signing::of_path(path), trust),
        (Signing::Detached, Trust::Verify(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts exactly one document and one detached signature.
    struct Fixed;

    impl SignatureVerifier for Fixed {
        fn verify_clearsigned(&self, document: &[u8]) -> Result<Vec<u8>, VerifyError> {
            if document.ends_with(b"-----END PGP SIGNATURE-----\n") && document.len() > 70 {
                Ok(b"{\"signed\": true}".to_vec())
            } else {
                Err(VerifyError::BadSignature)
            }
        }

        fn verify_detached(&self, content: &[u8], signature: &[u8]) -> Result<(), VerifyError> {
            if content == b"{}" && signature == b"good" {
                Ok(())
            } else {
                Err(VerifyError::BadSignature)
            }
        }
    }

    const SIGNED: &[u8] = b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{\"unsigned\": 1}\n-----BEGIN PGP SIGNATURE-----\n-----END PGP SIGNATURE-----\n";

    #[test]
    fn verified_sources_use_only_signed_text() {
        let trust = Trust::Verify(&Fixed);
        assert_eq!(
            open_document("streams/v1/index.sjson", SIGNED, None, trust),
            Ok(b"{\"signed\": true}".to_vec())
        );
        assert_eq!(
            open_document("streams/v1/index.sjson", b"{}", None, trust),
            Err(OpenError::NotClearsigned {
                path: "streams/v1/index.sjson".into()
            })
        );
        assert!(needs_detached_signature("streams/v1/index.json", trust));
        assert_eq!(
            open_document("streams/v1/index.json", b"{}", None, trust),
            Err(OpenError::MissingDetachedSignature {
                path: "streams/v1/index.json".into()
            })
        );
        assert_eq!(
            open_document("streams/v1/index.json", b"{}", Some(b"good"), trust),
            Ok(b"{}".to_vec())
        );
        assert_eq!(
            open_document("streams/v1/index.json", b"{} ", Some(b"good"), trust),
            Err(OpenError::Verification {
                path: "streams/v1/index.json".into(),
                source: VerifyError::BadSignature
            })
        );
    }

    #[test]
    fn unverified_sources_strip_the_signature() {
        assert!(!needs_detached_signature(
            "streams/v1/index.json",
            Trust::Unverified
        ));
        assert_eq!(
            open_document("streams/v1/index.sjson", SIGNED, None, Trust::Unverified),
            Ok(b"{\"unsigned\": 1}".to_vec())
        );
        assert_eq!(
            open_document("a.json", b"{}", None, Trust::Unverified),
            Ok(b"{}".to_vec())
        );
    }
}
