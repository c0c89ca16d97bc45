//! Users, account, SSH keys, config, zones, pools, tags, events and networks.

use crate::support::{TestRegion, p};

#[tokio::test]
async fn users() {
    let t = TestRegion::new().await;
    let new = |is_superuser: &str| {
        p().text("username", "u1")
            .text("email", "u1@x")
            .text("password", "p")
            .text("is_superuser", is_superuser)
    };
    let reply = t.post("users/", new("2")).await;
    reply.expect(400);
    let reply = t
        .post(
            "users/",
            p().text("email", "e")
                .text("password", "p")
                .text("is_superuser", "0"),
        )
        .await;
    reply.expect(400);
    assert_eq!(reply.text(), "No provided username!");
    let reply = t.post("users/", new("0")).await;
    reply.expect(200);
    assert_eq!(
        reply.json(),
        serde_json::json!({"username": "u1", "email": "u1@x", "is_local": true, "is_superuser": false, "resource_uri": "/MAAS/api/2.0/users/u1/"})
    );
    let dup = t.post("users/", new("1")).await;
    dup.expect(400);
    assert!(dup.json()["username"].is_array());
    let list = t.get("users/", p()).await.json();
    assert_eq!(
        list.as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["admin", "u1"]
    );
    t.get("users/u1/", p()).await.expect(200);
    let reply = t.get("users/ghost/", p()).await;
    reply.expect(404);
    assert_eq!(reply.text(), "No User matches the given query.");
    let reply = t.delete("users/admin/", p()).await;
    reply.expect(400);
    assert_eq!(reply.text(), "An administrator cannot self-delete.");
    t.delete("users/u1/", p()).await.expect(204);
    t.get("users/u1/", p()).await.expect(404);
}

#[tokio::test]
async fn account_tokens() {
    let t = TestRegion::new().await;
    let made = t
        .post("account/", p().op("create_authorisation_token"))
        .await
        .json();
    assert_eq!(made["name"], "MAAS consumer");
    let list = t
        .get("account/", p().op("list_authorisation_tokens"))
        .await
        .json();
    let tokens = list.as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0]["token"], t.admin.to_key_string());
    let reply = t
        .post(
            "account/",
            p().op("update_token_name")
                .text("token", tokens[1]["token"].as_str().unwrap())
                .text("name", "ci"),
        )
        .await;
    reply.expect(202);
    assert_eq!(reply.text(), "Accepted");
    let list = t
        .get("account/", p().op("list_authorisation_tokens"))
        .await
        .json();
    assert_eq!(list[1]["name"], "ci");
    t.get("account/", p()).await.expect(400);
    t.post(
        "account/",
        p().op("delete_authorisation_token")
            .text("token_key", "nope"),
    )
    .await
    .expect(404);
}

#[tokio::test]
async fn ssh_keys() {
    use base64::Engine;
    let t = TestRegion::new().await;
    let mut blob = Vec::new();
    blob.extend_from_slice(&11u32.to_be_bytes());
    blob.extend_from_slice(b"ssh-ed25519");
    blob.extend_from_slice(&32u32.to_be_bytes());
    blob.extend_from_slice(&[9u8; 32]);
    let key = format!(
        "ssh-ed25519 {} admin@laptop",
        base64::engine::general_purpose::STANDARD.encode(&blob)
    );
    let reply = t
        .post("account/prefs/sshkeys/", p().text("key", &key))
        .await;
    reply.expect(201);
    let created = reply.json();
    assert_eq!(created["key"], key);
    assert!(created.get("resource_uri").is_none());
    let id = created["id"].as_i64().unwrap();
    let list = t.get("account/prefs/sshkeys/", p()).await.json();
    assert_eq!(
        list[0]["resource_uri"],
        format!("/MAAS/api/2.0/account/prefs/sshkeys/{id}/")
    );
    let bad = t
        .post(
            "account/prefs/sshkeys/",
            p().text("key", "ssh-rsa notbase64!"),
        )
        .await;
    bad.expect(400);
    assert!(
        bad.json()["key"][0]
            .as_str()
            .unwrap()
            .starts_with("Invalid SSH public key")
    );
    let bob = t.user("bob").await;
    t.call(
        "DELETE",
        &format!("account/prefs/sshkeys/{id}/"),
        p(),
        Some(&bob),
    )
    .await
    .expect(403);
    t.delete(&format!("account/prefs/sshkeys/{id}/"), p())
        .await
        .expect(204);
    t.post(
        "account/prefs/sshkeys/",
        p().op("import").text("keysource", "lp:someone"),
    )
    .await
    .expect(400);
}

#[tokio::test]
async fn config_values() {
    let t = TestRegion::new().await;
    let get = |name: &str| p().op("get_config").text("name", name);
    let reply = t.get("maas/", get("default_distro_series")).await;
    reply.expect(200);
    assert_eq!(reply.content_type(), "application/json; charset=utf-8");
    assert_eq!(reply.json(), "noble");
    assert_eq!(
        t.get("maas/", get("enable_disk_erasing_on_release"))
            .await
            .json(),
        false
    );
    assert_eq!(
        t.get("maas/", get("http_proxy")).await.json(),
        serde_json::Value::Null
    );
    let reply = t
        .post(
            "maas/",
            p().op("set_config")
                .text("name", "enable_disk_erasing_on_release")
                .text("value", "1"),
        )
        .await;
    reply.expect(200);
    assert_eq!(reply.text(), "OK");
    assert_eq!(
        t.get("maas/", get("enable_disk_erasing_on_release"))
            .await
            .json(),
        true
    );
    t.post(
        "maas/",
        p().op("set_config")
            .text("name", "ntp_server")
            .text("value", "ntp.example.com"),
    )
    .await
    .expect(200);
    assert_eq!(
        t.get("maas/", get("ntp_servers")).await.json(),
        "ntp.example.com"
    );
    t.post(
        "maas/",
        p().op("set_config")
            .text("name", "node_timeout")
            .text("value", "soon"),
    )
    .await
    .expect(400);
    t.post(
        "maas/",
        p().op("set_config")
            .text("name", "dnssec_validation")
            .text("value", "maybe"),
    )
    .await
    .expect(400);
    t.get("maas/", get("no_such_setting")).await.expect(400);
    let reply = t.get("maas/", p().op("get_config")).await;
    reply.expect(400);
    assert_eq!(reply.text(), "No provided name!");
}

#[tokio::test]
async fn zones_and_pools() {
    let t = TestRegion::new().await;
    let zone = t
        .post(
            "zones/",
            p().text("name", "rack-a").text("description", "first"),
        )
        .await;
    zone.expect(200);
    assert_eq!(zone.json()["resource_uri"], "/MAAS/api/2.0/zones/rack-a/");
    let dup = t.post("zones/", p().text("name", "rack-a")).await;
    dup.expect(400);
    assert_eq!(
        dup.json(),
        serde_json::json!({"name": ["Zone with this Name already exists."]})
    );
    let names: Vec<String> = t
        .get("zones/", p())
        .await
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["default", "rack-a"]);
    t.put("zones/rack-a/", p().text("description", "updated"))
        .await
        .expect(200);
    assert_eq!(
        t.get("zones/rack-a/", p()).await.json()["description"],
        "updated"
    );
    let reply = t.delete("zones/default/", p()).await;
    reply.expect(400);
    assert_eq!(
        reply.text(),
        "This zone is the default zone, it cannot be deleted."
    );
    t.delete("zones/rack-a/", p()).await.expect(204);
    t.get("zones/rack-a/", p()).await.expect(404);

    let pool = t
        .post(
            "resourcepools/",
            p().text("name", "gpu").text("description", "GPUs"),
        )
        .await
        .json();
    let id = pool["id"].as_i64().unwrap();
    assert_eq!(
        pool["resource_uri"],
        format!("/MAAS/api/2.0/resourcepool/{id}/")
    );
    assert_eq!(
        t.get(&format!("resourcepool/{id}/"), p()).await.json()["name"],
        "gpu"
    );
    assert_eq!(t.get("resourcepool/gpu/", p()).await.json()["id"], id);
    t.post("resourcepools/", p().text("name", "gpu"))
        .await
        .expect(400);
    t.delete("resourcepool/0/", p()).await.expect(400);
    let m = t.machine("pooled", "52:54:00:00:09:01").await;
    t.put(
        &format!("machines/{}/", m["system_id"].as_str().unwrap()),
        p().text("pool", "gpu"),
    )
    .await
    .expect(200);
    t.delete(&format!("resourcepool/{id}/"), p())
        .await
        .expect(400);
    t.get("resourcepool/999/", p()).await.expect(404);
}

#[tokio::test]
async fn tags_and_tagged_machines() {
    let t = TestRegion::new().await;
    let tag = t
        .post(
            "tags/",
            p().text("name", "virtual")
                .text("comment", "VMs")
                .text("kernel_opts", "console=ttyS0"),
        )
        .await;
    tag.expect(200);
    assert_eq!(
        tag.json(),
        serde_json::json!({"name": "virtual", "definition": "", "comment": "VMs", "kernel_opts": "console=ttyS0", "resource_uri": "/MAAS/api/2.0/tags/virtual/"})
    );
    t.post("tags/", p().text("name", "bad name"))
        .await
        .expect(400);
    let m = t.machine("vm1", "52:54:00:00:0a:01").await;
    let id = m["system_id"].as_str().unwrap();
    let changed = t
        .post(
            "tags/virtual/",
            p().op("update_nodes").text("add", id).text("add", "nosuch"),
        )
        .await;
    changed.expect(200);
    assert_eq!(
        changed.json(),
        serde_json::json!({"added": 1, "removed": 0})
    );
    t.post(
        "tags/virtual/",
        p().op("update_nodes")
            .text("definition", "//node")
            .text("remove", id),
    )
    .await
    .expect(409);
    let tagged = t.get("tags/virtual/", p().op("machines")).await.json();
    assert_eq!(tagged[0]["system_id"], id);
    assert_eq!(tagged[0]["tag_names"], serde_json::json!(["virtual"]));
    assert_eq!(
        t.get("tags/virtual/", p().op("devices")).await.json(),
        serde_json::json!([])
    );
    t.put("tags/virtual/", p().text("comment", "virtual machines"))
        .await
        .expect(200);
    t.delete("tags/virtual/", p()).await.expect(204);
    t.get("tags/virtual/", p()).await.expect(404);
    let m = t.get(&format!("machines/{id}/"), p()).await.json();
    assert_eq!(m["tag_names"], serde_json::json!([]));
}

#[tokio::test]
async fn events_query_and_paging() {
    let t = TestRegion::new().await;
    for i in 0..5 {
        t.machine(&format!("ev{i}"), &format!("52:54:00:00:0b:0{i}"))
            .await;
    }
    let page = t.get("events/", p().op("query").text("limit", "2")).await;
    page.expect(200);
    let body = page.json();
    assert_eq!(body["count"], 2);
    let events = body["events"].as_array().unwrap();
    assert_eq!(events[0]["hostname"], "ev4");
    assert_eq!(events[0]["type"], "New");
    assert_eq!(events[0]["level"], "INFO");
    assert_eq!(events[0]["username"], "admin");
    let created = events[0]["created"].as_str().unwrap();
    assert!(created.contains(". ") && created.contains(':'), "{created}");
    let prev = body["prev_uri"].as_str().unwrap();
    assert!(prev.starts_with("/MAAS/api/2.0/events/?op=query"));
    assert!(body["next_uri"].is_string());
    // Follow prev_uri as libmaas does: re-send its query.
    let query = prev.split_once('?').unwrap().1;
    let mut params = p().op("query");
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k != "op" {
            params = params.text(k.into_owned(), v.into_owned());
        }
    }
    let older = t.get("events/", params).await.json();
    assert_eq!(older["events"][0]["hostname"], "ev2");
    let by_host = t
        .get("events/", p().op("query").text("hostname", "ev1"))
        .await
        .json();
    assert_eq!(by_host["count"], 1);
    assert!(by_host["prev_uri"].is_null());
    t.get("events/", p().op("query").text("limit", "1001"))
        .await
        .expect(400);
    t.get(
        "events/",
        p().op("query").text("before", "3").text("after", "1"),
    )
    .await
    .expect(400);
    t.get("events/", p().op("query").text("level", "LOUD"))
        .await
        .expect(400);
    assert_eq!(
        t.get("events/", p().op("query").text("level", "AUDIT"))
            .await
            .json()["count"],
        0
    );
}

#[tokio::test]
async fn fabrics_vlans_spaces_subnets_and_ranges() {
    let t = TestRegion::new().await;
    let default = t.get("fabrics/0/", p()).await;
    default.expect(200);
    let fabric0 = default.json();
    assert_eq!(fabric0["name"], "fabric-0");
    assert_eq!(fabric0["vlans"][0]["id"], 5001);
    assert_eq!(fabric0["vlans"][0]["name"], "untagged");
    assert_eq!(fabric0["vlans"][0]["space"], "undefined");
    assert_eq!(fabric0["vlans"][0]["fabric"], "fabric-0");
    let fabric = t.post("fabrics/", p()).await.json();
    let fabric_id = fabric["id"].as_i64().unwrap();
    assert_eq!(fabric["name"], format!("fabric-{fabric_id}"));
    let space = t.post("spaces/", p().text("name", "storage")).await.json();
    let vlan = t
        .post(
            &format!("fabrics/{fabric_id}/vlans/"),
            p().text("vid", "100")
                .text("mtu", "9000")
                .text("space", "storage"),
        )
        .await;
    vlan.expect(200);
    let vlan = vlan.json();
    assert!(vlan["id"].as_i64().unwrap() > 5001);
    assert_eq!(vlan["name"], "100");
    assert_eq!(vlan["space"], "storage");
    assert_eq!(
        vlan["resource_uri"],
        format!("/MAAS/api/2.0/vlans/{}/", vlan["id"])
    );
    t.post(
        &format!("fabrics/{fabric_id}/vlans/"),
        p().text("vid", "5000"),
    )
    .await
    .expect(400);
    t.post(
        &format!("fabrics/{fabric_id}/vlans/"),
        p().text("vid", "100"),
    )
    .await
    .expect(400);
    assert_eq!(
        t.get(&format!("fabrics/{fabric_id}/vlans/100/"), p())
            .await
            .json()["id"],
        vlan["id"]
    );
    assert_eq!(
        t.get(&format!("vlans/{}/", vlan["id"]), p()).await.json()["vid"],
        100
    );
    assert_eq!(
        t.get(&format!("spaces/{}/", space["id"]), p()).await.json()["vlans"][0]["vid"],
        100
    );

    let subnet = t
        .post(
            "subnets/",
            p().text("cidr", "10.20.0.7/24")
                .text("gateway_ip", "10.20.0.1")
                .text("dns_servers", "10.20.0.2,10.20.0.3"),
        )
        .await;
    subnet.expect(200);
    let subnet = subnet.json();
    assert_eq!(subnet["cidr"], "10.20.0.0/24");
    assert_eq!(subnet["name"], "10.20.0.0/24");
    assert_eq!(subnet["vlan"]["id"], 5001);
    assert_eq!(subnet["space"], "undefined");
    assert_eq!(
        subnet["dns_servers"],
        serde_json::json!(["10.20.0.2", "10.20.0.3"])
    );
    assert_eq!(subnet["rdns_mode"], 2);
    let id = subnet["id"].as_i64().unwrap();
    assert_eq!(t.get("subnets/10.20.0.0/24/", p()).await.json()["id"], id);
    assert_eq!(
        t.get("subnets/cidr:10.20.0.0/24/", p()).await.json()["id"],
        id
    );
    t.post("subnets/", p().text("cidr", "10.20.0.0/24"))
        .await
        .expect(400);
    t.post(
        "subnets/",
        p().text("cidr", "10.30.0.0/24")
            .text("gateway_ip", "10.99.0.1"),
    )
    .await
    .expect(400);
    let moved = t
        .put(
            &format!("subnets/{id}/"),
            p().text("vlan", vlan["id"].to_string()),
        )
        .await;
    moved.expect(200);
    assert_eq!(moved.json()["space"], "storage");

    let range = t
        .post(
            "ipranges/",
            p().text("type", "dynamic")
                .text("start_ip", "10.20.0.100")
                .text("end_ip", "10.20.0.200"),
        )
        .await;
    range.expect(200);
    let range = range.json();
    assert_eq!(range["subnet"]["id"], id);
    assert_eq!(range["user"]["username"], "admin");
    let overlap = t
        .post(
            "ipranges/",
            p().text("type", "reserved")
                .text("start_ip", "10.20.0.150")
                .text("end_ip", "10.20.0.160"),
        )
        .await;
    overlap.expect(400);
    assert!(
        overlap.json()["__all__"][0]
            .as_str()
            .unwrap()
            .contains("conflicts")
    );
    t.post(
        "ipranges/",
        p().text("type", "reserved")
            .text("start_ip", "10.20.0.50")
            .text("end_ip", "10.20.0.40"),
    )
    .await
    .expect(400);
    t.post(
        "ipranges/",
        p().text("type", "reserved")
            .text("start_ip", "10.20.0.10")
            .text("end_ip", "10.21.0.10"),
    )
    .await
    .expect(400);
    let bob = t.user("bob").await;
    t.call(
        "POST",
        "ipranges/",
        p().text("type", "dynamic")
            .text("start_ip", "10.20.0.10")
            .text("end_ip", "10.20.0.20"),
        Some(&bob),
    )
    .await
    .expect(403);
    t.delete(&format!("ipranges/{}/", range["id"]), p())
        .await
        .expect(204);

    // DHCP needs a primary rack and a dynamic range.
    t.put(
        &format!("vlans/{}/", vlan["id"]),
        p().text("dhcp_on", "true"),
    )
    .await
    .expect(400);
    let reply = t.delete("fabrics/0/", p()).await;
    reply.expect(400);
    t.delete(&format!("fabrics/{fabric_id}/vlans/100/"), p())
        .await
        .expect(400);
    t.delete(&format!("subnets/{id}/"), p()).await.expect(204);
    t.delete(&format!("fabrics/{fabric_id}/vlans/100/"), p())
        .await
        .expect(204);
    t.delete(&format!("fabrics/{fabric_id}/"), p())
        .await
        .expect(204);
    t.get(&format!("fabrics/{fabric_id}/"), p())
        .await
        .expect(404);
}
