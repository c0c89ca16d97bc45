//! The inventory of fixture machines against golden machine-resources JSON.

use std::path::PathBuf;

use maas_agent::inventory::MachineResources;

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/inventory")
}

fn check(machine: &str, boot_mac: Option<&str>) -> serde_json::Value {
    let actual = MachineResources::collect(&data().join(machine), boot_mac).to_json();
    let golden = data().join(format!("{machine}.json"));
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&golden, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_else(|error| {
        panic!(
            "reading {}: {error} (UPDATE_EXPECT=1 writes it)",
            golden.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "{machine}: inventory differs from {}",
        golden.display()
    );
    serde_json::from_str(&actual).unwrap()
}

#[test]
fn qemu_vm() {
    let json = check("qemu-vm", Some("52:54:00:12:34:56"));
    // The facts the region reads (§2.7), spelled out so a golden update can't hide a loss.
    assert_eq!(json["api_version"], "1.0");
    assert_eq!(json["environment"]["kernel_architecture"], "x86_64");
    let resources = &json["resources"];
    assert_eq!(resources["cpu"]["total"], 2);
    assert_eq!(
        resources["cpu"]["sockets"][0]["name"],
        "QEMU Virtual CPU version 2.5+"
    );
    assert_eq!(resources["cpu"]["sockets"][0]["frequency"], 2495);
    assert_eq!(resources["memory"]["total"], 512 * 1024 * 1024);
    let disk = &resources["storage"]["disks"][0];
    assert_eq!(disk["id"], "vda");
    assert_eq!(disk["size"], 8u64 * 1024 * 1024 * 1024);
    assert_eq!(disk["serial"], "maas-disk-0");
    assert_eq!(disk["device_id"], "virtio-maas-disk-0");
    assert_eq!(disk["type"], "virtio");
    assert_eq!(disk["rpm"], 1);
    assert_eq!(disk["partitions"].as_array().unwrap().len(), 2);
    let card = &resources["network"]["cards"][0];
    assert_eq!(card["driver"], "virtio_net");
    assert_eq!(card["pci_address"], "0000:00:03.0");
    assert_eq!(card["vendor"], "Red Hat, Inc.");
    assert_eq!(card["ports"][0]["address"], "52:54:00:12:34:56");
    assert_eq!(card["ports"][0]["link_detected"], true);
    assert_eq!(resources["system"]["type"], "virtual-machine");
    assert_eq!(
        resources["system"]["uuid"],
        "5c7b2d6e-1f3a-4b8c-9d0e-1a2b3c4d5e6f"
    );
    assert_eq!(json["machine-extra"]["firmware"], "bios");
    let eth0 = &json["networks"]["eth0"];
    assert_eq!(eth0["addresses"][0]["address"], "10.0.2.15");
    assert_eq!(eth0["addresses"][0]["netmask"], "24");
    assert_eq!(eth0["addresses"][1]["address"], "fe80::5054:ff:fe12:3456");
}

#[test]
fn two_socket_server() {
    let json = check("server-2s", None);
    let resources = &json["resources"];
    assert_eq!(resources["cpu"]["total"], 16);
    let sockets = resources["cpu"]["sockets"].as_array().unwrap();
    assert_eq!(sockets.len(), 2);
    assert_eq!(sockets[1]["cores"].as_array().unwrap().len(), 4);
    assert_eq!(
        sockets[1]["cores"][0]["threads"].as_array().unwrap().len(),
        2
    );
    assert_eq!(sockets[1]["cores"][0]["threads"][0]["numa_node"], 1);
    assert_eq!(sockets[0]["frequency_turbo"], 3200);
    assert_eq!(resources["memory"]["total"], 64u64 << 30);
    assert_eq!(resources["memory"]["nodes"].as_array().unwrap().len(), 2);
    assert_eq!(
        resources["memory"]["hugepages_total"],
        1024u64 * 2048 * 1024
    );
    let disks = resources["storage"]["disks"].as_array().unwrap();
    let names: Vec<&str> = disks.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "nvme0n1", "nvme1n1", "sda", "sdb", "sdc", "sdd", "sde", "sdf", "sdg"
        ]
    );
    let sda = &disks[2];
    assert_eq!(sda["serial"], "ZC1B2K8Q");
    assert_eq!(sda["device_id"], "ata-ST4000NM0035-1V4_ZC1B2K8Q");
    assert_eq!(sda["wwn"], "0x5000c500a1b2c3d4");
    assert_eq!(sda["type"], "sata");
    assert_eq!(sda["rpm"], 1);
    assert_eq!(disks[6]["rpm"], 0);
    assert_eq!(disks[0]["numa_node"], 0);
    assert_eq!(disks[1]["numa_node"], 1);
    assert_eq!(
        disks[0]["device_id"],
        "nvme-Samsung_SSD_970_EVO_Plus_2TB_S4EMNX0R123456"
    );
    assert_eq!(disks[0]["partitions"][1]["id"], "nvme0n1p2");
    assert_eq!(disks[8]["removable"], true);
    assert_eq!(disks[8]["type"], "usb");
    let cards = resources["network"]["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 4);
    assert_eq!(cards[2]["driver"], "mlx5_core");
    assert_eq!(cards[2]["sriov"]["maximum_vfs"], 8);
    assert_eq!(cards[2]["numa_node"], 1);
    assert_eq!(cards[2]["ports"][0]["link_speed"], 25000);
    assert_eq!(cards[1]["ports"][0]["link_detected"], false);
    assert_eq!(cards[1]["ports"][0]["link_speed"], 0);
    assert_eq!(cards[0]["driver_version"], "5.10.0-k");
    assert_eq!(resources["system"]["type"], "physical");
    assert_eq!(resources["system"]["version"], "");
    assert_eq!(resources["system"]["chassis"]["type"], "Rack Mount Chassis");
    assert_eq!(resources["usb"]["total"], 1);
    assert_eq!(json["machine-extra"]["firmware"], "uefi");
    assert_eq!(json["networks"]["eno1"]["addresses"][0]["netmask"], "20");
    assert_eq!(json["networks"]["br0"]["type"], "broadcast");
}

#[test]
fn empty_root_reports_without_panicking() {
    let empty = tempfile::tempdir().unwrap();
    let resources = MachineResources::collect(empty.path(), None);
    assert_eq!(resources.resources.cpu.total, 0);
    assert!(resources.resources.storage.disks.is_empty());
    assert!(resources.macs().is_empty());
    assert!(resources.to_json().contains("\"api_version\": \"1.0\""));
}
