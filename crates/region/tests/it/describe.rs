//! The describe document (api.md §4), as both clients read it.

use std::collections::BTreeSet;

use crate::support::{TestRegion, p};

async fn describe(t: &TestRegion) -> (serde_json::Value, String) {
    let reply = t.call("GET", "describe/", p(), None).await;
    reply.expect(200);
    (reply.json(), reply.content_type().to_owned())
}

#[tokio::test]
async fn content_type_hash_and_absolute_uris() {
    let t = TestRegion::new().await;
    let (doc, content_type) = describe(&t).await;
    assert_eq!(content_type, "application/json");
    assert_eq!(doc["doc"], "MAAS API");
    let hash = doc["hash"].as_str().unwrap();
    assert_eq!(hash.len(), 40);
    let reply = t.get("users/", p().op("whoami")).await;
    assert_eq!(
        reply
            .headers
            .get("x-maas-api-hash")
            .unwrap()
            .to_str()
            .unwrap(),
        hash
    );
    // The hash is stable across requests.
    assert_eq!(describe(&t).await.0["hash"], doc["hash"]);
    let machines = doc["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "MachinesHandler")
        .unwrap();
    assert_eq!(machines["auth"]["path"], "/MAAS/api/2.0/machines/");
    assert_eq!(
        machines["auth"]["uri"],
        "http://testserver:5240/MAAS/api/2.0/machines/"
    );
    assert_eq!(machines["anon"]["name"], "AnonMachinesHandler");
    let version = doc["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "VersionHandler")
        .unwrap();
    assert!(version["auth"].is_null());
    assert_eq!(version["anon"]["actions"][0]["name"], "read");
    // The legacy flat list holds every handler.
    assert!(doc["handlers"].as_array().unwrap().len() > doc["resources"].as_array().unwrap().len());
}

fn command_name(name: &str) -> String {
    maas_client::describe::handler_command_name(name)
}

#[tokio::test]
async fn handler_names_params_and_docs_fit_both_clients() {
    let t = TestRegion::new().await;
    let (doc, _) = describe(&t).await;
    let resources = doc["resources"].as_array().unwrap();
    let names: Vec<&str> = resources
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "resources are sorted by name");
    for expected in [
        "MachinesHandler",
        "MachineHandler",
        "UsersHandler",
        "UserHandler",
        "ZonesHandler",
        "ZoneHandler",
        "ResourcePoolsHandler",
        "ResourcePoolHandler",
        "TagsHandler",
        "TagHandler",
        "SubnetsHandler",
        "SubnetHandler",
        "FabricsHandler",
        "FabricHandler",
        "VlansHandler",
        "VlanHandler",
        "EventsHandler",
        "AccountHandler",
        "MaasHandler",
        "VersionHandler",
        "NodesHandler",
        "NodeHandler",
        "SSHKeysHandler",
        "SpacesHandler",
        "IPRangesHandler",
        "DomainsHandler",
    ] {
        assert!(names.contains(&expected), "{expected} missing");
    }
    let mut commands = BTreeSet::new();
    for resource in resources {
        let name = resource["name"].as_str().unwrap();
        assert!(
            !name.starts_with("Anon") || resource["auth"].is_null(),
            "{name}: resource named after an anon handler"
        );
        assert!(
            commands.insert(command_name(name)),
            "two resources map to the CLI command {}",
            command_name(name)
        );
        for handler in [&resource["auth"], &resource["anon"]] {
            if handler.is_null() {
                continue;
            }
            let path = handler["path"].as_str().unwrap();
            assert!(path.starts_with("/MAAS/api/2.0/"), "{path}");
            let placeholders: Vec<String> = path
                .split('/')
                .filter_map(|s| {
                    s.strip_prefix('{')
                        .and_then(|s| s.strip_suffix('}'))
                        .map(str::to_owned)
                })
                .collect();
            let params: Vec<String> = handler["params"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_owned())
                .collect();
            assert_eq!(params, placeholders, "{path}");
            let actions = handler["actions"].as_array().unwrap();
            let action_names: Vec<&str> = actions
                .iter()
                .map(|a| a["name"].as_str().unwrap())
                .collect();
            let mut sorted = action_names.clone();
            sorted.sort();
            assert_eq!(action_names, sorted, "{path}: actions sorted");
            for action in actions {
                let doc = action["doc"].as_str().unwrap();
                let (title, _) = doc.split_once("\n\n").expect("title then a blank line");
                assert!(!title.trim().is_empty());
                assert_eq!(action["restful"], action["op"].is_null());
                if action["op"].is_null() {
                    assert!(
                        ["read", "create", "update", "delete"]
                            .contains(&action["name"].as_str().unwrap())
                    );
                } else {
                    assert_eq!(action["op"], action["name"]);
                }
            }
        }
    }
    assert!(
        commands.contains("machines")
            && commands.contains("sshkeys")
            && commands.contains("ipranges")
            && commands.contains("maas")
    );
    // maascli accepts key=value only where the doc body has :param.
    let users = resources
        .iter()
        .find(|r| r["name"] == "UsersHandler")
        .unwrap();
    let create = users["auth"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "create")
        .unwrap();
    let body = create["doc"]
        .as_str()
        .unwrap()
        .split_once("\n\n")
        .unwrap()
        .1;
    assert!(body.contains(":param username:"));
    let vlan = resources
        .iter()
        .find(|r| r["name"] == "VlanHandler")
        .unwrap();
    assert_eq!(
        vlan["auth"]["params"],
        serde_json::json!(["fabric_id", "vid"])
    );
    let pool = resources
        .iter()
        .find(|r| r["name"] == "ResourcePoolHandler")
        .unwrap();
    assert_eq!(pool["auth"]["path"], "/MAAS/api/2.0/resourcepool/{id}/");
}

#[test]
fn command_names_follow_maascli() {
    for (name, command) in [
        ("MachinesHandler", "machines"),
        ("RackControllersHandler", "rack-controllers"),
        ("SSHKeysHandler", "sshkeys"),
        ("BootSourceSelectionsHandler", "boot-source-selections"),
        ("IPRangesHandler", "ipranges"),
        ("MaasHandler", "maas"),
        ("ResourcePoolHandler", "resource-pool"),
    ] {
        assert_eq!(command_name(name), command, "{name}");
    }
}
