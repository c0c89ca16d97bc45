//! `boot-resources/` (imported and uploaded images, the chunk upload), `boot-sources/` and
//! `boot-sources/{boot_source_id}/selections/` (api.md §12), and the image files and
//! manifest racks fetch under `/MAAS/boot-resources/`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use maas_store::{BootSource, BootSourceSelection};
use serde::Serialize;

use super::{ApiRequest, Handler, Resource, op, opt, req, rest};
use crate::action_fn;
use crate::error::ServiceResult;
use crate::http::response::{self, json, no_content, ok_json, text};
use crate::region::Region;
use crate::service::images as service;

async fn read_resources(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.user()?;
    let filter = service::TypeFilter::parse(request.params.get("type"))?;
    Ok(ok_json(
        &service::resources(region.store.as_ref(), filter).await?,
    ))
}

async fn create_resource(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let created =
        service::create_resource(&region, request.user()?, &request.params, &request.files).await?;
    Ok(json(StatusCode::CREATED, &created))
}

async fn import(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.admin()?;
    service::start_import(&region).await?;
    Ok(text(StatusCode::OK, "Import of boot resources started"))
}

async fn stop_import(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.admin()?;
    service::stop_import(&region).await?;
    Ok(text(
        StatusCode::OK,
        "Import of boot resources is being stopped",
    ))
}

async fn is_importing(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.user()?;
    Ok(ok_json(&service::is_importing(&region).await))
}

async fn read_resource(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.user()?;
    let resource = service::resource(region.store.as_ref(), request.path_param("id")?).await?;
    Ok(ok_json(&service::resource_detail(&region, resource).await?))
}

async fn delete_resource(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let user = request.user()?;
    let resource = service::resource(region.store.as_ref(), request.path_param("id")?).await?;
    service::delete_resource(&region, user, &resource).await?;
    Ok(no_content())
}

async fn upload(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    service::upload_chunk(
        &region,
        request.user()?,
        request.path_param("id")?,
        request.path_param("file_id")?,
        &request.body,
        request.content_length,
    )
    .await?;
    Ok(text(StatusCode::OK, "OK"))
}

#[derive(Serialize)]
struct BootSourceJson<'a> {
    id: i64,
    url: &'a str,
    keyring_filename: &'a str,
    keyring_data: String,
    created: String,
    updated: String,
    resource_uri: String,
}

fn render_source(source: &BootSource) -> BootSourceJson<'_> {
    BootSourceJson {
        id: source.id,
        url: &source.url,
        keyring_filename: &source.keyring_filename,
        keyring_data: base64::engine::general_purpose::STANDARD.encode(&source.keyring_data),
        created: crate::timefmt::iso(source.created),
        updated: crate::timefmt::iso(source.updated),
        resource_uri: format!("/MAAS/api/2.0/boot-sources/{}/", source.id),
    }
}

#[derive(Serialize)]
struct SelectionJson<'a> {
    id: i64,
    boot_source_id: i64,
    os: &'a str,
    release: &'a str,
    arches: &'a [String],
    subarches: &'a [String],
    labels: &'a [String],
    resource_uri: String,
}

fn render_selection(selection: &BootSourceSelection) -> SelectionJson<'_> {
    SelectionJson {
        id: selection.id,
        boot_source_id: selection.boot_source_id,
        os: &selection.os,
        release: &selection.release,
        arches: &selection.arches,
        subarches: &selection.subarches,
        labels: &selection.labels,
        resource_uri: format!(
            "/MAAS/api/2.0/boot-sources/{}/selections/{}/",
            selection.boot_source_id, selection.id
        ),
    }
}

async fn read_sources(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.admin()?;
    let sources = region.store.boot_sources().await?;
    Ok(ok_json(
        &sources.iter().map(render_source).collect::<Vec<_>>(),
    ))
}

async fn create_source(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let source = service::create_boot_source(
        region.store.as_ref(),
        request.user()?,
        &request.params,
        &request.files,
        region.now(),
    )
    .await?;
    Ok(json(StatusCode::CREATED, &render_source(&source)))
}

async fn read_source(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.admin()?;
    let source = service::boot_source(region.store.as_ref(), request.path_param("id")?).await?;
    Ok(ok_json(&render_source(&source)))
}

async fn update_source(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let source = service::boot_source(region.store.as_ref(), request.path_param("id")?).await?;
    let source = service::update_boot_source(
        region.store.as_ref(),
        request.user()?,
        &source,
        &request.params,
        &request.files,
        region.now(),
    )
    .await?;
    Ok(ok_json(&render_source(&source)))
}

async fn delete_source(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let source = service::boot_source(region.store.as_ref(), request.path_param("id")?).await?;
    service::delete_boot_source(region.store.as_ref(), request.user()?, &source).await?;
    Ok(no_content())
}

async fn selection_source(region: &Region, request: &ApiRequest) -> ServiceResult<BootSource> {
    request.admin()?;
    service::boot_source(region.store.as_ref(), request.path_param("boot_source_id")?).await
}

async fn read_selections(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let source = selection_source(&region, &request).await?;
    let selections = region.store.boot_source_selections(source.id).await?;
    Ok(ok_json(
        &selections.iter().map(render_selection).collect::<Vec<_>>(),
    ))
}

async fn create_selection(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let source = selection_source(&region, &request).await?;
    let selection = service::create_boot_source_selection(
        region.store.as_ref(),
        request.user()?,
        &source,
        &request.params,
    )
    .await?;
    Ok(ok_json(&render_selection(&selection)))
}

async fn selection(region: &Region, request: &ApiRequest) -> ServiceResult<BootSourceSelection> {
    let source = selection_source(region, request).await?;
    service::boot_source_selection(region.store.as_ref(), &source, request.path_param("id")?).await
}

async fn read_selection(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let selection = selection(&region, &request).await?;
    Ok(ok_json(&render_selection(&selection)))
}

async fn update_selection(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let selection = selection(&region, &request).await?;
    let selection = service::update_boot_source_selection(
        region.store.as_ref(),
        request.user()?,
        &selection,
        &request.params,
    )
    .await?;
    Ok(ok_json(&render_selection(&selection)))
}

async fn delete_selection(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let selection = selection(&region, &request).await?;
    service::delete_boot_source_selection(region.store.as_ref(), request.user()?, &selection)
        .await?;
    Ok(no_content())
}

fn handler(name: &'static str, doc: &'static str, actions: Vec<super::Action>) -> Option<Handler> {
    Some(Handler { name, doc, actions })
}

pub fn resources() -> Vec<Resource> {
    let source_params =
        |url_need: fn(&'static str, &'static str, &'static str) -> super::ParamDoc| {
            vec![
                url_need("url", "String", "The URL of the simplestreams mirror."),
                opt(
                    "keyring_filename",
                    "String",
                    "A keyring file on the region that verifies the mirror's signatures.",
                ),
                opt(
                    "keyring_data",
                    "String",
                    "The keyring itself, as a file (keyring_data@=keyring.gpg).",
                ),
                opt(
                    "skip_keyring_verification",
                    "Boolean",
                    "Take the mirror's documents unsigned.",
                ),
            ]
        };
    let selection_params =
        |need: fn(&'static str, &'static str, &'static str) -> super::ParamDoc| {
            vec![
                need("os", "String", "The operating system, e.g. ubuntu."),
                need("release", "String", "The release, e.g. jammy."),
                opt(
                    "arches",
                    "String",
                    "Architectures to import (repeat for several; * for all).",
                ),
                opt(
                    "subarches",
                    "String",
                    "Subarchitectures to import (repeat for several; * for all).",
                ),
                opt(
                    "labels",
                    "String",
                    "Labels to import, e.g. stable (repeat for several; * for all).",
                ),
            ]
        };
    vec![
        Resource {
            path: "boot-resources/",
            params: &[],
            auth: handler(
                "BootResourcesHandler",
                "Manage the boot resources.",
                vec![
                    rest(
                        Method::GET,
                        "List boot resources",
                        vec![opt(
                            "type",
                            "String",
                            "Type of boot resources to list: all (the default), synced or uploaded.",
                        )],
                        action_fn!(read_resources),
                    ),
                    rest(
                        Method::POST,
                        "Upload a new boot resource",
                        vec![
                            req(
                                "name",
                                "String",
                                "<os>/<release> (esxi/6.7) or the name of a custom image.",
                            ),
                            req(
                                "architecture",
                                "String",
                                "<arch>/<subarch> of the image, e.g. amd64/generic.",
                            ),
                            opt(
                                "sha256",
                                "String",
                                "The SHA256 of the content, when it is sent later in chunks.",
                            ),
                            opt(
                                "size",
                                "Int",
                                "The size of the content in bytes, when it is sent later in chunks.",
                            ),
                            opt("title", "String", "The title shown for the image."),
                            opt(
                                "filetype",
                                "String",
                                "tgz (the default), tbz, txz, ddtgz, ddtbz, ddtxz, ddtar, ddbz2, ddgz, ddxz or ddraw.",
                            ),
                            opt(
                                "base_image",
                                "String",
                                "For custom images: the <os>/<series> that installs them.",
                            ),
                            opt("content", "File", "The image content (content@=file)."),
                        ],
                        action_fn!(create_resource),
                    ),
                    op(
                        Method::POST,
                        "import",
                        "Import the boot resources",
                        vec![],
                        action_fn!(import),
                    ),
                    op(
                        Method::POST,
                        "stop_import",
                        "Stop the import of boot resources",
                        vec![],
                        action_fn!(stop_import),
                    ),
                    op(
                        Method::GET,
                        "is_importing",
                        "Whether boot resources are being imported",
                        vec![],
                        action_fn!(is_importing),
                    ),
                ],
            ),
            anon: None,
            admin: false,
            hidden: false,
        },
        Resource {
            path: "boot-resources/{id}/",
            params: &["id"],
            auth: handler(
                "BootResourceHandler",
                "Manage a boot resource.",
                vec![
                    rest(
                        Method::GET,
                        "Read a boot resource",
                        vec![],
                        action_fn!(read_resource),
                    ),
                    rest(
                        Method::DELETE,
                        "Delete a boot resource",
                        vec![],
                        action_fn!(delete_resource),
                    ),
                ],
            ),
            anon: None,
            admin: false,
            hidden: false,
        },
        Resource {
            path: "boot-resources/{id}/upload/{file_id}/",
            params: &["id", "file_id"],
            auth: handler(
                "BootResourceFileUploadHandler",
                "Upload a boot resource file in chunks.",
                vec![rest(
                    Method::PUT,
                    "Upload a chunk of a boot resource file",
                    vec![],
                    action_fn!(upload),
                )],
            ),
            anon: None,
            admin: false,
            hidden: true,
        },
        Resource {
            path: "boot-sources/",
            params: &[],
            auth: handler(
                "BootSourcesHandler",
                "Manage the collection of boot sources.",
                vec![
                    rest(
                        Method::GET,
                        "List boot sources",
                        vec![],
                        action_fn!(read_sources),
                    ),
                    rest(
                        Method::POST,
                        "Create a boot source",
                        source_params(req),
                        action_fn!(create_source),
                    ),
                ],
            ),
            anon: None,
            admin: true,
            hidden: false,
        },
        Resource {
            path: "boot-sources/{id}/",
            params: &["id"],
            auth: handler(
                "BootSourceHandler",
                "Manage a boot source.",
                vec![
                    rest(
                        Method::GET,
                        "Read a boot source",
                        vec![],
                        action_fn!(read_source),
                    ),
                    rest(
                        Method::PUT,
                        "Update a boot source",
                        source_params(opt),
                        action_fn!(update_source),
                    ),
                    rest(
                        Method::DELETE,
                        "Delete a boot source",
                        vec![],
                        action_fn!(delete_source),
                    ),
                ],
            ),
            anon: None,
            admin: true,
            hidden: false,
        },
        Resource {
            path: "boot-sources/{boot_source_id}/selections/",
            params: &["boot_source_id"],
            auth: handler(
                "BootSourceSelectionsHandler",
                "Manage the collection of boot source selections.",
                vec![
                    rest(
                        Method::GET,
                        "List boot source selections",
                        vec![],
                        action_fn!(read_selections),
                    ),
                    rest(
                        Method::POST,
                        "Create a boot source selection",
                        selection_params(req),
                        action_fn!(create_selection),
                    ),
                ],
            ),
            anon: None,
            admin: true,
            hidden: false,
        },
        Resource {
            path: "boot-sources/{boot_source_id}/selections/{id}/",
            params: &["boot_source_id", "id"],
            auth: handler(
                "BootSourceSelectionHandler",
                "Manage a boot source selection.",
                vec![
                    rest(
                        Method::GET,
                        "Read a boot source selection",
                        vec![],
                        action_fn!(read_selection),
                    ),
                    rest(
                        Method::PUT,
                        "Update a boot source selection",
                        selection_params(opt),
                        action_fn!(update_selection),
                    ),
                    rest(
                        Method::DELETE,
                        "Delete a boot source selection",
                        vec![],
                        action_fn!(delete_selection),
                    ),
                ],
            ),
            anon: None,
            admin: true,
            hidden: false,
        },
    ]
}

/// The manifest path under `/MAAS/boot-resources/`.
pub const MANIFEST: &str = "manifest.json";

/// `/MAAS/boot-resources/<rest>` (anonymous, like MAAS's): the image manifest racks load
/// (`manifest.json`), or an image file by `<sha256 or prefix>/<anything>` or by boot path,
/// streamed from the content store.
pub async fn serve(region: Arc<Region>, method: &Method, rest: &str) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let mut reply = response::with_type(StatusCode::METHOD_NOT_ALLOWED, response::TEXT, "");
        reply
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return reply;
    }
    use axum::response::IntoResponse;
    if rest == MANIFEST {
        return match service::manifest(&region).await {
            Ok(manifest) => ok_json(&manifest),
            Err(error) => error.into_response(),
        };
    }
    let (path, size) = match service::file_for_path(&region, rest).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            return text(
                StatusCode::NOT_FOUND,
                format!("No boot resource file matches {rest}."),
            );
        }
        Err(error) => return error.into_response(),
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "opening a stored image file failed");
            return text(
                StatusCode::NOT_FOUND,
                format!("No boot resource file matches {rest}."),
            );
        }
    };
    let stream = futures_util::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buffer = vec![0u8; 256 * 1024];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(read) => {
                buffer.truncate(read);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buffer)), file))
            }
            Err(error) => Some((Err(error), file)),
        }
    });
    let mut reply = Response::new(Body::from_stream(stream));
    let headers = reply.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(length) = HeaderValue::from_str(&size.to_string()) {
        headers.insert(header::CONTENT_LENGTH, length);
    }
    reply
}
