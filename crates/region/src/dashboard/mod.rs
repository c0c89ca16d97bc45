//! The web dashboard under `/MAAS/r/`: server-rendered pages (maud
//! templates, checked at compile time), HTML forms that post to the same
//! services the REST handlers call, and a small script for live updates
//! (server-sent events from [`crate::changes`]) and conveniences. Every page
//! reads without JavaScript.
//!
//! Handlers here turn a request into service calls and the result into
//! HTML; they hold no business rules. Permission checks are the services'
//! (a non-admin is refused exactly what the API refuses), and a form's field
//! errors are the `ServiceError::Validation` the service returned.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use maas_store::{Session, User};
use maud::Markup;

use crate::error::ServiceError;
use crate::http::params::{self, Params};
use crate::region::Region;

pub mod layout;
pub mod machines;
pub mod pages;
pub mod session;
pub mod stream;

const PREFIX: &str = "/MAAS/r/";

/// Forms remembered as submitted; beyond this the oldest are forgotten.
const SUBMITTED_CAPACITY: usize = 20_000;

/// The dashboard's in-memory state: the one-time tokens of forms already
/// submitted, so a double click (or a resent POST) acts once.
#[derive(Default)]
pub struct State {
    submitted: Mutex<Submitted>,
}

#[derive(Default)]
struct Submitted {
    seen: HashSet<String>,
    order: VecDeque<String>,
}

impl State {
    /// True the first time `token` is offered.
    pub fn first_submission(&self, token: &str) -> bool {
        // A poisoned lock only means another request panicked mid-insert;
        // the set itself is still usable.
        let mut submitted = self
            .submitted
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if submitted.seen.contains(token) {
            return false;
        }
        if submitted.order.len() >= SUBMITTED_CAPACITY
            && let Some(oldest) = submitted.order.pop_front()
        {
            submitted.seen.remove(&oldest);
        }
        submitted.seen.insert(token.to_owned());
        submitted.order.push_back(token.to_owned());
        true
    }
}

/// A message shown once on the next page (set by a redirect after a POST).
#[derive(Clone, Debug, PartialEq)]
pub struct Flash {
    pub error: bool,
    pub message: String,
}

const FLASH_COOKIE: &str = "maas_flash";

impl Flash {
    pub fn ok(message: impl Into<String>) -> Flash {
        Flash {
            error: false,
            message: message.into(),
        }
    }

    pub fn error(message: impl Into<String>) -> Flash {
        Flash {
            error: true,
            message: message.into(),
        }
    }

    fn from_headers(headers: &HeaderMap) -> Option<Flash> {
        let value = session::cookie(headers, FLASH_COOKIE)?;
        let (kind, text) = value.split_once('.')?;
        let message = percent_encoding::percent_decode_str(text)
            .decode_utf8_lossy()
            .chars()
            .take(2000)
            .collect::<String>();
        (!message.is_empty()).then(|| Flash {
            error: kind == "e",
            message,
        })
    }

    fn cookie(&self) -> String {
        let text = percent_encoding::utf8_percent_encode(
            &self.message.chars().take(1500).collect::<String>(),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string();
        format!(
            "{FLASH_COOKIE}={}.{text}; Path={PREFIX}; Max-Age=120; SameSite=Lax; HttpOnly",
            if self.error { "e" } else { "o" }
        )
    }
}

/// One dashboard request, as handlers see it.
pub struct Ctx {
    pub region: Arc<Region>,
    pub user: Arc<User>,
    pub session: Session,
    pub method: Method,
    /// The request path and query, for redirects back here.
    pub path: String,
    pub query: Params,
    pub form: Params,
    pub flash: Option<Flash>,
}

impl Ctx {
    pub fn store(&self) -> &dyn maas_store::Store {
        self.region.store.as_ref()
    }

    pub fn admin(&self) -> bool {
        self.user.is_superuser
    }
}

pub type PageResult = Result<Response, ServiceError>;

/// An HTML response that no cache keeps (pages show live state).
pub fn html(status: StatusCode, markup: Markup) -> Response {
    let mut response = Response::new(Body::from(markup.into_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    response
}

/// A 303 to `location` that shows `flash` on arrival.
pub fn redirect(location: &str, flash: Option<Flash>) -> Response {
    let mut response = session::see_other(location);
    if let Some(flash) = flash
        && let Ok(value) = HeaderValue::from_str(&flash.cookie())
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

fn clear_flash(response: &mut Response) {
    let text = format!("{FLASH_COOKIE}=; Path={PREFIX}; Max-Age=0; SameSite=Lax; HttpOnly");
    if let Ok(value) = HeaderValue::from_str(&text) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

fn decode_segment(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// Where a refused duplicate form goes back to: the page it came from.
fn referer_path(headers: &HeaderMap) -> String {
    headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|url| url.find(PREFIX).map(|at| url[at..].to_owned()))
        .map(|path| session::safe_next(Some(&path)))
        .unwrap_or_else(|| PREFIX.to_owned())
}

/// Serves everything under `/MAAS/r/`.
pub async fn route(region: Arc<Region>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let rest = path.strip_prefix("/MAAS/r").unwrap_or("");
    if rest.is_empty() {
        return session::see_other(PREFIX);
    }
    let segments: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode_segment)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    if let ["static", name] = segments.as_slice() {
        return layout::asset(name);
    }
    let full_path = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };
    let logged_in = match session::current(&region, &parts.headers).await {
        Ok(found) => found,
        Err(error) => return pages::error_page(None, &error),
    };
    let Some(logged_in) = logged_in else {
        let navigating = parts.method == Method::GET
            && !matches!(
                segments.as_slice(),
                ["stream"] | [_, "rows"] | [_, _, "header"]
            );
        if navigating {
            let next: String = percent_encoding::utf8_percent_encode(
                &full_path,
                percent_encoding::NON_ALPHANUMERIC,
            )
            .to_string();
            return session::see_other(&format!("/MAAS/accounts/login/?next={next}"));
        }
        return crate::http::response::text(StatusCode::UNAUTHORIZED, "Log in first.");
    };
    let query = params::parse_query(parts.uri.query().unwrap_or(""));
    let form = if parts.method == Method::POST {
        let bytes = match axum::body::to_bytes(body, region.config.max_body_bytes).await {
            Ok(bytes) => bytes,
            Err(_) => {
                return crate::http::response::text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Request body too large.",
                );
            }
        };
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        match params::parse_body(content_type, &bytes) {
            Ok(form) => form.fields,
            Err(error) => {
                return crate::http::response::text(
                    StatusCode::BAD_REQUEST,
                    format!("Malformed request body: {error}"),
                );
            }
        }
    } else {
        Params::new()
    };
    if !session::is_safe(&parts.method) {
        if !session::csrf_matches(
            &parts.headers,
            Some(&logged_in.session),
            form.get(session::CSRF_FIELD),
        ) {
            return pages::error_page(
                Some(&logged_in.user),
                &ServiceError::forbidden(session::CSRF_FAILED),
            );
        }
        if let Some(token) = form.get(layout::ONCE_FIELD)
            && (token.len() > 64 || !region.dashboard.first_submission(token))
        {
            return redirect(
                &referer_path(&parts.headers),
                Some(Flash::error(
                    "That form was already submitted; it was not sent again.",
                )),
            );
        }
    }
    let flash = Flash::from_headers(&parts.headers);
    let ctx = Ctx {
        region,
        user: logged_in.user,
        session: logged_in.session,
        method: parts.method.clone(),
        path: full_path,
        query,
        form,
        flash,
    };
    let result = dispatch(&ctx, &segments).await;
    let mut response = match result {
        Ok(response) => response,
        Err(error) => {
            if !matches!(error, ServiceError::Validation(_)) {
                tracing::debug!(path = %ctx.path, error = %error, "dashboard request refused");
            }
            pages::error_page(Some(&ctx.user), &error)
        }
    };
    let sets_flash = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.starts_with(FLASH_COOKIE)));
    if ctx.flash.is_some() && !sets_flash {
        clear_flash(&mut response);
    }
    response
}

async fn dispatch(ctx: &Ctx, segments: &[&str]) -> PageResult {
    let get = ctx.method == Method::GET || ctx.method == Method::HEAD;
    let post = ctx.method == Method::POST;
    match segments {
        [] if get => pages::home(ctx).await,
        ["stream"] if get => Ok(stream::events(ctx)),
        ["machines"] if get => machines::list(ctx).await,
        ["machines", "rows"] if get => machines::rows(ctx).await,
        ["machines", "action"] if post => machines::bulk_action(ctx).await,
        ["machines", "add"] if get || post => machines::add(ctx).await,
        ["machine", id] if get => machines::details(ctx, id, None).await,
        ["machine", id, "header"] if get => machines::header_fragment(ctx, id).await,
        ["machine", id, "action"] if post => machines::action(ctx, id).await,
        ["machine", id, "config"] if post => machines::configure(ctx, id).await,
        ["machine", id, "result", set, result] if get => {
            machines::result_output(ctx, id, set, result).await
        }
        ["controllers"] if get => pages::controllers(ctx).await,
        ["images"] if get => pages::images(ctx).await,
        ["networks"] if get => pages::networks(ctx, None).await,
        ["networks", "vlan", id] if post => pages::update_vlan(ctx, id).await,
        ["networks", "subnets"] if post => pages::create_subnet(ctx).await,
        ["networks", "ipranges"] if post => pages::create_ip_range(ctx).await,
        ["zones"] if get || post => pages::zones(ctx).await,
        ["zones", name, "delete"] if post => pages::delete_zone(ctx, name).await,
        ["pools"] if get || post => pages::pools(ctx).await,
        ["pools", id, "delete"] if post => pages::delete_pool(ctx, id).await,
        ["tags"] if get || post => pages::tags(ctx).await,
        ["tags", name, "delete"] if post => pages::delete_tag(ctx, name).await,
        ["users"] if get || post => pages::users(ctx).await,
        ["users", name, "delete"] if post => pages::delete_user(ctx, name).await,
        ["settings"] if get || post => pages::settings(ctx).await,
        _ => Err(ServiceError::NotFound(format!(
            "No dashboard page at {}.",
            ctx.path
        ))),
    }
}
