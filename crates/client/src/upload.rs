//! `boot-resources create` with a local image, as maascli does it: announce the image by
//! size and SHA-256, then send it in 4 MiB chunks to the file's `upload_uri`.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::encode::Value;
use crate::http::{Client, ClientError, Method, Params, Request, Response, prepare};
use crate::url::{self, UrlError};

/// Bytes per upload request, as maascli sends them.
pub const CHUNK_SIZE: usize = 1 << 22;

/// Why an upload stopped.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("cannot read {path}")]
    ReadContent {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The region refused the boot resource; the response is kept for the caller to show.
    #[error("the region refused the boot resource (HTTP {})", .0.status)]
    CreateRefused(Response),
    #[error("failed to identify created resource: {detail}")]
    UnidentifiedResource { detail: String },
    /// A chunk was not answered with 200; the response is kept for the caller to show.
    #[error("the region refused an upload chunk (HTTP {})", .0.status)]
    ChunkRefused(Response),
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// What happened to the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadOutcome {
    /// The region already had identical content; nothing was sent.
    AlreadyComplete,
    Uploaded {
        bytes: u64,
        chunks: u64,
    },
}

/// Creates a boot resource at `url` (the `boot-resources/` collection) from `fields` and the
/// file at `content`, then uploads the file. `progress` gets (bytes sent, total) after each chunk.
///
/// The first POST carries `fields` plus `size` and `sha256`, sorted by name, and not the content.
pub fn create_boot_resource(
    client: &Client,
    url: &str,
    fields: Vec<(String, Value)>,
    content: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<UploadOutcome, UploadError> {
    let (size, sha256) = size_and_sha256(content)?;
    let mut fields: Vec<(String, Value)> = fields
        .into_iter()
        .filter(|(name, _)| name != "size" && name != "sha256")
        .collect();
    fields.push(("size".to_owned(), Value::Text(size.to_string())));
    fields.push(("sha256".to_owned(), Value::Text(sha256)));
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    let request = prepare(Method::Post, url, &Params { op: None, fields });
    let response = client.execute(request)?;
    if !response.is_success() {
        return Err(UploadError::CreateRefused(response));
    }
    let file = resource_file(&response)?;
    if file.complete {
        return Ok(UploadOutcome::AlreadyComplete);
    }
    let upload_url = url::join(url, &file.upload_uri)?;
    let mut reader = File::open(content).map_err(|source| UploadError::ReadContent {
        path: content.to_owned(),
        source,
    })?;
    let mut sent = 0u64;
    let mut chunks = 0u64;
    let mut buffer = vec![0u8; CHUNK_SIZE];
    loop {
        let length =
            read_full(&mut reader, &mut buffer).map_err(|source| UploadError::ReadContent {
                path: content.to_owned(),
                source,
            })?;
        if length > 0 {
            let request = Request {
                method: Method::Put,
                url: upload_url.clone(),
                headers: vec![(
                    "Content-Type".to_owned(),
                    "application/octet-stream".to_owned(),
                )],
                body: Some(buffer[..length].to_vec()),
            };
            let response = client.execute(request)?;
            if response.status != 200 {
                return Err(UploadError::ChunkRefused(response));
            }
            sent += length as u64;
            chunks += 1;
            progress(sent, size);
        }
        if length != CHUNK_SIZE {
            break;
        }
    }
    Ok(UploadOutcome::Uploaded {
        bytes: sent,
        chunks,
    })
}

/// Size and lower-case hex SHA-256 of a file, read in chunks.
pub fn size_and_sha256(path: &Path) -> Result<(u64, String), UploadError> {
    let read_error = |source| UploadError::ReadContent {
        path: path.to_owned(),
        source,
    };
    let mut reader = File::open(path).map_err(read_error)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let length = reader
            .read(&mut buffer)
            .map_err(|source| UploadError::ReadContent {
                path: path.to_owned(),
                source,
            })?;
        if length == 0 {
            break;
        }
        hasher.update(&buffer[..length]);
        size += length as u64;
    }
    let digest = hasher.finalize();
    Ok((
        size,
        digest.iter().map(|byte| format!("{byte:02x}")).collect(),
    ))
}

/// Fills `buffer` unless the file ends first, like Python's `read(n)` on a regular file.
fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(length) => filled += length,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

struct ResourceFile {
    complete: bool,
    upload_uri: String,
}

/// The single file of the newest set (the greatest version key) in the create reply.
fn resource_file(response: &Response) -> Result<ResourceFile, UploadError> {
    let unidentified = |detail: &str| UploadError::UnidentifiedResource {
        detail: detail.to_owned(),
    };
    let document = response
        .json()
        .map_err(|_| unidentified("the reply is not JSON"))?;
    let sets = document
        .get("sets")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| unidentified("the reply has no \"sets\""))?;
    let newest = sets
        .keys()
        .max()
        .and_then(|key| sets.get(key))
        .ok_or_else(|| unidentified("the reply has no sets"))?;
    let files = newest
        .get("files")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| unidentified("the newest set has no \"files\""))?;
    let mut listed = files.values();
    let (Some(file), None) = (listed.next(), listed.next()) else {
        return Err(unidentified(
            "the newest set does not hold exactly one file",
        ));
    };
    let complete = match file.get("complete") {
        Some(serde_json::Value::Bool(complete)) => *complete,
        _ => return Err(unidentified("the file has no \"complete\" flag")),
    };
    let upload_uri = match file.get("upload_uri").and_then(serde_json::Value::as_str) {
        Some(uri) => uri.to_owned(),
        None if complete => String::new(),
        None => return Err(unidentified("the file has no \"upload_uri\"")),
    };
    Ok(ResourceFile {
        complete,
        upload_uri,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(body: &str) -> Response {
        Response {
            status: 201,
            reason: "Created".to_owned(),
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn newest_set_and_its_only_file_are_used() {
        let file = resource_file(&reply(
            r#"{"sets": {
                "20240101": {"files": {"root-tgz": {"complete": true}}},
                "20240301": {"files": {"root-tgz": {"complete": false, "upload_uri": "/MAAS/api/2.0/boot-resources/7/upload/18/"}}}
            }}"#,
        ))
        .unwrap();
        assert!(!file.complete);
        assert_eq!(file.upload_uri, "/MAAS/api/2.0/boot-resources/7/upload/18/");
    }

    #[test]
    fn replies_that_name_no_single_file_are_refused() {
        for body in [
            "[]",
            "not json",
            r#"{"sets": {}}"#,
            r#"{"sets": {"1": {"files": {}}}}"#,
            r#"{"sets": {"1": {"files": {"a": {"complete": false, "upload_uri": "/u"}, "b": {"complete": false, "upload_uri": "/v"}}}}}"#,
            r#"{"sets": {"1": {"files": {"a": {"complete": false}}}}}"#,
            r#"{"sets": {"1": {"files": {"a": {"complete": "no", "upload_uri": "/u"}}}}}"#,
        ] {
            assert!(
                matches!(
                    resource_file(&reply(body)),
                    Err(UploadError::UnidentifiedResource { .. })
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn size_and_sha256_of_a_file() {
        let path = std::env::temp_dir().join(format!("maas-client-sha-{}", std::process::id()));
        std::fs::write(&path, b"abc").unwrap();
        let (size, sha256) = size_and_sha256(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(size, 3);
        assert_eq!(
            sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
