//! `events/?op=query`: the event log, newest first, with paging links.

use std::sync::Arc;

use axum::http::Method;
use axum::response::Response;
use maas_api_types::EventPage;
use maas_store::{EventLevel, EventQuery};

use super::{ApiRequest, Handler, Resource, op, opt, render};
use crate::action_fn;
use crate::error::{ServiceError, ServiceResult};
use crate::http::params::Params;
use crate::http::response::ok_json;
use crate::region::Region;

const MAX_LIMIT: i64 = 1000;
const DEFAULT_LIMIT: i64 = 100;

fn parse_id(params: &Params, name: &str) -> ServiceResult<Option<i64>> {
    match params.get(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
            ServiceError::bad_request(format!("Invalid {name}: '{v}' is not an event id."))
        }),
    }
}

/// The query string of a paging link: the caller's filters plus `extra`.
fn paging_uri(params: &Params, extra: (&str, i64), limit: i64) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    serializer.append_pair("op", "query");
    for (name, value) in params.pairs() {
        if ["op", "before", "after", "limit"].contains(&name.as_str()) || name.starts_with("oauth_")
        {
            continue;
        }
        serializer.append_pair(name, value);
    }
    serializer.append_pair("limit", &limit.to_string());
    serializer.append_pair(extra.0, &extra.1.to_string());
    format!("/MAAS/api/2.0/events/?{}", serializer.finish())
}

async fn query(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let user = request.user()?;
    let p = &request.params;
    let level = match p.get("level").filter(|l| !l.is_empty()) {
        None => EventLevel::Info,
        Some(name) => EventLevel::from_name(name).ok_or_else(|| {
            ServiceError::field(
                "level",
                format!("Select a valid choice. {name} is not one of the available choices."),
            )
        })?,
    };
    let limit = match p.get("limit").filter(|l| !l.is_empty()) {
        None => DEFAULT_LIMIT,
        Some(text) => {
            let n: i64 = text.parse().map_err(|_| {
                ServiceError::bad_request(format!("Invalid limit: '{text}' is not a number."))
            })?;
            if n > MAX_LIMIT {
                return Err(ServiceError::bad_request(format!(
                    "Requested number of events {n} is greater than limit: {MAX_LIMIT}"
                )));
            }
            n.max(1)
        }
    };
    let before = parse_id(p, "before")?;
    let after = parse_id(p, "after")?;
    if before.is_some() && after.is_some() {
        return Err(ServiceError::bad_request(
            "There is undetermined behaviour when both 'after' and 'before' are specified.",
        ));
    }
    let query = EventQuery {
        hostnames: p.all("hostname").iter().map(|s| (*s).to_owned()).collect(),
        mac_addresses: p
            .all("mac_address")
            .iter()
            .map(|s| (*s).to_lowercase())
            .collect(),
        system_ids: p.all("id").iter().map(|s| (*s).to_owned()).collect(),
        zone: p.get("zone").filter(|z| !z.is_empty()).map(str::to_owned),
        agent_name: p
            .get("agent_name")
            .filter(|a| !a.is_empty())
            .map(str::to_owned),
        owner: p.get("owner").filter(|o| !o.is_empty()).map(str::to_owned),
        level: Some(level),
        before,
        after,
        limit,
        visible_to: (!user.is_superuser).then_some(user.id),
    };
    let events = region.store.events(&query).await?;
    let newest = events.first().map(|e| e.id).or(after).unwrap_or(0);
    let oldest = events.last().map(|e| e.id);
    // A short page that isn't paging forward has reached the oldest event.
    let nothing_older = events.is_empty() || (after.is_none() && (events.len() as i64) < limit);
    let page = EventPage {
        count: events.len(),
        next_uri: paging_uri(p, ("after", newest), limit),
        prev_uri: match oldest {
            Some(id) if !nothing_older => Some(paging_uri(p, ("before", id), limit)),
            _ => None,
        },
        events: events.iter().map(render::event).collect(),
    };
    Ok(ok_json(&page))
}

pub fn resources() -> Vec<Resource> {
    vec![Resource {
        path: "events/",
        params: &[],
        auth: Some(Handler {
            name: "EventsHandler",
            doc: "Retrieve filtered node events.",
            actions: vec![op(
                Method::GET,
                "query",
                "List node events",
                vec![
                    opt(
                        "hostname",
                        "String",
                        "An optional hostname. Only events relating to the node with the matching hostname will be returned. This can be specified multiple times to get events relating to more than one node.",
                    ),
                    opt(
                        "mac_address",
                        "String",
                        "An optional list of MAC addresses. Only nodes with matching MAC addresses will be returned.",
                    ),
                    opt(
                        "id",
                        "String",
                        "An optional list of system ids. Only nodes with matching system ids will be returned.",
                    ),
                    opt(
                        "zone",
                        "String",
                        "An optional name for a physical zone. Only nodes in the zone will be returned.",
                    ),
                    opt(
                        "agent_name",
                        "String",
                        "An optional agent name. Only nodes with matching agent names will be returned.",
                    ),
                    opt(
                        "level",
                        "String",
                        "Desired minimum log level of returned events. Returns this level of events and greater. Choose from: AUDIT, CRITICAL, DEBUG, ERROR, INFO, WARNING. The default is INFO.",
                    ),
                    opt(
                        "limit",
                        "Int",
                        "Optional number of events to return. Default 100. Maximum: 1000.",
                    ),
                    opt(
                        "before",
                        "Int",
                        "Optional event id. Defines where to start returning older events.",
                    ),
                    opt(
                        "after",
                        "Int",
                        "Optional event id. Defines where to start returning newer events.",
                    ),
                    opt(
                        "owner",
                        "String",
                        "If specified, filters the list to show only events owned by the specified username.",
                    ),
                ],
                action_fn!(query),
            )],
        }),
        anon: None,
        admin: false,
        hidden: false,
    }]
}
