//! `/MAAS/metadata/`: the API booted machines talk to (provisioning.md §2.1),
//! authenticated with each node's own OAuth token; and
//! `/MAAS/machine-resources/<arch>`, the helper binary commissioning runs.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maas_store::Node;

use crate::error::{ServiceError, ServiceResult};
use crate::http::oauth;
use crate::http::params::{self, Form, Params};
use crate::http::response::{no_content, text, with_type};
use crate::region::Region;
use crate::service::metadata as service;
use crate::service::scripts;

const VERSIONS: [&str; 2] = ["2012-03-01", "latest"];

/// Who is asking: a known node (by its token), or nobody (enlistment).
async fn node_of(
    region: &Region,
    headers: &HeaderMap,
    params: &Params,
) -> ServiceResult<Option<Node>> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(oauth) = oauth::gather(authorization, params) else {
        return Ok(None);
    };
    if oauth.timestamp.trim().parse::<i64>().is_err() {
        return Err(ServiceError::bad_request(
            "Invalid oauth_timestamp: not an integer.",
        ));
    }
    let refuse = |m: String| ServiceError::Unauthorized(format!("Authorization Error: {m}"));
    oauth::check_request(&oauth, region.now() / 1000).map_err(|e| refuse(e.to_string()))?;
    let Some((token, node)) = region.store.node_by_token(&oauth.token).await? else {
        return Err(refuse(format!("'Invalid access token: {}'", oauth.token)));
    };
    if token.consumer_key != oauth.consumer_key {
        return Err(refuse("Invalid API key.".into()));
    }
    oauth::check_signature(&oauth, token.token_secret.expose())
        .map_err(|e| refuse(e.to_string()))?;
    Ok(Some(node))
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost:5240");
    format!("http://{host}")
}

fn listing(items: &[&str]) -> Response {
    let mut body = items.join("\n");
    body.push('\n');
    text(StatusCode::OK, body)
}

fn octets(body: Vec<u8>) -> Response {
    with_type(StatusCode::OK, "application/octet-stream", body)
}

/// Routes every request under `/MAAS/metadata/`.
pub async fn route(region: Arc<Region>, request: Request, rest: String) -> Response {
    match handle(region, request, rest).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn handle(region: Arc<Region>, request: Request, rest: String) -> ServiceResult<Response> {
    let (parts, body) = request.into_parts();
    let query = params::parse_query(parts.uri.query().unwrap_or(""));
    let body = axum::body::to_bytes(body, region.config.max_body_bytes)
        .await
        .map_err(|_| ServiceError::bad_request("Request body too large."))?;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let form = if parts.method == Method::POST {
        params::parse_body(content_type, &body)
            .map_err(|e| ServiceError::bad_request(format!("Malformed request body: {e}")))?
    } else {
        Form::default()
    };
    let mut all = query.clone();
    all.extend(form.fields.clone());
    let op = all.get("op").map(str::to_owned);
    let base = base_url(&parts.headers);
    // Leading duplicate slashes are tolerated.
    let rest = rest.trim_start_matches('/');
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();

    // The status webhook: JSON, and the OAuth header is required.
    if let ["status", system_id] = segments.as_slice() {
        if parts.method != Method::POST {
            return Err(ServiceError::MethodNotAllowed {
                allow: vec!["POST"],
            });
        }
        let node = node_of(&region, &parts.headers, &Params::new())
            .await?
            .ok_or_else(|| {
                ServiceError::Unauthorized(
                    "Authorization Error: the status webhook needs the node's credentials.".into(),
                )
            })?;
        if node.system_id != *system_id {
            return Err(ServiceError::Forbidden(
                "These credentials belong to another node.".into(),
            ));
        }
        let event: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| ServiceError::bad_request("Status message is not JSON."))?;
        service::status_event(&region, &node, &event).await?;
        return Ok(no_content());
    }

    if segments.is_empty() {
        return Ok(listing(&VERSIONS));
    }
    let (curtin, segments) = match segments.split_first() {
        Some((&"curtin", rest)) => (true, rest),
        _ => (false, segments.as_slice()),
    };
    let (enlist_only, segments) = match segments.split_first() {
        Some((&"enlist", rest)) => (true, rest),
        _ => (false, segments),
    };
    let Some((version, tail)) = segments.split_first() else {
        return Ok(listing(&VERSIONS));
    };
    if !VERSIONS.contains(version) {
        return Err(ServiceError::NotFound(format!(
            "Unknown metadata version: {version}"
        )));
    }
    let node = if enlist_only {
        None
    } else {
        node_of(&region, &parts.headers, &all).await?
    };

    match (tail, node) {
        // Anonymous endpoints addressed by system_id.
        (["by-id", system_id], _) => {
            let node = region
                .store
                .node_by_system_id(system_id)
                .await?
                .ok_or_else(|| ServiceError::not_found("Node"))?;
            match (parts.method.clone(), op.as_deref()) {
                (Method::GET, Some("get_preseed")) => {
                    let preseed = service::preseed(&region, &node, &base).await?;
                    Ok(text(StatusCode::OK, preseed))
                }
                (Method::POST, Some("netboot_off")) => {
                    service::set_netboot(&region, &node, false).await?;
                    Ok(text(StatusCode::OK, "OK"))
                }
                (method, op) => Err(ServiceError::bad_request(format!(
                    "Unrecognised signature: method={} op={}",
                    method.as_str(),
                    op.unwrap_or("None")
                ))),
            }
        }
        (["enlist-preseed"], _) if op.as_deref() == Some("get_enlist_preseed") => {
            Ok(text(StatusCode::OK, service::enlist_preseed(&base)))
        }
        // The node's own endpoints.
        ([], Some(node)) => match (parts.method.clone(), op.as_deref()) {
            (Method::GET, None) => Ok(listing(&[
                "maas-commissioning-scripts",
                "meta-data",
                "user-data",
            ])),
            (Method::POST, Some("signal")) => {
                service::signal(&region, &node, &all, &form.files).await?;
                Ok(text(StatusCode::OK, "OK"))
            }
            (Method::POST, Some("netboot_off")) => {
                service::set_netboot(&region, &node, false).await?;
                Ok(text(StatusCode::OK, "OK"))
            }
            (Method::POST, Some("netboot_on")) => {
                service::set_netboot(&region, &node, true).await?;
                Ok(text(StatusCode::OK, "OK"))
            }
            (method, op) => Err(ServiceError::bad_request(format!(
                "Unrecognised signature: method={} op={}",
                method.as_str(),
                op.unwrap_or("None")
            ))),
        },
        ([], None) => Ok(listing(&["meta-data", "user-data"])),
        (["meta-data"], node) => {
            let mut items = vec!["instance-id", "local-hostname", "vendor-data", "x509"];
            if node.is_some() {
                items.insert(2, "public-keys");
            }
            Ok(listing(&items))
        }
        (["meta-data", item], Some(node)) => meta_data(&region, &node, item).await,
        (["meta-data", item], None) => match *item {
            "instance-id" => Ok(text(StatusCode::OK, "i-maas-enlistment")),
            "local-hostname" => Ok(text(StatusCode::OK, "maas-enlisting-node")),
            "vendor-data" => Ok(with_type(StatusCode::OK, "application/x-yaml", "{}\n")),
            "x509" | "public-keys" => Ok(text(StatusCode::OK, "")),
            other => Err(ServiceError::NotFound(format!(
                "Unknown metadata attribute: {other}"
            ))),
        },
        (["user-data"], Some(node)) => {
            match service::user_data(&region, &node, &base, curtin).await? {
                Some(data) => Ok(octets(data)),
                None => Err(ServiceError::NotFound(
                    "No user data available for this node.".into(),
                )),
            }
        }
        (["curtin-config"], Some(node)) => Ok(with_type(
            StatusCode::OK,
            "application/x-yaml",
            service::curtin_config(&region, &node, &base).await?,
        )),
        (["user-data"], None) => Ok(octets(service::ephemeral_user_data(&base).into_bytes())),
        (["maas-scripts"], Some(node)) => {
            match scripts::tarball(region.store.as_ref(), &node).await? {
                Some(tar) => Ok(with_type(StatusCode::OK, "application/x-tar", tar)),
                None => Ok(no_content()),
            }
        }
        (["maas-scripts"], None) => match scripts::enlistment_tarball(region.store.as_ref()).await?
        {
            Some(tar) => Ok(with_type(StatusCode::OK, "application/x-tar", tar)),
            None => Ok(no_content()),
        },
        _ => Err(ServiceError::NotFound(format!(
            "Unknown metadata path: /MAAS/metadata/{rest}"
        ))),
    }
}

async fn meta_data(region: &Region, node: &Node, item: &str) -> ServiceResult<Response> {
    match item {
        "instance-id" => Ok(text(StatusCode::OK, node.system_id.clone())),
        "local-hostname" => Ok(text(
            StatusCode::OK,
            format!("{}.{}", node.hostname, node.domain.name),
        )),
        "public-keys" => {
            let keys = match &node.owner {
                Some(owner) => region.store.sshkeys(owner.id).await?,
                None => Vec::new(),
            };
            let text_keys: Vec<String> = keys.into_iter().map(|k| k.key).collect();
            Ok(text(StatusCode::OK, text_keys.join("\n")))
        }
        "vendor-data" => Ok(with_type(
            StatusCode::OK,
            "application/x-yaml",
            "{cloud-init: \"#cloud-config\\n{}\\n\"}\n",
        )),
        "x509" => Ok(text(StatusCode::OK, "")),
        other => Err(ServiceError::NotFound(format!(
            "Unknown metadata attribute: {other}"
        ))),
    }
}

/// `GET /MAAS/machine-resources/<arch>`: the hardware-inventory helper,
/// served from the region's agent directory when one is configured.
pub async fn machine_resources(region: &Region, arch: &str) -> Response {
    let Some(dir) = &region.config.agent_dir else {
        return text(
            StatusCode::NOT_FOUND,
            "This region has no machine-resources helper configured.",
        );
    };
    if !arch.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || arch.is_empty() {
        return text(StatusCode::NOT_FOUND, "Unknown architecture.");
    }
    match tokio::fs::read(dir.join(arch)).await {
        Ok(bytes) => with_type(StatusCode::OK, "application/octet-stream", bytes),
        Err(_) => text(
            StatusCode::NOT_FOUND,
            format!("No machine-resources helper for {arch}."),
        ),
    }
}
