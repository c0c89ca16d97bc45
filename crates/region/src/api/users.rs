//! `version/`, `users/` and `users/{username}/`.

use std::sync::Arc;

use axum::http::Method;
use axum::response::Response;
use maas_api_types::Version;

use super::{ApiRequest, Handler, Resource, op, opt, render, req, rest};
use crate::action_fn;
use crate::error::{ServiceError, ServiceResult};
use crate::http::response::{no_content, ok_json};
use crate::region::Region;
use crate::service::users as service;

pub const CAPABILITIES: &[&str] = &[
    "networks-management",
    "static-ipaddresses",
    "ipv6-deployment-ubuntu",
    "devices-management",
    "storage-deployment-ubuntu",
    "network-deployment-ubuntu",
    "bridging-interface-ubuntu",
    "bridging-automatic-ubuntu",
    "authenticate-api",
];

/// The MAAS release whose API we speak (a plain `x.y.z`, as libmaas parses it).
pub const MAAS_VERSION: &str = "3.5.0";

async fn version(_region: Arc<Region>, _request: ApiRequest) -> ServiceResult<Response> {
    Ok(ok_json(&Version {
        capabilities: CAPABILITIES,
        version: MAAS_VERSION,
        subversion: "",
    }))
}

async fn list(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.user()?;
    let users = region.store.users().await?;
    let wire: Vec<_> = users.iter().map(render::user).collect();
    Ok(ok_json(&wire))
}

async fn whoami(_region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    Ok(ok_json(&render::user(request.user()?)))
}

async fn create(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let caller = request.admin()?;
    let p = &request.params;
    let username = p
        .get("username")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ServiceError::missing("username"))?;
    let email = p
        .get("email")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ServiceError::missing("email"))?;
    let password = p
        .get("password")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ServiceError::missing("password"))?;
    let is_superuser = match p.get("is_superuser") {
        Some("1") => true,
        Some("0") => false,
        Some(other) => {
            return Err(ServiceError::bad_request(format!(
                "Invalid is_superuser: '{other}' is not 0 or 1"
            )));
        }
        None => return Err(ServiceError::missing("is_superuser")),
    };
    let now = region.now();
    let user = service::create_user(
        region.store.as_ref(),
        service::NewUserInput {
            username,
            email,
            password: Some(password),
            is_superuser,
        },
        now,
    )
    .await?;
    if let Some(key) = p.get("key").filter(|k| !k.is_empty()) {
        if !caller.is_superuser {
            return Err(ServiceError::admin_only());
        }
        service::add_ssh_key(region.store.as_ref(), &user, key).await?;
    }
    Ok(ok_json(&render::user(&user)))
}

async fn read_one(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.user()?;
    let user =
        service::user_by_name(region.store.as_ref(), request.path_param("username")?).await?;
    Ok(ok_json(&render::user(&user)))
}

async fn delete_one(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let caller = request.user()?;
    let transfer = request
        .params
        .get("transfer_resources_to")
        .filter(|t| !t.is_empty());
    service::delete_user(
        region.store.as_ref(),
        caller,
        request.path_param("username")?,
        transfer,
    )
    .await?;
    Ok(no_content())
}

pub fn resources() -> Vec<Resource> {
    vec![
        Resource {
            path: "version/",
            params: &[],
            auth: None,
            anon: Some(Handler {
                name: "VersionHandler",
                doc: "Information about this MAAS instance.",
                actions: vec![rest(
                    Method::GET,
                    "MAAS version information",
                    vec![],
                    action_fn!(version),
                )],
            }),
            admin: false,
            hidden: false,
        },
        Resource {
            path: "users/",
            params: &[],
            auth: Some(Handler {
                name: "UsersHandler",
                doc: "Manage the user accounts of this MAAS.",
                actions: vec![
                    rest(Method::GET, "List users", vec![], action_fn!(list)),
                    rest(
                        Method::POST,
                        "Create a MAAS user account",
                        vec![
                            req(
                                "username",
                                "String",
                                "Identifier-style username for the new user.",
                            ),
                            req("email", "String", "Email address for the new user."),
                            req("password", "String", "Password for the new user."),
                            req(
                                "is_superuser",
                                "Boolean",
                                "Whether the new user is to be an administrator ('0' or '1').",
                            ),
                            opt(
                                "key",
                                "String",
                                "An SSH public key to add to the new user (admins only).",
                            ),
                        ],
                        action_fn!(create),
                    ),
                    op(
                        Method::GET,
                        "whoami",
                        "Retrieve logged-in user",
                        vec![],
                        action_fn!(whoami),
                    ),
                ],
            }),
            anon: None,
            admin: false,
            hidden: false,
        },
        Resource {
            path: "users/{username}/",
            params: &["username"],
            auth: Some(Handler {
                name: "UserHandler",
                doc: "Manage a user account.",
                actions: vec![
                    rest(
                        Method::GET,
                        "Retrieve user details",
                        vec![],
                        action_fn!(read_one),
                    ),
                    rest(
                        Method::DELETE,
                        "Delete a user",
                        vec![opt(
                            "transfer_resources_to",
                            "String",
                            "Username of the user who receives the deleted user's machines.",
                        )],
                        action_fn!(delete_one),
                    ),
                ],
            }),
            anon: None,
            admin: false,
            hidden: false,
        },
    ]
}
