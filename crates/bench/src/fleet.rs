//! A fleet shaped like MAAS's performance data set, written straight into
//! the store: per machine 8 interfaces (4 NICs, 2 bonds, 2 VLAN interfaces)
//! on VLANs with links to subnets, 7 disks with partitions and filesystems,
//! 3 tags, and an owner on every other machine.

use std::collections::BTreeMap;

use maas_domain::{NodeStatus, NodeType, SystemId};
use maas_region::service::users;
use maas_store::defaults::{DEFAULT_DOMAIN_ID, DEFAULT_POOL_ID, DEFAULT_ZONE_ID};
use maas_store::*;

pub struct Fixture {
    pub admin_key: String,
    owners: Vec<i64>,
    tags: Vec<(i64, String)>,
    /// (VLAN id, subnet id, third octet base) per bench VLAN.
    vlans: Vec<(i64, i64, u8)>,
}

const VLANS: usize = 8;

impl Fixture {
    pub async fn create(store: &dyn Store) -> anyhow::Result<Fixture> {
        let now = 1_700_000_000_000;
        let admin = users::create_user(
            store,
            users::NewUserInput {
                username: "admin",
                email: "admin@example.com",
                password: Some("bench"),
                is_superuser: true,
            },
            now,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let token = store.tokens_for_user(admin.id).await?.remove(0);
        let mut owners = Vec::new();
        for i in 0..5 {
            let name = format!("owner{i}");
            let user = users::create_user(
                store,
                users::NewUserInput {
                    username: &name,
                    email: &format!("{name}@example.com"),
                    password: None,
                    is_superuser: false,
                },
                now,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            owners.push(user.id);
        }
        let mut tags = Vec::new();
        for name in [
            "virtual", "gpu", "ssd", "nvme", "rack-a", "rack-b", "10g", "25g", "uefi", "legacy",
        ] {
            let tag = store
                .create_tag(Tag {
                    id: 0,
                    name: name.into(),
                    definition: String::new(),
                    comment: format!("{name} machines"),
                    kernel_opts: None,
                })
                .await?;
            tags.push((tag.id, tag.name));
        }
        let fabric = store
            .create_fabric(Some("bench"), "benchmark fabric", Some("10g"), now)
            .await?;
        let space = store.create_space("bench-space", "", now).await?;
        let mut vlans = Vec::new();
        for i in 0..VLANS {
            let vid = 10 + i as i64;
            let vlan = store
                .create_vlan(
                    fabric.id,
                    VlanFields {
                        vid,
                        name: Some(format!("vlan-{vid}")),
                        description: String::new(),
                        mtu: 9000,
                        dhcp_on: false,
                        external_dhcp: None,
                        primary_rack: None,
                        secondary_rack: None,
                        relay_vlan_id: None,
                        space_id: Some(space.id),
                    },
                    now,
                )
                .await?;
            let base = 16 + 16 * i as u8;
            let cidr = format!("10.{base}.0.0/12");
            let subnet = store
                .create_subnet(
                    SubnetFields {
                        name: cidr.clone(),
                        description: String::new(),
                        cidr: format!("10.{base}.0.0/12"),
                        vlan_id: vlan.id,
                        gateway_ip: Some(format!("10.{base}.0.1")),
                        dns_servers: vec![format!("10.{base}.0.2")],
                        rdns_mode: 2,
                        allow_dns: true,
                        allow_proxy: true,
                        active_discovery: false,
                        managed: true,
                        disabled_boot_architectures: vec![],
                    },
                    now,
                )
                .await?;
            vlans.push((vlan.id, subnet.id, base));
        }
        Ok(Fixture {
            admin_key: format!(
                "{}:{}:{}",
                token.consumer_key,
                token.token_key,
                token.token_secret.expose()
            ),
            owners,
            tags,
            vlans,
        })
    }

    fn inventory(&self, index: usize) -> Inventory {
        let mac = |nic: usize| {
            let n = index * 8 + nic;
            format!(
                "00:16:3e:{:02x}:{:02x}:{:02x}",
                (n >> 16) & 0xff,
                (n >> 8) & 0xff,
                n & 0xff
            )
        };
        let ip = |vlan: usize| {
            let (_, _, base) = self.vlans[vlan];
            format!(
                "10.{}.{}.{}",
                base + ((index >> 16) & 0x0f) as u8,
                (index >> 8) & 0xff,
                index & 0xff
            )
        };
        let nic = |name: String,
                   mac: String,
                   vlan: usize,
                   parents: Vec<usize>,
                   kind: InterfaceType,
                   link: Option<NewIpLink>,
                   boot: bool| NewInterface {
            name,
            kind,
            mac_address: Some(mac),
            vlan_id: Some(self.vlans[vlan].0),
            enabled: true,
            params: if kind == InterfaceType::Bond {
                r#"{"bond_mode": "802.3ad", "bond_miimon": 100, "bond_lacp_rate": "fast", "mtu": 9000}"#.to_owned()
            } else {
                String::new()
            },
            tags: if kind == InterfaceType::Physical {
                vec!["sriov".into()]
            } else {
                vec![]
            },
            vendor: (kind == InterfaceType::Physical).then(|| "Intel Corporation".to_owned()),
            product: (kind == InterfaceType::Physical)
                .then(|| "Ethernet Controller X710 for 10GbE SFP+".to_owned()),
            firmware_version: (kind == InterfaceType::Physical)
                .then(|| "6.01 0x800035da 1.1747.0".to_owned()),
            link_connected: true,
            interface_speed: 10_000,
            link_speed: 10_000,
            numa_node: Some(0),
            sriov_max_vf: if kind == InterfaceType::Physical {
                64
            } else {
                0
            },
            mtu: 9000,
            parents,
            links: link.into_iter().collect(),
            discovered: vec![],
            boot,
        };
        let static_ip = |vlan: usize| {
            Some(NewIpLink {
                mode: LinkMode::Static,
                subnet_id: Some(self.vlans[vlan].1),
                ip: Some(ip(vlan)),
            })
        };
        use InterfaceType::{Bond, Physical, Vlan};
        // Bond members carry no links of their own, as in MAAS.
        let interfaces = vec![
            nic("eth0".into(), mac(0), 2, vec![], Physical, None, true),
            nic("eth1".into(), mac(1), 2, vec![], Physical, None, false),
            nic("eth2".into(), mac(2), 3, vec![], Physical, None, false),
            nic("eth3".into(), mac(3), 3, vec![], Physical, None, false),
            nic(
                "bond0".into(),
                mac(0),
                2,
                vec![0, 1],
                Bond,
                static_ip(2),
                false,
            ),
            nic(
                "bond1".into(),
                mac(2),
                3,
                vec![2, 3],
                Bond,
                static_ip(3),
                false,
            ),
            nic(
                "bond0.14".into(),
                mac(0),
                4,
                vec![4],
                Vlan,
                static_ip(4),
                false,
            ),
            nic(
                "bond1.15".into(),
                mac(2),
                5,
                vec![5],
                Vlan,
                static_ip(5),
                false,
            ),
        ];
        let fs = |fstype: &str, point: &str, uuid: String| Filesystem {
            fstype: fstype.into(),
            label: Some(point.trim_start_matches('/').replace('/', "-")),
            uuid: Some(uuid),
            mount_point: Some(point.into()),
            mount_options: None,
        };
        let uuid = |disk: usize, part: usize| {
            format!(
                "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                index,
                disk,
                part,
                disk * 16 + part,
                index * 97 + disk
            )
        };
        let mut block_devices = Vec::new();
        for disk in 0..7 {
            let size: i64 = if disk == 0 {
                480_103_981_056
            } else {
                1_920_383_410_176
            };
            let partitions = if disk == 0 {
                vec![
                    NewPartition {
                        uuid: Some(uuid(disk, 1)),
                        size: 536_870_912,
                        bootable: true,
                        tags: vec![],
                        filesystem: Some(fs("fat32", "/boot/efi", uuid(disk, 11))),
                    },
                    NewPartition {
                        uuid: Some(uuid(disk, 2)),
                        size: size - 536_870_912 - 4_194_304,
                        bootable: false,
                        tags: vec![],
                        filesystem: Some(fs("ext4", "/", uuid(disk, 12))),
                    },
                ]
            } else {
                vec![NewPartition {
                    uuid: Some(uuid(disk, 1)),
                    size: size - 4_194_304,
                    bootable: false,
                    tags: vec![],
                    filesystem: Some(fs("xfs", &format!("/srv/data{disk}"), uuid(disk, 11))),
                }]
            };
            block_devices.push(NewBlockDevice {
                name: format!("sd{}", (b'a' + disk as u8) as char),
                kind: BlockDeviceType::Physical,
                model: Some(if disk == 0 {
                    "SAMSUNG MZ7LH480".into()
                } else {
                    "SAMSUNG MZ7LH1T9".into()
                }),
                serial: Some(format!("S455NY0M{index:06}{disk}")),
                id_path: Some(format!("/dev/disk/by-id/wwn-0x5002538e{index:08x}{disk:x}")),
                size,
                block_size: 512,
                tags: vec!["ssd".into(), "sata".into()],
                uuid: None,
                firmware_version: Some("HXT7404Q".into()),
                numa_node: Some(0),
                partition_table_type: Some("GPT".into()),
                filesystem: None,
                partitions,
                boot: disk == 0,
            });
        }
        let mut hardware_info = BTreeMap::new();
        for (key, value) in [
            ("system_vendor", "Dell Inc."),
            ("system_product", "PowerEdge R640"),
            ("system_family", "PowerEdge"),
            ("cpu_model", "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz"),
            ("mainboard_vendor", "Dell Inc."),
            ("mainboard_product", "0H28RR"),
            ("mainboard_firmware_vendor", "Dell Inc."),
            ("mainboard_firmware_version", "2.12.2"),
            ("chassis_vendor", "Dell Inc."),
            ("chassis_type", "Rack Mount Chassis"),
        ] {
            hardware_info.insert(key.to_owned(), value.to_owned());
        }
        hardware_info.insert("system_serial".into(), format!("SVC{index:07}"));
        Inventory {
            cpu_count: 64,
            cpu_speed: 2100,
            memory: 196_608,
            hardware_uuid: Some(format!("4c4c4544-{index:04x}-4e10-8053-{index:012x}")),
            hardware_info,
            bios_boot_method: Some("uefi".into()),
            interfaces,
            block_devices,
        }
    }

    /// Adds `count` machines, numbered from `first`; returns their system ids.
    pub async fn load(
        &self,
        store: &dyn Store,
        first: usize,
        count: usize,
    ) -> anyhow::Result<Vec<String>> {
        let mut ids = Vec::with_capacity(count);
        for index in first..first + count {
            let node = loop {
                let system_id = SystemId::from_random(rand_u64(index as u64));
                let attempt = store
                    .create_node(NewNode {
                        system_id: system_id.to_string(),
                        hostname: format!("bench-{index:05}"),
                        description: String::new(),
                        node_type: NodeType::Machine,
                        status: NodeStatus::New,
                        owner_id: None,
                        domain_id: DEFAULT_DOMAIN_ID,
                        zone_id: DEFAULT_ZONE_ID,
                        pool_id: Some(DEFAULT_POOL_ID),
                        architecture: Some("amd64/generic".into()),
                        min_hwe_kernel: None,
                        power_type: "ipmi".into(),
                        power_parameters: [
                            (
                                "power_address".to_owned(),
                                format!("10.250.{}.{}", index / 250, index % 250),
                            ),
                            ("power_user".to_owned(), "maas".to_owned()),
                            ("power_pass".to_owned(), "secret".to_owned()),
                            ("power_driver".to_owned(), "LAN_2_0".to_owned()),
                        ]
                        .into(),
                        is_dpu: false,
                        created: 1_700_000_000_000,
                        mac_addresses: vec![],
                    })
                    .await;
                match attempt {
                    Ok(node) => break node,
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(other) => return Err(other.into()),
                }
            };
            store
                .set_inventory(node.id, self.inventory(index), 1_700_000_000_000)
                .await?;
            let tag_ids: Vec<usize> = vec![index % 10, (index / 10) % 10, (index / 100) % 10];
            for t in tag_ids {
                store
                    .tag_nodes(self.tags[t].0, std::slice::from_ref(&node.system_id), &[])
                    .await?;
            }
            let (to, owner) = if index % 2 == 0 {
                (
                    NodeStatus::Deployed,
                    Some(self.owners[index % self.owners.len()]),
                )
            } else {
                (NodeStatus::Ready, None)
            };
            store
                .change_status(
                    node.id,
                    StatusChange {
                        from: NodeStatus::New,
                        to,
                        owner: Some(owner),
                        owner_must_be: None,
                        agent_name: None,
                        status_expires: None,
                        error_description: None,
                        keep_previous: false,
                        events: vec![],
                        updated: 1_700_000_000_000,
                    },
                )
                .await?;
            ids.push(node.system_id);
        }
        Ok(ids)
    }
}

/// A cheap deterministic mix, so reruns make the same ids; collisions retry.
fn rand_u64(seed: u64) -> u64 {
    let mut x = seed
        .wrapping_add(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(std::process::id() as u64);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
        ^ (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0))
}
