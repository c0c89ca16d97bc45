//! The caller's own credentials: `account/`, `account/prefs/sshkeys/`, and
//! `POST /MAAS/accounts/authenticate/` (password in, API key out).

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maas_api_types::{Credentials, TokenListEntry};

use super::{ApiRequest, Handler, Resource, op, opt, render, req, rest};
use crate::action_fn;
use crate::error::{ServiceError, ServiceResult};
use crate::http::params;
use crate::http::response::{json, no_content, ok_json, text, with_type};
use crate::region::Region;
use crate::service::users as service;

fn credentials(token: &maas_store::ApiToken) -> Credentials<'_> {
    Credentials {
        consumer_key: &token.consumer_key,
        name: &token.consumer_name,
        token_key: &token.token_key,
        token_secret: token.token_secret.expose(),
    }
}

async fn create_token(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let user = request.user()?;
    let token = service::create_token(
        region.store.as_ref(),
        user,
        request.params.get("name"),
        region.now(),
    )
    .await?;
    Ok(ok_json(&credentials(&token)))
}

async fn delete_token(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let user = request.user()?;
    let key = request
        .params
        .get("token_key")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ServiceError::missing("token_key"))?;
    if !region
        .store
        .delete_token(user.id, service::token_key_of(key))
        .await?
    {
        return Err(ServiceError::not_found("Token"));
    }
    Ok(no_content())
}

async fn update_token_name(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let user = request.user()?;
    let token = request
        .params
        .get("token")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ServiceError::missing("token"))?;
    let name = request
        .params
        .get("name")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ServiceError::missing("name"))?;
    if !region
        .store
        .rename_token(user.id, service::token_key_of(token), name)
        .await?
    {
        return Err(ServiceError::not_found("Token"));
    }
    Ok(text(StatusCode::ACCEPTED, "Accepted"))
}

async fn list_tokens(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let user = request.user()?;
    let tokens = region.store.tokens_for_user(user.id).await?;
    let list: Vec<TokenListEntry<'_>> = tokens
        .iter()
        .map(|t| TokenListEntry {
            name: &t.consumer_name,
            token: crate::credentials::key_text(t),
        })
        .collect();
    Ok(ok_json(&list))
}

async fn list_keys(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let user = request.user()?;
    let keys = region.store.sshkeys(user.id).await?;
    let wire: Vec<_> = keys.iter().map(|k| render::sshkey(k, true)).collect();
    Ok(ok_json(&wire))
}

async fn create_key(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let caller = request.user()?;
    let key = request
        .params
        .get("key")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ServiceError::field("key", "This field is required."))?;
    let owner = match request.params.get("user").filter(|u| !u.is_empty()) {
        Some(username) if username != caller.username => {
            if !caller.is_superuser {
                return Err(ServiceError::admin_only());
            }
            service::user_by_name(region.store.as_ref(), username).await?
        }
        _ => caller.clone(),
    };
    let created = service::add_ssh_key(region.store.as_ref(), &owner, key).await?;
    Ok(json(StatusCode::CREATED, &render::sshkey(&created, false)))
}

async fn import_keys(_region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.user()?;
    let source = request
        .params
        .get("keysource")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ServiceError::missing("keysource"))?;
    let (protocol, name) = source.split_once(':').unwrap_or(("lp", source));
    if !["lp", "gh"].contains(&protocol) || name.is_empty() {
        return Err(ServiceError::bad_request(format!(
            "Invalid keysource: '{source}'; use lp:<user> or gh:<user>."
        )));
    }
    // Fetching keys needs an outbound HTTPS client, which this region doesn't have yet.
    Err(ServiceError::bad_request(format!(
        "Unable to import SSH keys from '{source}': importing from Launchpad or GitHub is not supported by this region; add the keys with 'sshkeys create key=...'."
    )))
}

async fn key_of_caller(region: &Region, request: &ApiRequest) -> ServiceResult<maas_store::SshKey> {
    let user = request.user()?;
    let id: i64 = request
        .path_param("id")?
        .parse()
        .map_err(|_| ServiceError::not_found("SSHKey"))?;
    let key = region
        .store
        .sshkey(id)
        .await?
        .ok_or_else(|| ServiceError::not_found("SSHKey"))?;
    if key.user_id != user.id && !user.is_superuser {
        return Err(ServiceError::forbidden(
            "Can't access a key that belongs to another user.",
        ));
    }
    Ok(key)
}

async fn read_key(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let key = key_of_caller(&region, &request).await?;
    Ok(ok_json(&render::sshkey(&key, true)))
}

async fn delete_key(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let user = request.user()?;
    let id: i64 = request
        .path_param("id")?
        .parse()
        .map_err(|_| ServiceError::not_found("SSHKey"))?;
    let key = region
        .store
        .sshkey(id)
        .await?
        .ok_or_else(|| ServiceError::not_found("SSHKey"))?;
    if key.user_id != user.id {
        return Err(ServiceError::forbidden("Can't delete a key you don't own."));
    }
    region.store.delete_sshkey(id).await?;
    Ok(no_content())
}

/// `POST /MAAS/accounts/authenticate/` (api.md §2.6): no OAuth, no CSRF.
pub async fn authenticate(region: Arc<Region>, request: Request) -> Response {
    if request.method() != Method::POST {
        let mut response = with_type(
            StatusCode::METHOD_NOT_ALLOWED,
            crate::http::response::TEXT,
            "",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return response;
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match axum::body::to_bytes(request.into_body(), 1024 * 1024).await {
        Ok(body) => body,
        Err(_) => return text(StatusCode::BAD_REQUEST, "Request body is too large."),
    };
    let form = match params::parse_body(content_type.as_deref(), &body) {
        Ok(form) => form.fields,
        Err(error) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("Malformed request body: {error}"),
            );
        }
    };
    let (Some(username), Some(password)) = (form.get("username"), form.get("password")) else {
        return with_type(StatusCode::FORBIDDEN, crate::http::response::TEXT, "");
    };
    let result = async {
        let Some(user) = service::check_password(region.store.as_ref(), username, password).await?
        else {
            return Ok::<_, ServiceError>(None);
        };
        let now = region.now();
        region.store.set_last_login(user.id, now).await?;
        let token = service::login_token(
            region.store.as_ref(),
            &user,
            form.get("consumer").filter(|c| !c.is_empty()),
            now,
        )
        .await?;
        Ok(Some(token))
    }
    .await;
    match result {
        Ok(Some(token)) => json(StatusCode::OK, &credentials(&token)),
        Ok(None) => {
            tracing::info!(username, "password login refused");
            with_type(StatusCode::FORBIDDEN, crate::http::response::TEXT, "")
        }
        Err(error) => error.into_response(),
    }
}

pub fn resources() -> Vec<Resource> {
    vec![
        Resource {
            path: "account/",
            params: &[],
            auth: Some(Handler {
                name: "AccountHandler",
                doc: "Manage the current logged-in user.",
                actions: vec![
                    op(
                        Method::POST,
                        "create_authorisation_token",
                        "Create an authorisation token",
                        vec![opt(
                            "name",
                            "String",
                            "Optional name of the token that will be generated.",
                        )],
                        action_fn!(create_token),
                    ),
                    op(
                        Method::POST,
                        "delete_authorisation_token",
                        "Delete an authorisation token",
                        vec![req(
                            "token_key",
                            "String",
                            "The key of the token to be deleted.",
                        )],
                        action_fn!(delete_token),
                    ),
                    op(
                        Method::POST,
                        "update_token_name",
                        "Modify authorisation token",
                        vec![
                            req(
                                "token",
                                "String",
                                "Can be the whole token or only the token key.",
                            ),
                            req("name", "String", "New name of the token."),
                        ],
                        action_fn!(update_token_name),
                    ),
                    op(
                        Method::GET,
                        "list_authorisation_tokens",
                        "List authorisation tokens",
                        vec![],
                        action_fn!(list_tokens),
                    ),
                ],
            }),
            anon: None,
            admin: false,
            hidden: false,
        },
        Resource {
            path: "account/prefs/sshkeys/",
            params: &[],
            auth: Some(Handler {
                name: "SSHKeysHandler",
                doc: "Manage SSH keys.",
                actions: vec![
                    rest(Method::GET, "List SSH keys", vec![], action_fn!(list_keys)),
                    rest(
                        Method::POST,
                        "Add a new SSH key",
                        vec![
                            req(
                                "key",
                                "String",
                                "A public SSH key should be provided in the request payload as form data with the name 'key'.",
                            ),
                            opt(
                                "user",
                                "String",
                                "Admins only: the user the key is added for.",
                            ),
                        ],
                        action_fn!(create_key),
                    ),
                    op(
                        Method::POST,
                        "import",
                        "Import SSH keys",
                        vec![req(
                            "keysource",
                            "String",
                            "A keysource, lp:<user> or gh:<user>.",
                        )],
                        action_fn!(import_keys),
                    ),
                ],
            }),
            anon: None,
            admin: false,
            hidden: false,
        },
        Resource {
            path: "account/prefs/sshkeys/{id}/",
            params: &["id"],
            auth: Some(Handler {
                name: "SSHKeyHandler",
                doc: "Manage an SSH key.",
                actions: vec![
                    rest(
                        Method::GET,
                        "Retrieve an SSH key",
                        vec![],
                        action_fn!(read_key),
                    ),
                    rest(
                        Method::DELETE,
                        "Delete an SSH key",
                        vec![],
                        action_fn!(delete_key),
                    ),
                ],
            }),
            anon: None,
            admin: false,
            hidden: false,
        },
    ]
}
