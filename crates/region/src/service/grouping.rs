//! Zones, resource pools and tags.

use maas_store::defaults::{DEFAULT_POOL_ID, DEFAULT_ZONE_ID};
use maas_store::{ResourcePool, Store, Tag, TagChanges, User, Zone};

use crate::error::{ServiceError, ServiceResult};
use crate::http::params::Params;

fn admin(user: &User) -> ServiceResult<()> {
    if user.is_superuser {
        Ok(())
    } else {
        Err(ServiceError::admin_only())
    }
}

/// Zone, pool and tag names: letters, digits, `-` and `_` (MAAS's slug rule).
fn check_name(name: &str, what: &str) -> ServiceResult<()> {
    if !name.is_empty()
        && name.len() <= 256
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(())
    } else {
        Err(ServiceError::field(
            "name",
            format!("Invalid {what} name: {name}. Use letters, digits, '-' and '_' only."),
        ))
    }
}

pub async fn zone(store: &dyn Store, name: &str) -> ServiceResult<Zone> {
    store
        .zone_by_name(name)
        .await?
        .ok_or_else(|| ServiceError::not_found("Zone"))
}

pub async fn create_zone(
    store: &dyn Store,
    caller: &User,
    params: &Params,
    now: i64,
) -> ServiceResult<Zone> {
    admin(caller)?;
    let name = params
        .get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ServiceError::field("name", "This field is required."))?;
    check_name(name, "zone")?;
    store
        .create_zone(name, params.get("description").unwrap_or(""), now)
        .await
        .map_err(|e| super::duplicate(e, "name", "Zone with this Name already exists."))
}

pub async fn update_zone(
    store: &dyn Store,
    caller: &User,
    zone: &Zone,
    params: &Params,
) -> ServiceResult<Zone> {
    admin(caller)?;
    let name = params.get("name").unwrap_or(&zone.name);
    check_name(name, "zone")?;
    if zone.id == DEFAULT_ZONE_ID && name != zone.name {
        return Err(ServiceError::bad_request(
            "This zone is the default zone, it cannot be renamed.",
        ));
    }
    store
        .update_zone(
            zone.id,
            name,
            params.get("description").unwrap_or(&zone.description),
        )
        .await
        .map_err(|e| super::duplicate(e, "name", "Zone with this Name already exists."))
}

pub async fn delete_zone(store: &dyn Store, caller: &User, zone: &Zone) -> ServiceResult<()> {
    admin(caller)?;
    if zone.id == DEFAULT_ZONE_ID {
        return Err(ServiceError::bad_request(
            "This zone is the default zone, it cannot be deleted.",
        ));
    }
    Ok(store.delete_zone(zone.id, DEFAULT_ZONE_ID).await?)
}

/// A pool by id or by name, as `resourcepool/{id}/` accepts either.
pub async fn pool(store: &dyn Store, id_or_name: &str) -> ServiceResult<ResourcePool> {
    if let Ok(id) = id_or_name.parse::<i64>()
        && let Some(pool) = store.pool_by_id(id).await?
    {
        return Ok(pool);
    }
    store
        .pool_by_name(id_or_name)
        .await?
        .ok_or_else(|| ServiceError::not_found("ResourcePool"))
}

pub async fn create_pool(
    store: &dyn Store,
    caller: &User,
    params: &Params,
    now: i64,
) -> ServiceResult<ResourcePool> {
    admin(caller)?;
    let name = params
        .get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ServiceError::field("name", "This field is required."))?;
    check_name(name, "resource pool")?;
    store
        .create_pool(name, params.get("description").unwrap_or(""), now)
        .await
        .map_err(|e| super::duplicate(e, "name", "Resource pool with this Name already exists."))
}

pub async fn update_pool(
    store: &dyn Store,
    caller: &User,
    pool: &ResourcePool,
    params: &Params,
) -> ServiceResult<ResourcePool> {
    admin(caller)?;
    let name = params.get("name").unwrap_or(&pool.name);
    check_name(name, "resource pool")?;
    store
        .update_pool(
            pool.id,
            name,
            params.get("description").unwrap_or(&pool.description),
        )
        .await
        .map_err(|e| super::duplicate(e, "name", "Resource pool with this Name already exists."))
}

pub async fn delete_pool(
    store: &dyn Store,
    caller: &User,
    pool: &ResourcePool,
) -> ServiceResult<()> {
    admin(caller)?;
    if pool.id == DEFAULT_POOL_ID {
        return Err(ServiceError::bad_request(
            "This is the default pool, it cannot be deleted.",
        ));
    }
    let machines = store.pool_node_count(pool.id).await?;
    if machines > 0 {
        return Err(ServiceError::bad_request(format!(
            "Pool {} has {machines} machine(s) in it; move them to another pool first.",
            pool.name
        )));
    }
    Ok(store.delete_pool(pool.id).await?)
}

pub async fn tag(store: &dyn Store, name: &str) -> ServiceResult<Tag> {
    store
        .tag_by_name(name)
        .await?
        .ok_or_else(|| ServiceError::not_found("Tag"))
}

fn kernel_opts(params: &Params, current: Option<String>) -> Option<String> {
    match params.get("kernel_opts") {
        Some("") => None,
        Some(opts) => Some(opts.to_owned()),
        None => current,
    }
}

pub async fn create_tag(store: &dyn Store, caller: &User, params: &Params) -> ServiceResult<Tag> {
    admin(caller)?;
    let name = params
        .get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ServiceError::field("name", "This field is required."))?;
    check_name(name, "tag")?;
    let tag = Tag {
        id: 0,
        name: name.to_owned(),
        definition: params.get("definition").unwrap_or("").to_owned(),
        comment: params.get("comment").unwrap_or("").to_owned(),
        kernel_opts: kernel_opts(params, None),
    };
    store
        .create_tag(tag)
        .await
        .map_err(|e| super::duplicate(e, "name", "Tag with this Name already exists."))
}

pub async fn update_tag(
    store: &dyn Store,
    caller: &User,
    tag: Tag,
    params: &Params,
) -> ServiceResult<Tag> {
    admin(caller)?;
    let name = params.get("name").unwrap_or(&tag.name).to_owned();
    check_name(&name, "tag")?;
    let updated = Tag {
        id: tag.id,
        name,
        definition: params
            .get("definition")
            .map(str::to_owned)
            .unwrap_or(tag.definition),
        comment: params
            .get("comment")
            .map(str::to_owned)
            .unwrap_or(tag.comment),
        kernel_opts: kernel_opts(params, tag.kernel_opts),
    };
    store
        .update_tag(tag.id, updated)
        .await
        .map_err(|e| super::duplicate(e, "name", "Tag with this Name already exists."))
}

pub async fn delete_tag(store: &dyn Store, caller: &User, tag: &Tag) -> ServiceResult<()> {
    admin(caller)?;
    Ok(store.delete_tag(tag.id).await?)
}

/// `update_nodes`: adds and removes the tag by system_id. A `definition`
/// parameter must equal the tag's own, so a stale caller can't clobber a
/// changed definition (409 otherwise, as MAAS answers).
pub async fn update_nodes(
    store: &dyn Store,
    caller: &User,
    tag: &Tag,
    params: &Params,
) -> ServiceResult<TagChanges> {
    admin(caller)?;
    if let Some(definition) = params.get("definition")
        && definition != tag.definition
    {
        return Err(ServiceError::conflict(format!(
            "Definition supplied '{definition}' doesn't match current definition '{}'",
            tag.definition
        )));
    }
    let add: Vec<String> = params.all("add").iter().map(|s| (*s).to_owned()).collect();
    let remove: Vec<String> = params
        .all("remove")
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    Ok(store.tag_nodes(tag.id, &add, &remove).await?)
}
