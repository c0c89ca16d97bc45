//! MAAS's machine search syntax, as the dashboard's search box takes it:
//! `status:ready pool:(default,spare) tags:gpu !owner:alice web`.
//!
//! Each `key:value` term becomes the listing parameter the REST API takes
//! (`status=ready`, `pool=default`, …), so the filter is built and
//! validated by [`super::machines::filter_from_params`], the same code the
//! `machines/` listing runs, and its field errors are the API's. Words
//! without a key are free text, matched against hostname, system_id and
//! description.
//!
//! A value may be a parenthesised, comma separated list (any of them), may
//! start with `!` to exclude (`status:!deployed`, or `!status:deployed`),
//! and may start with `=` as MAAS's exact-match marker (matching here is
//! always exact for keyed terms). Double quotes group words with spaces.

use maas_domain::{NodeStatus, SimpleStatus};

use crate::error::{FieldErrors, ServiceResult};
use crate::http::params::Params;

/// A parsed search: listing parameters and free-text terms.
#[derive(Debug, Default, PartialEq)]
pub struct Search {
    pub params: Params,
    pub text: Vec<String>,
}

/// The field errors of a search are reported under this name.
pub const FIELD: &str = "q";

/// The keys the search box understands and the listing parameters they
/// become (included, excluded). Several spellings of MAAS's UI are accepted.
const KEYS: &[(&str, &str, &str)] = &[
    ("hostname", "hostname", "not_hostname"),
    ("id", "id", "not_id"),
    ("system_id", "id", "not_id"),
    ("domain", "domain", "not_domain"),
    ("pool", "pool", "not_in_pool"),
    ("zone", "zone", "not_in_zone"),
    ("tags", "tags", "not_tags"),
    ("tag", "tags", "not_tags"),
    ("owner", "owner", "not_owner"),
    ("arch", "arch", "not_arch"),
    ("architecture", "arch", "not_arch"),
    ("power", "power_state", "not_power_state"),
    ("power_state", "power_state", "not_power_state"),
    ("fabric", "fabrics", "not_fabrics"),
    ("fabrics", "fabrics", "not_fabrics"),
    ("subnet", "subnets", "not_subnets"),
    ("subnets", "subnets", "not_subnets"),
    ("agent_name", "agent_name", "not_agent_name"),
];

/// Keys whose value is a minimum, with no exclusion form.
const MINIMUMS: &[(&str, &str)] = &[
    ("cpu", "cpu_count"),
    ("cores", "cpu_count"),
    ("cpu_count", "cpu_count"),
    ("mem", "mem"),
    ("memory", "mem"),
];

/// Splits the text into terms at whitespace outside quotes and parentheses.
fn terms(text: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            '(' if !quoted => {
                depth += 1;
                current.push(c);
            }
            ')' if !quoted => {
                depth = depth.saturating_sub(1);
                current.push(c);
            }
            c if c.is_whitespace() && !quoted && depth == 0 => {
                if !current.is_empty() {
                    terms.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        terms.push(current);
    }
    terms
}

/// The values of `(a, b)` or `a,b` or `a`, trimmed, empty ones dropped.
fn values(text: &str) -> Vec<String> {
    let inner = text
        .strip_prefix('(')
        .map(|t| t.strip_suffix(')').unwrap_or(t))
        .unwrap_or(text);
    inner
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A status written as a filter name, a label or a simple status.
enum StatusValue {
    Exact(NodeStatus),
    Simple(SimpleStatus),
}

fn status_value(text: &str) -> Option<StatusValue> {
    let name = text.trim().to_ascii_lowercase().replace([' ', '-'], "_");
    if let Some(status) = NodeStatus::from_filter_name(&name) {
        return Some(StatusValue::Exact(status));
    }
    if let Some(simple) = SimpleStatus::from_filter_name(&name) {
        return Some(StatusValue::Simple(simple));
    }
    NodeStatus::ALL
        .into_iter()
        .find(|s| s.label().to_ascii_lowercase().replace([' ', '-'], "_") == name)
        .map(StatusValue::Exact)
}

/// Parses the search text. Unknown keys and statuses are field errors
/// under [`FIELD`]; names that must exist (tags, zones, pools) are checked
/// later by the filter builder.
pub fn parse(text: &str) -> ServiceResult<Search> {
    let mut search = Search::default();
    let mut errors = FieldErrors::new();
    for term in terms(text) {
        let (negated_key, term) = match term.strip_prefix('!') {
            Some(rest) if rest.contains(':') => (true, rest.to_owned()),
            _ => (false, term),
        };
        let Some((key, value)) = term.split_once(':') else {
            search.text.push(term);
            continue;
        };
        let key = key.to_ascii_lowercase();
        let list = values(value);
        if list.is_empty() {
            errors.add(FIELD, format!("'{key}:' needs a value."));
            continue;
        }
        for item in list {
            let (negated, item) = match item.strip_prefix('!') {
                Some(rest) => (!negated_key, rest.trim()),
                None => (negated_key, item.as_str()),
            };
            let item = item.strip_prefix('=').unwrap_or(item);
            if item.is_empty() {
                errors.add(FIELD, format!("'{key}:' needs a value."));
                continue;
            }
            if key == "status" {
                match status_value(item) {
                    Some(StatusValue::Exact(status)) => search.params.push(
                        if negated { "not_status" } else { "status" },
                        status.filter_name(),
                    ),
                    Some(StatusValue::Simple(simple)) => search.params.push(
                        if negated {
                            "not_simple_status"
                        } else {
                            "simple_status"
                        },
                        simple.filter_name(),
                    ),
                    None => errors.add(FIELD, format!("Unknown status: {item}")),
                }
                continue;
            }
            if let Some((_, param)) = MINIMUMS.iter().find(|(k, _)| *k == key) {
                if negated {
                    errors.add(FIELD, format!("'{key}' can't be negated."));
                } else {
                    search.params.push(*param, item);
                }
                continue;
            }
            match KEYS.iter().find(|(k, _, _)| *k == key) {
                Some((_, include, exclude)) => {
                    search
                        .params
                        .push(if negated { *exclude } else { *include }, item);
                }
                None => errors.add(
                    FIELD,
                    format!(
                        "Unknown filter '{key}'. Use one of: status, {}.",
                        KEYS.iter()
                            .map(|(k, _, _)| *k)
                            .chain(MINIMUMS.iter().map(|(k, _)| *k))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            }
        }
    }
    errors.check()?;
    Ok(search)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ServiceError;

    fn check(text: &str, params: &[(&str, &str)], free: &[&str]) {
        let search = parse(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
        let got: Vec<(&str, &str)> = search
            .params
            .pairs()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, params, "{text}");
        assert_eq!(search.text, free, "{text}");
    }

    #[test]
    fn keyed_terms_become_listing_parameters() {
        check(
            "status:ready pool:default tags:gpu",
            &[("status", "ready"), ("pool", "default"), ("tags", "gpu")],
            &[],
        );
        check(
            "status:(=ready, deployed) web  db",
            &[("status", "ready"), ("status", "deployed")],
            &["web", "db"],
        );
        check(
            "!owner:alice zone:(!east,west) status:!failed",
            &[
                ("not_owner", "alice"),
                ("not_in_zone", "east"),
                ("zone", "west"),
                ("not_simple_status", "failed"),
            ],
            &[],
        );
        check(
            "status:\"failed testing\" status:Failed-commissioning cpu:4 mem:2048",
            &[
                ("status", "failed_testing"),
                ("status", "failed_commissioning"),
                ("cpu_count", "4"),
                ("mem", "2048"),
            ],
            &[],
        );
        check("", &[], &[]);
    }

    #[test]
    fn mistakes_are_field_errors() {
        for text in ["colour:red", "status:sleepy", "pool:", "!cpu:4", "tags:()"] {
            match parse(text) {
                Err(ServiceError::Validation(map)) => {
                    assert!(map.contains_key(FIELD), "{text}: {map:?}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
