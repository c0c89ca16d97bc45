//! The metadata API client (§2): OAuth-signed GETs and POSTs, `signal` as multipart, the
//! status webhook as JSON, and the anonymous enlistment calls of §1.10.
//!
//! Requests are retried with MAAS's backoff (1, 1, 2, 4, 8, 16, 32 s) on connection errors
//! and 5xx answers; a 401 or 403 carrying a `Date` header corrects the clock skew once.

use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::http::{self, Client, HttpError, Response};
use crate::log;
use crate::multipart::Multipart;
use crate::oauth::{self, Credentials, percent_encode};

/// The largest tarball, preseed or config the agent reads into memory.
pub const MAX_DOCUMENT: usize = 256 * 1024 * 1024;

/// Why a metadata call failed.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("request {method} {url} failed")]
    Http {
        method: &'static str,
        url: String,
        #[source]
        source: HttpError,
    },
    #[error("{method} {url} answered {status}: {body}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url} answered unexpected content: {reason}")]
    BadAnswer { url: String, reason: String },
}

impl MetadataError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            MetadataError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// `status` values of `signal` (§2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalStatus {
    Ok,
    Failed,
    Working,
    Commissioning,
    Testing,
    TimedOut,
    Installing,
    ApplyingNetconf,
    Releasing,
    Deploying,
}

impl SignalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SignalStatus::Ok => "OK",
            SignalStatus::Failed => "FAILED",
            SignalStatus::Working => "WORKING",
            SignalStatus::Commissioning => "COMMISSIONING",
            SignalStatus::Testing => "TESTING",
            SignalStatus::TimedOut => "TIMEDOUT",
            SignalStatus::Installing => "INSTALLING",
            SignalStatus::ApplyingNetconf => "APPLYING_NETCONF",
            SignalStatus::Releasing => "RELEASING",
            SignalStatus::Deploying => "DEPLOYING",
        }
    }
}

/// One `signal` call.
#[derive(Clone, Debug)]
pub struct Signal {
    pub status: SignalStatus,
    pub error: Option<String>,
    pub script_result_id: Option<u64>,
    pub script_version_id: Option<u64>,
    pub name: Option<String>,
    pub exit_status: Option<i32>,
    pub runtime: Option<f64>,
    pub power_type: Option<String>,
    pub power_parameters: Option<String>,
    /// `(file name, content)`; the field name is the file name.
    pub files: Vec<(String, Vec<u8>)>,
}

impl Signal {
    pub fn new(status: SignalStatus) -> Self {
        Signal {
            status,
            error: None,
            script_result_id: None,
            script_version_id: None,
            name: None,
            exit_status: None,
            runtime: None,
            power_type: None,
            power_parameters: None,
            files: Vec::new(),
        }
    }

    pub fn with_error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }

    /// The multipart body, fields in a fixed order.
    pub fn to_multipart(&self, mut form: Multipart) -> (String, Vec<u8>) {
        form.field("op", "signal");
        form.field("status", self.status.as_str());
        if let Some(error) = &self.error {
            form.field("error", error);
        }
        if let Some(id) = self.script_result_id {
            form.field("script_result_id", &id.to_string());
        }
        if let Some(id) = self.script_version_id {
            form.field("script_version_id", &id.to_string());
        }
        if let Some(name) = &self.name {
            form.field("name", name);
        }
        if let Some(exit_status) = self.exit_status {
            form.field("exit_status", &exit_status.to_string());
        }
        if let Some(runtime) = self.runtime {
            form.field("runtime", &format!("{runtime:.2}"));
        }
        if let Some(power_type) = &self.power_type {
            form.field("power_type", power_type);
        }
        if let Some(power_parameters) = &self.power_parameters {
            form.field("power_parameters", power_parameters);
        }
        for (name, content) in &self.files {
            form.file(name, content);
        }
        form.finish()
    }
}

/// A status webhook message (§2.6).
#[derive(Clone, Debug, Serialize)]
pub struct StatusEvent {
    pub event_type: &'static str,
    pub origin: &'static str,
    pub name: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<&'static str>,
    pub timestamp: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<EventFile>,
}

/// A file carried by a status event: base64, uncompressed.
#[derive(Clone, Debug, Serialize)]
pub struct EventFile {
    pub path: String,
    pub encoding: &'static str,
    pub content: String,
}

/// The client for one node (or, without credentials, for an enlisting machine).
#[derive(Debug)]
pub struct MetadataClient {
    http: Client,
    /// `http://<rack>:5248/MAAS/metadata/` or `.../MAAS/metadata/curtin/`.
    metadata_url: String,
    credentials: Option<Credentials>,
    backoff: Vec<Duration>,
    clock_offset: Mutex<i64>,
}

/// MAAS's retry schedule.
pub const MAAS_BACKOFF: [u64; 7] = [1, 1, 2, 4, 8, 16, 32];

impl MetadataClient {
    pub fn new(metadata_url: &str, credentials: Option<Credentials>) -> Self {
        let mut metadata_url = metadata_url.to_owned();
        if !metadata_url.ends_with('/') {
            metadata_url.push('/');
        }
        MetadataClient {
            http: Client::default(),
            metadata_url,
            credentials,
            backoff: MAAS_BACKOFF
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            clock_offset: Mutex::new(0),
        }
    }

    /// Replaces the retry schedule (tests use short or empty ones).
    pub fn with_backoff(mut self, backoff: Vec<Duration>) -> Self {
        self.backoff = backoff;
        self
    }

    pub fn with_http(mut self, http: Client) -> Self {
        self.http = http;
        self
    }

    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    pub fn set_credentials(&mut self, credentials: Credentials) {
        self.credentials = Some(credentials);
    }

    pub fn metadata_url(&self) -> &str {
        &self.metadata_url
    }

    /// `<metadata_url>latest/<path>`.
    pub fn versioned(&self, path: &str) -> String {
        format!("{}latest/{path}", self.metadata_url)
    }

    /// `http://<host>/MAAS/`, the root the metadata URL hangs from.
    pub fn maas_root(&self) -> String {
        match self.metadata_url.find("/metadata/") {
            Some(index) => self.metadata_url[..=index].to_owned(),
            None => match http::Url::parse(&self.metadata_url) {
                Ok(url) => format!("{}/MAAS/", url.origin()),
                Err(_) => self.metadata_url.clone(),
            },
        }
    }

    fn authorization(&self) -> Option<String> {
        let offset = *self.clock_offset.lock().unwrap_or_else(|e| e.into_inner());
        self.credentials.as_ref().map(|c| c.sign(offset))
    }

    /// One request with retries; answers other than 2xx are errors.
    pub fn request(
        &self,
        method: &'static str,
        url: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
        signed: bool,
    ) -> Result<Response, MetadataError> {
        let mut attempt = 0;
        let mut corrected_clock = false;
        loop {
            let mut headers = Vec::new();
            if signed && let Some(authorization) = self.authorization() {
                headers.push(("Authorization", authorization));
            }
            if let Some(content_type) = content_type {
                headers.push(("Content-Type", content_type.to_owned()));
            }
            log::debug("request", &[("method", &method), ("url", &url)]);
            let retry = match self.http.send(method, url, &headers, body) {
                Ok(response) if (200..300).contains(&response.status) => return Ok(response),
                Ok(response) => {
                    let status = response.status;
                    let date = response.header("Date").and_then(http::parse_http_date);
                    let text = response
                        .read_body(64 * 1024)
                        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
                        .unwrap_or_default();
                    let error = MetadataError::Status {
                        method,
                        url: url.to_owned(),
                        status,
                        body: text,
                    };
                    if (status == 401 || status == 403) && !corrected_clock && signed {
                        if let Some(server_time) = date {
                            let skew = server_time - oauth::unix_now();
                            *self.clock_offset.lock().unwrap_or_else(|e| e.into_inner()) = skew;
                            corrected_clock = true;
                            log::warn(
                                "authentication refused; retrying with the server's clock",
                                &[("skew_seconds", &skew)],
                            );
                            continue;
                        }
                        return Err(error);
                    }
                    if status < 500 {
                        return Err(error);
                    }
                    error
                }
                Err(source) => MetadataError::Http {
                    method,
                    url: url.to_owned(),
                    source,
                },
            };
            let Some(delay) = self.backoff.get(attempt) else {
                return Err(retry);
            };
            log::warn(
                "request failed, retrying",
                &[
                    ("url", &url),
                    ("error", &retry),
                    ("delay_seconds", &delay.as_secs_f64()),
                ],
            );
            std::thread::sleep(*delay);
            attempt += 1;
        }
    }

    fn get_document(&self, url: &str, signed: bool) -> Result<Option<Vec<u8>>, MetadataError> {
        let response = self.request("GET", url, None, None, signed)?;
        if response.status == 204 {
            return Ok(None);
        }
        response
            .read_body(MAX_DOCUMENT)
            .map(Some)
            .map_err(|source| MetadataError::Http {
                method: "GET",
                url: url.to_owned(),
                source,
            })
    }

    /// `GET <ver>/<path>`, signed when the client has credentials; `None` on 204.
    pub fn get(&self, path: &str) -> Result<Option<Vec<u8>>, MetadataError> {
        self.get_document(&self.versioned(path), true)
    }

    /// `GET <ver>/meta-data/instance-id`: the node's system_id.
    pub fn instance_id(&self) -> Result<String, MetadataError> {
        let url = self.versioned("meta-data/instance-id");
        let body = self.get_document(&url, true)?.unwrap_or_default();
        let id = String::from_utf8_lossy(&body).trim().to_owned();
        if id.is_empty() || id.contains(char::is_whitespace) {
            return Err(MetadataError::BadAnswer {
                url,
                reason: format!("instance-id {id:?}"),
            });
        }
        Ok(id)
    }

    /// `GET <ver>/maas-scripts`: the tarball, or `None` when there is nothing to run (204).
    pub fn maas_scripts(&self) -> Result<Option<Vec<u8>>, MetadataError> {
        self.get("maas-scripts")
    }

    /// `POST <ver>/` with `op=signal` in the multipart body.
    pub fn signal(&self, signal: &Signal) -> Result<(), MetadataError> {
        let (content_type, body) = signal.to_multipart(Multipart::new());
        self.request(
            "POST",
            &self.versioned(""),
            Some(&content_type),
            Some(&body),
            true,
        )?;
        Ok(())
    }

    /// `POST /MAAS/metadata/status/<system_id>` (JSON, OAuth header).
    pub fn status_event(&self, system_id: &str, event: &StatusEvent) -> Result<(), MetadataError> {
        let url = format!("{}metadata/status/{system_id}", self.maas_root());
        let body = serde_json::to_vec(event).map_err(|error| MetadataError::BadAnswer {
            url: url.clone(),
            reason: error.to_string(),
        })?;
        self.request("POST", &url, Some("application/json"), Some(&body), true)?;
        Ok(())
    }

    /// `GET <ver>/by-id/<system_id>/?op=get_preseed` (anonymous): the node's preseed.
    pub fn node_preseed(&self, system_id: &str) -> Result<String, MetadataError> {
        let url = self.versioned(&format!("by-id/{system_id}/?op=get_preseed"));
        let body = self.get_document(&url, false)?.unwrap_or_default();
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// `POST <ver>/by-id/<system_id>/?op=netboot_off`, as curtin's late command does.
    pub fn netboot_off(&self, system_id: &str) -> Result<(), MetadataError> {
        let url = format!(
            "{}metadata/latest/by-id/{system_id}/?op=netboot_off",
            self.maas_root()
        );
        self.request(
            "POST",
            &url,
            Some("application/x-www-form-urlencoded"),
            Some(b"op=netboot_off"),
            true,
        )?;
        Ok(())
    }

    /// Anonymous `GET /MAAS/api/2.0/machines/?op=is_registered&mac_address=<mac>`.
    pub fn is_registered(&self, mac: &str) -> Result<bool, MetadataError> {
        let url = format!(
            "{}api/2.0/machines/?op=is_registered&mac_address={}",
            self.maas_root(),
            percent_encode(mac)
        );
        let body = self.get_document(&url, false)?.unwrap_or_default();
        match String::from_utf8_lossy(&body).trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(MetadataError::BadAnswer {
                url,
                reason: format!("expected true or false, got {other:?}"),
            }),
        }
    }

    /// Anonymous `POST /MAAS/api/2.0/machines/` (multipart, as maascli encodes it);
    /// returns the new machine's system_id.
    pub fn create_machine(&self, fields: &[(&str, String)]) -> Result<String, MetadataError> {
        let url = format!("{}api/2.0/machines/", self.maas_root());
        let mut form = Multipart::new();
        for (name, value) in fields {
            form.field(name, value);
        }
        let (content_type, body) = form.finish();
        let response = self.request("POST", &url, Some(&content_type), Some(&body), false)?;
        let body = response
            .read_body(MAX_DOCUMENT)
            .map_err(|source| MetadataError::Http {
                method: "POST",
                url: url.clone(),
                source,
            })?;
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|error| MetadataError::BadAnswer {
                url: url.clone(),
                reason: error.to_string(),
            })?;
        value
            .get("system_id")
            .and_then(|id| id.as_str())
            .map(str::to_owned)
            .ok_or(MetadataError::BadAnswer {
                url,
                reason: "no system_id in the answer".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_derive_from_the_metadata_url() {
        let client = MetadataClient::new("http://10.0.0.1:5248/MAAS/metadata/curtin", None);
        assert_eq!(
            client.versioned(""),
            "http://10.0.0.1:5248/MAAS/metadata/curtin/latest/"
        );
        assert_eq!(client.maas_root(), "http://10.0.0.1:5248/MAAS/");
        let client = MetadataClient::new("http://10.0.0.1:5248/MAAS/metadata/", None);
        assert_eq!(
            client.versioned("maas-scripts"),
            "http://10.0.0.1:5248/MAAS/metadata/latest/maas-scripts"
        );
    }

    #[test]
    fn signal_body_layout() {
        let mut signal = Signal::new(SignalStatus::Working);
        signal.script_result_id = Some(7);
        signal.name = Some("s".into());
        signal.exit_status = Some(0);
        signal.runtime = Some(1.234);
        signal.files.push(("s.out".into(), b"o".to_vec()));
        let (_, body) = signal.to_multipart(Multipart::with_boundary("B".into()));
        let text = String::from_utf8(body).unwrap();
        let names: Vec<&str> = text
            .split("form-data; name=\"")
            .skip(1)
            .map(|part| part.split('"').next().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "op",
                "status",
                "script_result_id",
                "name",
                "exit_status",
                "runtime",
                "s.out"
            ]
        );
        assert!(text.contains("\r\n\r\n1.23\r\n"));
    }
}
