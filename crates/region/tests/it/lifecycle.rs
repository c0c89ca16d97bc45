//! The machine life cycle over the API, with the test agent playing the
//! machine through the metadata API (provisioning.md §1–2, api.md §7–8).

use maas_region::power::PowerRequest;

use crate::agent::{Agent, SERVER, SMALL_VM, vm_resources};
use crate::support::{TestRegion, p};

async fn status_of(t: &TestRegion, system_id: &str) -> (i64, String) {
    let m = t.get(&format!("machines/{system_id}/"), p()).await.json();
    (
        m["status"].as_i64().unwrap(),
        m["status_name"].as_str().unwrap().to_owned(),
    )
}

/// A machine whose power type is IPMI (answered by the recording port).
async fn ipmi_machine(t: &TestRegion, hostname: &str, mac: &str) -> String {
    let reply = t
        .post(
            "machines/",
            p().text("architecture", "amd64/generic")
                .text("mac_addresses", mac)
                .text("hostname", hostname)
                .text("power_type", "ipmi")
                .text("power_parameters_power_address", "192.0.2.10")
                .text("commission", "false"),
        )
        .await;
    reply.expect(200);
    reply.json()["system_id"].as_str().unwrap().to_owned()
}

async fn events(t: &TestRegion, system_id: &str) -> Vec<(String, String)> {
    let reply = t
        .get(
            "events/",
            p().op("query")
                .text("id", system_id)
                .text("level", "DEBUG")
                .text("limit", "1000"),
        )
        .await;
    let body = reply.json();
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["description"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Power actions run in the background: poll (for up to 10 s) until `done` holds.
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..400 {
        if done().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn wait_status(t: &TestRegion, system_id: &str, expected: &str) {
    eventually(expected, async || {
        status_of(t, system_id).await.1 == expected
    })
    .await;
}

async fn wait_power(t: &TestRegion, system_id: &str, expected: PowerRequest) {
    eventually("a power call", async || {
        t.power.calls_for(system_id).last() == Some(&expected)
    })
    .await;
}

#[tokio::test]
async fn the_whole_cycle() {
    let t = TestRegion::new().await;
    let id = ipmi_machine(&t, "node1", "52:54:00:12:34:56").await;
    assert_eq!(status_of(&t, &id).await.0, 0);

    // Commission: scripts, timer, power on.
    let m = t
        .post(&format!("machines/{id}/"), p().op("commission"))
        .await;
    m.expect(200);
    assert_eq!(m.json()["status"], 1);
    assert_eq!(m.json()["owner"], "admin");
    wait_power(&t, &id, PowerRequest::On).await;
    assert_eq!(t.power.calls_for(&id), [PowerRequest::On]);
    let agent = Agent::for_machine(&t, &id).await;
    assert_eq!(agent.get("latest/meta-data/instance-id").await.text(), id);
    assert_eq!(
        agent.get("latest/meta-data/local-hostname").await.text(),
        "node1.maas"
    );
    let user_data = agent.get("latest/user-data").await;
    user_data.expect(200);
    assert!(
        user_data.text().starts_with("#!/bin/sh"),
        "ephemeral user data: {}",
        user_data.text()
    );
    agent.commission(SMALL_VM, None).await;
    wait_power(&t, &id, PowerRequest::Off { soft: false }).await;
    let m = t.get(&format!("machines/{id}/"), p()).await.json();
    assert_eq!(m["status_name"], "Ready", "{}", m["status_message"]);
    assert_eq!(
        m["owner"],
        serde_json::Value::Null,
        "Ready machines have no owner"
    );
    assert_eq!(m["cpu_count"], 2);
    assert_eq!(m["memory"], 512);
    assert_eq!(m["blockdevice_set"][0]["name"], "vda");
    assert_eq!(m["blockdevice_set"][0]["serial"], "maas-disk-0");
    assert_eq!(m["boot_interface"]["mac_address"], "52:54:00:12:34:56");
    assert_eq!(m["interface_set"].as_array().unwrap().len(), 1);
    assert_eq!(m["bios_boot_method"], "pxe");
    assert!(
        m["tag_names"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "virtual"),
        "VMs are tagged virtual"
    );
    assert_eq!(m["hardware_info"]["system_vendor"], "QEMU");
    assert_eq!(
        t.power.calls_for(&id).last(),
        Some(&PowerRequest::Off { soft: false }),
        "powered off after commissioning"
    );

    // Script results are readable, with output.
    let results = t
        .get(
            &format!("nodes/{id}/results/"),
            p().text("type", "commissioning"),
        )
        .await
        .json();
    let set = &results[0];
    assert_eq!(set["type_name"], "Commissioning");
    assert_eq!(set["status_name"], "Passed");
    let names: Vec<&str> = set["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"50-maas-01-commissioning") && names.contains(&"maas-lshw"),
        "{names:?}"
    );
    let current = t
        .get(
            &format!("nodes/{id}/results/current-commissioning/"),
            p().text("include_output", "1"),
        )
        .await
        .json();
    let lshw = current["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "maas-lshw")
        .unwrap();
    assert!(!lshw["output"].as_str().unwrap().is_empty());
    let legacy = t
        .get("installation-results/", p().text("system_id", &id))
        .await
        .json();
    assert!(
        legacy
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "maas-lshw")
    );
    let details = t.get(&format!("machines/{id}/"), p().op("details")).await;
    assert_eq!(details.content_type(), "application/bson");

    // Allocate with constraints. (Allocation gives the machine an owner,
    // and so new credentials, which its next boot fetches.)
    t.call(
        "POST",
        "machines/",
        p().op("allocate").text("cpu_count", "64"),
        Some(&t.admin.clone()),
    )
    .await
    .expect(409);
    let allocated = t
        .post(
            "machines/",
            p().op("allocate")
                .text("cpu_count", "2")
                .text("mem", "256")
                .text("storage", "root:0.05")
                .text("agent_name", "juju"),
        )
        .await;
    allocated.expect(200);
    let a = allocated.json();
    assert_eq!(a["system_id"], id);
    assert_eq!(a["status_name"], "Allocated");
    assert_eq!(a["owner"], "admin");
    assert!(a["constraints_by_type"]["storage"]["root"].is_array());
    t.post(
        &format!("machines/{id}/"),
        p().op("set_owner_data").text("owner", "juju"),
    )
    .await
    .expect(200);

    let agent = Agent::for_machine(&t, &id).await;
    // Deploy, and the installed OS's first fetch of its user data ends it.
    let deploying = t
        .post(
            &format!("machines/{id}/"),
            p().op("deploy")
                .text("distro_series", "jammy")
                .text("user_data", "I2Nsb3VkLWNvbmZpZwpydW5jbWQ6IFtbdHJ1ZV1dCg=="),
        )
        .await;
    deploying.expect(200);
    assert_eq!(deploying.json()["status_name"], "Deploying");
    assert_eq!(deploying.json()["osystem"], "ubuntu");
    assert_eq!(deploying.json()["distro_series"], "jammy");
    // The installer's path serves the ephemeral data and changes nothing.
    let curtin = agent.get("curtin/latest/user-data").await;
    curtin.expect(200);
    assert_eq!(status_of(&t, &id).await.1, "Deploying");
    agent
        .signal("WORKING", &[("name", "cmd-install")], &[])
        .await
        .expect(200);
    let installed = agent.installed_os_boots().await;
    installed.expect(200);
    assert_eq!(
        installed.body, b"#cloud-config\nruncmd: [[true]]\n",
        "decoded user data"
    );
    assert_eq!(status_of(&t, &id).await.1, "Deployed");
    let d = t.get(&format!("machines/{id}/"), p()).await.json();
    assert_eq!(d["owner_data"]["owner"], "juju");

    // Lock refuses changes until unlocked.
    t.post(&format!("machines/{id}/"), p().op("lock"))
        .await
        .expect(200);
    t.post(&format!("machines/{id}/"), p().op("lock"))
        .await
        .expect(409);
    t.post(&format!("machines/{id}/"), p().op("release"))
        .await
        .expect(403);
    t.post(&format!("machines/{id}/"), p().op("unlock"))
        .await
        .expect(200);
    t.post(&format!("machines/{id}/"), p().op("unlock"))
        .await
        .expect(409);

    // Release waits for the power-off, then Ready with owner data cleared.
    let releasing = t
        .post(
            &format!("machines/{id}/"),
            p().op("release").text("comment", "done"),
        )
        .await;
    releasing.expect(200);
    wait_status(&t, &id, "Ready").await;
    let r = t.get(&format!("machines/{id}/"), p()).await.json();
    assert_eq!(r["status_name"], "Ready");
    assert_eq!(r["owner"], serde_json::Value::Null);
    assert_eq!(r["owner_data"], serde_json::json!({}));
    assert_eq!(r["osystem"], "");

    // The event log tells the story.
    let log = events(&t, &id).await;
    let statuses: Vec<&str> = log
        .iter()
        .filter(|(kind, _)| kind == "Node changed status")
        .map(|(_, d)| d.as_str())
        .collect();
    assert_eq!(
        statuses,
        [
            "From 'New' to 'Commissioning'",
            "From 'Commissioning' to 'Testing'",
            "From 'Testing' to 'Ready'",
            "From 'Ready' to 'Allocated' (to admin)",
            "From 'Allocated' to 'Deploying'",
            "From 'Deploying' to 'Deployed'",
            "From 'Deployed' to 'Releasing'",
            "From 'Releasing' to 'Ready'",
        ]
    );
    assert!(
        log.iter()
            .any(|(kind, d)| kind == "User starting node commissioning" && d == "(admin)")
    );
    assert!(
        log.iter()
            .any(|(kind, d)| kind == "User releasing node" && d == "(admin) - done")
    );
}

#[tokio::test]
async fn inventory_of_a_big_server() {
    let t = TestRegion::new().await;
    t.post("subnets/", p().text("cidr", "10.20.0.0/24"))
        .await
        .expect(200);
    let id = ipmi_machine(&t, "big", "e4:43:4b:a1:00:10").await;
    t.post(
        &format!("machines/{id}/"),
        p().op("commission").text("testing_scripts", "none"),
    )
    .await
    .expect(200);
    let agent = Agent::for_machine(&t, &id).await;
    assert!(
        agent.scripts().await.phase("testing_scripts").is_empty(),
        "testing_scripts=none"
    );
    agent.commission(SERVER, None).await;
    let m = t.get(&format!("machines/{id}/"), p()).await.json();
    assert_eq!(m["status_name"], "Ready");
    assert_eq!(m["cpu_count"], 16);
    assert_eq!(m["memory"], 65536);
    assert_eq!(m["physicalblockdevice_set"].as_array().unwrap().len(), 9);
    assert_eq!(m["interface_set"].as_array().unwrap().len(), 4);
    assert_eq!(m["bios_boot_method"], "uefi");
    assert!(m["storage"].as_f64().unwrap() > 1000.0);
    assert!(
        !m["tag_names"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "virtual"),
        "a physical server"
    );
    let nvme = m["blockdevice_set"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "nvme0n1")
        .unwrap();
    assert!(nvme["tags"].as_array().unwrap().iter().any(|t| t == "nvme"));
    let rotary = m["blockdevice_set"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["tags"].as_array().unwrap().iter().any(|t| t == "rotary"));
    assert!(rotary, "the HDDs are rotary");
    let sriov = m["interface_set"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["sriov_max_vf"].as_i64().unwrap() > 0);
    assert!(sriov);
}

#[tokio::test]
async fn a_failing_script_fails_commissioning() {
    let t = TestRegion::new().await;
    let id = ipmi_machine(&t, "flaky", "52:54:00:00:aa:01").await;
    t.post(&format!("machines/{id}/"), p().op("commission"))
        .await
        .expect(200);
    let agent = Agent::for_machine(&t, &id).await;
    agent.commission(SMALL_VM, Some("maas-lshw")).await;
    let m = t.get(&format!("machines/{id}/"), p()).await.json();
    assert_eq!(m["status_name"], "Failed commissioning");
    let results = t
        .get(&format!("nodes/{id}/results/current-commissioning/"), p())
        .await
        .json();
    let lshw = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "maas-lshw")
        .unwrap();
    assert_eq!(lshw["status_name"], "Failed");
    assert_eq!(lshw["exit_status"], 1);
    // A FAILED signal fails it too, and aborts what was left.
    let id2 = ipmi_machine(&t, "flaky2", "52:54:00:00:aa:02").await;
    t.post(&format!("machines/{id2}/"), p().op("commission"))
        .await
        .expect(200);
    let agent2 = Agent::for_machine(&t, &id2).await;
    agent2
        .signal("FAILED", &[("error", "disk on fire")], &[])
        .await
        .expect(200);
    let m = t.get(&format!("machines/{id2}/"), p()).await.json();
    assert_eq!(m["status_name"], "Failed commissioning");
    assert_eq!(m["error_description"], "disk on fire");
    let results = t
        .get(&format!("nodes/{id2}/results/current-commissioning/"), p())
        .await
        .json();
    assert!(
        results["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status_name"] == "Aborted")
    );
    // Commissioning again is allowed from the failure.
    t.post(&format!("machines/{id2}/"), p().op("commission"))
        .await
        .expect(200);
}

#[tokio::test]
async fn timeouts_fail_deployments_and_survive_restarts() {
    let t = TestRegion::new().await;
    let id = ipmi_machine(&t, "slow", "52:54:00:00:bb:01").await;
    t.post(&format!("machines/{id}/"), p().op("commission"))
        .await
        .expect(200);
    Agent::for_machine(&t, &id)
        .await
        .commission(SMALL_VM, None)
        .await;
    t.post(&format!("machines/{id}/"), p().op("deploy"))
        .await
        .expect(200);
    assert_eq!(status_of(&t, &id).await.1, "Deploying");
    // The timer lives in the database: a new region over the same store sees it.
    let region2 = maas_region::Region::with_power(
        t.region.store.clone(),
        maas_region::RegionConfig::default(),
        t.clock.clone(),
        t.power.clone(),
    );
    use maas_region::Clock;
    assert_eq!(
        maas_region::service::timers::check(&region2).await.unwrap(),
        0,
        "not due yet"
    );
    t.clock.set(t.clock.now_millis() + 61 * 60_000);
    assert_eq!(
        maas_region::service::timers::check(&region2).await.unwrap(),
        1
    );
    let m = t.get(&format!("machines/{id}/"), p()).await.json();
    assert_eq!(m["status_name"], "Failed deployment");
    assert!(
        m["error_description"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{}",
        m["error_description"]
    );
    let log = events(&t, &id).await;
    assert!(
        log.iter()
            .any(|(k, d)| k == "Marking node failed" && d.contains("timed out")),
        "{log:?}"
    );
    // Release from the failure brings it back to Ready.
    t.post(&format!("machines/{id}/"), p().op("release"))
        .await
        .expect(200);
    wait_status(&t, &id, "Ready").await;
}

#[tokio::test]
async fn heartbeats_keep_commissioning_alive_and_silence_fails_it() {
    let t = TestRegion::new().await;
    let id = ipmi_machine(&t, "quiet", "52:54:00:00:cc:01").await;
    t.post(&format!("machines/{id}/"), p().op("commission"))
        .await
        .expect(200);
    let agent = Agent::for_machine(&t, &id).await;
    // The first signal hands over from the boot timer to heartbeats.
    agent.signal("WORKING", &[], &[]).await.expect(200);
    use maas_region::Clock;
    t.clock.set(t.clock.now_millis() + 20 * 60_000);
    agent.signal("WORKING", &[], &[]).await.expect(200);
    t.clock.set(t.clock.now_millis() + 20 * 60_000);
    assert_eq!(
        maas_region::service::timers::check(&t.region)
            .await
            .unwrap(),
        0,
        "heartbeat 20 minutes ago"
    );
    t.clock.set(t.clock.now_millis() + 11 * 60_000);
    assert_eq!(
        maas_region::service::timers::check(&t.region)
            .await
            .unwrap(),
        1
    );
    assert_eq!(status_of(&t, &id).await.1, "Failed commissioning");
}

#[tokio::test]
async fn abort_from_each_abortable_state() {
    let t = TestRegion::new().await;
    // Commissioning → New.
    let c = ipmi_machine(&t, "ab-c", "52:54:00:00:dd:01").await;
    t.post(&format!("machines/{c}/"), p().op("commission"))
        .await
        .expect(200);
    let aborted = t
        .post(
            &format!("machines/{c}/"),
            p().op("abort").text("comment", "changed my mind"),
        )
        .await;
    aborted.expect(200);
    assert_eq!(aborted.json()["status_name"], "New");
    wait_power(&t, &c, PowerRequest::Off { soft: false }).await;
    // Testing (after commissioning) → Ready.
    let te = ipmi_machine(&t, "ab-t", "52:54:00:00:dd:02").await;
    t.post(
        &format!("machines/{te}/"),
        p().op("commission").text("testing_scripts", "none"),
    )
    .await
    .expect(200);
    Agent::for_machine(&t, &te)
        .await
        .commission(SMALL_VM, None)
        .await;
    t.post(&format!("machines/{te}/"), p().op("test"))
        .await
        .expect(200);
    assert_eq!(status_of(&t, &te).await.1, "Testing");
    assert_eq!(
        t.post(&format!("machines/{te}/"), p().op("abort"))
            .await
            .json()["status_name"],
        "Ready"
    );
    // Deploying → Allocated.
    t.post(&format!("machines/{te}/"), p().op("deploy"))
        .await
        .expect(200);
    assert_eq!(
        t.post(&format!("machines/{te}/"), p().op("abort"))
            .await
            .json()["status_name"],
        "Allocated"
    );
    // Disk erasing → Failed disk erasing.
    let deployed = t.post(&format!("machines/{te}/"), p().op("deploy")).await;
    deployed.expect(200);
    // No user data was given: 404, but the fetch still ends the deployment.
    Agent::for_machine(&t, &te)
        .await
        .installed_os_boots()
        .await
        .expect(404);
    assert_eq!(status_of(&t, &te).await.1, "Deployed");
    t.post(
        &format!("machines/{te}/"),
        p().op("release")
            .text("erase", "true")
            .text("quick_erase", "true"),
    )
    .await
    .expect(200);
    assert_eq!(status_of(&t, &te).await.1, "Disk erasing");
    let scripts = Agent::for_machine(&t, &te).await.scripts().await;
    assert_eq!(scripts.phase("release_scripts")[0].name, "wipe-disks");
    assert_eq!(
        t.post(&format!("machines/{te}/"), p().op("abort"))
            .await
            .json()["status_name"],
        "Failed disk erasing"
    );
    // Nothing to abort: 409.
    let r = t.post(&format!("machines/{te}/"), p().op("abort")).await;
    r.expect(409);
    assert!(r.text().contains("Cannot abort"), "{}", r.text());
}

#[tokio::test]
async fn erasing_release_runs_the_wipe_then_ends_ready() {
    let t = TestRegion::new().await;
    let id = ipmi_machine(&t, "erase", "52:54:00:00:ee:01").await;
    t.post(
        &format!("machines/{id}/"),
        p().op("commission").text("testing_scripts", "none"),
    )
    .await
    .expect(200);
    let agent = Agent::for_machine(&t, &id).await;
    agent.commission(SMALL_VM, None).await;
    t.post(&format!("machines/{id}/"), p().op("deploy"))
        .await
        .expect(200);
    // Allocation changed the owner: the deployed machine has new credentials.
    let agent = Agent::for_machine(&t, &id).await;
    agent.installed_os_boots().await;
    assert_eq!(status_of(&t, &id).await.1, "Deployed");
    t.post(
        &format!("machines/{id}/"),
        p().op("release").text("erase", "1"),
    )
    .await
    .expect(200);
    let scripts = agent.scripts().await;
    let wipe = &scripts.phase("release_scripts")[0];
    agent.run(wipe, 0, b"erased vda\n").await;
    agent.signal("OK", &[], &[]).await.expect(200);
    let m = t.get(&format!("machines/{id}/"), p()).await.json();
    assert_eq!(m["status_name"], "Ready");
    let log = events(&t, &id).await;
    assert!(log.iter().any(|(k, _)| k == "Node disks erased"));
}

#[tokio::test]
async fn broken_fixed_rescue_and_power() {
    let t = TestRegion::new().await;
    let id = ipmi_machine(&t, "fixme", "52:54:00:00:ff:01").await;
    t.post(
        &format!("machines/{id}/"),
        p().op("commission").text("testing_scripts", "none"),
    )
    .await
    .expect(200);
    Agent::for_machine(&t, &id)
        .await
        .commission(SMALL_VM, None)
        .await;
    let broken = t
        .post(
            &format!("machines/{id}/"),
            p().op("mark_broken").text("comment", "fan noise"),
        )
        .await;
    broken.expect(200);
    assert_eq!(broken.json()["status_name"], "Broken");
    assert_eq!(broken.json()["error_description"], "fan noise");
    let fixed = t
        .post(&format!("machines/{id}/"), p().op("mark_fixed"))
        .await;
    assert_eq!(fixed.json()["status_name"], "Ready");
    assert_eq!(fixed.json()["error_description"], "");
    t.post(&format!("machines/{id}/"), p().op("mark_fixed"))
        .await
        .expect(409);

    // Rescue mode: entering, the environment says it's up, then exit back to Ready.
    let entering = t
        .post(&format!("machines/{id}/"), p().op("rescue_mode"))
        .await;
    assert_eq!(entering.json()["status_name"], "Entering rescue mode");
    Agent::for_machine(&t, &id)
        .await
        .signal("OK", &[], &[])
        .await
        .expect(200);
    assert_eq!(status_of(&t, &id).await.1, "Rescue mode");
    let exited = t
        .post(&format!("machines/{id}/"), p().op("exit_rescue_mode"))
        .await;
    exited.expect(200);
    assert_eq!(exited.json()["status_name"], "Ready");

    // Power: unowned machines can't be started; the state query asks the BMC.
    let r = t.post(&format!("machines/{id}/"), p().op("power_on")).await;
    r.expect(409);
    assert_eq!(r.text(), "Can't start node: it hasn't been allocated.");
    let state = t
        .get(&format!("machines/{id}/"), p().op("query_power_state"))
        .await;
    state.expect(200);
    assert!(state.json()["state"].is_string());
    t.power.broken.lock().unwrap().push(id.clone());
    let refused = t
        .get(&format!("machines/{id}/"), p().op("query_power_state"))
        .await;
    refused.expect(503);
    assert!(refused.text().contains("refused"), "{}", refused.text());
    assert_eq!(
        t.get(&format!("machines/{id}/"), p()).await.json()["power_state"],
        "error"
    );

    // A BMC that refuses power-on sends a commissioning machine back where it was.
    let reverted = t
        .post(&format!("machines/{id}/"), p().op("commission"))
        .await;
    reverted.expect(200);
    wait_status(&t, &id, "Ready").await;
    let log = events(&t, &id).await;
    assert!(
        log.iter()
            .any(|(_, d)| d.contains("Aborting Commissioning and reverting to Ready")),
        "{log:?}"
    );
}

#[tokio::test]
async fn enlistment_of_an_unknown_machine() {
    let t = TestRegion::new().await;
    // The enlistment runner: anonymous scripts, then an anonymous create with commission=true.
    let anon_scripts = t
        .raw(
            axum::http::Request::get("/MAAS/metadata/latest/maas-scripts")
                .header("host", crate::support::HOST)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    anon_scripts.expect(200);
    let created = t
        .call(
            "POST",
            "machines/",
            p().text("architecture", "amd64/generic")
                .text("mac_addresses", "52:54:00:12:34:56")
                .text("commission", "true")
                .text("power_type", "manual"),
            None,
        )
        .await;
    created.expect(200);
    let id = created.json()["system_id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.json()["status"],
        1,
        "enlisted straight into commissioning"
    );
    assert!(
        t.power.calls_for(&id).is_empty(),
        "the machine is already running: nothing is powered"
    );
    let agent = Agent::for_machine(&t, &id).await;
    agent.commission(SMALL_VM, None).await;
    let m = t.get(&format!("machines/{id}/"), p()).await.json();
    assert_eq!(
        m["status_name"], "New",
        "an enlisted machine waits for an admin"
    );
    assert_eq!(m["cpu_count"], 2);
    let registered = t
        .call(
            "GET",
            "machines/",
            p().op("is_registered")
                .text("mac_address", "52:54:00:12:34:56"),
            None,
        )
        .await;
    assert_eq!(registered.json(), true);
}

#[tokio::test]
async fn bad_metadata_requests() {
    let t = TestRegion::new().await;
    let id = ipmi_machine(&t, "meta", "52:54:00:00:11:01").await;
    let agent = Agent::for_machine(&t, &id).await;
    // Signals from a machine that is New and not commissioning change nothing.
    agent.signal("OK", &[], &[]).await.expect(200);
    agent.signal("SLEEPING", &[], &[]).await.expect(400);
    let no_status = agent.signal("", &[], &[]).await;
    no_status.expect(400);
    t.post(&format!("machines/{id}/"), p().op("commission"))
        .await
        .expect(200);
    // Commissioning gave the machine an owner, and with it a new token.
    agent.get("latest/meta-data/instance-id").await.expect(401);
    let agent = Agent::for_machine(&t, &id).await;
    agent
        .signal("WORKING", &[("script_result_id", "99999")], &[])
        .await
        .expect(400);
    let bad_creds = maas_client::Credentials::parse("a:b:c").unwrap();
    let bad = Agent {
        t: &t,
        credentials: bad_creds,
    };
    bad.get("latest/meta-data/instance-id").await.expect(401);
    agent.get("1999-01-01/meta-data/").await.expect(404);
    agent.get("latest/nothing-here").await.expect(404);
    let versions = t
        .raw(
            axum::http::Request::get("/MAAS/metadata/")
                .header("host", crate::support::HOST)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(versions.text(), "2012-03-01\nlatest\n");
    let unknown = t
        .raw(
            axum::http::Request::get("/MAAS/metadata/latest/by-id/zzzzzz/?op=get_preseed")
                .header("host", crate::support::HOST)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    unknown.expect(404);
}

#[tokio::test]
async fn racing_allocations_never_share_a_machine() {
    let t = std::sync::Arc::new(TestRegion::new().await);
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = ipmi_machine(&t, &format!("race{i}"), &format!("52:54:00:00:22:0{i}")).await;
        t.post(
            &format!("machines/{id}/"),
            p().op("commission").text("testing_scripts", "none"),
        )
        .await
        .expect(200);
        Agent::for_machine(&t, &id)
            .await
            .commission(&vm_resources(&format!("52:54:00:00:22:0{i}")), None)
            .await;
        ids.push(id);
    }
    let mut users = Vec::new();
    for i in 0..6 {
        users.push(t.user(&format!("racer{i}")).await);
    }
    let mut tasks = Vec::new();
    for user in users {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            t.call("POST", "machines/", p().op("allocate"), Some(&user))
                .await
        }));
    }
    let mut won = Vec::new();
    let mut lost = 0;
    for task in tasks {
        let reply = task.await.unwrap();
        match reply.status.as_u16() {
            200 => won.push(reply.json()["system_id"].as_str().unwrap().to_owned()),
            409 => lost += 1,
            other => panic!("allocate answered {other}: {}", reply.text()),
        }
    }
    won.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(won, expected, "each machine went to exactly one caller");
    assert_eq!(lost, 3);
}

#[tokio::test]
async fn a_hundred_machines_through_the_cycle() {
    let t = std::sync::Arc::new(TestRegion::new().await);
    let mut tasks = Vec::new();
    for i in 0..100u32 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let mac = format!("52:54:01:00:{:02x}:{:02x}", i / 256, i % 256);
            let id = ipmi_machine(&t, &format!("fleet{i}"), &mac).await;
            t.post(
                &format!("machines/{id}/"),
                p().op("commission").text("testing_scripts", "none"),
            )
            .await
            .expect(200);
            let agent = Agent::for_machine(&t, &id).await;
            agent.commission(&vm_resources(&mac), None).await;
            let allocated = t
                .post("machines/", p().op("allocate").text("system_id", &id))
                .await;
            if allocated.status.as_u16() != 200 {
                let m = t.get(&format!("machines/{id}/"), p()).await.json();
                let log = t
                    .get(
                        "events/",
                        p().op("query").text("id", &id).text("level", "DEBUG"),
                    )
                    .await
                    .json();
                panic!(
                    "{id} is {} ({}): {}",
                    m["status_name"], m["error_description"], log
                );
            }
            t.post(&format!("machines/{id}/"), p().op("deploy"))
                .await
                .expect(200);
            Agent::for_machine(&t, &id).await.installed_os_boots().await;
            t.post(&format!("machines/{id}/"), p().op("release"))
                .await
                .expect(200);
            id
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    // Releases finish when the power-off (a background task) reports back.
    for _ in 0..200 {
        let releasing = t
            .get("machines/", p().text("status", "releasing"))
            .await
            .json();
        if releasing.as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let listed = t.get("machines/", p()).await.json();
    let list = listed.as_array().unwrap();
    assert_eq!(list.len(), 100);
    for m in list {
        assert_eq!(m["status_name"], "Ready", "{}", m["hostname"]);
        assert_eq!(m["cpu_count"], 2);
    }
    // No lost events: every machine has its eight status changes.
    for id in ids.iter().take(10) {
        let changes: Vec<String> = events(&t, id)
            .await
            .into_iter()
            .filter(|(k, _)| k == "Node changed status")
            .map(|(_, d)| d)
            .collect();
        assert_eq!(
            changes.len(),
            7,
            "{id}: New→Commissioning→Ready→Allocated→Deploying→Deployed→Releasing→Ready, got {changes:?}"
        );
    }
}
