//! Boot sources as the importer receives them from the region (`boot-sources` with their
//! `selections`).

use std::path::PathBuf;
use std::sync::Arc;

use maas_simplestreams::{Selection, SignatureVerifier};
use thiserror::Error;

use crate::verifier::{KeyringError, OpenPgpVerifier};

/// The public MAAS stream, the default boot source.
pub const DEFAULT_SOURCE_URL: &str = "http://images.maas.io/ephemeral-v3/stable/";
/// Its keyring as Ubuntu installs it.
pub const DEFAULT_KEYRING_FILENAME: &str = "/usr/share/keyrings/ubuntu-cloudimage-keyring.gpg";

/// How a source's documents are checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Keyring {
    /// `keyring_data`: the keyring itself.
    Data(Vec<u8>),
    /// `keyring_filename`: a keyring file on the region.
    File(PathBuf),
    /// `skip_keyring_verification`: documents are taken unverified.
    SkipVerification,
}

impl Keyring {
    /// MAAS's three fields: `keyring_data` wins over `keyring_filename`; verification is
    /// skipped only when asked for.
    pub fn from_maas(
        keyring_filename: &str,
        keyring_data: &[u8],
        skip_keyring_verification: bool,
    ) -> Keyring {
        if skip_keyring_verification {
            Keyring::SkipVerification
        } else if !keyring_data.is_empty() {
            Keyring::Data(keyring_data.to_vec())
        } else {
            Keyring::File(PathBuf::from(keyring_filename))
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootSource {
    pub id: i64,
    pub url: String,
    pub keyring: Keyring,
    /// Higher wins when two sources offer the same resource.
    pub priority: i64,
    pub selections: Vec<Selection>,
}

#[derive(Debug, Error)]
pub enum SourceKeyringError {
    #[error("reading keyring {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("keyring is unusable")]
    Keyring(#[source] KeyringError),
}

impl BootSource {
    /// The verifier for this source's keyring, `None` when verification is skipped.
    pub async fn verifier(&self) -> Result<Option<Arc<dyn SignatureVerifier>>, SourceKeyringError> {
        let data = match &self.keyring {
            Keyring::SkipVerification => return Ok(None),
            Keyring::Data(data) => data.clone(),
            Keyring::File(path) => {
                tokio::fs::read(path)
                    .await
                    .map_err(|source| SourceKeyringError::Read {
                        path: path.clone(),
                        source,
                    })?
            }
        };
        let verifier = OpenPgpVerifier::from_keyring(&data).map_err(SourceKeyringError::Keyring)?;
        Ok(Some(Arc::new(verifier)))
    }
}
