//! The describe document (api.md §4): built from the resource table, with
//! absolute `uri`s made from the Host header of each describe request, and
//! a hash over everything but the `uri`s, fixed for the life of the process.

use serde_json::{Map, Value, json};
use sha1::{Digest, Sha1};

use super::{Handler, Resource};

const API_ROOT: &str = "/MAAS/api/2.0/";

fn handler_value(resource: &Resource, handler: &Handler, base_url: Option<&str>) -> Value {
    let mut actions: Vec<&super::Action> = handler.actions.iter().collect();
    actions.sort_by_key(|a| a.name);
    let actions: Vec<Value> = actions
        .iter()
        .map(|a| {
            json!({
                "name": a.name,
                "doc": a.doc(),
                "method": a.method.as_str(),
                "op": a.op,
                "restful": a.op.is_none(),
            })
        })
        .collect();
    let path = format!("{API_ROOT}{}", resource.path);
    let mut object = Map::new();
    object.insert("name".into(), json!(handler.name));
    object.insert("doc".into(), json!(handler.doc));
    object.insert("params".into(), json!(resource.params));
    object.insert("path".into(), json!(path));
    object.insert("actions".into(), Value::Array(actions));
    if let Some(base) = base_url {
        object.insert("uri".into(), json!(format!("{base}{path}")));
    }
    Value::Object(object)
}

/// The document for `base_url` (`None`: without `uri`s, for hashing).
fn document(resources: &[Resource], base_url: Option<&str>) -> Value {
    let mut visible: Vec<&Resource> = resources.iter().filter(|r| !r.hidden).collect();
    visible.sort_by_key(|r| r.name());
    let mut entries = Vec::new();
    let mut anon_handlers = Vec::new();
    let mut auth_handlers = Vec::new();
    for resource in visible {
        let anon = resource
            .anon
            .as_ref()
            .map(|h| handler_value(resource, h, base_url));
        let auth = resource
            .auth
            .as_ref()
            .map(|h| handler_value(resource, h, base_url));
        anon_handlers.extend(anon.clone());
        auth_handlers.extend(auth.clone());
        entries.push(json!({
            "name": resource.name(),
            "anon": anon,
            "auth": auth,
        }));
    }
    anon_handlers.extend(auth_handlers);
    json!({
        "doc": "MAAS API",
        "resources": entries,
        "handlers": anon_handlers,
    })
}

/// SHA-1 over the canonical (sorted-key, compact) JSON of the document without `uri`s.
pub fn hash(resources: &[Resource]) -> String {
    let canonical = document(resources, None).to_string();
    let digest = Sha1::digest(canonical.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The document served to a client that reached us at `base_url`.
pub fn render(resources: &[Resource], base_url: &str, hash: &str) -> Vec<u8> {
    let mut doc = document(resources, Some(base_url));
    if let Value::Object(map) = &mut doc {
        map.insert("hash".into(), json!(hash));
    }
    // serde_json's default map is sorted, so the keys come out sorted as MAAS's do.
    maas_api_types::pretty::to_vec(&doc).unwrap_or_default()
}
