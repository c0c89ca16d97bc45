//! `zones/`, `resourcepools/` + `resourcepool/{id}/`, `tags/`, `domains/`.

use std::sync::Arc;

use axum::http::Method;
use axum::response::Response;
use maas_domain::NodeType;
use maas_store::NodeFilter;

use super::{ApiRequest, Handler, Resource, op, opt, render, req, rest};
use crate::action_fn;
use crate::error::{ServiceError, ServiceResult};
use crate::http::response::{no_content, ok_json};
use crate::region::Region;
use crate::service::grouping as service;

async fn zones(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.user()?;
    let zones = region.store.zones().await?;
    Ok(ok_json(&zones.iter().map(render::zone).collect::<Vec<_>>()))
}

async fn create_zone(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let zone = service::create_zone(
        region.store.as_ref(),
        request.user()?,
        &request.params,
        region.now(),
    )
    .await?;
    Ok(ok_json(&render::zone(&zone)))
}

async fn read_zone(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.user()?;
    let zone = service::zone(region.store.as_ref(), request.path_param("name")?).await?;
    Ok(ok_json(&render::zone(&zone)))
}

async fn update_zone(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let zone = service::zone(region.store.as_ref(), request.path_param("name")?).await?;
    let zone = service::update_zone(
        region.store.as_ref(),
        request.user()?,
        &zone,
        &request.params,
    )
    .await?;
    Ok(ok_json(&render::zone(&zone)))
}

async fn delete_zone(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let zone = service::zone(region.store.as_ref(), request.path_param("name")?).await?;
    service::delete_zone(region.store.as_ref(), request.user()?, &zone).await?;
    Ok(no_content())
}

async fn pools(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.user()?;
    let pools = region.store.pools().await?;
    Ok(ok_json(&pools.iter().map(render::pool).collect::<Vec<_>>()))
}

async fn create_pool(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let pool = service::create_pool(
        region.store.as_ref(),
        request.user()?,
        &request.params,
        region.now(),
    )
    .await?;
    Ok(ok_json(&render::pool(&pool)))
}

async fn read_pool(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.user()?;
    let pool = service::pool(region.store.as_ref(), request.path_param("id")?).await?;
    Ok(ok_json(&render::pool(&pool)))
}

async fn update_pool(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let pool = service::pool(region.store.as_ref(), request.path_param("id")?).await?;
    let pool = service::update_pool(
        region.store.as_ref(),
        request.user()?,
        &pool,
        &request.params,
    )
    .await?;
    Ok(ok_json(&render::pool(&pool)))
}

async fn delete_pool(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let pool = service::pool(region.store.as_ref(), request.path_param("id")?).await?;
    service::delete_pool(region.store.as_ref(), request.user()?, &pool).await?;
    Ok(no_content())
}

async fn tags(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.user()?;
    let tags = region.store.tags().await?;
    Ok(ok_json(&tags.iter().map(render::tag).collect::<Vec<_>>()))
}

async fn create_tag(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let tag = service::create_tag(region.store.as_ref(), request.user()?, &request.params).await?;
    Ok(ok_json(&render::tag(&tag)))
}

async fn read_tag(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.user()?;
    let tag = service::tag(region.store.as_ref(), request.path_param("name")?).await?;
    Ok(ok_json(&render::tag(&tag)))
}

async fn update_tag(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let tag = service::tag(region.store.as_ref(), request.path_param("name")?).await?;
    let tag =
        service::update_tag(region.store.as_ref(), request.user()?, tag, &request.params).await?;
    Ok(ok_json(&render::tag(&tag)))
}

async fn delete_tag(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let tag = service::tag(region.store.as_ref(), request.path_param("name")?).await?;
    service::delete_tag(region.store.as_ref(), request.user()?, &tag).await?;
    Ok(no_content())
}

async fn update_nodes(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let tag = service::tag(region.store.as_ref(), request.path_param("name")?).await?;
    let changes = service::update_nodes(
        region.store.as_ref(),
        request.user()?,
        &tag,
        &request.params,
    )
    .await?;
    Ok(ok_json(
        &serde_json::json!({"added": changes.added, "removed": changes.removed}),
    ))
}

async fn tagged(
    region: Arc<Region>,
    request: ApiRequest,
    node_types: Vec<NodeType>,
) -> ServiceResult<Response> {
    let user = request.user()?;
    let tag = service::tag(region.store.as_ref(), request.path_param("name")?).await?;
    let filter = NodeFilter {
        node_types,
        tags: vec![tag.name],
        visible_to: (!user.is_superuser).then_some(user.id),
        ..NodeFilter::default()
    };
    Ok(super::machines::stream_nodes(region, filter))
}

async fn tagged_nodes(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    tagged(region, request, Vec::new()).await
}

async fn tagged_machines(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    tagged(region, request, vec![NodeType::Machine]).await
}

async fn tagged_devices(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    tagged(region, request, vec![NodeType::Device]).await
}

async fn tagged_racks(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    tagged(
        region,
        request,
        vec![NodeType::RackController, NodeType::RegionAndRackController],
    )
    .await
}

async fn tagged_regions(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    tagged(
        region,
        request,
        vec![
            NodeType::RegionController,
            NodeType::RegionAndRackController,
        ],
    )
    .await
}

async fn domains(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.user()?;
    let domains = region.store.domains().await?;
    Ok(ok_json(
        &domains.iter().map(render::domain).collect::<Vec<_>>(),
    ))
}

async fn read_domain(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.user()?;
    let id: i64 = request
        .path_param("id")?
        .parse()
        .map_err(|_| ServiceError::not_found("Domain"))?;
    let domain = region
        .store
        .domain_by_id(id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Domain"))?;
    Ok(ok_json(&render::domain(&domain)))
}

fn handler(name: &'static str, doc: &'static str, actions: Vec<super::Action>) -> Option<Handler> {
    Some(Handler { name, doc, actions })
}

pub fn resources() -> Vec<Resource> {
    let name_desc = || {
        vec![
            req("name", "String", "The name."),
            opt("description", "String", "A description."),
        ]
    };
    let update_name_desc = || {
        vec![
            opt("name", "String", "The new name."),
            opt("description", "String", "The new description."),
        ]
    };
    vec![
        Resource {
            path: "zones/",
            params: &[],
            auth: handler(
                "ZonesHandler",
                "Manage physical zones.",
                vec![
                    rest(
                        Method::GET,
                        "List available zones",
                        vec![],
                        action_fn!(zones),
                    ),
                    rest(
                        Method::POST,
                        "Create a new zone",
                        name_desc(),
                        action_fn!(create_zone),
                    ),
                ],
            ),
            anon: None,
            admin: false,
            hidden: false,
        },
        Resource {
            path: "zones/{name}/",
            params: &["name"],
            auth: handler(
                "ZoneHandler",
                "Manage a physical zone.",
                vec![
                    rest(
                        Method::GET,
                        "Retrieve a zone",
                        vec![],
                        action_fn!(read_zone),
                    ),
                    rest(
                        Method::PUT,
                        "Update a zone",
                        update_name_desc(),
                        action_fn!(update_zone),
                    ),
                    rest(
                        Method::DELETE,
                        "Delete a zone",
                        vec![],
                        action_fn!(delete_zone),
                    ),
                ],
            ),
            anon: None,
            admin: false,
            hidden: false,
        },
        Resource {
            path: "resourcepools/",
            params: &[],
            auth: handler(
                "ResourcePoolsHandler",
                "Manage resource pools.",
                vec![
                    rest(
                        Method::GET,
                        "List resource pools",
                        vec![],
                        action_fn!(pools),
                    ),
                    rest(
                        Method::POST,
                        "Create a resource pool",
                        name_desc(),
                        action_fn!(create_pool),
                    ),
                ],
            ),
            anon: None,
            admin: false,
            hidden: false,
        },
        Resource {
            path: "resourcepool/{id}/",
            params: &["id"],
            auth: handler(
                "ResourcePoolHandler",
                "Manage a resource pool.",
                vec![
                    rest(
                        Method::GET,
                        "Retrieve a resource pool",
                        vec![],
                        action_fn!(read_pool),
                    ),
                    rest(
                        Method::PUT,
                        "Update a resource pool",
                        update_name_desc(),
                        action_fn!(update_pool),
                    ),
                    rest(
                        Method::DELETE,
                        "Delete a resource pool",
                        vec![],
                        action_fn!(delete_pool),
                    ),
                ],
            ),
            anon: None,
            admin: false,
            hidden: false,
        },
        Resource {
            path: "tags/",
            params: &[],
            auth: handler(
                "TagsHandler",
                "Manage all tags known to MAAS.",
                vec![
                    rest(Method::GET, "List tags", vec![], action_fn!(tags)),
                    rest(
                        Method::POST,
                        "Create a new tag",
                        vec![
                            req(
                                "name",
                                "String",
                                "The new tag name. Because the name will be used in urls, it should be short.",
                            ),
                            opt(
                                "comment",
                                "String",
                                "A long form description of what the tag is meant for.",
                            ),
                            opt(
                                "definition",
                                "String",
                                "An XPATH query that is evaluated against the hardware_details stored for all nodes.",
                            ),
                            opt(
                                "kernel_opts",
                                "String",
                                "Kernel options that are passed to the kernel of tagged machines.",
                            ),
                        ],
                        action_fn!(create_tag),
                    ),
                ],
            ),
            anon: None,
            admin: false,
            hidden: false,
        },
        Resource {
            path: "tags/{name}/",
            params: &["name"],
            auth: handler(
                "TagHandler",
                "Tags are properties that can be associated with a Node and serve as criteria for selecting and allocating nodes.",
                vec![
                    rest(
                        Method::GET,
                        "Read a specific Tag",
                        vec![],
                        action_fn!(read_tag),
                    ),
                    rest(
                        Method::PUT,
                        "Update a tag",
                        vec![
                            opt("name", "String", "The new tag name."),
                            opt(
                                "comment",
                                "String",
                                "A long form description of what the tag is meant for.",
                            ),
                            opt(
                                "definition",
                                "String",
                                "An XPATH query that is evaluated against the hardware_details.",
                            ),
                            opt(
                                "kernel_opts",
                                "String",
                                "Kernel options for tagged machines.",
                            ),
                        ],
                        action_fn!(update_tag),
                    ),
                    rest(
                        Method::DELETE,
                        "Delete a specific Tag",
                        vec![],
                        action_fn!(delete_tag),
                    ),
                    op(
                        Method::GET,
                        "nodes",
                        "List nodes by tag",
                        vec![],
                        action_fn!(tagged_nodes),
                    ),
                    op(
                        Method::GET,
                        "machines",
                        "List machines by tag",
                        vec![],
                        action_fn!(tagged_machines),
                    ),
                    op(
                        Method::GET,
                        "devices",
                        "List devices by tag",
                        vec![],
                        action_fn!(tagged_devices),
                    ),
                    op(
                        Method::GET,
                        "rack_controllers",
                        "List rack controllers by tag",
                        vec![],
                        action_fn!(tagged_racks),
                    ),
                    op(
                        Method::GET,
                        "region_controllers",
                        "List region controllers by tag",
                        vec![],
                        action_fn!(tagged_regions),
                    ),
                    op(
                        Method::POST,
                        "update_nodes",
                        "Update nodes associated with this tag",
                        vec![
                            opt("add", "String", "The system_id to tag."),
                            opt("remove", "String", "The system_id to untag."),
                            opt(
                                "definition",
                                "String",
                                "If given, the definition (XPATH expression) will be validated against the current definition of the tag.",
                            ),
                        ],
                        action_fn!(update_nodes),
                    ),
                ],
            ),
            anon: None,
            admin: false,
            hidden: false,
        },
        Resource {
            path: "domains/",
            params: &[],
            auth: handler(
                "DomainsHandler",
                "Manage domains.",
                vec![rest(
                    Method::GET,
                    "List all domains",
                    vec![],
                    action_fn!(domains),
                )],
            ),
            anon: None,
            admin: false,
            hidden: false,
        },
        Resource {
            path: "domains/{id}/",
            params: &["id"],
            auth: handler(
                "DomainHandler",
                "Manage domain.",
                vec![rest(
                    Method::GET,
                    "Read domain",
                    vec![],
                    action_fn!(read_domain),
                )],
            ),
            anon: None,
            admin: false,
            hidden: false,
        },
    ]
}
