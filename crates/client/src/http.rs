//! A small blocking HTTP client that encodes and signs requests the way maascli does.
//!
//! [`prepare`] builds the exact request maascli would send (op in the query string, GET and
//! DELETE parameters in the query, POST and PUT parameters in a multipart body, no body at all
//! when there are none); [`Client`] signs and sends it.

use std::fmt;
use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use crate::encode::{self, Value};
use crate::oauth::{self, Credentials};
use crate::url::{self, SplitUrl, UrlError};

/// Why a request could not be made or its answer read.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("unsupported HTTP method {method:?}")]
    UnsupportedMethod { method: String },
    #[error("cannot build a request for {url}")]
    BadRequest {
        url: String,
        #[source]
        source: ureq::http::Error,
    },
    #[error("request to {url} failed")]
    Transport {
        url: String,
        #[source]
        source: ureq::Error,
    },
    #[error("cannot read the response from {url}")]
    ReadBody {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid CA certificate data")]
    InvalidCaCertificates,
    #[error("https URLs need the `tls` feature of maas-client")]
    TlsUnavailable,
}

/// The HTTP methods MAAS actions use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    /// Parses a describe document's `method` (`GET`, `POST`, `PUT`, `DELETE`).
    pub fn parse(method: &str) -> Result<Self, ClientError> {
        match method.to_ascii_uppercase().as_str() {
            "GET" => Ok(Method::Get),
            "POST" => Ok(Method::Post),
            "PUT" => Ok(Method::Put),
            "DELETE" => Ok(Method::Delete),
            _ => Err(ClientError::UnsupportedMethod {
                method: method.to_owned(),
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operation name and parameters, in the order they are to be sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pub op: Option<String>,
    pub fields: Vec<(String, Value)>,
}

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `op=` (always sent in the query string).
    pub fn op(mut self, op: impl Into<String>) -> Self {
        self.op = Some(op.into());
        self
    }

    /// Adds a text field; call again with the same name for a list.
    pub fn text(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.push((name.into(), Value::Text(value.into())));
        self
    }

    /// Adds a file field (a part with `filename="<name>"` in a multipart body).
    pub fn file(mut self, name: impl Into<String>, contents: impl Into<Vec<u8>>) -> Self {
        self.fields.push((
            name.into(),
            Value::File {
                contents: contents.into(),
                local_name: None,
            },
        ));
        self
    }
}

/// A request ready to be signed and sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// Absolute URL, query included.
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// `None` means no body at all (for POST and PUT, `Content-Length: 0`).
    pub body: Option<Vec<u8>>,
}

/// Builds the request maascli's `prepare_payload` would send to `url` (whose own query,
/// if any, is replaced).
pub fn prepare(method: Method, url: &str, params: &Params) -> Request {
    let mut query: Vec<(&str, &[u8])> = Vec::new();
    if let Some(op) = params.op.as_deref().filter(|op| !op.is_empty()) {
        query.push(("op", op.as_bytes()));
    }
    let mut headers = Vec::new();
    let mut body = None;
    match method {
        Method::Get | Method::Delete => {
            query.extend(
                params
                    .fields
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_bytes())),
            );
        }
        Method::Post | Method::Put => {
            if !params.fields.is_empty() {
                let encoded = encode::multipart(&params.fields);
                headers.push(("Content-Type".to_owned(), encoded.content_type));
                headers.push(("MIME-Version".to_owned(), "1.0".to_owned()));
                body = Some(encoded.body);
            }
        }
    }
    let base = url.split(['?', '#']).next().unwrap_or(url);
    let query = encode::urlencode(query);
    let url = if query.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{query}")
    };
    Request {
        method,
        url,
        headers,
        body,
    }
}

/// An HTTP response: status, headers (names lower-cased) and the whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header with this name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The body as text, with invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// TLS settings for https URLs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Skip certificate verification (`-k`/`--insecure`).
    pub insecure: bool,
    /// Trust these PEM CA certificates instead of the built-in roots (`--cacerts`).
    pub ca_certificates_pem: Option<String>,
}

/// Produces `(nonce, timestamp)` for each signature.
pub type NonceSource = Arc<dyn Fn() -> (String, u64) + Send + Sync>;

/// A MAAS API client bound to one region URL and, optionally, one API key.
#[derive(Clone)]
pub struct Client {
    api_url: String,
    credentials: Option<Credentials>,
    agent: ureq::Agent,
    nonce_source: NonceSource,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("api_url", &self.api_url)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `base_url` (normalised as `maas login` does, so `http://h:5240/MAAS/` works).
    pub fn new(base_url: &str, credentials: Option<Credentials>) -> Result<Self, ClientError> {
        Self::with_tls(base_url, credentials, &TlsOptions::default())
    }

    pub fn with_tls(
        base_url: &str,
        credentials: Option<Credentials>,
        tls: &TlsOptions,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            api_url: url::api_url(base_url)?,
            credentials,
            agent: build_agent(tls)?,
            nonce_source: Arc::new(|| {
                let timestamp = oauth::unix_time_now();
                (oauth::nonce_for(timestamp), timestamp)
            }),
        })
    }

    /// Replaces the nonce and clock used for signatures (for tests).
    pub fn with_nonce_source(mut self, nonce_source: NonceSource) -> Self {
        self.nonce_source = nonce_source;
        self
    }

    /// The normalised API root, e.g. `http://h:5240/MAAS/api/2.0/`.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// Resolves `path` against the API root: `machines/` is under it, `/MAAS/...` is on
    /// the same host, and an absolute URL stays as it is.
    pub fn url_for(&self, path: &str) -> Result<String, ClientError> {
        Ok(url::join(&self.api_url, path)?)
    }

    pub fn get(&self, path: &str, params: &Params) -> Result<Response, ClientError> {
        self.call(Method::Get, path, params)
    }

    pub fn post(&self, path: &str, params: &Params) -> Result<Response, ClientError> {
        self.call(Method::Post, path, params)
    }

    pub fn put(&self, path: &str, params: &Params) -> Result<Response, ClientError> {
        self.call(Method::Put, path, params)
    }

    pub fn delete(&self, path: &str, params: &Params) -> Result<Response, ClientError> {
        self.call(Method::Delete, path, params)
    }

    /// POSTs an `application/x-www-form-urlencoded` body, as python-libmaas does for
    /// `/MAAS/accounts/authenticate/`; signed only when the client has credentials.
    pub fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Result<Response, ClientError> {
        let body = encode::urlencode(fields.iter().map(|(name, value)| (*name, value.as_bytes())));
        self.execute(Request {
            method: Method::Post,
            url: self.url_for(path)?,
            headers: vec![(
                "Content-Type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            )],
            body: Some(body.into_bytes()),
        })
    }

    /// Encodes `params` as maascli does for `method` and sends the request, signed when the
    /// client has credentials. A query already in `path` is kept, before `params`.
    pub fn call(
        &self,
        method: Method,
        path: &str,
        params: &Params,
    ) -> Result<Response, ClientError> {
        let url = self.url_for(path)?;
        let mut request = prepare(method, &url, params);
        if let Some((_, existing)) = url.split_once('?') {
            let added = request.url.split_once('?').map(|(_, query)| query);
            let base = url.split('?').next().unwrap_or(&url);
            request.url = match added {
                Some(added) => format!("{base}?{existing}&{added}"),
                None => url.clone(),
            };
        }
        self.execute(request)
    }

    /// Sends a prepared request, adding the OAuth header when the client has credentials.
    pub fn execute(&self, mut request: Request) -> Result<Response, ClientError> {
        if let Some(credentials) = &self.credentials {
            let (nonce, timestamp) = (self.nonce_source)();
            request.headers.push((
                "Authorization".to_owned(),
                credentials.authorization_header(&nonce, timestamp),
            ));
        }
        self.send(request)
    }

    /// Sends a request exactly as given, unsigned.
    pub fn send(&self, request: Request) -> Result<Response, ClientError> {
        let split = SplitUrl::parse(&request.url)?;
        if split.scheme.eq_ignore_ascii_case("https") && !cfg!(feature = "tls") {
            return Err(ClientError::TlsUnavailable);
        }
        let url = format!(
            "{}{}{}",
            split.origin(),
            url::escape_path(if split.path.is_empty() {
                "/"
            } else {
                split.path
            }),
            if split.query.is_empty() {
                String::new()
            } else {
                format!("?{}", split.query)
            }
        );
        let mut builder = ureq::http::Request::builder()
            .method(request.method.as_str())
            .uri(&url);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let bad_request = |source| ClientError::BadRequest {
            url: request.url.clone(),
            source,
        };
        let result = match (request.method, request.body) {
            (_, Some(body)) => self.agent.run(builder.body(body).map_err(bad_request)?),
            // Python's http.client sends `Content-Length: 0` for a POST or PUT without a body.
            (Method::Post | Method::Put, None) => self
                .agent
                .run(builder.body(Vec::new()).map_err(bad_request)?),
            (Method::Get | Method::Delete, None) => {
                self.agent.run(builder.body(()).map_err(bad_request)?)
            }
        };
        let response = result.map_err(|source| ClientError::Transport {
            url: request.url.clone(),
            source,
        })?;
        let status = response.status();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        response
            .into_body()
            .into_reader()
            .read_to_end(&mut body)
            .map_err(|source| ClientError::ReadBody {
                url: request.url.clone(),
                source,
            })?;
        Ok(Response {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("").to_owned(),
            headers,
            body,
        })
    }
}

fn build_agent(tls: &TlsOptions) -> Result<ureq::Agent, ClientError> {
    let builder = ureq::Agent::config_builder()
        .http_status_as_error(false)
        // MAAS never redirects the URLs the CLI builds; a redirect is shown, not followed.
        .max_redirects(0)
        .user_agent(concat!("maas-client/", env!("CARGO_PKG_VERSION")))
        .accept(ureq::config::AutoHeaderValue::None)
        .accept_encoding(ureq::config::AutoHeaderValue::None)
        .timeout_connect(Some(Duration::from_secs(30)));
    let builder = configure_tls(builder, tls)?;
    Ok(builder.build().new_agent())
}

#[cfg(feature = "tls")]
fn configure_tls(
    builder: ureq::config::ConfigBuilder<ureq::typestate::AgentScope>,
    tls: &TlsOptions,
) -> Result<ureq::config::ConfigBuilder<ureq::typestate::AgentScope>, ClientError> {
    use ureq::tls::{PemItem, RootCerts, TlsConfig};
    let mut config = TlsConfig::builder().disable_verification(tls.insecure);
    if let Some(pem) = &tls.ca_certificates_pem {
        let certificates = parse_ca_certificates(pem)?;
        config = config.root_certs(RootCerts::Specific(Arc::new(certificates)));
    }
    fn parse_ca_certificates(
        pem: &str,
    ) -> Result<Vec<ureq::tls::Certificate<'static>>, ClientError> {
        let mut certificates = Vec::new();
        for item in ureq::tls::parse_pem(pem.as_bytes()) {
            match item {
                Ok(PemItem::Certificate(certificate)) => certificates.push(certificate),
                Ok(_) => {}
                Err(_) => return Err(ClientError::InvalidCaCertificates),
            }
        }
        if certificates.is_empty() {
            return Err(ClientError::InvalidCaCertificates);
        }
        Ok(certificates)
    }
    Ok(builder.tls_config(config.build()))
}

#[cfg(not(feature = "tls"))]
fn configure_tls(
    builder: ureq::config::ConfigBuilder<ureq::typestate::AgentScope>,
    _tls: &TlsOptions,
) -> Result<ureq::config::ConfigBuilder<ureq::typestate::AgentScope>, ClientError> {
    Ok(builder)
}

/// Checks that `pem` holds at least one certificate (always true without TLS support,
/// where the data is only stored).
pub fn validate_ca_certificates(pem: &str) -> Result<(), ClientError> {
    configure_tls(
        ureq::Agent::config_builder(),
        &TlsOptions {
            insecure: false,
            ca_certificates_pem: Some(pem.to_owned()),
        },
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_and_delete_put_everything_in_the_query_op_first() {
        let params = Params::new()
            .text("hostname", "a")
            .op("query")
            .text("hostname", "b c")
            .file("data", b"x&y".to_vec());
        for method in [Method::Get, Method::Delete] {
            let request = prepare(method, "http://h/MAAS/api/2.0/events/", &params);
            assert_eq!(
                request.url,
                "http://h/MAAS/api/2.0/events/?op=query&hostname=a&hostname=b+c&data=x%26y"
            );
            assert_eq!(request.body, None);
            assert!(request.headers.is_empty());
        }
    }

    #[test]
    fn post_without_fields_has_no_body_and_no_content_type() {
        let request = prepare(
            Method::Post,
            "http://h/MAAS/api/2.0/machines/abc/",
            &Params::new().op("commission"),
        );
        assert_eq!(
            request.url,
            "http://h/MAAS/api/2.0/machines/abc/?op=commission"
        );
        assert_eq!(request.body, None);
        assert!(request.headers.is_empty());
    }

    #[test]
    fn post_with_fields_is_multipart_with_op_in_query() {
        let request = prepare(
            Method::Post,
            "http://h/MAAS/api/2.0/machines/?stale=1",
            &Params::new().op("allocate").text("system_id", "abc"),
        );
        assert_eq!(request.url, "http://h/MAAS/api/2.0/machines/?op=allocate");
        let content_type = &request.headers[0];
        assert_eq!(content_type.0, "Content-Type");
        assert!(
            content_type
                .1
                .starts_with("multipart/form-data; boundary=\"===============")
        );
        assert_eq!(
            request.headers[1],
            ("MIME-Version".to_owned(), "1.0".to_owned())
        );
        let body = String::from_utf8(request.body.unwrap()).unwrap();
        assert!(body.contains("name=\"system_id\""), "{body}");
        assert!(body.contains("YWJj"), "{body}");
    }

    #[test]
    fn put_without_op_or_fields_has_no_query() {
        let request = prepare(
            Method::Put,
            "http://h/MAAS/api/2.0/machines/abc/",
            &Params::new(),
        );
        assert_eq!(request.url, "http://h/MAAS/api/2.0/machines/abc/");
        assert_eq!(request.body, None);
    }

    #[test]
    fn method_names_parse_case_insensitively() {
        assert_eq!(Method::parse("get").unwrap(), Method::Get);
        assert_eq!(Method::parse("DELETE").unwrap(), Method::Delete);
        assert!(matches!(
            Method::parse("PATCH"),
            Err(ClientError::UnsupportedMethod { .. })
        ));
    }

    #[test]
    fn client_resolves_paths_against_the_api_root() {
        let client = Client::new("http://h:5240/MAAS", None).unwrap();
        assert_eq!(client.api_url(), "http://h:5240/MAAS/api/2.0/");
        assert_eq!(
            client.url_for("machines/").unwrap(),
            "http://h:5240/MAAS/api/2.0/machines/"
        );
        assert_eq!(
            client.url_for("/MAAS/accounts/authenticate/").unwrap(),
            "http://h:5240/MAAS/accounts/authenticate/"
        );
    }
}
