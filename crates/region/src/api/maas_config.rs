//! `maas/`: global configuration, one key at a time.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::Response;

use super::{ApiRequest, Handler, Resource, op, req};
use crate::action_fn;
use crate::error::{ServiceError, ServiceResult};
use crate::http::response::{ok_json, text};
use crate::region::Region;
use crate::service::config;

async fn get_config(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.user()?;
    let name = request
        .params
        .get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ServiceError::missing("name"))?;
    let value = config::get(region.store.as_ref(), name).await?;
    Ok(ok_json(&value))
}

async fn set_config(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.admin()?;
    let name = request
        .params
        .get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ServiceError::missing("name"))?;
    let value = request
        .params
        .get("value")
        .ok_or_else(|| ServiceError::missing("value"))?;
    config::set(region.store.as_ref(), name, value).await?;
    Ok(text(StatusCode::OK, "OK"))
}

pub fn resources() -> Vec<Resource> {
    vec![Resource {
        path: "maas/",
        params: &[],
        auth: Some(Handler {
            name: "MaasHandler",
            doc: "Manage the MAAS server.",
            actions: vec![
                op(
                    Method::GET,
                    "get_config",
                    "Get a configuration value",
                    vec![req(
                        "name",
                        "String",
                        "The name of the configuration item to be retrieved.",
                    )],
                    action_fn!(get_config),
                ),
                op(
                    Method::POST,
                    "set_config",
                    "Set a configuration value",
                    vec![
                        req(
                            "name",
                            "String",
                            "The name of the configuration item to be set.",
                        ),
                        req(
                            "value",
                            "String",
                            "The value of the configuration item to be set.",
                        ),
                    ],
                    action_fn!(set_config),
                ),
            ],
        }),
        anon: None,
        admin: false,
        hidden: false,
    }]
}
