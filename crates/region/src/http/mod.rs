//! The HTTP edge: one axum fallback that routes `/MAAS/…` paths, parses
//! parameters, authenticates, dispatches on `(method, op)` to the resource
//! table and maps errors to MAAS's responses.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maas_store::{TokenLookup, User};
use tracing::Instrument;

use crate::api::{ApiRequest, Handler, Resource};
use crate::error::ServiceError;
use crate::region::Region;

pub mod oauth;
pub mod params;
pub mod response;

use params::{Form, Params};

const API_PREFIX: &str = "/MAAS/api/2.0/";

/// The region's HTTP service.
pub fn router(region: Arc<Region>) -> Router {
    Router::new().fallback(entry).with_state(region)
}

async fn entry(State(region): State<Arc<Region>>, request: Request) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let span = tracing::debug_span!("http", %method, path = %path);
    let mutating = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let response = route(region.clone(), request)
        .instrument(span.clone())
        .await;
    // Any successful write may change what racks serve (networks, ranges, machines and
    // their addresses); the DHCP pushers rebuild and send only what differs.
    if mutating && response.status().is_success() {
        region.network_changed();
    }
    let _entered = span.enter();
    tracing::debug!(
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request done"
    );
    response
}

async fn route(region: Arc<Region>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    if let Some(rest) = path.strip_prefix(API_PREFIX) {
        if rest == "describe/" {
            return describe(&region, request.headers());
        }
        return api(region, request, rest.to_owned()).await;
    }
    if let Some(rest) = path.strip_prefix("/MAAS/metadata") {
        let rest = rest.to_owned();
        return crate::api::metadata::route(region, request, rest).await;
    }
    if path == "/MAAS/r" || path.starts_with("/MAAS/r/") {
        return crate::dashboard::route(region, request).await;
    }
    if let Some(rest) = path.strip_prefix("/MAAS/boot-resources/") {
        let rest = rest.to_owned();
        return crate::api::boot_resources::serve(region, request.method(), &rest).await;
    }
    if let Some(arch) = path.strip_prefix("/MAAS/machine-resources/") {
        return crate::api::metadata::machine_resources(&region, arch.trim_end_matches('/')).await;
    }
    match path.as_str() {
        "/MAAS/rpc/link" => return crate::link::upgrade(region, request).await,
        "/MAAS/rpc/" => {
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
                .to_owned();
            return crate::link::eventloops(&region, &host);
        }
        _ => {}
    }
    match path.as_str() {
        "/MAAS/api/version/" => response::text(StatusCode::OK, "2.0"),
        "/MAAS/accounts/authenticate/" => crate::api::account::authenticate(region, request).await,
        "/MAAS/accounts/login/" => crate::dashboard::session::login(region, request).await,
        "/MAAS/accounts/logout/" => crate::dashboard::session::logout(region, request).await,
        "/MAAS/account/csrf/" => crate::dashboard::session::csrf(region, request).await,
        "/MAAS/api/2.0" => redirect(&format!("{path}/"), request.uri().query()),
        _ if path.starts_with("/MAAS/api/1.0") => response::text(
            StatusCode::GONE,
            "The 1.0 API is no longer available. Please use API version 2.0.",
        ),
        _ => response::text(StatusCode::NOT_FOUND, format!("Unknown path: {path}")),
    }
}

/// `scheme://host[:port]` as the client reached us, from the Host header.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost:5240");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|s| *s == "https")
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

fn describe(region: &Region, headers: &HeaderMap) -> Response {
    let body =
        crate::api::describe::render(&region.resources, &base_url(headers), &region.api_hash);
    // Exactly `application/json`: maascli compares the whole header value.
    response::with_type(StatusCode::OK, "application/json", body)
}

fn redirect(location: &str, query: Option<&str>) -> Response {
    let target = match query {
        Some(q) => format!("{location}?{q}"),
        None => location.to_owned(),
    };
    let mut response = response::text(StatusCode::MOVED_PERMANENTLY, "");
    if let Ok(value) = HeaderValue::from_str(&target) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Splits a path relative to the API root into segments, joining a CIDR
/// written into a subnet URL (`subnets/10.0.0.0/24/`) into one segment.
fn segments(rest: &str) -> Vec<&str> {
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.len() >= 4
        && parts[0] == "subnets"
        && parts[2].chars().all(|c| c.is_ascii_digit())
        && !parts[2].is_empty()
        && parts[1].contains(['.', ':'])
    {
        // Both halves are slices of `rest`, so the joined segment is too.
        let start = parts[0].len() + 1;
        let end = start + parts[1].len() + 1 + parts[2].len();
        let mut joined = vec![parts[0], &rest[start..end]];
        joined.extend_from_slice(&parts[3..]);
        return joined;
    }
    parts
}

fn find_resource<'r>(
    resources: &'r [Resource],
    rest: &str,
) -> Option<(&'r Resource, Vec<(&'static str, String)>)> {
    let segments = segments(rest);
    resources
        .iter()
        .find_map(|r| r.matches(&segments).map(|values| (r, values)))
}

async fn api(region: Arc<Region>, request: Request, rest: String) -> Response {
    let mut rest = rest;
    let (parts, body) = request.into_parts();
    let method = parts.method.clone();
    let query_params = params::parse_query(parts.uri.query().unwrap_or(""));

    // The `op-<name>` path suffix (MAAS 3.3+) stands for `?op=<name>`.
    let mut path_op = None;
    if let Some((head, tail)) = rest.rsplit_once('/')
        && let Some(op) = tail.strip_prefix("op-")
    {
        path_op = Some(op.to_owned());
        rest = format!("{head}/");
    }

    let Some((resource, path_params)) = find_resource(&region.resources, &rest) else {
        let with_slash = format!("{rest}/");
        if !rest.ends_with('/') && find_resource(&region.resources, &with_slash).is_some() {
            return redirect(&format!("{API_PREFIX}{with_slash}"), parts.uri.query());
        }
        return with_api_headers(
            &region,
            response::text(
                StatusCode::NOT_FOUND,
                format!("Unknown API endpoint: {}.", parts.uri.path()),
            ),
        );
    };

    let content_length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let limit = region.config.max_body_bytes;
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return with_api_headers(
                &region,
                response::text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("Request body is larger than {limit} bytes."),
                ),
            );
        }
    };
    // MAAS ignores DELETE bodies; GET has none.
    let form = if method == Method::POST || method == Method::PUT {
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        match params::parse_body(content_type, &body) {
            Ok(form) => form,
            Err(error) => {
                return with_api_headers(
                    &region,
                    response::text(
                        StatusCode::BAD_REQUEST,
                        format!("Malformed request body: {error}"),
                    ),
                );
            }
        }
    } else {
        Form::default()
    };

    let op = query_params
        .get("op")
        .or_else(|| form.fields.get("op"))
        .map(str::to_owned)
        .or(path_op)
        .filter(|op| !op.is_empty());

    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let user = match authenticate_request(
        &region,
        &parts.headers,
        &method,
        authorization,
        &query_params,
        &form.fields,
    )
    .await
    {
        Ok(user) => user,
        Err(error) => return with_api_headers(&region, error.into_response()),
    };

    let mut all_params = query_params;
    all_params.extend(form.fields);
    let api_request = ApiRequest {
        method: method.clone(),
        op: op.clone(),
        path_params,
        params: all_params,
        files: form.files,
        body,
        content_length,
        user,
        base_url: base_url(&parts.headers),
        path: match parts.uri.query() {
            Some(q) => format!("{}?{q}", parts.uri.path()),
            None => parts.uri.path().to_owned(),
        },
    };
    let response = match dispatch(&region, resource, &method, op.as_deref(), api_request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    with_api_headers(&region, response)
}

fn with_api_headers(region: &Region, mut response: Response) -> Response {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&region.api_hash) {
        headers.insert("x-maas-api-hash", value);
    }
    headers.insert(header::VARY, HeaderValue::from_static("Authorization"));
    if !headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(response::TEXT),
        );
    }
    response
}

async fn dispatch(
    region: &Arc<Region>,
    resource: &Resource,
    method: &Method,
    op: Option<&str>,
    request: ApiRequest,
) -> Result<Response, ServiceError> {
    let handler: &Handler = match (&request.user, &resource.auth, &resource.anon) {
        (Some(_), Some(auth), _) => auth,
        (Some(_), None, Some(anon)) => anon,
        (None, _, Some(anon)) if anon.actions.iter().any(|a| a.method == *method) => anon,
        (None, Some(_), _) => {
            return Err(ServiceError::Unauthorized(
                "Authorization Error: authentication is required for this resource.".into(),
            ));
        }
        _ => {
            return Err(ServiceError::NotFound(format!(
                "Unknown API endpoint: {}.",
                request.path
            )));
        }
    };
    if resource.admin
        && let Some(user) = &request.user
        && !user.is_superuser
    {
        return Err(ServiceError::forbidden(
            "User is not allowed access to this API.",
        ));
    }
    let for_method: Vec<&crate::api::Action> = handler
        .actions
        .iter()
        .filter(|a| a.method == *method)
        .collect();
    if for_method.is_empty() {
        let mut allow: Vec<&'static str> = Vec::new();
        for action in &handler.actions {
            let name = method_name(&action.method);
            if !allow.contains(&name) {
                allow.push(name);
            }
        }
        return Err(ServiceError::MethodNotAllowed { allow });
    }
    let Some(action) = for_method.into_iter().find(|a| a.op == op) else {
        return Err(ServiceError::bad_request(format!(
            "Unrecognised signature: method={} op={}",
            method.as_str(),
            op.unwrap_or("None")
        )));
    };
    tracing::debug!(
        handler = handler.name,
        action = action.name,
        user = request.user.as_ref().map(|u| u.username.as_str()),
        "dispatch"
    );
    (action.run)(region.clone(), request).await
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "OPTIONS",
    }
}

/// Finds the user behind an API request (api.md §2.3): a logged-in session
/// first (CSRF checked for unsafe methods when a session cookie is sent,
/// §2.7), then OAuth.
pub async fn authenticate_request(
    region: &Region,
    headers: &HeaderMap,
    method: &Method,
    authorization: Option<&str>,
    query: &Params,
    form: &Params,
) -> Result<Option<Arc<User>>, ServiceError> {
    if let Some(user) = crate::dashboard::session::api_user(region, headers, method).await? {
        return Ok(Some(user));
    }
    authenticate(region, authorization, query, form).await
}

/// Finds the user behind a request's OAuth parameters. `Ok(None)` is an
/// anonymous request (no OAuth attempt); a failed attempt is a 401.
pub async fn authenticate(
    region: &Region,
    authorization: Option<&str>,
    query: &Params,
    form: &Params,
) -> Result<Option<Arc<User>>, ServiceError> {
    let mut combined = query.clone();
    combined.extend(form.clone());
    let Some(oauth) = oauth::gather(authorization, &combined) else {
        return Ok(None);
    };
    let refuse =
        |message: String| ServiceError::Unauthorized(format!("Authorization Error: {message}"));
    let now_secs = region.now() / 1000;
    oauth::check_request(&oauth, now_secs).map_err(|e| refuse(e.to_string()))?;
    let (token, user) = match region
        .store
        .lookup_token(&oauth.consumer_key, &oauth.token)
        .await?
    {
        TokenLookup::Found { token, user } => (token, user),
        TokenLookup::UnknownConsumer => return Err(refuse("Invalid API key.".into())),
        TokenLookup::UnknownToken => {
            return Err(refuse(format!("'Invalid access token: {}'", oauth.token)));
        }
    };
    oauth::check_signature(&oauth, token.token_secret.expose())
        .map_err(|e| refuse(e.to_string()))?;
    if !region.nonces.first_use(&oauth, now_secs) {
        return Err(refuse(
            oauth::OAuthError::NonceReused(oauth.nonce.clone()).to_string(),
        ));
    }
    if !user.is_active {
        return Err(ServiceError::forbidden(
            "User is not allowed access to this API.",
        ));
    }
    Ok(Some(Arc::new(*user)))
}

/// The body of a response, for handlers that stream.
pub fn body_from_stream<S>(stream: S) -> Body
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
{
    Body::from_stream(stream)
}
