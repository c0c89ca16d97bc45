//! The API's resources: one table that both dispatch and the describe
//! document are built from, so what is served and what is advertised
//! can't drift apart.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::http::Method;
use axum::response::Response;
use maas_store::User;

use crate::error::{ServiceError, ServiceResult};
use crate::http::params::{FilePart, Params};
use crate::region::Region;

pub mod account;
pub mod actions;
pub mod describe;
pub mod events;
pub mod grouping;
pub mod maas_config;
pub mod machines;
pub mod metadata;
pub mod network;
pub mod racks;
pub mod render;
pub mod users;

pub type ActionFuture = Pin<Box<dyn Future<Output = ServiceResult<Response>> + Send>>;
pub type ActionFn = fn(Arc<Region>, ApiRequest) -> ActionFuture;

/// Wraps an `async fn(Arc<Region>, ApiRequest) -> ServiceResult<Response>`
/// as an [`ActionFn`].
#[macro_export]
macro_rules! action_fn {
    ($f:path) => {{
        fn call(
            region: std::sync::Arc<$crate::region::Region>,
            request: $crate::api::ApiRequest,
        ) -> $crate::api::ActionFuture {
            Box::pin($f(region, request))
        }
        call as $crate::api::ActionFn
    }};
}

/// One parsed API request, as a handler sees it.
pub struct ApiRequest {
    pub method: Method,
    pub op: Option<String>,
    /// URI placeholders in the order of the resource's `params`.
    pub path_params: Vec<(&'static str, String)>,
    /// Query parameters, plus the form fields of a POST or PUT body.
    pub params: Params,
    pub files: Vec<FilePart>,
    /// The raw body, for handlers that take bytes (chunk uploads).
    pub body: bytes::Bytes,
    pub user: Option<Arc<User>>,
    /// `scheme://host[:port]` as the client addressed us, for absolute URIs.
    pub base_url: String,
    /// The request path and query, for paging links.
    pub path: String,
}

impl ApiRequest {
    pub fn path_param(&self, name: &str) -> ServiceResult<&str> {
        self.path_params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| ServiceError::bad_request(format!("missing URI parameter {name}")))
    }

    /// The authenticated user; anonymous handlers never call this.
    pub fn user(&self) -> ServiceResult<&User> {
        self.user.as_deref().ok_or_else(|| {
            ServiceError::Unauthorized("Authorization Error: authentication required".into())
        })
    }

    pub fn admin(&self) -> ServiceResult<&User> {
        let user = self.user()?;
        if user.is_superuser {
            Ok(user)
        } else {
            Err(ServiceError::admin_only())
        }
    }
}

/// Whether a documented parameter must be given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Required,
    Optional,
}

/// One `:param` entry of an action's doc.
#[derive(Clone, Debug)]
pub struct ParamDoc {
    pub name: &'static str,
    pub need: Need,
    pub kind: &'static str,
    pub text: &'static str,
}

pub const fn req(name: &'static str, kind: &'static str, text: &'static str) -> ParamDoc {
    ParamDoc {
        name,
        need: Need::Required,
        kind,
        text,
    }
}

pub const fn opt(name: &'static str, kind: &'static str, text: &'static str) -> ParamDoc {
    ParamDoc {
        name,
        need: Need::Optional,
        kind,
        text,
    }
}

pub struct Action {
    pub name: &'static str,
    pub method: Method,
    pub op: Option<&'static str>,
    pub title: &'static str,
    pub description: &'static str,
    pub params: Vec<ParamDoc>,
    pub run: ActionFn,
}

impl Action {
    /// The doc text in MAAS's layout: title, blank line, description, then
    /// `:param`/`:type` lines (the `maas` CLI accepts `key=value` arguments
    /// only for actions whose doc body mentions `:param`).
    pub fn doc(&self) -> String {
        let mut doc = format!("{}\n\n", self.title);
        if !self.description.is_empty() {
            doc.push_str(self.description);
            doc.push_str("\n\n");
        }
        for p in &self.params {
            let need = match p.need {
                Need::Required => "Required",
                Need::Optional => "Optional",
            };
            doc.push_str(&format!(
                ":param {}: {need}. {}\n:type {}: {}\n\n ",
                p.name, p.text, p.name, p.kind
            ));
        }
        doc
    }
}

/// Builds actions tersely in the resource modules.
pub fn rest(method: Method, title: &'static str, params: Vec<ParamDoc>, run: ActionFn) -> Action {
    let name = match method {
        Method::GET => "read",
        Method::POST => "create",
        Method::PUT => "update",
        _ => "delete",
    };
    Action {
        name,
        method,
        op: None,
        title,
        description: "",
        params,
        run,
    }
}

pub fn op(
    method: Method,
    name: &'static str,
    title: &'static str,
    params: Vec<ParamDoc>,
    run: ActionFn,
) -> Action {
    Action {
        name,
        method,
        op: Some(name),
        title,
        description: "",
        params,
        run,
    }
}

pub struct Handler {
    pub name: &'static str,
    pub doc: &'static str,
    pub actions: Vec<Action>,
}

pub struct Resource {
    /// Path under `/MAAS/api/2.0/`, with `{param}` placeholders.
    pub path: &'static str,
    pub params: &'static [&'static str],
    pub auth: Option<Handler>,
    pub anon: Option<Handler>,
    /// The whole resource needs a superuser.
    pub admin: bool,
    /// Served but left out of the describe document (aliases such as `vlans/{vlan_id}/`).
    pub hidden: bool,
}

impl Resource {
    pub fn name(&self) -> &'static str {
        self.auth
            .as_ref()
            .or(self.anon.as_ref())
            .map(|h| h.name)
            .unwrap_or("")
    }

    /// Matches a path (relative to the API root) against this resource's
    /// template, returning the placeholder values.
    pub fn matches(&self, segments: &[&str]) -> Option<Vec<(&'static str, String)>> {
        let template: Vec<&'static str> = self.path.split('/').collect();
        if template.len() != segments.len() {
            return None;
        }
        let mut values = Vec::new();
        for (&t, s) in template.iter().zip(segments) {
            if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                if s.is_empty() {
                    return None;
                }
                let decoded = percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned();
                values.push((name, decoded));
            } else if t != *s {
                return None;
            }
        }
        Some(values)
    }
}

/// Every resource the region serves.
pub fn resources() -> Vec<Resource> {
    let mut all = Vec::new();
    all.extend(users::resources());
    all.extend(account::resources());
    all.extend(maas_config::resources());
    all.extend(machines::resources());
    all.extend(grouping::resources());
    all.extend(events::resources());
    all.extend(network::resources());
    all.extend(racks::resources());
    all.extend(actions::result_resources());
    for resource in &mut all {
        for handler in resource.auth.iter_mut() {
            match handler.name {
                "MachineHandler" => handler.actions.extend(actions::machine_actions()),
                "MachinesHandler" => handler.actions.extend(actions::machines_actions()),
                "NodeHandler" => handler.actions.extend(
                    actions::machine_actions()
                        .into_iter()
                        .filter(|a| a.name == "details"),
                ),
                _ => {}
            }
        }
    }
    all
}
