//! Machine pages: the list (MAAS search syntax, grouping, sorting and
//! pagination done by the store), bulk actions, the row fragments live
//! updates fetch, machine details with their tabs and action menu, and
//! the add-machine form.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use maas_domain::{NodeStatus, NodeType};
use maas_store::{
    BlockDeviceType, EventQuery, Node, NodeFilter, NodeGroup, NodeGroupCount, NodeQuery, NodeSort,
    result_type,
};
use maud::{Markup, html};

use super::layout::{self, Errors, Nav, field_errors, form_tokens, other_errors, page};
use super::{Ctx, Flash, PageResult, html, redirect};
use crate::api::render::Catalog;
use crate::error::ServiceError;
use crate::http::params::{self, Params};
use crate::service::machine_actions::{self as actions, ActionKind, MachineAction};
use crate::service::machine_search;
use crate::service::machines as machine_service;
use crate::service::scripts::status as script_status;

const SORTS: [(&str, NodeSort, &str); 11] = [
    ("hostname", NodeSort::Hostname, "Hostname"),
    ("status", NodeSort::Status, "Status"),
    ("power", NodeSort::PowerState, "Power"),
    ("owner", NodeSort::Owner, "Owner"),
    ("pool", NodeSort::Pool, "Pool"),
    ("zone", NodeSort::Zone, "Zone"),
    ("arch", NodeSort::Architecture, "Arch"),
    ("cores", NodeSort::CpuCount, "Cores"),
    ("ram", NodeSort::Memory, "RAM"),
    ("disks", NodeSort::Disks, "Disks"),
    ("storage", NodeSort::Storage, "Storage"),
];

const GROUPS: [(&str, Option<NodeGroup>, &str); 7] = [
    ("status", Some(NodeGroup::Status), "Status"),
    ("none", None, "No grouping"),
    ("owner", Some(NodeGroup::Owner), "Owner"),
    ("pool", Some(NodeGroup::Pool), "Resource pool"),
    ("zone", Some(NodeGroup::Zone), "Zone"),
    ("arch", Some(NodeGroup::Architecture), "Architecture"),
    ("power", Some(NodeGroup::PowerState), "Power state"),
];

const PAGE_SIZES: [i64; 4] = [25, 50, 100, 200];
const DEFAULT_PAGE_SIZE: i64 = 50;

/// The list's view settings, from the query string.
#[derive(Clone, Debug)]
struct ListState {
    q: String,
    sort: &'static str,
    descending: bool,
    group: &'static str,
    page: i64,
    per_page: i64,
}

impl ListState {
    fn from_params(params: &Params) -> ListState {
        let sort = params
            .get("sort")
            .and_then(|s| SORTS.iter().find(|(name, _, _)| *name == s))
            .map(|(name, _, _)| *name)
            .unwrap_or("hostname");
        let group = params
            .get("group")
            .and_then(|g| GROUPS.iter().find(|(name, _, _)| *name == g))
            .map(|(name, _, _)| *name)
            .unwrap_or("status");
        let per_page = params
            .get("per_page")
            .and_then(|p| p.parse::<i64>().ok())
            .filter(|p| PAGE_SIZES.contains(p))
            .unwrap_or(DEFAULT_PAGE_SIZE);
        ListState {
            q: params.get("q").unwrap_or("").trim().to_owned(),
            sort,
            descending: params.get("dir") == Some("desc"),
            group,
            page: params
                .get("page")
                .and_then(|p| p.parse::<i64>().ok())
                .unwrap_or(1)
                .max(1),
            per_page,
        }
    }

    fn node_sort(&self) -> NodeSort {
        SORTS
            .iter()
            .find(|(name, _, _)| *name == self.sort)
            .map(|(_, sort, _)| *sort)
            .unwrap_or_default()
    }

    fn node_group(&self) -> Option<NodeGroup> {
        GROUPS
            .iter()
            .find(|(name, _, _)| *name == self.group)
            .and_then(|(_, group, _)| *group)
    }

    /// The list URL for these settings, leaving defaults out.
    fn url(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if !self.q.is_empty() {
            query.append_pair("q", &self.q);
        }
        if self.sort != "hostname" {
            query.append_pair("sort", self.sort);
        }
        if self.descending {
            query.append_pair("dir", "desc");
        }
        if self.group != "status" {
            query.append_pair("group", self.group);
        }
        if self.per_page != DEFAULT_PAGE_SIZE {
            query.append_pair("per_page", &self.per_page.to_string());
        }
        if self.page > 1 {
            query.append_pair("page", &self.page.to_string());
        }
        let query = query.finish();
        if query.is_empty() {
            "/MAAS/r/machines".to_owned()
        } else {
            format!("/MAAS/r/machines?{query}")
        }
    }

    fn with_page(&self, page: i64) -> String {
        ListState {
            page,
            ..self.clone()
        }
        .url()
    }

    /// The header link for a sort column: toggles direction on the current one.
    fn sort_url(&self, sort: &'static str) -> String {
        ListState {
            sort,
            descending: sort == self.sort && !self.descending,
            page: 1,
            ..self.clone()
        }
        .url()
    }
}

/// The machine filter for a search, built by the API's own filter code.
/// Search mistakes and unknown names come back as field errors.
async fn search_query(ctx: &Ctx, state: &ListState) -> Result<NodeQuery, ServiceError> {
    let search = machine_search::parse(&state.q)?;
    let filter = machine_service::filter_from_params(
        ctx.store(),
        &search.params,
        &ctx.user,
        vec![NodeType::Machine],
    )
    .await?;
    Ok(NodeQuery {
        filter,
        text: search.text,
        group: state.node_group(),
        sort: state.node_sort(),
        descending: state.descending,
    })
}

/// Search errors are shown under the search box, whatever field the
/// filter code named (`tags`, `zone`, …).
fn search_errors(error: ServiceError) -> Result<Errors, ServiceError> {
    match error {
        ServiceError::Validation(map) => {
            let mut errors = Errors::new();
            for (field, messages) in map {
                for message in messages {
                    let text = if field == machine_search::FIELD {
                        message
                    } else {
                        format!("{field}: {message}")
                    };
                    errors
                        .entry(machine_search::FIELD.to_owned())
                        .or_default()
                        .push(text);
                }
            }
            Ok(errors)
        }
        other => Err(other),
    }
}

pub async fn list(ctx: &Ctx) -> PageResult {
    list_page(ctx, &ctx.query, Errors::new(), StatusCode::OK).await
}

async fn list_page(
    ctx: &Ctx,
    params: &Params,
    action_errors: Errors,
    status: StatusCode,
) -> PageResult {
    let state = ListState::from_params(params);
    let store = ctx.store();
    let (query, search_errors) = match search_query(ctx, &state).await {
        Ok(query) => (Some(query), Errors::new()),
        Err(error) => (None, search_errors(error)?),
    };
    let mut total = 0;
    let mut groups: Vec<NodeGroupCount> = Vec::new();
    let mut nodes = Vec::new();
    if let Some(query) = &query {
        total = store.node_count(query).await?;
        let last_page = ((total + state.per_page - 1) / state.per_page).max(1);
        let page_number = state.page.min(last_page);
        if let Some(group) = query.group {
            groups = store.node_group_counts(query, group).await?;
        }
        nodes = store
            .node_page(query, (page_number - 1) * state.per_page, state.per_page)
            .await?;
    }
    let state = ListState {
        page: state
            .page
            .min(((total + state.per_page - 1) / state.per_page).max(1)),
        ..state
    };
    let zones = store.zones().await?;
    let pools = store.pools().await?;
    let tags = store.tags().await?;
    let now = ctx.region.now();
    let group = state.node_group();
    let first = (state.page - 1) * state.per_page;
    let body = html! {
        div.page-head {
            h1 { "Machines" }
            a.button href="/MAAS/r/machines/add" { "Add hardware" }
        }
        form.search method="get" action="/MAAS/r/machines" role="search" {
            input type="search" name="q" value=(state.q) placeholder="Search: status:ready pool:default tags:gpu hostname"
                aria-label="Search machines" aria-invalid[!search_errors.is_empty()];
            @if state.sort != "hostname" { input type="hidden" name="sort" value=(state.sort); }
            @if state.descending { input type="hidden" name="dir" value="desc"; }
            label.inline-field {
                "Group by "
                select name="group" data-autosubmit {
                    @for (name, _, label) in GROUPS {
                        option value=(name) selected[name == state.group] { (label) }
                    }
                }
            }
            label.inline-field {
                "Per page "
                select name="per_page" data-autosubmit {
                    @for size in PAGE_SIZES {
                        option value=(size) selected[size == state.per_page] { (size) }
                    }
                }
            }
            button type="submit" { "Search" }
            (field_errors(&search_errors, machine_search::FIELD))
        }
        form #bulk.bulk method="post" action="/MAAS/r/machines/action" {
            (form_tokens(ctx))
            input type="hidden" name="back" value=(state.url());
            label.inline-field {
                "Action "
                select name="action" data-action-select {
                    option value="" { "Choose an action…" }
                    @for kind in ActionKind::ALL {
                        option value=(kind.name()) data-argument=[kind.argument()] { (kind.label()) }
                    }
                }
            }
            label.inline-field data-argument-for="zone" {
                "Zone "
                select name="zone" { @for zone in &zones { option value=(zone.name) { (zone.name) } } }
            }
            label.inline-field data-argument-for="pool" {
                "Pool "
                select name="pool" { @for pool in &pools { option value=(pool.name) { (pool.name) } } }
            }
            label.inline-field data-argument-for="tag" {
                "Tag "
                select name="tag" { @for tag in &tags { option value=(tag.name) { (tag.name) } } }
            }
            input type="text" name="comment" placeholder="Comment (optional)" aria-label="Comment";
            button type="submit" { "Apply to selected" }
            span.selected-count data-selected-count {}
            (other_errors(&action_errors, &[]))
        }
        p.summary {
            @if total == 0 {
                "No machines match."
            } @else {
                "Showing " (first + 1) "–" (first + nodes.len() as i64) " of " (total) " machines"
            }
            span.live data-live-indicator { "" }
        }
        table.machines data-live-table {
            thead {
                tr {
                    th.check { input type="checkbox" data-select-all aria-label="Select all on this page"; }
                    @for (name, sort, label) in SORTS {
                        th.num[matches!(sort, NodeSort::CpuCount | NodeSort::Memory | NodeSort::Disks | NodeSort::Storage)] {
                            a href=(state.sort_url(name)) {
                                (label)
                                @if name == state.sort { @if state.descending { " ▼" } @else { " ▲" } }
                            }
                        }
                    }
                    th { "Tags" }
                }
            }
            tbody {
                @for item in grouped_rows(&nodes, group, &groups) {
                    @match item {
                        Item::Group(label, count) => {
                            tr.group {
                                td colspan="13" {
                                    (label)
                                    span.count { " " (count) " machine" @if count != 1 { "s" } }
                                }
                            }
                        }
                        Item::Row(node) => { (row(node, now)) }
                    }
                }
            }
        }
        (pagination(&state, total))
    };
    let mut response = html(status, page(ctx, "Machines", Nav::Machines, body));
    *response.status_mut() = status;
    Ok(response)
}

enum Item<'a> {
    Group(String, i64),
    Row(&'a Node),
}

/// The page's rows with a header row wherever the group changes; each
/// header carries the group's count over the whole listing.
fn grouped_rows<'a>(
    nodes: &'a [Node],
    group: Option<NodeGroup>,
    counts: &[NodeGroupCount],
) -> Vec<Item<'a>> {
    let mut items = Vec::with_capacity(nodes.len() + 8);
    let mut current: Option<Option<String>> = None;
    for node in nodes {
        if let Some(group) = group {
            let key = group_key(node, group);
            if current.as_ref() != Some(&key) {
                let count = counts
                    .iter()
                    .find(|c| c.key == key)
                    .map(|c| c.count)
                    .unwrap_or(0);
                items.push(Item::Group(group_label(group, key.as_deref()), count));
                current = Some(key);
            }
        }
        items.push(Item::Row(node));
    }
    items
}

/// Page links: first, last, and two either side of the current page.
fn page_links(current: i64, last: i64) -> Vec<Option<i64>> {
    let mut pages: Vec<i64> = vec![1];
    for p in (current - 2).max(2)..=(current + 2).min(last - 1) {
        pages.push(p);
    }
    if last > 1 {
        pages.push(last);
    }
    let mut links = Vec::new();
    let mut previous = 0;
    for p in pages {
        if p > previous + 1 {
            links.push(None);
        }
        links.push(Some(p));
        previous = p;
    }
    links
}

fn pagination(state: &ListState, total: i64) -> Markup {
    let last = ((total + state.per_page - 1) / state.per_page).max(1);
    let current = state.page;
    html! {
        @if last > 1 {
            nav.pagination aria-label="Pages" {
                @if current > 1 { a rel="prev" href=(state.with_page(current - 1)) { "‹ Previous" } }
                @for link in page_links(current, last) {
                    @match link {
                        None => { span.gap { "…" } }
                        Some(p) if p == current => { span.current aria-current="page" { (p) } }
                        Some(p) => { a href=(state.with_page(p)) { (p) } }
                    }
                }
                @if current < last { a rel="next" href=(state.with_page(current + 1)) { "Next ›" } }
            }
        }
    }
}

/// A node's key in a grouping, as `node_group_counts` reports it.
fn group_key(node: &Node, group: NodeGroup) -> Option<String> {
    let text = match group {
        NodeGroup::Status => return Some(node.status.number().to_string()),
        NodeGroup::Owner => node.owner.as_ref().map(|o| o.username.clone()),
        NodeGroup::Pool => node.pool.as_ref().map(|p| p.name.clone()),
        NodeGroup::Zone => Some(node.zone.name.clone()),
        NodeGroup::Architecture => node.architecture.clone(),
        NodeGroup::PowerState => Some(node.power_state.as_str().to_owned()),
    };
    text.filter(|t| !t.is_empty())
}

fn group_label(group: NodeGroup, key: Option<&str>) -> String {
    match (group, key) {
        (NodeGroup::Status, Some(number)) => number
            .parse::<i64>()
            .ok()
            .and_then(NodeStatus::from_number)
            .map(|s| s.label().to_owned())
            .unwrap_or_else(|| number.to_owned()),
        (NodeGroup::Owner, None) => "No owner".to_owned(),
        (NodeGroup::Pool, None) => "No pool".to_owned(),
        (NodeGroup::Architecture, None) => "No architecture".to_owned(),
        (_, Some(key)) => key.to_owned(),
        (_, None) => "None".to_owned(),
    }
}

/// What a machine is doing now, for the status column.
fn progress(node: &Node, now: i64) -> Option<String> {
    if layout::in_progress(node.status) {
        let mut hint = node
            .status_message
            .clone()
            .filter(|m| !m.is_empty() && m != node.status.label())
            .unwrap_or_else(|| "In progress".to_owned());
        if let Some(expires) = node.status_expires {
            hint.push_str(&format!(
                " (times out in {})",
                layout::duration(expires - now)
            ));
        }
        return Some(hint);
    }
    if node.status.simple() == maas_domain::SimpleStatus::Failed
        || node.status == NodeStatus::Broken
    {
        return Some(node.error_description.clone()).filter(|e| !e.is_empty());
    }
    None
}

fn physical_disks(node: &Node) -> (usize, i64) {
    let disks: Vec<_> = node
        .block_devices
        .iter()
        .filter(|d| d.kind == BlockDeviceType::Physical)
        .collect();
    (disks.len(), disks.iter().map(|d| d.size).sum())
}

/// One machine's row; live updates replace it with a fresh one.
fn row(node: &Node, now: i64) -> Markup {
    let (disks, storage) = physical_disks(node);
    html! {
        tr data-system-id=(node.system_id) data-status=(node.status.number()) {
            td.check {
                input type="checkbox" name="system_id" value=(node.system_id) form="bulk"
                    aria-label=(format!("Select {}", node.hostname));
            }
            td.hostname {
                a href=(format!("/MAAS/r/machine/{}", node.system_id)) { (node.hostname) }
                @if node.locked { " " span.badge.locked title="Locked" { "locked" } }
                div.sub { (node.system_id) }
            }
            td.status {
                span.badge.(layout::status_class(node.status)) data-status-label { (node.status.label()) }
                @if let Some(hint) = progress(node, now) {
                    div.sub.progress[layout::in_progress(node.status)] { (hint) }
                }
            }
            td.power { span.power.(format!("pw-{}", node.power_state.as_str())) { (node.power_state.as_str()) } }
            td { @if let Some(owner) = &node.owner { (owner.username) } @else { span.muted { "—" } } }
            td { @if let Some(pool) = &node.pool { (pool.name) } }
            td { (node.zone.name) }
            td { (node.architecture.as_deref().unwrap_or("")) }
            td.num { (node.cpu_count) }
            td.num { (layout::memory(node.memory)) }
            td.num { (disks) }
            td.num { (layout::storage(storage)) }
            td.tags { (node.tags.join(", ")) }
        }
    }
}

/// `GET /MAAS/r/machines/rows?id=…`: fresh rows for the machines a page
/// shows, one query whatever their number. Machines the caller may no
/// longer see (or that are gone) are left out.
pub async fn rows(ctx: &Ctx) -> PageResult {
    let ids: Vec<String> = ctx
        .query
        .all("id")
        .into_iter()
        .take(500)
        .map(str::to_owned)
        .collect();
    let nodes = if ids.is_empty() {
        Vec::new()
    } else {
        let filter = NodeFilter {
            node_types: vec![NodeType::Machine],
            system_ids: ids,
            visible_to: (!ctx.admin()).then_some(ctx.user.id),
            ..NodeFilter::default()
        };
        ctx.store().nodes(&filter, 0, 500).await?
    };
    let now = ctx.region.now();
    Ok(html(
        StatusCode::OK,
        html! { table { tbody { @for node in &nodes { (row(node, now)) } } } },
    ))
}

/// The list settings a bulk action came from, to return to them.
fn back_params(form: &Params) -> (String, Params) {
    let back = super::session::safe_next(form.get("back"));
    let back = if back.starts_with("/MAAS/r/machines") {
        back
    } else {
        "/MAAS/r/machines".to_owned()
    };
    let query = back.split_once('?').map(|(_, q)| q).unwrap_or("");
    let params = params::parse_query(query);
    (back, params)
}

fn outcome_flash(label: &str, outcome: &actions::BulkOutcome) -> Flash {
    let mut text = String::new();
    if !outcome.done.is_empty() {
        text.push_str(&format!(
            "{label}: done on {} machine{} ({}).",
            outcome.done.len(),
            if outcome.done.len() == 1 { "" } else { "s" },
            outcome.done.join(", ")
        ));
    }
    if !outcome.failed.is_empty() {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&format!(
            "{label}: {} machine{} refused: {}",
            outcome.failed.len(),
            if outcome.failed.len() == 1 { "" } else { "s" },
            outcome
                .failed
                .iter()
                .map(|(name, why)| format!("{name}: {why}"))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    if outcome.failed.is_empty() {
        Flash::ok(text)
    } else {
        Flash::error(text)
    }
}

/// `POST /MAAS/r/machines/action`: one action on the selected machines.
pub async fn bulk_action(ctx: &Ctx) -> PageResult {
    let (back, back_query) = back_params(&ctx.form);
    let action = match MachineAction::from_params(&ctx.form) {
        Ok(action) => action,
        Err(ServiceError::Validation(errors)) => {
            return list_page(ctx, &back_query, errors, StatusCode::BAD_REQUEST).await;
        }
        Err(other) => return Err(other),
    };
    let ids: Vec<String> = ctx
        .form
        .all("system_id")
        .into_iter()
        .map(str::to_owned)
        .collect();
    match actions::run_many(&ctx.region, &ctx.user, &ids, &action).await {
        Ok(outcome) => Ok(redirect(
            &back,
            Some(outcome_flash(action.kind.label(), &outcome)),
        )),
        Err(ServiceError::Validation(errors)) => {
            list_page(ctx, &back_query, errors, StatusCode::BAD_REQUEST).await
        }
        Err(other) => Err(other),
    }
}

// ---------------------------------------------------------------------------
// Machine details
// ---------------------------------------------------------------------------

const TABS: [(&str, &str); 7] = [
    ("summary", "Summary"),
    ("network", "Network"),
    ("storage", "Storage"),
    ("commissioning", "Commissioning"),
    ("tests", "Tests"),
    ("events", "Events"),
    ("config", "Configuration"),
];

/// A form that failed validation, to show again with its errors.
pub struct Rejected {
    pub section: String,
    pub values: Params,
    pub errors: Errors,
}

fn machine_url(node: &Node) -> String {
    format!("/MAAS/r/machine/{}", node.system_id)
}

/// The header with status, power and the action menu; live updates
/// replace it.
fn header(ctx: &Ctx, node: &Node, errors: &Errors) -> Markup {
    let now = ctx.region.now();
    let available = actions::available(&ctx.user, node);
    html! {
        section #machine-header.machine-header data-system-id=(node.system_id) data-status=(node.status.number()) {
            div.title {
                h1 { (node.hostname) @if node.locked { " " span.badge.locked { "locked" } } }
                p.sub { (node.system_id) " · " (node.domain.name) }
            }
            dl.facts {
                dt { "Status" }
                dd {
                    span.badge.(layout::status_class(node.status)) data-status-label { (node.status.label()) }
                    @if let Some(hint) = progress(node, now) { div.sub.progress[layout::in_progress(node.status)] { (hint) } }
                }
                dt { "Power" }
                dd { span.power.(format!("pw-{}", node.power_state.as_str())) { (node.power_state.as_str()) }
                     @if !node.power_type.is_empty() { " (" (node.power_type) ")" } }
                dt { "Owner" }
                dd { @if let Some(owner) = &node.owner { (owner.username) } @else { "—" } }
            }
            div.actions {
                @if available.is_empty() {
                    p.muted { "No actions are available to you for this machine now." }
                }
                @for kind in &available {
                    @if kind.argument().is_none() {
                        form.inline method="post" action=(format!("{}/action", machine_url(node))) {
                            (form_tokens(ctx))
                            input type="hidden" name="action" value=(kind.name());
                            button.danger[*kind == ActionKind::Delete] type="submit"
                                data-confirm=[(*kind == ActionKind::Delete).then(|| format!("Delete {}?", node.hostname))] {
                                (kind.label())
                            }
                        }
                    }
                }
                (other_errors(errors, &[]))
            }
        }
    }
}

/// `GET /MAAS/r/machine/{id}/header`: the header alone, for live updates.
pub async fn header_fragment(ctx: &Ctx, system_id: &str) -> PageResult {
    let node = machine_service::visible_machine(ctx.store(), &ctx.user, system_id).await?;
    Ok(html(StatusCode::OK, header(ctx, &node, &Errors::new())))
}

pub async fn details(ctx: &Ctx, system_id: &str, rejected: Option<Rejected>) -> PageResult {
    let node = machine_service::visible_machine(ctx.store(), &ctx.user, system_id).await?;
    let tab = match &rejected {
        Some(r) if r.section == "action" => "summary",
        Some(_) => "config",
        None => ctx
            .query
            .get("tab")
            .and_then(|t| TABS.iter().find(|(name, _)| *name == t))
            .map(|(name, _)| *name)
            .unwrap_or("summary"),
    };
    let action_errors = rejected
        .as_ref()
        .filter(|r| r.section == "action")
        .map(|r| r.errors.clone())
        .unwrap_or_default();
    let content = match tab {
        "network" => network_tab(ctx, &node).await?,
        "storage" => storage_tab(&node),
        "commissioning" => results_tab(ctx, &node, result_type::COMMISSIONING).await?,
        "tests" => results_tab(ctx, &node, result_type::TESTING).await?,
        "events" => events_tab(ctx, &node).await?,
        "config" => config_tab(ctx, &node, rejected.as_ref()).await?,
        _ => summary_tab(&node),
    };
    let status = if rejected.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body = html! {
        p.crumbs { a href="/MAAS/r/machines" { "Machines" } " › " (node.hostname) }
        (header(ctx, &node, &action_errors))
        nav.tabs {
            @for (name, label) in TABS {
                a.active[name == tab] href=(format!("{}?tab={name}", machine_url(&node))) { (label) }
            }
        }
        section.tab-content { (content) }
    };
    Ok(html(status, page(ctx, &node.hostname, Nav::Machines, body)))
}

fn summary_tab(node: &Node) -> Markup {
    let (disks, storage) = physical_disks(node);
    html! {
        div.cards {
            div.card {
                h2 { "CPU" }
                p.big { (node.cpu_count) " cores" }
                @if node.cpu_speed > 0 { p { (format!("{:.1} GHz", node.cpu_speed as f64 / 1000.0)) } }
                p { (node.architecture.as_deref().unwrap_or("unknown architecture")) }
            }
            div.card {
                h2 { "Memory" }
                p.big { (layout::memory(node.memory)) }
            }
            div.card {
                h2 { "Storage" }
                p.big { (layout::storage(storage)) }
                p { (disks) " disk" @if disks != 1 { "s" } }
            }
            div.card {
                h2 { "Power" }
                p.big { (node.power_state.as_str()) }
                p { @if node.power_type.is_empty() { "No power type set" } @else { (node.power_type) } }
            }
        }
        dl.details {
            dt { "Status message" } dd { (node.status_message.as_deref().unwrap_or("")) }
            @if !node.error_description.is_empty() { dt { "Error" } dd.error { (node.error_description) } }
            dt { "Zone" } dd { (node.zone.name) }
            dt { "Resource pool" } dd { @if let Some(pool) = &node.pool { (pool.name) } }
            dt { "Domain" } dd { (node.domain.name) }
            @if !node.osystem.is_empty() { dt { "OS" } dd { (node.osystem) " " (node.distro_series) } }
            dt { "Tags" } dd.tags { (node.tags.join(", ")) }
            @if !node.description.is_empty() { dt { "Description" } dd { (node.description) } }
            @for (key, value) in &node.hardware_info {
                dt { (key.replace('_', " ")) } dd { (value) }
            }
        }
    }
}

async fn network_tab(ctx: &Ctx, node: &Node) -> Result<Markup, ServiceError> {
    let catalog = Catalog::new(ctx.store().network_catalog().await?);
    let vlan_name = |id: Option<i64>| -> String {
        let Some(vlan) = id.and_then(|id| catalog.vlan_record(id)) else {
            return "—".to_owned();
        };
        let fabric = catalog
            .fabric_record(vlan.fabric_id)
            .map(|f| f.name.as_str())
            .unwrap_or("?");
        if vlan.vid == 0 {
            format!("{fabric} · untagged")
        } else {
            format!("{fabric} · VLAN {}", vlan.vid)
        }
    };
    Ok(html! {
        @if node.interfaces.is_empty() {
            p.muted { "No network interfaces are known; commissioning finds them." }
        } @else {
            table.plain {
                thead { tr { th { "Name" } th { "Type" } th { "MAC" } th { "Fabric / VLAN" } th { "Addresses" } th { "Link" } } }
                tbody {
                    @for interface in &node.interfaces {
                        tr {
                            td { (interface.name) @if Some(interface.id) == node.boot_interface_id { " " span.badge { "boot" } } }
                            td { (interface.kind.as_str()) }
                            td.mono { (interface.mac_address.as_deref().unwrap_or("")) }
                            td { (vlan_name(interface.vlan_id)) }
                            td {
                                @for link in &interface.links {
                                    div {
                                        (link.mode.as_str())
                                        @if let Some(subnet) = link.subnet_id.and_then(|id| catalog.subnet_record(id)) { " " (subnet.cidr) }
                                        @if let Some(ip) = &link.ip { " → " span.mono { (ip) } }
                                    }
                                }
                                @for (_, ip) in &interface.discovered { div.muted { "seen " span.mono { (ip) } } }
                            }
                            td {
                                @if !interface.enabled { "disabled" }
                                @else if interface.link_connected {
                                    @if interface.link_speed > 0 { (interface.link_speed) " Mbps" } @else { "up" }
                                } @else { "no link" }
                            }
                        }
                    }
                }
            }
        }
    })
}

fn storage_tab(node: &Node) -> Markup {
    html! {
        @if node.block_devices.is_empty() {
            p.muted { "No storage devices are known; commissioning finds them." }
        } @else {
            table.plain {
                thead { tr { th { "Name" } th { "Model" } th { "Serial" } th { "Size" } th { "Type" } th { "Filesystem" } th { "Tags" } } }
                tbody {
                    @for device in &node.block_devices {
                        tr {
                            td { (device.name) @if Some(device.id) == node.boot_disk_id { " " span.badge { "boot" } } }
                            td { (device.model.as_deref().unwrap_or("")) }
                            td.mono { (device.serial.as_deref().unwrap_or("")) }
                            td.num { (layout::storage(device.size)) }
                            td { (device.kind.as_str()) }
                            td { @if let Some(fs) = &device.filesystem { (fs.fstype) @if let Some(mount) = &fs.mount_point { " on " (mount) } } }
                            td { (device.tags.join(", ")) }
                        }
                        @for (index, partition) in device.partitions.iter().enumerate() {
                            tr.partition {
                                td { "└ " (device.name) "-part" (index + 1) }
                                td {} td {}
                                td.num { (layout::storage(partition.size)) }
                                td { "partition" @if partition.bootable { " (bootable)" } }
                                td { @if let Some(fs) = &partition.filesystem { (fs.fstype) @if let Some(mount) = &fs.mount_point { " on " (mount) } } }
                                td { (partition.tags.join(", ")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn results_tab(ctx: &Ctx, node: &Node, kind: i64) -> Result<Markup, ServiceError> {
    let sets: Vec<_> = ctx
        .store()
        .script_sets(node.id)
        .await?
        .into_iter()
        .filter(|s| s.result_type == kind)
        .take(5)
        .collect();
    let what = if kind == result_type::TESTING {
        "tests"
    } else {
        "commissioning"
    };
    Ok(html! {
        @if sets.is_empty() {
            p.muted { "No " (what) " results yet." }
        }
        @for (index, set) in sets.iter().enumerate() {
            h2 { @if index == 0 { "Latest run" } @else { "Earlier run" } " · " (layout::time(set.created)) }
            table.plain {
                thead { tr { th { "Script" } th { "Status" } th { "Exit" } th { "Runtime" } th { "Output" } } }
                tbody {
                    @for result in &set.results {
                        tr {
                            td { (result.name) }
                            td { span.badge.st-failed[script_status::is_failure(result.status)].st-ready[result.status == script_status::PASSED] { (script_status::name(result.status)) } }
                            td { @if let Some(code) = result.exit_status { (code) } }
                            td { (result.runtime) }
                            td { a href=(format!("{}/result/{}/{}", machine_url(node), set.id, result.id)) { "View output" } }
                        }
                    }
                }
            }
        }
    })
}

/// `GET /MAAS/r/machine/{id}/result/{set}/{result}`: one script's output.
pub async fn result_output(
    ctx: &Ctx,
    system_id: &str,
    set_id: &str,
    result_id: &str,
) -> PageResult {
    let node = machine_service::visible_machine(ctx.store(), &ctx.user, system_id).await?;
    let not_found = || ServiceError::not_found("ScriptResult");
    let set_id: i64 = set_id.parse().map_err(|_| not_found())?;
    let result_id: i64 = result_id.parse().map_err(|_| not_found())?;
    let set = ctx
        .store()
        .script_set(set_id, true)
        .await?
        .filter(|s| s.node_id == node.id)
        .ok_or_else(not_found)?;
    let result = set
        .results
        .iter()
        .find(|r| r.id == result_id)
        .ok_or_else(not_found)?;
    let text = |bytes: &Option<Vec<u8>>| {
        bytes
            .as_ref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    let body = html! {
        p.crumbs {
            a href="/MAAS/r/machines" { "Machines" } " › "
            a href=(machine_url(&node)) { (node.hostname) } " › " (result.name)
        }
        h1 { (result.name) }
        p { "Status: " (script_status::name(result.status))
            @if let Some(code) = result.exit_status { " · exit " (code) }
            @if !result.runtime.is_empty() { " · " (result.runtime) } }
        h2 { "Output" }
        pre.output { (text(&result.output)) }
        @if result.stderr.as_ref().is_some_and(|s| !s.is_empty()) {
            h2 { "Standard error" }
            pre.output { (text(&result.stderr)) }
        }
        @if result.result.as_ref().is_some_and(|s| !s.is_empty()) {
            h2 { "Result" }
            pre.output { (text(&result.result)) }
        }
    };
    Ok(html(
        StatusCode::OK,
        page(ctx, &result.name, Nav::Machines, body),
    ))
}

async fn events_tab(ctx: &Ctx, node: &Node) -> Result<Markup, ServiceError> {
    let events = ctx
        .store()
        .events(&EventQuery {
            system_ids: vec![node.system_id.clone()],
            limit: 100,
            visible_to: (!ctx.admin()).then_some(ctx.user.id),
            ..EventQuery::default()
        })
        .await?;
    Ok(html! {
        @if events.is_empty() { p.muted { "No events." } }
        @else {
            table.plain.events {
                thead { tr { th { "Time" } th { "Level" } th { "Event" } th { "Details" } th { "User" } } }
                tbody {
                    @for event in &events {
                        tr {
                            td.nowrap { (layout::time(event.created)) }
                            td { (event.level.name()) }
                            td { (event.event_type) }
                            td { (event.description) }
                            td { (event.username.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    })
}

/// The power fields of every driver, one fieldset each; the script shows
/// the selected type's only. Inputs are named `pp_<type>_<key>` so types
/// don't collide; the handler turns them into `power_parameters_<key>`.
pub fn power_fieldsets(
    selected: &str,
    current: &BTreeMap<String, String>,
    values: &Params,
    errors: &Errors,
) -> Markup {
    html! {
        @for schema in maas_power::power_types() {
            fieldset.power-fields data-power-type=(schema.name) hidden[schema.name != selected && !selected.is_empty()] {
                legend { (schema.description) " settings" }
                @for field in &schema.fields {
                    @let input = format!("pp_{}_{}", schema.name, field.name);
                    @let value = values.get(&input).map(str::to_owned)
                        .or_else(|| (schema.name == selected && !field.secret).then(|| current.get(field.name).cloned()).flatten())
                        .unwrap_or_else(|| field.default.to_owned());
                    label.field {
                        span { (field.label) @if field.required { " *" } }
                        @match field.field_type {
                            maas_power::FieldType::Choice => {
                                select name=(input) {
                                    @for (choice, label) in &field.choices {
                                        option value=(choice) selected[*choice == value] { (label) }
                                    }
                                }
                            }
                            maas_power::FieldType::Password => {
                                input type="password" name=(input) value=(values.get(&input).unwrap_or(""))
                                    placeholder=[(schema.name == selected && current.contains_key(field.name)).then_some("unchanged")]
                                    autocomplete="new-password";
                            }
                            _ => { input type="text" name=(input) value=(value); }
                        }
                        (field_errors(errors, &format!("power_parameters_{}", field.name)))
                    }
                }
            }
        }
    }
}

/// Copies the selected type's `pp_<type>_<key>` fields to the API's
/// `power_parameters_<key>`; empty secret fields are left out, so a stored
/// password is kept unless a new one is typed.
fn power_params(form: &Params, power_type: &str, out: &mut Params) {
    let Some(schema) = maas_power::power_types()
        .into_iter()
        .find(|s| s.name == power_type)
    else {
        return;
    };
    for field in &schema.fields {
        if let Some(value) = form.get(&format!("pp_{power_type}_{}", field.name)) {
            if field.secret && value.is_empty() {
                continue;
            }
            out.push(format!("power_parameters_{}", field.name), value);
        }
    }
}

fn power_type_choices() -> Vec<(String, String)> {
    let mut choices = vec![(String::new(), "No power type".to_owned())];
    choices.extend(
        maas_power::power_types()
            .into_iter()
            .map(|s| (s.name.to_owned(), s.description.to_owned())),
    );
    choices
}

fn architecture_choices() -> Vec<(String, String)> {
    machine_service::ARCHITECTURES
        .iter()
        .map(|a| (format!("{a}/generic"), format!("{a}/generic")))
        .collect()
}

async fn config_tab(
    ctx: &Ctx,
    node: &Node,
    rejected: Option<&Rejected>,
) -> Result<Markup, ServiceError> {
    let store = ctx.store();
    let zones = store.zones().await?;
    let pools = store.pools().await?;
    let tags = store.tags().await?;
    let empty = Errors::new();
    let no_values = Params::new();
    let (general_errors, general_values) = match rejected {
        Some(r) if r.section == "general" => (&r.errors, &r.values),
        _ => (&empty, &no_values),
    };
    let (power_errors, power_values) = match rejected {
        Some(r) if r.section == "power" => (&r.errors, &r.values),
        _ => (&empty, &no_values),
    };
    let value = |values: &Params, name: &str, current: &str| -> String {
        values.get(name).unwrap_or(current).to_owned()
    };
    let admin = ctx.admin();
    let zone_choices: Vec<(String, String)> = zones
        .iter()
        .map(|z| (z.name.clone(), z.name.clone()))
        .collect();
    let pool_choices: Vec<(String, String)> = pools
        .iter()
        .map(|p| (p.name.clone(), p.name.clone()))
        .collect();
    let current_pool = node.pool.as_ref().map(|p| p.name.as_str()).unwrap_or("");
    let power_type = value(power_values, "power_type", &node.power_type);
    let action = format!("{}/config", machine_url(node));
    Ok(html! {
        @if !admin {
            p.muted { "Only administrators can change a machine's configuration." }
            dl.details {
                dt { "Zone" } dd { (node.zone.name) }
                dt { "Resource pool" } dd { (current_pool) }
                dt { "Architecture" } dd { (node.architecture.as_deref().unwrap_or("")) }
                dt { "Power type" } dd { (node.power_type) }
                dt { "Tags" } dd { (node.tags.join(", ")) }
            }
        } @else {
            form.stacked method="post" action=(action) {
                h2 { "Machine" }
                (form_tokens(ctx))
                input type="hidden" name="section" value="general";
                (other_errors(general_errors, &["hostname", "description", "zone", "pool", "architecture", "min_hwe_kernel"]))
                (layout::text_field("Hostname", "hostname", &value(general_values, "hostname", &node.hostname), general_errors, "text"))
                (layout::text_field("Description", "description", &value(general_values, "description", &node.description), general_errors, "text"))
                (layout::select_field("Zone", "zone", &zone_choices, &value(general_values, "zone", &node.zone.name), general_errors))
                (layout::select_field("Resource pool", "pool", &pool_choices, &value(general_values, "pool", current_pool), general_errors))
                (layout::select_field("Architecture", "architecture", &architecture_choices(), &value(general_values, "architecture", node.architecture.as_deref().unwrap_or("")), general_errors))
                (layout::text_field("Minimum kernel", "min_hwe_kernel", &value(general_values, "min_hwe_kernel", node.min_hwe_kernel.as_deref().unwrap_or("")), general_errors, "text"))
                button type="submit" { "Save machine" }
            }
            form.stacked method="post" action=(action) {
                h2 { "Power" }
                (form_tokens(ctx))
                input type="hidden" name="section" value="power";
                (other_errors(power_errors, &["power_type"]))
                label.field {
                    span { "Power type" }
                    select name="power_type" data-power-select {
                        @for (name, label) in power_type_choices() {
                            option value=(name) selected[name == power_type] { (label) }
                        }
                    }
                    (field_errors(power_errors, "power_type"))
                }
                (power_fieldsets(&power_type, &node.power_parameters, power_values, power_errors))
                button type="submit" { "Save power" }
            }
            div.stacked {
                h2 { "Tags" }
                @if node.tags.is_empty() { p.muted { "No tags." } }
                ul.tag-list {
                    @for tag in &node.tags {
                        li {
                            (tag) " "
                            form.inline method="post" action=(format!("{}/action", machine_url(node))) {
                                (form_tokens(ctx))
                                input type="hidden" name="action" value="untag";
                                input type="hidden" name="tag" value=(tag);
                                button.link type="submit" aria-label=(format!("Remove tag {tag}")) { "remove" }
                            }
                        }
                    }
                }
                form.inline method="post" action=(format!("{}/action", machine_url(node))) {
                    (form_tokens(ctx))
                    input type="hidden" name="action" value="tag";
                    select name="tag" aria-label="Tag to add" {
                        @for tag in tags.iter().filter(|t| !node.tags.contains(&t.name)) {
                            option value=(tag.name) { (tag.name) }
                        }
                    }
                    button type="submit" { "Add tag" }
                }
            }
        }
    })
}

/// `POST /MAAS/r/machine/{id}/action`: one action from the menu.
pub async fn action(ctx: &Ctx, system_id: &str) -> PageResult {
    let node = machine_service::visible_machine(ctx.store(), &ctx.user, system_id).await?;
    let result = match MachineAction::from_params(&ctx.form) {
        Ok(action) => actions::run(&ctx.region, &ctx.user, &node, &action)
            .await
            .map(|done| (action, done)),
        Err(error) => Err(error),
    };
    match result {
        Ok((action, Some(_))) => Ok(redirect(
            &machine_url(&node),
            Some(Flash::ok(format!("{}: done.", action.kind.label()))),
        )),
        Ok((_, None)) => Ok(redirect(
            "/MAAS/r/machines",
            Some(Flash::ok(format!("Machine {} deleted.", node.hostname))),
        )),
        Err(ServiceError::Validation(errors)) => {
            details(
                ctx,
                system_id,
                Some(Rejected {
                    section: "action".into(),
                    values: ctx.form.clone(),
                    errors,
                }),
            )
            .await
        }
        Err(error @ ServiceError::Store(maas_store::StoreError::Backend(_))) => Err(error),
        Err(error) => Ok(redirect(
            &machine_url(&node),
            Some(Flash::error(actions::reason(&error))),
        )),
    }
}

/// `POST /MAAS/r/machine/{id}/config`: the configuration forms, through
/// the same update the API's `PUT machines/{id}/` runs.
pub async fn configure(ctx: &Ctx, system_id: &str) -> PageResult {
    let node = machine_service::visible_machine(ctx.store(), &ctx.user, system_id).await?;
    let section = ctx.form.get("section").unwrap_or("general").to_owned();
    let mut params = Params::new();
    if section == "power" {
        let power_type = ctx.form.get("power_type").unwrap_or("");
        params.push("power_type", power_type);
        power_params(&ctx.form, power_type, &mut params);
    } else {
        for field in [
            "hostname",
            "description",
            "zone",
            "pool",
            "architecture",
            "min_hwe_kernel",
        ] {
            if let Some(value) = ctx.form.get(field) {
                params.push(field, value);
            }
        }
    }
    match machine_service::update(ctx.store(), &ctx.user, &node, &params, ctx.region.now()).await {
        Ok(()) => {
            if let Ok(updated) = crate::service::lifecycle::reread(&ctx.region, system_id).await {
                ctx.region.changes.node(&updated);
            }
            Ok(redirect(
                &format!("{}?tab=config", machine_url(&node)),
                Some(Flash::ok("Configuration saved.")),
            ))
        }
        Err(ServiceError::Validation(errors)) => {
            details(
                ctx,
                system_id,
                Some(Rejected {
                    section,
                    values: ctx.form.clone(),
                    errors,
                }),
            )
            .await
        }
        Err(error) => Err(error),
    }
}

// ---------------------------------------------------------------------------
// Add hardware
// ---------------------------------------------------------------------------

/// `GET|POST /MAAS/r/machines/add`.
pub async fn add(ctx: &Ctx) -> PageResult {
    if ctx.method != axum::http::Method::POST {
        return add_page(ctx, &Params::new(), &Errors::new(), StatusCode::OK).await;
    }
    let form = &ctx.form;
    let mut params = Params::new();
    for field in [
        "hostname",
        "architecture",
        "description",
        "domain",
        "power_type",
    ] {
        if let Some(value) = form.get(field).filter(|v| !v.is_empty()) {
            params.push(field, value);
        }
    }
    for mac in form
        .get("mac_addresses")
        .unwrap_or("")
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|m| !m.is_empty())
    {
        params.push("mac_addresses", mac);
    }
    let power_type = form.get("power_type").unwrap_or("");
    power_params(form, power_type, &mut params);
    params.push(
        "commission",
        if form.get("commission").is_some() {
            "true"
        } else {
            "false"
        },
    );
    match actions::add_machine(&ctx.region, &ctx.user, &params).await {
        Ok(node) => Ok(redirect(
            &machine_url(&node),
            Some(Flash::ok(format!("Machine {} added.", node.hostname))),
        )),
        Err(ServiceError::Validation(errors)) => {
            add_page(ctx, form, &errors, StatusCode::BAD_REQUEST).await
        }
        Err(error) => Err(error),
    }
}

async fn add_page(ctx: &Ctx, values: &Params, errors: &Errors, status: StatusCode) -> PageResult {
    let domains = ctx.store().domains().await?;
    let domain_choices: Vec<(String, String)> = domains
        .iter()
        .map(|d| (d.name.clone(), d.name.clone()))
        .collect();
    let power_type = values.get("power_type").unwrap_or("");
    let submitted = !values.is_empty();
    let commission = !submitted || values.get("commission").is_some();
    let body = html! {
        p.crumbs { a href="/MAAS/r/machines" { "Machines" } " › Add hardware" }
        h1 { "Add machine" }
        form.stacked method="post" action="/MAAS/r/machines/add" {
            (form_tokens(ctx))
            (other_errors(errors, &["hostname", "architecture", "mac_addresses", "description", "domain", "power_type"]))
            (layout::text_field("Hostname (optional)", "hostname", values.get("hostname").unwrap_or(""), errors, "text"))
            (layout::select_field("Architecture", "architecture", &architecture_choices(), values.get("architecture").unwrap_or("amd64/generic"), errors))
            label.field {
                span { "MAC addresses (one per line)" }
                textarea name="mac_addresses" rows="3" aria-invalid[errors.contains_key("mac_addresses")] { (values.get("mac_addresses").unwrap_or("")) }
                (field_errors(errors, "mac_addresses"))
            }
            (layout::select_field("Domain", "domain", &domain_choices, values.get("domain").unwrap_or("maas"), errors))
            (layout::text_field("Description", "description", values.get("description").unwrap_or(""), errors, "text"))
            label.field {
                span { "Power type" }
                select name="power_type" data-power-select {
                    @for (name, label) in power_type_choices() {
                        option value=(name) selected[name == power_type] { (label) }
                    }
                }
                (field_errors(errors, "power_type"))
            }
            (power_fieldsets(power_type, &BTreeMap::new(), values, errors))
            label.check {
                input type="checkbox" name="commission" value="true" checked[commission];
                " Commission after adding (administrators, with a power type)"
            }
            button type="submit" { "Save machine" }
        }
        h2 { "Add chassis" }
        p.muted {
            "Adding a chassis discovers its machines through the chassis's power driver. "
            "None of this region's power drivers can probe a chassis yet, so add its machines one by one above."
        }
    };
    Ok(html(status, page(ctx, "Add machine", Nav::Machines, body)))
}
