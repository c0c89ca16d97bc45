//! The page shell (navigation, user menu, flash message), form helpers
//! (CSRF and one-time tokens, field errors), number formatting and the
//! embedded static assets.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use maas_domain::{NodeStatus, SimpleStatus};
use maas_store::User;
use maud::{DOCTYPE, Markup, html};

use super::{Ctx, Flash};

/// The hidden field holding a form's one-time token.
pub const ONCE_FIELD: &str = "once";

const SCRIPT: &str = include_str!("static/dashboard.js");
const STYLE: &str = include_str!("static/dashboard.css");

/// Serves `/MAAS/r/static/<name>`: the script and the style sheet.
pub fn asset(name: &str) -> Response {
    let (content_type, body) = match name {
        "dashboard.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "dashboard.css" => ("text/css; charset=utf-8", STYLE),
        _ => {
            return crate::http::response::text(StatusCode::NOT_FOUND, "No such asset.");
        }
    };
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// The sections of the navigation bar.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Dashboard,
    Machines,
    Controllers,
    Images,
    Networks,
    Zones,
    Pools,
    Tags,
    Users,
    Settings,
    None,
}

const NAV: [(Nav, &str, &str); 10] = [
    (Nav::Dashboard, "Dashboard", "/MAAS/r/"),
    (Nav::Machines, "Machines", "/MAAS/r/machines"),
    (Nav::Controllers, "Controllers", "/MAAS/r/controllers"),
    (Nav::Images, "Images", "/MAAS/r/images"),
    (Nav::Networks, "Networking", "/MAAS/r/networks"),
    (Nav::Zones, "Zones", "/MAAS/r/zones"),
    (Nav::Pools, "Pools", "/MAAS/r/pools"),
    (Nav::Tags, "Tags", "/MAAS/r/tags"),
    (Nav::Users, "Users", "/MAAS/r/users"),
    (Nav::Settings, "Settings", "/MAAS/r/settings"),
];

/// The whole page: head, navigation, flash message and `body`.
pub fn page(ctx: &Ctx, title: &str, active: Nav, body: Markup) -> Markup {
    shell(
        Some((&ctx.user, ctx.session.csrf_token.as_str())),
        ctx.flash.as_ref(),
        title,
        active,
        body,
    )
}

/// The page shell; without a user (the login and error pages) there is no
/// navigation.
pub fn shell(
    user: Option<(&User, &str)>,
    flash: Option<&Flash>,
    title: &str,
    active: Nav,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some((_, csrf)) = user {
                    meta name="csrf-token" content=(csrf);
                }
                title { (title) " | MAAS" }
                link rel="stylesheet" href="/MAAS/r/static/dashboard.css";
                script src="/MAAS/r/static/dashboard.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/MAAS/r/" { "MAAS" }
                    @if let Some((user, csrf)) = user {
                        nav.main {
                            @for (nav, label, href) in NAV {
                                a.active[nav == active] href=(href) { (label) }
                            }
                        }
                        div.user {
                            span.username { (user.username) @if user.is_superuser { " (admin)" } }
                            form.inline method="post" action="/MAAS/accounts/logout/" {
                                input type="hidden" name="csrfmiddlewaretoken" value=(csrf);
                                button.link type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main {
                    @if let Some(flash) = flash {
                        p.flash.error[flash.error].ok[!flash.error] role="status" { (flash.message) }
                    }
                    (body)
                }
            }
        }
    }
}

/// The hidden fields every dashboard form carries: the CSRF token and a
/// one-time token.
pub fn form_tokens(ctx: &Ctx) -> Markup {
    html! {
        input type="hidden" name="csrfmiddlewaretoken" value=(ctx.session.csrf_token);
        input type="hidden" name=(ONCE_FIELD) value=(crate::credentials::random_key(24));
    }
}

/// Field name → messages, as `ServiceError::Validation` carries them.
pub type Errors = BTreeMap<String, Vec<String>>;

/// The messages for one field, under it.
pub fn field_errors(errors: &Errors, name: &str) -> Markup {
    html! {
        @if let Some(messages) = errors.get(name) {
            @for message in messages {
                p.field-error data-field=(name) { (message) }
            }
        }
    }
}

/// The messages for the whole form and for fields the form doesn't show.
pub fn other_errors(errors: &Errors, shown: &[&str]) -> Markup {
    html! {
        @for (name, messages) in errors {
            @if !shown.contains(&name.as_str()) {
                @for message in messages {
                    p.form-error data-field=(name) {
                        @if name != "__all__" { strong { (name) ": " } }
                        (message)
                    }
                }
            }
        }
    }
}

/// A labelled text input with its errors.
pub fn text_field(
    label: &str,
    name: &str,
    value: &str,
    errors: &Errors,
    input_type: &str,
) -> Markup {
    html! {
        label.field {
            span { (label) }
            input type=(input_type) name=(name) value=(value) aria-invalid[errors.contains_key(name)];
            (field_errors(errors, name))
        }
    }
}

/// A labelled select with its errors.
pub fn select_field(
    label: &str,
    name: &str,
    choices: &[(String, String)],
    selected: &str,
    errors: &Errors,
) -> Markup {
    html! {
        label.field {
            span { (label) }
            select name=(name) {
                @for (value, text) in choices {
                    option value=(value) selected[value == selected] { (text) }
                }
            }
            (field_errors(errors, name))
        }
    }
}

/// Bytes as MAAS shows storage: decimal gigabytes (or terabytes).
pub fn storage(bytes: i64) -> String {
    let gb = bytes as f64 / 1e9;
    if bytes <= 0 {
        "0".to_owned()
    } else if gb >= 1000.0 {
        format!("{:.1} TB", gb / 1000.0)
    } else {
        format!("{gb:.1} GB")
    }
}

/// MiB as MAAS shows memory: GiB with one decimal.
pub fn memory(mib: i64) -> String {
    if mib <= 0 {
        "0".to_owned()
    } else {
        format!("{:.1} GiB", mib as f64 / 1024.0)
    }
}

/// The CSS class of a status badge.
pub fn status_class(status: NodeStatus) -> &'static str {
    match status.simple() {
        SimpleStatus::Ready => "st-ready",
        SimpleStatus::Deployed | SimpleStatus::Allocated => "st-deployed",
        SimpleStatus::Failed | SimpleStatus::Broken => "st-failed",
        SimpleStatus::Commissioning
        | SimpleStatus::Deploying
        | SimpleStatus::Releasing
        | SimpleStatus::Testing
        | SimpleStatus::RescueMode => "st-busy",
        SimpleStatus::New | SimpleStatus::Other => "st-new",
    }
}

/// Statuses where something is running and will end by itself.
pub fn in_progress(status: NodeStatus) -> bool {
    matches!(
        status,
        NodeStatus::Commissioning
            | NodeStatus::Deploying
            | NodeStatus::Releasing
            | NodeStatus::DiskErasing
            | NodeStatus::Testing
            | NodeStatus::EnteringRescueMode
            | NodeStatus::ExitingRescueMode
    )
}

/// A time for people: the event log's format.
pub fn time(millis: i64) -> String {
    crate::timefmt::event_time(millis)
}

/// `"5 minutes"` style, for time left on a status timer.
pub fn duration(millis: i64) -> String {
    let seconds = (millis / 1000).max(0);
    match seconds {
        0..=59 => format!("{seconds}s"),
        60..=3599 => format!("{}m", seconds / 60),
        _ => format!("{}h {}m", seconds / 3600, (seconds % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(storage(0), "0");
        assert_eq!(storage(500_107_862_016), "500.1 GB");
        assert_eq!(storage(2_000_000_000_000), "2.0 TB");
        assert_eq!(memory(16384), "16.0 GiB");
        assert_eq!(memory(1536), "1.5 GiB");
        assert_eq!(duration(59_999), "59s");
        assert_eq!(duration(600_000), "10m");
        assert_eq!(duration(3_723_000), "1h 2m");
    }
}
