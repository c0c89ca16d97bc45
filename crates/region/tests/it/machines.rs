//! `machines/` and `machine/` (api.md §6–8): fields, filters, permissions.

use maas_domain::NodeStatus;
use maas_store::StatusChange;

use crate::support::{TestRegion, p};

/// Every key api.md §6.2 says a machine always carries.
const MACHINE_KEYS: &[&str] = &[
    "system_id",
    "hostname",
    "description",
    "hardware_uuid",
    "domain",
    "fqdn",
    "owner",
    "owner_data",
    "workload_annotations",
    "locked",
    "architecture",
    "min_hwe_kernel",
    "hwe_kernel",
    "cpu_count",
    "cpu_speed",
    "memory",
    "swap_size",
    "storage",
    "status",
    "status_name",
    "status_message",
    "status_action",
    "osystem",
    "distro_series",
    "ephemeral_deploy",
    "error_description",
    "netboot",
    "power_type",
    "power_state",
    "tag_names",
    "address_ttl",
    "ip_addresses",
    "interface_set",
    "boot_interface",
    "zone",
    "pool",
    "disable_ipv4",
    "boot_disk",
    "blockdevice_set",
    "physicalblockdevice_set",
    "virtualblockdevice_set",
    "volume_groups",
    "raids",
    "bcaches",
    "cache_sets",
    "special_filesystems",
    "node_type",
    "node_type_name",
    "parent",
    "pod",
    "virtualmachine_id",
    "default_gateways",
    "current_commissioning_result_id",
    "current_testing_result_id",
    "current_installation_result_id",
    "commissioning_status",
    "commissioning_status_name",
    "testing_status",
    "testing_status_name",
    "cpu_test_status",
    "cpu_test_status_name",
    "memory_test_status",
    "memory_test_status_name",
    "storage_test_status",
    "storage_test_status_name",
    "network_test_status",
    "network_test_status_name",
    "interface_test_status",
    "interface_test_status_name",
    "other_test_status",
    "other_test_status_name",
    "hardware_info",
    "numanode_set",
    "enable_hw_sync",
    "last_sync",
    "next_sync",
    "sync_interval",
    "enable_kernel_crash_dump",
    "is_dpu",
    "resource_uri",
];

#[tokio::test]
async fn create_read_and_the_machine_shape() {
    let t = TestRegion::new().await;
    let reply = t
        .post(
            "machines/",
            p().text("architecture", "amd64")
                .text("mac_addresses", "52:54:00:12:34:56")
                .text("power_type", "ipmi")
                .text("power_parameters", r#"{"power_address": "10.0.0.9", "power_user": "root", "power_pass": "s3cret"}"#),
        )
        .await;
    reply.expect(200);
    let m = reply.json();
    for key in MACHINE_KEYS {
        assert!(m.get(*key).is_some(), "machine lacks {key}");
    }
    assert!(m.get("constraints_by_type").is_none());
    let system_id = m["system_id"].as_str().unwrap();
    assert_eq!(system_id.len(), 6);
    assert!(
        system_id
            .bytes()
            .all(|b| b"34678abcdefghkmnpqrstwxy".contains(&b))
    );
    // Admins' machines start commissioning.
    assert_eq!(m["status"], 1);
    assert_eq!(m["status_name"], "Commissioning");
    assert_eq!(m["status_message"], "Commissioning");
    let hostname = m["hostname"].as_str().unwrap();
    assert_eq!(hostname.split('-').count(), 2, "petname {hostname}");
    assert_eq!(m["fqdn"], format!("{hostname}.maas"));
    assert_eq!(m["architecture"], "amd64/generic");
    // Commissioning is owned by whoever started it (provisioning.md §1.3).
    assert_eq!(m["owner"], "admin");
    assert_eq!(m["owner_data"], serde_json::json!({}));
    assert_eq!(m["zone"]["name"], "default");
    assert_eq!(m["zone"]["resource_uri"], "/MAAS/api/2.0/zones/default/");
    assert_eq!(m["pool"]["id"], 0);
    assert_eq!(m["pool"]["resource_uri"], "/MAAS/api/2.0/resourcepool/0/");
    assert_eq!(m["domain"]["name"], "maas");
    assert_eq!(m["domain"]["id"], 0);
    assert_eq!(m["power_state"], "unknown");
    assert_eq!(m["node_type"], 0);
    assert_eq!(m["node_type_name"], "Machine");
    assert_eq!(m["storage"], 0.0);
    assert!(
        m["locked"].is_boolean() && m["netboot"].is_boolean() && m["disable_ipv4"].is_boolean()
    );
    assert_eq!(m["interface_set"][0]["mac_address"], "52:54:00:12:34:56");
    assert_eq!(m["interface_set"][0]["type"], "physical");
    assert_eq!(m["interface_set"][0]["params"], "");
    assert_eq!(m["boot_interface"]["name"], "eth0");
    assert_eq!(m["hardware_info"].as_object().unwrap().len(), 18);
    assert_eq!(
        m["resource_uri"],
        format!("/MAAS/api/2.0/machines/{system_id}/")
    );

    let read = t.get(&format!("machines/{system_id}/"), p()).await;
    read.expect(200);
    assert_eq!(read.json()["hostname"], hostname);
    let params = t
        .get(
            &format!("machines/{system_id}/"),
            p().op("power_parameters"),
        )
        .await;
    params.expect(200);
    assert_eq!(params.json()["power_pass"], "s3cret");
    let all = t.get("machines/", p().op("power_parameters")).await;
    assert_eq!(all.json()[system_id]["power_address"], "10.0.0.9");
}

#[tokio::test]
async fn create_errors_are_field_errors() {
    let t = TestRegion::new().await;
    t.machine("taken", "52:54:00:00:00:01").await;
    let reply = t
        .post("machines/", p().text("mac_addresses", "52:54:00:00:00:02"))
        .await;
    reply.expect(400);
    assert!(reply.json()["architecture"][0].is_string());
    let reply = t
        .post(
            "machines/",
            p().text("architecture", "amd64")
                .text("mac_addresses", "not-a-mac"),
        )
        .await;
    reply.expect(400);
    assert!(
        reply.json()["mac_addresses"][0]
            .as_str()
            .unwrap()
            .contains("not-a-mac")
    );
    let reply = t
        .post(
            "machines/",
            p().text("architecture", "amd64")
                .text("mac_addresses", "52:54:00:00:00:01"),
        )
        .await;
    reply.expect(400);
    assert!(
        reply.json()["mac_addresses"][0]
            .as_str()
            .unwrap()
            .contains("already in use")
    );
    let reply = t
        .post(
            "machines/",
            p().text("architecture", "amd64")
                .text("mac_addresses", "52:54:00:00:00:03")
                .text("hostname", "taken"),
        )
        .await;
    reply.expect(400);
    assert!(reply.json()["hostname"].is_array());
    let reply = t
        .post(
            "machines/",
            p().text("architecture", "vax")
                .text("mac_addresses", "52:54:00:00:00:04"),
        )
        .await;
    reply.expect(400);
    let reply = t
        .post(
            "machines/",
            p().text("architecture", "amd64")
                .text("mac_addresses", "52:54:00:00:00:05")
                .text("power_type", "magic"),
        )
        .await;
    reply.expect(400);
    assert!(reply.json()["power_type"].is_array());
}

#[tokio::test]
async fn non_admins_create_new_machines_and_see_only_what_they_may() {
    let t = TestRegion::new().await;
    let bob = t.user("bob").await;
    let carol = t.user("carol").await;
    let reply = t
        .call(
            "POST",
            "machines/",
            p().text("architecture", "amd64")
                .text("mac_addresses", "52:54:00:00:00:11")
                .text("hostname", "bobs"),
            Some(&bob),
        )
        .await;
    reply.expect(200);
    assert_eq!(reply.json()["status"], 0);
    let theirs = t.machine("carols", "52:54:00:00:00:12").await;
    // Give carols to carol, as an allocation would.
    let store = t.region.store.clone();
    let node = store
        .node_by_system_id(theirs["system_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    let carol_user = store.user_by_username("carol").await.unwrap().unwrap();
    assert!(
        store
            .change_status(
                node.id,
                StatusChange {
                    from: NodeStatus::New,
                    to: NodeStatus::Allocated,
                    owner: Some(Some(carol_user.id)),
                    owner_must_be: Some(None),
                    agent_name: None,
                    status_expires: None,
                    error_description: None,
                    keep_previous: false,
                    events: vec![],
                    updated: 1,
                }
            )
            .await
            .unwrap()
    );
    let listed = t.call("GET", "machines/", p(), Some(&bob)).await.json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bobs"]);
    let path = format!("machines/{}/", node.system_id);
    t.call("GET", &path, p(), Some(&bob)).await.expect(403);
    let mine = t.call("GET", &path, p(), Some(&carol)).await;
    mine.expect(200);
    assert_eq!(mine.json()["owner"], "carol");
    // Only admins update and delete.
    t.call("PUT", &path, p().text("description", "x"), Some(&carol))
        .await
        .expect(403);
    t.call("DELETE", &path, p(), Some(&carol)).await.expect(403);
    // Owner data: the owner may, others get 409.
    let reply = t
        .call(
            "POST",
            &path,
            p().op("set_owner_data")
                .text("owner", "juju")
                .text("model", "m1"),
            Some(&carol),
        )
        .await;
    reply.expect(200);
    assert_eq!(
        reply.json()["owner_data"],
        serde_json::json!({"owner": "juju", "model": "m1"})
    );
    assert_eq!(reply.json()["workload_annotations"]["model"], "m1");
    let reply = t
        .call(
            "POST",
            &path,
            p().op("set_workload_annotations").text("model", ""),
            Some(&carol),
        )
        .await;
    assert_eq!(
        reply.json()["owner_data"],
        serde_json::json!({"owner": "juju"})
    );
    t.post(&path, p().op("set_owner_data").text("x", "y"))
        .await
        .expect(409);
}

#[tokio::test]
async fn listing_filters() {
    let t = TestRegion::new().await;
    let a = t.machine("node1", "52:54:00:00:01:01").await;
    t.machine("node2", "52:54:00:00:01:02").await;
    t.machine("node3", "52:54:00:00:01:03").await;
    let hostnames = |reply: &crate::support::Reply| -> Vec<String> {
        reply
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["hostname"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        hostnames(&t.get("machines/", p().text("hostname", "node2")).await),
        ["node2"]
    );
    assert_eq!(
        hostnames(&t.get("machines/", p().text("hostname", "node2.maas")).await),
        ["node2"]
    );
    assert_eq!(
        hostnames(
            &t.get(
                "machines/",
                p().text("hostname", "node1").text("hostname", "node3")
            )
            .await
        ),
        ["node1", "node3"]
    );
    assert_eq!(
        hostnames(
            &t.get("machines/", p().text("mac_address", "52-54-00-00-01-03"))
                .await
        ),
        ["node3"]
    );
    assert_eq!(
        hostnames(
            &t.get(
                "machines/",
                p().text("id", a["system_id"].as_str().unwrap())
            )
            .await
        ),
        ["node1"]
    );
    assert_eq!(
        hostnames(&t.get("machines/", p().text("status", "new")).await).len(),
        3
    );
    assert!(hostnames(&t.get("machines/", p().text("status", "ready")).await).is_empty());
    assert_eq!(
        hostnames(&t.get("machines/", p().text("simple_status", "new")).await).len(),
        3
    );
    assert_eq!(
        hostnames(&t.get("machines/", p().text("arch", "amd64")).await).len(),
        3
    );
    assert!(hostnames(&t.get("machines/", p().text("arch", "arm64")).await).is_empty());
    assert_eq!(
        hostnames(&t.get("machines/", p().text("zone", "default")).await).len(),
        3
    );
    assert!(hostnames(&t.get("machines/", p().text("pod", "anything")).await).is_empty());
    t.post("tags/", p().text("name", "gpu")).await.expect(200);
    t.post(
        "tags/gpu/",
        p().op("update_nodes")
            .text("add", a["system_id"].as_str().unwrap()),
    )
    .await
    .expect(200);
    assert_eq!(
        hostnames(&t.get("machines/", p().text("tags", "gpu")).await),
        ["node1"]
    );
    assert_eq!(
        hostnames(&t.get("machines/", p().text("not_tags", "gpu")).await),
        ["node2", "node3"]
    );

    let reply = t.get("machines/", p().text("colour", "blue")).await;
    reply.expect(400);
    assert_eq!(
        reply.json(),
        serde_json::json!({"colour": ["No such constraint."]})
    );
    let reply = t.get("machines/", p().text("zone", "mars")).await;
    reply.expect(400);
    assert_eq!(
        reply.json(),
        serde_json::json!({"zone": ["No such zone(s): mars."]})
    );
    let reply = t.get("machines/", p().text("tags", "nope")).await;
    reply.expect(400);
    assert_eq!(
        reply.json(),
        serde_json::json!({"tags": ["No such tag(s): 'nope'."]})
    );
    t.get("machines/", p().text("status", "sleeping"))
        .await
        .expect(400);
    t.get("machines/", p().text("mem", "lots"))
        .await
        .expect(400);
    // nodes/ lists the same machines.
    assert_eq!(hostnames(&t.get("nodes/", p()).await).len(), 3);
}

#[tokio::test]
async fn long_listings_stream_as_one_json_array() {
    let t = TestRegion::new().await;
    for i in 0..230 {
        t.machine(
            &format!("bulk-{i}"),
            &format!("52:54:00:01:{:02x}:{:02x}", i / 256, i % 256),
        )
        .await;
    }
    let reply = t.get("machines/", p()).await;
    reply.expect(200);
    assert_eq!(reply.content_type(), "application/json; charset=utf-8");
    let list = reply.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 230);
    assert_eq!(list[0]["hostname"], "bulk-0");
    assert_eq!(list[229]["hostname"], "bulk-229");
    // MAAS's 4-space layout.
    assert!(reply.text().starts_with("[\n    {\n        \"system_id\""));
    let empty = t.get("machines/", p().text("hostname", "none")).await;
    assert_eq!(empty.text(), "[]");
}

#[tokio::test]
async fn update_and_delete() {
    let t = TestRegion::new().await;
    let m = t.machine("before", "52:54:00:00:02:01").await;
    let path = format!("machines/{}/", m["system_id"].as_str().unwrap());
    t.post("zones/", p().text("name", "rack2"))
        .await
        .expect(200);
    t.post("resourcepools/", p().text("name", "gpus"))
        .await
        .expect(200);
    t.put(
        &path,
        p().text("power_type", "ipmi")
            .text("power_parameters_power_address", "10.1.1.1"),
    )
    .await
    .expect(200);
    let reply = t
        .put(
            &path,
            p().text("hostname", "after")
                .text("description", "rack 2, slot 4")
                .text("zone", "rack2")
                .text("pool", "gpus")
                .text("power_parameters_power_user", "admin")
                .text("cpu_count", "16")
                .text("memory", "32768")
                .text("swap_size", "2G"),
        )
        .await;
    reply.expect(200);
    let m = reply.json();
    assert_eq!(m["hostname"], "after");
    assert_eq!(m["zone"]["name"], "rack2");
    assert_eq!(m["pool"]["name"], "gpus");
    assert_eq!(m["cpu_count"], 16);
    assert_eq!(m["memory"], 32768);
    assert_eq!(m["swap_size"], 2_000_000_000i64);
    assert_eq!(m["power_type"], "ipmi");
    let params = t.get(&path, p().op("power_parameters")).await.json();
    assert_eq!(
        params,
        serde_json::json!({"power_address": "10.1.1.1", "power_user": "admin"})
    );
    let reply = t
        .put(&path, p().text("zone", "nowhere").text("swap_size", "big"))
        .await;
    reply.expect(400);
    assert!(reply.json()["zone"].is_array() && reply.json()["swap_size"].is_array());
    t.put(&path, p().text("disable_ipv4", "true"))
        .await
        .expect(400);
    t.delete(&path, p()).await.expect(204);
    t.get(&path, p()).await.expect(404);
    t.delete(&path, p()).await.expect(404);
}

#[tokio::test]
async fn anonymous_enlistment() {
    let t = TestRegion::new().await;
    let reply = t
        .call(
            "POST",
            "machines/",
            p().text("architecture", "amd64/generic")
                .text("mac_addresses", "52:54:00:00:03:01"),
            None,
        )
        .await;
    reply.expect(200);
    let m = reply.json();
    let keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = vec![
        "system_id",
        "hostname",
        "domain",
        "fqdn",
        "architecture",
        "status",
        "power_type",
        "power_state",
        "zone",
        "status_action",
        "status_message",
        "status_name",
        "node_type",
        "resource_uri",
    ];
    expected.sort();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort();
    assert_eq!(keys_sorted, expected);
    assert_eq!(m["status"], 0);
    // A second enlistment from the same MAC updates that machine.
    let again = t
        .call(
            "POST",
            "machines/",
            p().text("architecture", "arm64/generic")
                .text("mac_addresses", "52:54:00:00:03:01"),
            None,
        )
        .await;
    again.expect(200);
    assert_eq!(again.json()["system_id"], m["system_id"]);
    assert_eq!(again.json()["architecture"], "arm64/generic");
    let registered = t
        .call(
            "GET",
            "machines/",
            p().op("is_registered")
                .text("mac_address", "52:54:00:00:03:01"),
            None,
        )
        .await;
    assert_eq!(registered.json(), true);
    let busy = t
        .call(
            "GET",
            "machines/",
            p().op("is_action_in_progress")
                .text("mac_address", "52:54:00:00:03:01"),
            None,
        )
        .await;
    assert_eq!(busy.json(), false);
    t.call("GET", "machines/", p().op("is_registered"), None)
        .await
        .expect(400);
}
