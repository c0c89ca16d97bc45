//! The other pages: login, errors, the dashboard with fleet counts and
//! recent events, controllers, images, networking, zones, pools, tags,
//! users and settings.

use axum::http::StatusCode;
use axum::response::Response;
use maas_domain::{NodeStatus, NodeType};
use maas_store::{EventLevel, EventQuery, NodeFilter, NodeGroup, NodeQuery, User};
use maud::{Markup, html};

use super::layout::{self, Errors, Nav, field_errors, form_tokens, other_errors, page};
use super::{Ctx, Flash, PageResult, html, redirect};
use crate::error::ServiceError;
use crate::http::params::Params;
use crate::service::{config, grouping, network, users};

// ---------------------------------------------------------------------------
// Login and errors
// ---------------------------------------------------------------------------

pub fn login_page(
    status: StatusCode,
    next: &str,
    username: &str,
    errors: &Errors,
    no_users: bool,
) -> Response {
    let body = html! {
        section.login {
            h1 { "Log in to MAAS" }
            @if no_users {
                p.form-error { "No users exist yet. Create an administrator with " code { "maas createadmin" } "." }
            }
            form.stacked method="post" action="/MAAS/accounts/login/" {
                input type="hidden" name="next" value=(next);
                (other_errors(errors, &["username", "password"]))
                (layout::text_field("Username", "username", username, errors, "text"))
                label.field {
                    span { "Password" }
                    input type="password" name="password" autocomplete="current-password" aria-invalid[errors.contains_key("password")];
                    (field_errors(errors, "password"))
                }
                button type="submit" { "Log in" }
            }
        }
    };
    html(status, layout::shell(None, None, "Log in", Nav::None, body))
}

/// A page for a refused or failed request, with the API's status.
pub fn error_page(user: Option<&User>, error: &ServiceError) -> Response {
    let (status, title) = match error {
        ServiceError::Validation(_) | ServiceError::BadRequest(_) => {
            (StatusCode::BAD_REQUEST, "That can't be done")
        }
        ServiceError::Unauthorized(_) => {
            return super::session::see_other("/MAAS/accounts/login/");
        }
        ServiceError::Forbidden(_) => (StatusCode::FORBIDDEN, "Permission denied"),
        ServiceError::NotFound(_)
        | ServiceError::Store(maas_store::StoreError::NotFound { .. }) => {
            (StatusCode::NOT_FOUND, "Not found")
        }
        ServiceError::Conflict(_)
        | ServiceError::Store(maas_store::StoreError::Conflict { .. }) => {
            (StatusCode::CONFLICT, "That can't be done now")
        }
        ServiceError::Gone(_) => (StatusCode::GONE, "Gone"),
        ServiceError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable"),
        ServiceError::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, "Not allowed"),
        ServiceError::Store(inner) => {
            tracing::error!(error = %inner, source = ?std::error::Error::source(inner), "store failure");
            (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong")
        }
    };
    let message = crate::service::machine_actions::reason(error);
    let body = html! {
        section.error-page {
            h1 { (title) }
            @if !message.is_empty() { p { (message) } }
            p { a href="/MAAS/r/" { "Back to the dashboard" } }
            @if let Some(user) = user { p.muted { "Logged in as " (user.username) "." } }
        }
    };
    html(status, layout::shell(None, None, title, Nav::None, body))
}

fn refusal(back: &str, error: &ServiceError) -> Response {
    redirect(
        back,
        Some(Flash::error(crate::service::machine_actions::reason(error))),
    )
}

/// What became of a form's service call.
enum Outcome {
    Done,
    /// Field errors: show the form again with them.
    Invalid(Errors),
    /// A refusal (403, 409, …) already turned into a redirect back with a
    /// message, or a store failure into the error page.
    Answer(Response),
}

fn settle(back: &str, result: Result<(), ServiceError>) -> Outcome {
    match result {
        Ok(()) => Outcome::Done,
        Err(ServiceError::Validation(errors)) => Outcome::Invalid(errors),
        Err(error @ ServiceError::Store(maas_store::StoreError::Backend(_))) => {
            Outcome::Answer(error_page(None, &error))
        }
        Err(error) => Outcome::Answer(refusal(back, &error)),
    }
}

// ---------------------------------------------------------------------------
// Dashboard
// ---------------------------------------------------------------------------

fn visible_machines(ctx: &Ctx) -> NodeFilter {
    NodeFilter {
        node_types: vec![NodeType::Machine],
        visible_to: (!ctx.admin()).then_some(ctx.user.id),
        ..NodeFilter::default()
    }
}

async fn fleet_counts(ctx: &Ctx) -> Result<Markup, ServiceError> {
    let query = NodeQuery {
        filter: visible_machines(ctx),
        ..NodeQuery::default()
    };
    let counts = ctx
        .store()
        .node_group_counts(&query, NodeGroup::Status)
        .await?;
    let total: i64 = counts.iter().map(|c| c.count).sum();
    let statuses: Vec<(NodeStatus, i64)> = counts
        .iter()
        .filter_map(|c| {
            let status = c.key.as_deref()?.parse::<i64>().ok()?;
            Some((NodeStatus::from_number(status)?, c.count))
        })
        .collect();
    Ok(html! {
        section #fleet-counts.fleet data-live-counts {
            div.card.total {
                h2 { "Machines" }
                p.big { a href="/MAAS/r/machines" { (total) } }
            }
            @for (status, count) in &statuses {
                div.card {
                    h2 { span.badge.(layout::status_class(*status)) { (status.label()) } }
                    p.big {
                        a href=(format!("/MAAS/r/machines?q=status%3A{}", status.filter_name())) { (count) }
                    }
                }
            }
        }
    })
}

/// `GET /MAAS/r/`: fleet counts by status and recent events;
/// `?fragment=counts` is the counts alone, for live updates.
pub async fn home(ctx: &Ctx) -> PageResult {
    let counts = fleet_counts(ctx).await?;
    if ctx.query.get("fragment") == Some("counts") {
        return Ok(html(StatusCode::OK, counts));
    }
    let events = ctx
        .store()
        .events(&EventQuery {
            level: Some(EventLevel::Info),
            limit: 20,
            visible_to: (!ctx.admin()).then_some(ctx.user.id),
            ..EventQuery::default()
        })
        .await?;
    let name = config::get(ctx.store(), "maas_name").await?;
    let body = html! {
        h1 { (name.as_str().unwrap_or("maas")) }
        (counts)
        h2 { "Recent events" }
        @if events.is_empty() { p.muted { "No events yet." } }
        @else {
            table.plain.events {
                thead { tr { th { "Time" } th { "Machine" } th { "Event" } th { "Details" } } }
                tbody {
                    @for event in &events {
                        tr {
                            td.nowrap { (layout::time(event.created)) }
                            td {
                                @if let Some(system_id) = &event.system_id {
                                    a href=(format!("/MAAS/r/machine/{system_id}")) { (event.hostname) }
                                } @else { (event.hostname) }
                            }
                            td { (event.event_type) }
                            td { (event.description) }
                        }
                    }
                }
            }
        }
    };
    Ok(html(
        StatusCode::OK,
        page(ctx, "Dashboard", Nav::Dashboard, body),
    ))
}

// ---------------------------------------------------------------------------
// Controllers and images
// ---------------------------------------------------------------------------

fn region_hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

pub async fn controllers(ctx: &Ctx) -> PageResult {
    let store = ctx.store();
    let database = match store.ping().await {
        Ok(()) => ("running", "st-ready"),
        Err(error) => {
            tracing::warn!(%error, "database ping failed");
            ("failing", "st-failed")
        }
    };
    let racks = store
        .nodes(
            &NodeFilter {
                node_types: vec![
                    NodeType::RackController,
                    NodeType::RegionController,
                    NodeType::RegionAndRackController,
                ],
                ..NodeFilter::default()
            },
            0,
            500,
        )
        .await?;
    let body = html! {
        h1 { "Controllers" }
        h2 { "Region controller" }
        table.plain {
            thead { tr { th { "Name" } th { "Version" } th { "Service" } th { "Health" } } }
            tbody {
                tr {
                    td rowspan="3" { (region_hostname()) div.sub { (ctx.region.config.maas_url) } }
                    td rowspan="3" { (crate::api::users::MAAS_VERSION) }
                    td { "REST API and dashboard" } td { span.badge.st-ready { "running" } }
                }
                tr { td { "Database (" (store.backend_name()) ")" } td { span.badge.(database.1) { (database.0) } } }
                tr { td { "Status timers" } td { span.badge.st-ready { "running" } } }
            }
        }
        h2 { "Rack controllers" }
        @if racks.is_empty() {
            p.muted { "No rack controller has registered with this region." }
        } @else {
            table.plain {
                thead { tr { th { "Name" } th { "Type" } th { "System id" } th { "Power" } } }
                tbody {
                    @for rack in &racks {
                        tr { td { (rack.hostname) } td { (rack.node_type.label()) } td.mono { (rack.system_id) } td { (rack.power_state.as_str()) } }
                    }
                }
            }
        }
    };
    Ok(html(
        StatusCode::OK,
        page(ctx, "Controllers", Nav::Controllers, body),
    ))
}

pub async fn images(ctx: &Ctx) -> PageResult {
    let store = ctx.store();
    let mut settings = Vec::new();
    for key in [
        "boot_images_auto_import",
        "default_osystem",
        "default_distro_series",
        "commissioning_distro_series",
    ] {
        settings.push((key, config::get(store, key).await?));
    }
    let body = html! {
        h1 { "Images" }
        p.muted {
            "Boot sources, selections, import progress and custom uploads appear here once the region serves boot resources; "
            "until then images are managed with the "
            code { "boot-resources" } " and " code { "boot-sources" } " API."
        }
        h2 { "Image settings" }
        dl.details {
            @for (key, value) in &settings {
                dt { (key.replace('_', " ")) }
                dd { (value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string())) }
            }
        }
    };
    Ok(html(StatusCode::OK, page(ctx, "Images", Nav::Images, body)))
}

// ---------------------------------------------------------------------------
// Networking
// ---------------------------------------------------------------------------

/// A networking form that failed validation: which one, what was sent, why.
pub struct NetRejected {
    form: String,
    values: Params,
    errors: Errors,
}

pub async fn networks(ctx: &Ctx, rejected: Option<NetRejected>) -> PageResult {
    let store = ctx.store();
    let catalog = store.network_catalog().await?;
    let ranges = store.ip_ranges().await?;
    let admin = ctx.admin();
    let empty = Errors::new();
    let no_values = Params::new();
    let errors_for = |form: &str| -> (&Errors, &Params) {
        match &rejected {
            Some(r) if r.form == form => (&r.errors, &r.values),
            _ => (&empty, &no_values),
        }
    };
    let fabric_name = |id: i64| {
        catalog
            .fabrics
            .iter()
            .find(|f| f.id == id)
            .map(|f| f.name.clone())
            .unwrap_or_default()
    };
    let vlan_label = |id: i64| {
        catalog
            .vlans
            .iter()
            .find(|v| v.id == id)
            .map(|v| {
                let vid = if v.vid == 0 {
                    "untagged".to_owned()
                } else {
                    format!("VLAN {}", v.vid)
                };
                format!("{} · {vid}", fabric_name(v.fabric_id))
            })
            .unwrap_or_default()
    };
    let space_name = |id: Option<i64>| {
        id.and_then(|id| catalog.spaces.iter().find(|s| s.id == id))
            .map(|s| s.name.clone())
            .unwrap_or_else(|| "—".to_owned())
    };
    let vlan_choices: Vec<(String, String)> = catalog
        .vlans
        .iter()
        .map(|v| (v.id.to_string(), vlan_label(v.id)))
        .collect();
    let subnet_choices: Vec<(String, String)> = catalog
        .subnets
        .iter()
        .map(|s| (s.id.to_string(), s.cidr.clone()))
        .collect();
    let (subnet_errors, subnet_values) = errors_for("subnet");
    let (range_errors, range_values) = errors_for("iprange");
    let body = html! {
        h1 { "Networking" }
        h2 { "Fabrics and VLANs" }
        table.plain {
            thead { tr { th { "Fabric" } th { "VLAN" } th { "MTU" } th { "Space" } th { "Subnets" } th { "DHCP" } } }
            tbody {
                @for vlan in &catalog.vlans {
                    @let (vlan_errors, _) = errors_for(&format!("vlan-{}", vlan.id));
                    tr data-vlan-id=(vlan.id) {
                        td { (fabric_name(vlan.fabric_id)) }
                        td { @if vlan.vid == 0 { "untagged" } @else { (vlan.vid) }
                             @if let Some(name) = vlan.name.as_ref().filter(|n| !n.is_empty()) { " (" (name) ")" } }
                        td.num { (vlan.mtu) }
                        td { (space_name(vlan.space_id)) }
                        td { (catalog.subnets.iter().filter(|s| s.vlan_id == vlan.id).map(|s| s.cidr.as_str()).collect::<Vec<_>>().join(", ")) }
                        td {
                            span.badge.st-ready[vlan.dhcp_on] { @if vlan.dhcp_on { "on" } @else { "off" } }
                            @if admin {
                                " "
                                form.inline method="post" action=(format!("/MAAS/r/networks/vlan/{}", vlan.id)) {
                                    (form_tokens(ctx))
                                    input type="hidden" name="dhcp_on" value=(if vlan.dhcp_on { "false" } else { "true" });
                                    button type="submit" { @if vlan.dhcp_on { "Turn DHCP off" } @else { "Turn DHCP on" } }
                                }
                            }
                            (field_errors(vlan_errors, "dhcp_on"))
                            (other_errors(vlan_errors, &["dhcp_on"]))
                        }
                    }
                }
            }
        }
        h2 { "Subnets" }
        table.plain {
            thead { tr { th { "CIDR" } th { "Name" } th { "VLAN" } th { "Gateway" } th { "DNS" } th { "Managed" } th { "IP ranges" } } }
            tbody {
                @for subnet in &catalog.subnets {
                    tr {
                        td.mono { (subnet.cidr) }
                        td { (subnet.name) }
                        td { (vlan_label(subnet.vlan_id)) }
                        td.mono { (subnet.gateway_ip.as_deref().unwrap_or("")) }
                        td.mono { (subnet.dns_servers.join(", ")) }
                        td { @if subnet.managed { "yes" } @else { "no" } }
                        td {
                            @for range in ranges.iter().filter(|r| r.subnet_id == subnet.id) {
                                div { (range.kind) " " span.mono { (range.start_ip) "–" (range.end_ip) } @if !range.comment.is_empty() { " (" (range.comment) ")" } }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Spaces" }
        @if catalog.spaces.is_empty() { p.muted { "No spaces." } }
        ul { @for space in &catalog.spaces { li { (space.name) @if !space.description.is_empty() { " — " (space.description) } } } }
        @if admin {
            div.forms {
                form.stacked method="post" action="/MAAS/r/networks/subnets" {
                    h2 { "Add subnet" }
                    (form_tokens(ctx))
                    (other_errors(subnet_errors, &["cidr", "name", "vlan", "gateway_ip"]))
                    (layout::text_field("CIDR", "cidr", subnet_values.get("cidr").unwrap_or(""), subnet_errors, "text"))
                    (layout::text_field("Name (optional)", "name", subnet_values.get("name").unwrap_or(""), subnet_errors, "text"))
                    (layout::select_field("VLAN", "vlan", &vlan_choices, subnet_values.get("vlan").unwrap_or(""), subnet_errors))
                    (layout::text_field("Gateway IP (optional)", "gateway_ip", subnet_values.get("gateway_ip").unwrap_or(""), subnet_errors, "text"))
                    button type="submit" { "Add subnet" }
                }
                form.stacked method="post" action="/MAAS/r/networks/ipranges" {
                    h2 { "Add IP range" }
                    (form_tokens(ctx))
                    (other_errors(range_errors, &["subnet", "type", "start_ip", "end_ip", "comment"]))
                    (layout::select_field("Subnet", "subnet", &subnet_choices, range_values.get("subnet").unwrap_or(""), range_errors))
                    (layout::select_field("Type", "type", &[("dynamic".into(), "Dynamic".into()), ("reserved".into(), "Reserved".into())], range_values.get("type").unwrap_or("dynamic"), range_errors))
                    (layout::text_field("Start IP", "start_ip", range_values.get("start_ip").unwrap_or(""), range_errors, "text"))
                    (layout::text_field("End IP", "end_ip", range_values.get("end_ip").unwrap_or(""), range_errors, "text"))
                    (layout::text_field("Comment", "comment", range_values.get("comment").unwrap_or(""), range_errors, "text"))
                    button type="submit" { "Add range" }
                }
            }
        }
    };
    let status = if rejected.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(html(status, page(ctx, "Networking", Nav::Networks, body)))
}

async fn network_form(
    ctx: &Ctx,
    form: String,
    result: Result<(), ServiceError>,
    done: &str,
) -> PageResult {
    let back = "/MAAS/r/networks";
    match settle(back, result) {
        Outcome::Done => Ok(redirect(back, Some(Flash::ok(done)))),
        Outcome::Invalid(errors) => {
            networks(
                ctx,
                Some(NetRejected {
                    form,
                    values: ctx.form.clone(),
                    errors,
                }),
            )
            .await
        }
        Outcome::Answer(response) => Ok(response),
    }
}

/// `POST /MAAS/r/networks/vlan/{id}`: DHCP on or off, through the API's
/// VLAN update (which refuses DHCP without a rack or a dynamic range).
pub async fn update_vlan(ctx: &Ctx, id: &str) -> PageResult {
    let catalog = ctx.store().network_catalog().await?;
    let vlan = id
        .parse::<i64>()
        .ok()
        .and_then(|id| catalog.vlans.into_iter().find(|v| v.id == id))
        .ok_or_else(|| ServiceError::not_found("VLAN"))?;
    let mut params = Params::new();
    params.push("dhcp_on", ctx.form.get("dhcp_on").unwrap_or("false"));
    let result = network::update_vlan(ctx.store(), &ctx.user, &vlan, &params)
        .await
        .map(|_| ());
    network_form(ctx, format!("vlan-{}", vlan.id), result, "VLAN updated.").await
}

fn pick(form: &Params, fields: &[&str]) -> Params {
    let mut params = Params::new();
    for field in fields {
        if let Some(value) = form.get(field).filter(|v| !v.is_empty()) {
            params.push(*field, value);
        }
    }
    params
}

pub async fn create_subnet(ctx: &Ctx) -> PageResult {
    let params = pick(&ctx.form, &["cidr", "name", "vlan", "gateway_ip"]);
    let result = network::create_subnet(ctx.store(), &ctx.user, &params, ctx.region.now())
        .await
        .map(|_| ());
    network_form(ctx, "subnet".into(), result, "Subnet added.").await
}

pub async fn create_ip_range(ctx: &Ctx) -> PageResult {
    let params = pick(
        &ctx.form,
        &["subnet", "type", "start_ip", "end_ip", "comment"],
    );
    let result = network::create_ip_range(ctx.store(), &ctx.user, &params, ctx.region.now())
        .await
        .map(|_| ());
    network_form(ctx, "iprange".into(), result, "IP range added.").await
}

// ---------------------------------------------------------------------------
// Zones, pools, tags
// ---------------------------------------------------------------------------

/// Machines per zone or pool, from one grouped count.
async fn counts_by(
    ctx: &Ctx,
    group: NodeGroup,
) -> Result<Vec<(Option<String>, i64)>, ServiceError> {
    let query = NodeQuery {
        filter: visible_machines(ctx),
        ..NodeQuery::default()
    };
    Ok(ctx
        .store()
        .node_group_counts(&query, group)
        .await?
        .into_iter()
        .map(|c| (c.key, c.count))
        .collect())
}

fn count_of(counts: &[(Option<String>, i64)], name: &str) -> i64 {
    counts
        .iter()
        .find(|(key, _)| key.as_deref() == Some(name))
        .map(|(_, count)| *count)
        .unwrap_or(0)
}

/// The create form shared by zones, pools and tags.
fn name_form(
    ctx: &Ctx,
    action: &str,
    what: &str,
    values: &Params,
    errors: &Errors,
    extra: Markup,
) -> Markup {
    html! {
        form.stacked method="post" action=(action) {
            h2 { "Add " (what) }
            (form_tokens(ctx))
            (other_errors(errors, &["name", "description", "comment", "definition"]))
            (layout::text_field("Name", "name", values.get("name").unwrap_or(""), errors, "text"))
            (extra)
            button type="submit" { "Add " (what) }
        }
    }
}

fn delete_button(ctx: &Ctx, action: &str, name: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (form_tokens(ctx))
            button.danger.small type="submit" data-confirm=(format!("Delete {name}?")) { "Delete" }
        }
    }
}

fn machines_link(key: &str, name: &str, count: i64) -> Markup {
    html! {
        a href=(format!("/MAAS/r/machines?q={}%3A{}", key, percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC))) { (count) }
    }
}

pub async fn zones(ctx: &Ctx) -> PageResult {
    let back = "/MAAS/r/zones";
    let mut errors = Errors::new();
    if ctx.method == axum::http::Method::POST {
        let params = pick(&ctx.form, &["name", "description"]);
        let result = grouping::create_zone(ctx.store(), &ctx.user, &params, ctx.region.now())
            .await
            .map(|_| ());
        match settle(back, result) {
            Outcome::Done => return Ok(redirect(back, Some(Flash::ok("Zone added.")))),
            Outcome::Invalid(found) => errors = found,
            Outcome::Answer(response) => return Ok(response),
        }
    }
    let zones = ctx.store().zones().await?;
    let counts = counts_by(ctx, NodeGroup::Zone).await?;
    let values = if errors.is_empty() {
        Params::new()
    } else {
        ctx.form.clone()
    };
    let body = html! {
        h1 { "Zones" }
        table.plain {
            thead { tr { th { "Name" } th { "Description" } th { "Machines" } @if ctx.admin() { th {} } } }
            tbody {
                @for zone in &zones {
                    tr {
                        td { (zone.name) }
                        td { (zone.description) }
                        td.num { (machines_link("zone", &zone.name, count_of(&counts, &zone.name))) }
                        @if ctx.admin() { td { @if zone.id != maas_store::defaults::DEFAULT_ZONE_ID {
                            (delete_button(ctx, &format!("/MAAS/r/zones/{}/delete", zone.name), &zone.name)) } } }
                    }
                }
            }
        }
        @if ctx.admin() {
            (name_form(ctx, back, "zone", &values, &errors,
                layout::text_field("Description", "description", values.get("description").unwrap_or(""), &errors, "text")))
        }
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(html(status, page(ctx, "Zones", Nav::Zones, body)))
}

pub async fn delete_zone(ctx: &Ctx, name: &str) -> PageResult {
    let back = "/MAAS/r/zones";
    let zone = grouping::zone(ctx.store(), name).await?;
    match grouping::delete_zone(ctx.store(), &ctx.user, &zone).await {
        Ok(()) => Ok(redirect(
            back,
            Some(Flash::ok(format!("Zone {name} deleted."))),
        )),
        Err(error) => Ok(refusal(back, &error)),
    }
}

pub async fn pools(ctx: &Ctx) -> PageResult {
    let back = "/MAAS/r/pools";
    let mut errors = Errors::new();
    if ctx.method == axum::http::Method::POST {
        let params = pick(&ctx.form, &["name", "description"]);
        let result = grouping::create_pool(ctx.store(), &ctx.user, &params, ctx.region.now())
            .await
            .map(|_| ());
        match settle(back, result) {
            Outcome::Done => return Ok(redirect(back, Some(Flash::ok("Resource pool added.")))),
            Outcome::Invalid(found) => errors = found,
            Outcome::Answer(response) => return Ok(response),
        }
    }
    let pools = ctx.store().pools().await?;
    let counts = counts_by(ctx, NodeGroup::Pool).await?;
    let values = if errors.is_empty() {
        Params::new()
    } else {
        ctx.form.clone()
    };
    let body = html! {
        h1 { "Resource pools" }
        table.plain {
            thead { tr { th { "Name" } th { "Description" } th { "Machines" } @if ctx.admin() { th {} } } }
            tbody {
                @for pool in &pools {
                    tr {
                        td { (pool.name) }
                        td { (pool.description) }
                        td.num { (machines_link("pool", &pool.name, count_of(&counts, &pool.name))) }
                        @if ctx.admin() { td { @if pool.id != maas_store::defaults::DEFAULT_POOL_ID {
                            (delete_button(ctx, &format!("/MAAS/r/pools/{}/delete", pool.id), &pool.name)) } } }
                    }
                }
            }
        }
        @if ctx.admin() {
            (name_form(ctx, back, "resource pool", &values, &errors,
                layout::text_field("Description", "description", values.get("description").unwrap_or(""), &errors, "text")))
        }
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(html(status, page(ctx, "Resource pools", Nav::Pools, body)))
}

pub async fn delete_pool(ctx: &Ctx, id: &str) -> PageResult {
    let back = "/MAAS/r/pools";
    let pool = grouping::pool(ctx.store(), id).await?;
    match grouping::delete_pool(ctx.store(), &ctx.user, &pool).await {
        Ok(()) => Ok(redirect(
            back,
            Some(Flash::ok(format!("Resource pool {} deleted.", pool.name))),
        )),
        Err(error) => Ok(refusal(back, &error)),
    }
}

pub async fn tags(ctx: &Ctx) -> PageResult {
    let back = "/MAAS/r/tags";
    let mut errors = Errors::new();
    if ctx.method == axum::http::Method::POST {
        let params = pick(&ctx.form, &["name", "comment", "definition", "kernel_opts"]);
        let result = grouping::create_tag(ctx.store(), &ctx.user, &params)
            .await
            .map(|_| ());
        match settle(back, result) {
            Outcome::Done => return Ok(redirect(back, Some(Flash::ok("Tag added.")))),
            Outcome::Invalid(found) => errors = found,
            Outcome::Answer(response) => return Ok(response),
        }
    }
    let tags = ctx.store().tags().await?;
    let mut counts = Vec::with_capacity(tags.len());
    for tag in &tags {
        let query = NodeQuery {
            filter: NodeFilter {
                tags: vec![tag.name.clone()],
                ..visible_machines(ctx)
            },
            ..NodeQuery::default()
        };
        counts.push(ctx.store().node_count(&query).await?);
    }
    let values = if errors.is_empty() {
        Params::new()
    } else {
        ctx.form.clone()
    };
    let body = html! {
        h1 { "Tags" }
        table.plain {
            thead { tr { th { "Name" } th { "Comment" } th { "Definition" } th { "Kernel options" } th { "Machines" } @if ctx.admin() { th {} } } }
            tbody {
                @for (tag, count) in tags.iter().zip(&counts) {
                    tr {
                        td { (tag.name) }
                        td { (tag.comment) }
                        td.mono { (tag.definition) }
                        td.mono { (tag.kernel_opts.as_deref().unwrap_or("")) }
                        td.num { (machines_link("tags", &tag.name, *count)) }
                        @if ctx.admin() { td { (delete_button(ctx, &format!("/MAAS/r/tags/{}/delete", tag.name), &tag.name)) } }
                    }
                }
            }
        }
        @if ctx.admin() {
            (name_form(ctx, back, "tag", &values, &errors, html! {
                (layout::text_field("Comment", "comment", values.get("comment").unwrap_or(""), &errors, "text"))
                (layout::text_field("Kernel options", "kernel_opts", values.get("kernel_opts").unwrap_or(""), &errors, "text"))
            }))
        }
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(html(status, page(ctx, "Tags", Nav::Tags, body)))
}

pub async fn delete_tag(ctx: &Ctx, name: &str) -> PageResult {
    let back = "/MAAS/r/tags";
    let tag = grouping::tag(ctx.store(), name).await?;
    match grouping::delete_tag(ctx.store(), &ctx.user, &tag).await {
        Ok(()) => Ok(redirect(
            back,
            Some(Flash::ok(format!("Tag {name} deleted."))),
        )),
        Err(error) => Ok(refusal(back, &error)),
    }
}

// ---------------------------------------------------------------------------
// Users and settings
// ---------------------------------------------------------------------------

pub async fn users(ctx: &Ctx) -> PageResult {
    let back = "/MAAS/r/users";
    let mut errors = Errors::new();
    if ctx.method == axum::http::Method::POST {
        let result = users::create_from_form(ctx.store(), &ctx.user, &ctx.form, ctx.region.now())
            .await
            .map(|_| ());
        match settle(back, result) {
            Outcome::Done => return Ok(redirect(back, Some(Flash::ok("User added.")))),
            Outcome::Invalid(found) => errors = found,
            Outcome::Answer(response) => return Ok(response),
        }
    }
    let all = ctx.store().users().await?;
    let values = if errors.is_empty() {
        Params::new()
    } else {
        ctx.form.clone()
    };
    let body = html! {
        h1 { "Users" }
        table.plain {
            thead { tr { th { "Username" } th { "Email" } th { "Role" } th { "Last login" } @if ctx.admin() { th {} } } }
            tbody {
                @for user in &all {
                    tr {
                        td { (user.username) }
                        td { (user.email) }
                        td { @if user.is_superuser { "Administrator" } @else { "User" } }
                        td.nowrap { @if let Some(at) = user.last_login { (layout::time(at)) } @else { span.muted { "never" } } }
                        @if ctx.admin() { td { @if user.id != ctx.user.id {
                            (delete_button(ctx, &format!("/MAAS/r/users/{}/delete", user.username), &user.username)) } } }
                    }
                }
            }
        }
        @if ctx.admin() {
            form.stacked method="post" action=(back) {
                h2 { "Add user" }
                (form_tokens(ctx))
                (other_errors(&errors, &["username", "email", "password", "is_superuser"]))
                (layout::text_field("Username", "username", values.get("username").unwrap_or(""), &errors, "text"))
                (layout::text_field("Email", "email", values.get("email").unwrap_or(""), &errors, "email"))
                label.field {
                    span { "Password" }
                    input type="password" name="password" autocomplete="new-password" aria-invalid[errors.contains_key("password")];
                    (field_errors(&errors, "password"))
                }
                label.check {
                    input type="checkbox" name="is_superuser" value="true" checked[values.get("is_superuser").is_some()];
                    " Administrator"
                }
                button type="submit" { "Add user" }
            }
        }
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(html(status, page(ctx, "Users", Nav::Users, body)))
}

pub async fn delete_user(ctx: &Ctx, name: &str) -> PageResult {
    let back = "/MAAS/r/users";
    match users::delete_user(ctx.store(), &ctx.user, name, None).await {
        Ok(()) => Ok(redirect(
            back,
            Some(Flash::ok(format!("User {name} deleted."))),
        )),
        Err(error) => Ok(refusal(back, &error)),
    }
}

/// The keys the settings page shows, by section.
const SETTINGS: &[(&str, &[&str])] = &[
    (
        "General",
        &[
            "maas_name",
            "enable_analytics",
            "release_notifications",
            "session_length",
        ],
    ),
    (
        "Deployment",
        &[
            "default_osystem",
            "default_distro_series",
            "default_min_hwe_kernel",
            "default_storage_layout",
            "enable_kernel_crash_dump",
        ],
    ),
    (
        "Commissioning",
        &[
            "commissioning_distro_series",
            "enlist_commissioning",
            "node_timeout",
            "maas_auto_ipmi_user",
            "maas_auto_ipmi_user_privilege_level",
        ],
    ),
    (
        "Storage",
        &[
            "enable_disk_erasing_on_release",
            "disk_erase_with_secure_erase",
            "disk_erase_with_quick_erase",
        ],
    ),
    (
        "Network",
        &[
            "enable_http_proxy",
            "http_proxy",
            "upstream_dns",
            "dnssec_validation",
            "ntp_servers",
            "ntp_external_only",
            "network_discovery",
            "active_discovery_interval",
            "default_dns_ttl",
        ],
    ),
    ("Kernel", &["kernel_opts", "boot_images_auto_import"]),
];

fn value_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub async fn settings(ctx: &Ctx) -> PageResult {
    let back = "/MAAS/r/settings";
    let mut errors = Errors::new();
    if ctx.method == axum::http::Method::POST {
        let values: Vec<(String, String)> = SETTINGS
            .iter()
            .flat_map(|(_, keys)| keys.iter())
            .filter_map(|key| {
                ctx.form
                    .get(key)
                    .map(|v| ((*key).to_owned(), v.trim().to_owned()))
            })
            .collect();
        match config::set_many(ctx.store(), &ctx.user, &values).await {
            Ok(written) => {
                return Ok(redirect(
                    back,
                    Some(Flash::ok(format!("Settings saved ({written} changed)."))),
                ));
            }
            Err(ServiceError::Validation(found)) => errors = found,
            Err(error @ ServiceError::Forbidden(_)) => return Ok(refusal(back, &error)),
            Err(error) => return Err(error),
        }
    }
    let mut current = std::collections::BTreeMap::new();
    for (_, keys) in SETTINGS {
        for key in *keys {
            current.insert(*key, value_text(&config::get(ctx.store(), key).await?));
        }
    }
    let shown = |key: &str| -> String {
        if errors.is_empty() {
            current.get(key).cloned().unwrap_or_default()
        } else {
            ctx.form.get(key).unwrap_or("").to_owned()
        }
    };
    let admin = ctx.admin();
    let body = html! {
        h1 { "Settings" }
        @if !admin { p.muted { "Only administrators can change settings." } }
        form.stacked.settings method="post" action=(back) {
            (form_tokens(ctx))
            (other_errors(&errors, &SETTINGS.iter().flat_map(|(_, keys)| keys.iter().copied()).collect::<Vec<_>>()))
            @for (section, keys) in SETTINGS {
                fieldset {
                    legend { (section) }
                    @for key in *keys {
                        @let value = shown(key);
                        @let label = key.replace('_', " ");
                        @match config::kind(key) {
                            Some(config::Kind::Bool) => {
                                (layout::select_field(&label, key, &[("true".into(), "Yes".into()), ("false".into(), "No".into())], &value, &errors))
                            }
                            Some(config::Kind::Choice(choices)) => {
                                (layout::select_field(&label, key, &choices.iter().map(|c| ((*c).to_owned(), (*c).to_owned())).collect::<Vec<_>>(), &value, &errors))
                            }
                            _ => { (layout::text_field(&label, key, &value, &errors, "text")) }
                        }
                    }
                }
            }
            @if admin { button type="submit" { "Save settings" } }
        }
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(html(status, page(ctx, "Settings", Nav::Settings, body)))
}
