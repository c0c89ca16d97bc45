//! Session login (api.md §1, §2.7): `/MAAS/accounts/login/`, `logout/`,
//! `/MAAS/account/csrf/`, the `sessionid` and `csrftoken` cookies, and the
//! CSRF rule the API and the dashboard share: with a session cookie, an
//! unsafe request must echo the `csrftoken` cookie in `X-CSRFToken` (or, for
//! a plain HTML form, in the `csrfmiddlewaretoken` field), and the cookie
//! must be the session's own token.
//!
//! The session key is 32 characters from MAAS's key alphabet (about 185
//! bits); only its SHA-256 is stored. Sessions last `session_length`
//! seconds (MAAS's setting, two weeks by default).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maas_store::{Session, User};
use sha2::{Digest, Sha256};

use crate::error::{ServiceError, ServiceResult};
use crate::http::params::{self, Params};
use crate::http::response::{self, json, no_content};
use crate::region::Region;
use crate::service::users;

pub const SESSION_COOKIE: &str = "sessionid";
pub const CSRF_COOKIE: &str = "csrftoken";
pub const CSRF_HEADER: &str = "x-csrftoken";
pub const CSRF_FIELD: &str = "csrfmiddlewaretoken";
/// Where the cookies apply: the region's whole URL space.
const COOKIE_PATH: &str = "/MAAS/";
/// Django's message, which clients may show as is.
pub const CSRF_FAILED: &str = "CSRF Failed: CSRF token missing or incorrect.";

/// A logged-in user and their session.
#[derive(Clone, Debug)]
pub struct LoggedIn {
    pub user: Arc<User>,
    pub session: Session,
}

/// Every `name=value` pair of every `Cookie` header.
pub fn cookies(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            Some((
                name.trim().to_owned(),
                value.trim().trim_matches('"').to_owned(),
            ))
        })
        .collect()
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    cookies(headers)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

pub fn has_session_cookie(headers: &HeaderMap) -> bool {
    cookie(headers, SESSION_COOKIE).is_some_and(|v| !v.is_empty())
}

/// The stored form of a session key.
pub fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The session the request's cookie names, if it is live and its user active.
pub async fn current(region: &Region, headers: &HeaderMap) -> ServiceResult<Option<LoggedIn>> {
    let Some(key) = cookie(headers, SESSION_COOKIE).filter(|k| !k.is_empty() && k.len() <= 128)
    else {
        return Ok(None);
    };
    let Some((session, user)) = region.store.session(&hash_key(&key), region.now()).await? else {
        return Ok(None);
    };
    if !user.is_active {
        return Ok(None);
    }
    Ok(Some(LoggedIn {
        user: Arc::new(user),
        session,
    }))
}

/// GET, HEAD, OPTIONS and TRACE change nothing and need no CSRF token.
pub fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Compares without an early exit, so timing doesn't tell how much matched.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The CSRF rule of §2.7: the `X-CSRFToken` header (or the form field)
/// equals the `csrftoken` cookie, and, for a live session, the cookie is
/// that session's token.
pub fn csrf_matches(headers: &HeaderMap, session: Option<&Session>, field: Option<&str>) -> bool {
    let Some(cookie) = cookie(headers, CSRF_COOKIE).filter(|c| !c.is_empty()) else {
        return false;
    };
    let sent = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| field.map(str::to_owned));
    let Some(sent) = sent else { return false };
    same(&sent, &cookie) && session.is_none_or(|s| same(&s.csrf_token, &cookie))
}

/// Session authentication for API requests (api.md §2.3 step 1): with a
/// session cookie, unsafe methods must pass the CSRF check; a live session
/// then names the user. `Ok(None)` means "no session: try OAuth".
pub async fn api_user(
    region: &Region,
    headers: &HeaderMap,
    method: &Method,
) -> ServiceResult<Option<Arc<User>>> {
    if !has_session_cookie(headers) {
        return Ok(None);
    }
    let logged_in = current(region, headers).await?;
    if !is_safe(method) && !csrf_matches(headers, logged_in.as_ref().map(|l| &l.session), None) {
        return Err(ServiceError::forbidden(CSRF_FAILED));
    }
    Ok(logged_in.map(|l| l.user))
}

fn secure(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "https")
}

fn cookie_header(name: &str, value: &str, max_age: i64, http_only: bool, secure: bool) -> String {
    let mut text = format!("{name}={value}; Path={COOKIE_PATH}; Max-Age={max_age}; SameSite=Lax");
    if http_only {
        text.push_str("; HttpOnly");
    }
    if secure {
        text.push_str("; Secure");
    }
    text
}

fn add_cookie(response: &mut Response, text: String) {
    if let Ok(value) = HeaderValue::from_str(&text) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// Whether the caller is a browser navigating (wants a page and redirects)
/// rather than an API client (wants JSON and status codes).
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// Where to go after logging in: a dashboard path, never another site.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with("/MAAS/r/")
                && !path.contains("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path.to_owned()
        }
        _ => "/MAAS/r/".to_owned(),
    }
}

pub fn see_other(location: &str) -> Response {
    let mut response = response::with_type(StatusCode::SEE_OTHER, response::TEXT, Body::empty());
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

async fn read_form(region: &Region, request: Request) -> Result<(HeaderMap, Params), Response> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, region.config.max_body_bytes)
        .await
        .map_err(|_| response::text(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large."))?;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let form = params::parse_body(content_type, &body).map_err(|e| {
        response::text(
            StatusCode::BAD_REQUEST,
            format!("Malformed request body: {e}"),
        )
    })?;
    let mut fields = params::parse_query(parts.uri.query().unwrap_or(""));
    fields.extend(form.fields);
    Ok((parts.headers, fields))
}

/// Starts a session for `user`: the stored session and its two cookies.
pub async fn start(
    region: &Region,
    user: &User,
    response: &mut Response,
    secure: bool,
) -> ServiceResult<Session> {
    let now = region.now();
    // Expired sessions are swept at each login, which bounds the table.
    region.store.delete_expired_sessions(now).await?;
    let seconds = crate::service::config::get(region.store.as_ref(), "session_length")
        .await?
        .as_i64()
        .unwrap_or(1_209_600)
        .max(60);
    let key = crate::credentials::random_key(32);
    let session = Session {
        key_hash: hash_key(&key),
        user_id: user.id,
        csrf_token: crate::credentials::random_key(32),
        created: now,
        expires: now + seconds * 1000,
    };
    region.store.create_session(session.clone()).await?;
    region.store.set_last_login(user.id, now).await?;
    add_cookie(
        response,
        cookie_header(SESSION_COOKIE, &key, seconds, true, secure),
    );
    add_cookie(
        response,
        cookie_header(CSRF_COOKIE, &session.csrf_token, seconds, false, secure),
    );
    tracing::info!(username = %user.username, "dashboard login");
    Ok(session)
}

fn clear_cookies(response: &mut Response, secure: bool) {
    add_cookie(response, cookie_header(SESSION_COOKIE, "", 0, true, secure));
    add_cookie(response, cookie_header(CSRF_COOKIE, "", 0, false, secure));
}

fn service_error(error: ServiceError) -> Response {
    error.into_response()
}

/// `/MAAS/accounts/login/`. GET: the state as JSON for API clients, the
/// login page for browsers. POST: checks the password and starts a
/// session (204 for API clients, a redirect for browsers); an existing
/// session is answered at once.
pub async fn login(region: Arc<Region>, request: Request) -> Response {
    let method = request.method().clone();
    let html = wants_html(request.headers());
    let query = params::parse_query(request.uri().query().unwrap_or(""));
    let logged_in = match current(&region, request.headers()).await {
        Ok(found) => found,
        Err(error) => return service_error(error),
    };
    match method {
        Method::GET | Method::HEAD => {
            let no_users = match region.store.user_count().await {
                Ok(count) => count == 0,
                Err(error) => return service_error(error.into()),
            };
            if html {
                if logged_in.is_some() {
                    return see_other(&safe_next(query.get("next")));
                }
                return super::pages::login_page(
                    StatusCode::OK,
                    query.get("next").unwrap_or(""),
                    "",
                    &Default::default(),
                    no_users,
                );
            }
            json(
                StatusCode::OK,
                &serde_json::json!({
                    "authenticated": logged_in.is_some(),
                    "external_auth_url": null,
                    "no_users": no_users,
                }),
            )
        }
        Method::POST => {
            let secure = secure(request.headers());
            let (_, form) = match read_form(&region, request).await {
                Ok(read) => read,
                Err(response) => return response,
            };
            let next = safe_next(form.get("next").or(query.get("next")));
            if logged_in.is_some() {
                return if html { see_other(&next) } else { no_content() };
            }
            let username = form.get("username").unwrap_or("").trim().to_owned();
            let password = form.get("password").unwrap_or("");
            let mut errors = std::collections::BTreeMap::<String, Vec<String>>::new();
            if username.is_empty() {
                errors.insert("username".into(), vec!["This field is required.".into()]);
            }
            if password.is_empty() {
                errors.insert("password".into(), vec!["This field is required.".into()]);
            }
            let user = if errors.is_empty() {
                match users::check_password(region.store.as_ref(), &username, password).await {
                    Ok(found) => found,
                    Err(error) => return service_error(error),
                }
            } else {
                None
            };
            let Some(user) = user else {
                if errors.is_empty() {
                    tracing::info!(username = %username, "dashboard login refused");
                    errors.insert(
                        "__all__".into(),
                        vec![
                            "Please enter a correct username and password. Note that both fields may be case-sensitive."
                                .into(),
                        ],
                    );
                }
                if html {
                    let no_users = region
                        .store
                        .user_count()
                        .await
                        .map(|c| c == 0)
                        .unwrap_or(false);
                    return super::pages::login_page(
                        StatusCode::BAD_REQUEST,
                        form.get("next").unwrap_or(""),
                        &username,
                        &errors,
                        no_users,
                    );
                }
                return json(StatusCode::BAD_REQUEST, &errors);
            };
            let mut response = if html { see_other(&next) } else { no_content() };
            if let Err(error) = start(&region, &user, &mut response, secure).await {
                return service_error(error);
            }
            response
        }
        _ => method_not_allowed("GET, POST"),
    }
}

fn method_not_allowed(allow: &'static str) -> Response {
    let mut response = response::with_type(
        StatusCode::METHOD_NOT_ALLOWED,
        response::TEXT,
        Body::empty(),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// `POST /MAAS/accounts/logout/`: ends the session (CSRF checked when
/// there is one) and clears the cookies.
pub async fn logout(region: Arc<Region>, request: Request) -> Response {
    if request.method() != Method::POST {
        return method_not_allowed("POST");
    }
    let html = wants_html(request.headers());
    let secure = secure(request.headers());
    let (headers, form) = match read_form(&region, request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    if has_session_cookie(&headers) {
        let logged_in = match current(&region, &headers).await {
            Ok(found) => found,
            Err(error) => return service_error(error),
        };
        if !csrf_matches(
            &headers,
            logged_in.as_ref().map(|l| &l.session),
            form.get(CSRF_FIELD),
        ) {
            return response::text(StatusCode::FORBIDDEN, CSRF_FAILED);
        }
        if let Some(logged_in) = logged_in {
            if let Err(error) = region
                .store
                .delete_session(&logged_in.session.key_hash)
                .await
            {
                return service_error(error.into());
            }
            tracing::info!(username = %logged_in.user.username, "dashboard logout");
        }
    }
    let mut response = if html {
        see_other("/MAAS/accounts/login/")
    } else {
        no_content()
    };
    clear_cookies(&mut response, secure);
    response
}

/// `POST /MAAS/account/csrf/`: the session's CSRF token; 403 without a session.
pub async fn csrf(region: Arc<Region>, request: Request) -> Response {
    if request.method() != Method::POST {
        return method_not_allowed("POST");
    }
    match current(&region, request.headers()).await {
        Ok(Some(logged_in)) => json(
            StatusCode::OK,
            &serde_json::json!({"csrf": logged_in.session.csrf_token}),
        ),
        Ok(None) => response::text(StatusCode::FORBIDDEN, "You are not logged in."),
        Err(error) => service_error(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_parse() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; sessionid=abc ; csrftoken=\"xyz\""),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&headers, "sessionid").as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "csrftoken").as_deref(), Some("xyz"));
        assert_eq!(cookie(&headers, "b").as_deref(), Some("2"));
        assert!(cookie(&headers, "c").is_none());
    }

    #[test]
    fn next_stays_on_the_dashboard() {
        assert_eq!(
            safe_next(Some("/MAAS/r/machines?q=x")),
            "/MAAS/r/machines?q=x"
        );
        for bad in [
            "https://evil/",
            "//evil/MAAS/r/",
            "/MAAS/r//evil",
            "/other",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/MAAS/r/", "{bad}");
        }
        assert_eq!(safe_next(None), "/MAAS/r/");
    }

    #[test]
    fn csrf_needs_cookie_and_matching_token() {
        let session = Session {
            key_hash: "h".into(),
            user_id: 1,
            csrf_token: "tok".into(),
            created: 0,
            expires: 1,
        };
        let mut headers = HeaderMap::new();
        assert!(!csrf_matches(&headers, Some(&session), Some("tok")));
        headers.insert(header::COOKIE, HeaderValue::from_static("csrftoken=tok"));
        assert!(!csrf_matches(&headers, Some(&session), None));
        assert!(csrf_matches(&headers, Some(&session), Some("tok")));
        assert!(!csrf_matches(&headers, Some(&session), Some("other")));
        headers.insert(CSRF_HEADER, HeaderValue::from_static("tok"));
        assert!(csrf_matches(&headers, Some(&session), None));
        // A cookie that isn't the session's own token fails, however echoed.
        headers.insert(header::COOKIE, HeaderValue::from_static("csrftoken=forged"));
        headers.insert(CSRF_HEADER, HeaderValue::from_static("forged"));
        assert!(!csrf_matches(&headers, Some(&session), None));
        assert!(csrf_matches(&headers, None, None));
    }
}
