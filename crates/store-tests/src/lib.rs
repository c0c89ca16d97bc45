//! The store conformance suite: every `Store` implementation runs these
//! cases, so SQLite and PostgreSQL are held to one behaviour.
//!
//! An adapter's test file calls [`store_suite!`] with an async expression
//! that yields `Some` fresh, empty, migrated store for each case, or `None`
//! (after saying why) when its database can't be had outside CI.

// A test suite: a failed unwrap is a failed case, which is what we want.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use maas_domain::{NodeStatus, NodeType, PowerState};
use maas_store::defaults::*;
use maas_store::*;

/// Expands to one `#[tokio::test]` per case, each on a fresh store made by `$factory`.
#[macro_export]
macro_rules! store_suite {
    ($factory:expr) => {
        $crate::store_suite!(@cases $factory;
            defaults_exist, users_and_tokens, sshkeys_and_config, zones_and_pools, tags_on_nodes,
            networks, nodes_create_and_read, node_filters, node_paging, inventory_round_trip,
            conditional_status_change_has_one_winner, node_updates, events_and_status_messages,
            delete_user_transfers_nodes, scripts_and_results, node_tokens, timers, power_polled,
            previous_status_kept, match_none, controllers_services_and_links,
            static_addresses_and_leases, boot_resources_sets_and_files,
            boot_sources_and_selections, sessions, node_listing_sort_group_count
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store: Option<std::sync::Arc<dyn maas_store::Store>> = $factory.await;
                // A factory returns None only when its backend is unavailable
                // and the run is not under CI (it has said so loudly).
                let Some(store) = store else { return };
                $crate::cases::$case(store).await;
            }
        )*
    };
}

/// A user with a random-enough name for fixtures.
async fn user(store: &Arc<dyn Store>, name: &str, admin: bool) -> User {
    store
        .create_user(
            NewUser {
                username: name.to_owned(),
                email: format!("{name}@example.com"),
                password_hash: Some(Secret::new("hash")),
                is_superuser: admin,
            },
            1_000,
        )
        .await
        .expect("create user")
}

fn new_node(system_id: &str, hostname: &str, macs: &[&str]) -> NewNode {
    NewNode {
        system_id: system_id.to_owned(),
        hostname: hostname.to_owned(),
        description: String::new(),
        node_type: NodeType::Machine,
        status: NodeStatus::New,
        owner_id: None,
        domain_id: DEFAULT_DOMAIN_ID,
        zone_id: DEFAULT_ZONE_ID,
        pool_id: Some(DEFAULT_POOL_ID),
        architecture: Some("amd64/generic".to_owned()),
        min_hwe_kernel: None,
        power_type: "manual".to_owned(),
        power_parameters: BTreeMap::new(),
        is_dpu: false,
        created: 2_000,
        mac_addresses: macs.iter().map(|m| (*m).to_owned()).collect(),
    }
}

fn status_change(from: NodeStatus, to: NodeStatus) -> StatusChange {
    StatusChange {
        from,
        to,
        owner: None,
        owner_must_be: None,
        agent_name: None,
        status_expires: None,
        error_description: None,
        keep_previous: false,
        events: vec![],
        updated: 3_000,
    }
}

mod boot_cases;
mod rack_cases;

pub mod cases {
    use super::*;

    pub use crate::boot_cases::*;
    pub use crate::rack_cases::*;

    pub async fn defaults_exist(store: Arc<dyn Store>) {
        store.ping().await.expect("ping");
        let zones = store.zones().await.unwrap();
        assert_eq!(zones.len(), 1);
        assert_eq!(
            (zones[0].id, zones[0].name.as_str()),
            (DEFAULT_ZONE_ID, "default")
        );
        let pools = store.pools().await.unwrap();
        assert_eq!(pools[0].id, DEFAULT_POOL_ID);
        assert_eq!(pools[0].description, "Default pool");
        let domain = store
            .domain_by_id(DEFAULT_DOMAIN_ID)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(domain.name, "maas");
        assert!(domain.authoritative);
        let catalog = store.network_catalog().await.unwrap();
        assert_eq!(catalog.fabrics.len(), 1);
        assert_eq!(catalog.fabrics[0].name, "fabric-0");
        assert_eq!(catalog.vlans.len(), 1);
        assert_eq!(catalog.vlans[0].id, DEFAULT_VLAN_ID);
        assert_eq!(catalog.vlans[0].vid, 0);
        assert_eq!(catalog.vlans[0].fabric_id, DEFAULT_FABRIC_ID);
    }

    pub async fn users_and_tokens(store: Arc<dyn Store>) {
        assert_eq!(store.user_count().await.unwrap(), 0);
        let admin = user(&store, "admin", true).await;
        let bob = user(&store, "bob", false).await;
        assert!(admin.is_superuser && admin.is_active);
        assert!(!bob.is_superuser);
        let again = store
            .create_user(
                NewUser {
                    username: "bob".into(),
                    email: String::new(),
                    password_hash: None,
                    is_superuser: false,
                },
                0,
            )
            .await;
        assert!(
            matches!(again, Err(StoreError::Conflict { .. })),
            "{again:?}"
        );
        let users = store.users().await.unwrap();
        let names: Vec<_> = users.iter().map(|u| u.username.as_str()).collect();
        assert_eq!(names, ["admin", "bob"]);
        assert_eq!(
            store.user_by_username("bob").await.unwrap().unwrap().id,
            bob.id
        );
        assert!(store.user_by_username("carol").await.unwrap().is_none());

        let token = |ck: &str, tk: &str| NewToken {
            user_id: bob.id,
            consumer_key: ck.into(),
            consumer_name: "MAAS consumer".into(),
            token_key: tk.into(),
            token_secret: Secret::new(format!("secret-{tk}")),
        };
        store.create_token(token("ck1", "tk1"), 10).await.unwrap();
        store.create_token(token("ck2", "tk2"), 20).await.unwrap();
        match store.lookup_token("ck1", "tk1").await.unwrap() {
            TokenLookup::Found { token, user } => {
                assert_eq!(user.username, "bob");
                assert_eq!(token.token_secret.expose(), "secret-tk1");
            }
            other => panic!("expected a token, got {other:?}"),
        }
        assert!(matches!(
            store.lookup_token("ck1", "nope").await.unwrap(),
            TokenLookup::UnknownToken
        ));
        assert!(matches!(
            store.lookup_token("ck1", "tk2").await.unwrap(),
            TokenLookup::UnknownToken
        ));
        assert!(matches!(
            store.lookup_token("nope", "tk1").await.unwrap(),
            TokenLookup::UnknownConsumer
        ));
        let tokens = store.tokens_for_user(bob.id).await.unwrap();
        assert_eq!(
            tokens
                .iter()
                .map(|t| t.token_key.as_str())
                .collect::<Vec<_>>(),
            ["tk1", "tk2"]
        );
        assert!(store.rename_token(bob.id, "tk2", "laptop").await.unwrap());
        assert!(!store.rename_token(admin.id, "tk2", "stolen").await.unwrap());
        assert!(!store.delete_token(admin.id, "tk1").await.unwrap());
        assert!(store.delete_token(bob.id, "tk1").await.unwrap());
        assert!(matches!(
            store.lookup_token("ck1", "tk1").await.unwrap(),
            TokenLookup::UnknownConsumer
        ));
        let left = store.tokens_for_user(bob.id).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].consumer_name, "laptop");

        store
            .set_password(bob.id, Secret::new("new-hash"))
            .await
            .unwrap();
        let bob = store.user_by_id(bob.id).await.unwrap().unwrap();
        assert_eq!(bob.password_hash.unwrap().expose(), "new-hash");
        store.set_last_login(bob.id, 99).await.unwrap();
        assert_eq!(
            store.user_by_id(bob.id).await.unwrap().unwrap().last_login,
            Some(99)
        );
        assert_eq!(store.user_count().await.unwrap(), 2);
    }

    pub async fn sshkeys_and_config(store: Arc<dyn Store>) {
        let bob = user(&store, "bob", false).await;
        let key = store
            .create_sshkey(bob.id, "ssh-ed25519 AAAA bob@host", "")
            .await
            .unwrap();
        let dup = store
            .create_sshkey(bob.id, "ssh-ed25519 AAAA bob@host", "")
            .await;
        assert!(matches!(dup, Err(StoreError::Conflict { .. })));
        assert_eq!(store.sshkeys(bob.id).await.unwrap(), vec![key.clone()]);
        assert_eq!(store.sshkey(key.id).await.unwrap(), Some(key.clone()));
        store.delete_sshkey(key.id).await.unwrap();
        assert!(store.sshkeys(bob.id).await.unwrap().is_empty());

        assert_eq!(store.config_value("maas_name").await.unwrap(), None);
        store
            .set_config_value("maas_name", "\"one\"")
            .await
            .unwrap();
        store
            .set_config_value("maas_name", "\"two\"")
            .await
            .unwrap();
        assert_eq!(
            store.config_value("maas_name").await.unwrap().as_deref(),
            Some("\"two\"")
        );
    }

    pub async fn zones_and_pools(store: Arc<dyn Store>) {
        let zone = store.create_zone("rack-a", "first rack", 5).await.unwrap();
        assert!(zone.id > DEFAULT_ZONE_ID);
        let dup = store.create_zone("rack-a", "", 5).await;
        assert!(matches!(dup, Err(StoreError::Conflict { .. })));
        let renamed = store.update_zone(zone.id, "rack-b", "moved").await.unwrap();
        assert_eq!(
            (renamed.name.as_str(), renamed.description.as_str()),
            ("rack-b", "moved")
        );
        assert!(matches!(
            store.update_zone(9999, "x", "").await,
            Err(StoreError::NotFound { .. })
        ));
        let names: Vec<_> = store
            .zones()
            .await
            .unwrap()
            .into_iter()
            .map(|z| z.name)
            .collect();
        assert_eq!(names, ["default", "rack-b"]);

        // A zone's machines fall back to the default zone when it goes.
        let mut node = new_node("aaaaaa", "node-a", &["52:54:00:00:00:01"]);
        node.zone_id = zone.id;
        let node = store.create_node(node).await.unwrap();
        assert_eq!(node.zone.name, "rack-b");
        store.delete_zone(zone.id, DEFAULT_ZONE_ID).await.unwrap();
        let node = store.node_by_system_id("aaaaaa").await.unwrap().unwrap();
        assert_eq!(node.zone.id, DEFAULT_ZONE_ID);

        let pool = store.create_pool("gpu", "GPU boxes", 5).await.unwrap();
        assert!(pool.id > DEFAULT_POOL_ID);
        assert_eq!(store.pool_by_name("gpu").await.unwrap(), Some(pool.clone()));
        assert_eq!(store.pool_by_id(pool.id).await.unwrap(), Some(pool.clone()));
        assert!(matches!(
            store.create_pool("gpu", "", 5).await,
            Err(StoreError::Conflict { .. })
        ));
        let mut update = NodeUpdate {
            updated: 4_000,
            ..NodeUpdate::default()
        };
        update.pool_id = Some(Some(pool.id));
        store.update_node(node.id, update).await.unwrap();
        assert_eq!(store.pool_node_count(pool.id).await.unwrap(), 1);
        assert_eq!(store.pool_node_count(DEFAULT_POOL_ID).await.unwrap(), 0);
        let pool = store.update_pool(pool.id, "gpus", "renamed").await.unwrap();
        assert_eq!(pool.name, "gpus");
        let fetched = store.node_by_system_id("aaaaaa").await.unwrap().unwrap();
        assert_eq!(fetched.pool.unwrap().name, "gpus");
        let other = store.create_pool("spare", "", 6).await.unwrap();
        store.delete_pool(other.id).await.unwrap();
        assert_eq!(store.pool_by_id(other.id).await.unwrap(), None);
    }

    pub async fn tags_on_nodes(store: Arc<dyn Store>) {
        let tag = store
            .create_tag(Tag {
                id: 0,
                name: "gpu".into(),
                definition: String::new(),
                comment: "has a GPU".into(),
                kernel_opts: Some("nomodeset".into()),
            })
            .await
            .unwrap();
        assert!(matches!(
            store
                .create_tag(Tag {
                    id: 0,
                    ..tag.clone()
                })
                .await,
            Err(StoreError::Conflict { .. })
        ));
        store
            .create_node(new_node("aaaaaa", "a", &["52:54:00:00:00:01"]))
            .await
            .unwrap();
        store
            .create_node(new_node("bbbbbb", "b", &["52:54:00:00:00:02"]))
            .await
            .unwrap();
        let added = [
            "aaaaaa".to_owned(),
            "bbbbbb".to_owned(),
            "zzzzzz".to_owned(),
        ];
        let changes = store.tag_nodes(tag.id, &added, &[]).await.unwrap();
        assert_eq!(
            changes,
            TagChanges {
                added: 2,
                removed: 0
            }
        );
        let again = store
            .tag_nodes(tag.id, &added[..1], &added[1..2])
            .await
            .unwrap();
        assert_eq!(
            again,
            TagChanges {
                added: 0,
                removed: 1
            }
        );
        let a = store.node_by_system_id("aaaaaa").await.unwrap().unwrap();
        assert_eq!(a.tags, ["gpu"]);
        let b = store.node_by_system_id("bbbbbb").await.unwrap().unwrap();
        assert!(b.tags.is_empty());
        let updated = store
            .update_tag(
                tag.id,
                Tag {
                    name: "accel".into(),
                    kernel_opts: None,
                    ..tag.clone()
                },
            )
            .await
            .unwrap();
        assert_eq!(updated.name, "accel");
        assert_eq!(updated.kernel_opts, None);
        store.delete_tag(tag.id).await.unwrap();
        let a = store.node_by_system_id("aaaaaa").await.unwrap().unwrap();
        assert!(a.tags.is_empty());
        assert!(store.tags().await.unwrap().is_empty());
    }

    pub async fn networks(store: Arc<dyn Store>) {
        let fabric = store.create_fabric(None, "", None, 10).await.unwrap();
        assert_eq!(fabric.name, format!("fabric-{}", fabric.id));
        let named = store
            .create_fabric(Some("storage"), "san", Some("10g"), 10)
            .await
            .unwrap();
        assert_eq!(named.class_type.as_deref(), Some("10g"));
        assert!(matches!(
            store.create_fabric(Some("storage"), "", None, 10).await,
            Err(StoreError::Conflict { .. })
        ));
        let catalog = store.network_catalog().await.unwrap();
        let untagged: Vec<_> = catalog
            .vlans
            .iter()
            .filter(|v| v.fabric_id == fabric.id)
            .collect();
        assert_eq!(untagged.len(), 1);
        assert_eq!(untagged[0].vid, 0);
        assert!(
            untagged[0].id > DEFAULT_VLAN_ID,
            "VLAN ids continue after 5001"
        );

        let space = store.create_space("dmz", "", 10).await.unwrap();
        let fields = VlanFields {
            vid: 100,
            name: Some("storage-100".into()),
            description: String::new(),
            mtu: 9000,
            dhcp_on: false,
            external_dhcp: None,
            primary_rack: None,
            secondary_rack: None,
            relay_vlan_id: None,
            space_id: Some(space.id),
        };
        let vlan = store
            .create_vlan(named.id, fields.clone(), 11)
            .await
            .unwrap();
        assert_eq!(
            (vlan.vid, vlan.mtu, vlan.space_id),
            (100, 9000, Some(space.id))
        );
        assert!(matches!(
            store.create_vlan(named.id, fields.clone(), 11).await,
            Err(StoreError::Conflict { .. })
        ));
        let vlan = store
            .update_vlan(
                vlan.id,
                VlanFields {
                    mtu: 1500,
                    dhcp_on: true,
                    ..fields
                },
            )
            .await
            .unwrap();
        assert!(vlan.dhcp_on);

        let subnet_fields = SubnetFields {
            name: "10.0.0.0/24".into(),
            description: String::new(),
            cidr: "10.0.0.0/24".into(),
            vlan_id: DEFAULT_VLAN_ID,
            gateway_ip: Some("10.0.0.1".into()),
            dns_servers: vec!["10.0.0.2".into(), "10.0.0.3".into()],
            rdns_mode: 2,
            allow_dns: true,
            allow_proxy: true,
            active_discovery: false,
            managed: true,
            disabled_boot_architectures: vec![],
        };
        let subnet = store
            .create_subnet(subnet_fields.clone(), 12)
            .await
            .unwrap();
        assert_eq!(subnet.dns_servers, ["10.0.0.2", "10.0.0.3"]);
        assert!(matches!(
            store.create_subnet(subnet_fields.clone(), 12).await,
            Err(StoreError::Conflict { .. })
        ));
        let subnet = store
            .update_subnet(
                subnet.id,
                SubnetFields {
                    vlan_id: vlan.id,
                    ..subnet_fields
                },
            )
            .await
            .unwrap();
        assert_eq!(subnet.vlan_id, vlan.id);

        let range = store
            .create_ip_range(
                IpRangeFields {
                    subnet_id: subnet.id,
                    kind: "dynamic".into(),
                    start_ip: "10.0.0.100".into(),
                    end_ip: "10.0.0.200".into(),
                    comment: String::new(),
                    user_id: None,
                },
                13,
            )
            .await
            .unwrap();
        assert_eq!(store.ip_ranges().await.unwrap(), vec![range.clone()]);
        let range = store
            .update_ip_range(
                range.id,
                IpRangeFields {
                    comment: "pxe".into(),
                    ..IpRangeFields {
                        subnet_id: range.subnet_id,
                        kind: range.kind.clone(),
                        start_ip: range.start_ip.clone(),
                        end_ip: range.end_ip.clone(),
                        comment: String::new(),
                        user_id: None,
                    }
                },
            )
            .await
            .unwrap();
        assert_eq!(range.comment, "pxe");

        // Deleting a fabric takes its VLANs and their subnets and ranges with it.
        store.delete_fabric(named.id).await.unwrap();
        let catalog = store.network_catalog().await.unwrap();
        assert!(catalog.vlans.iter().all(|v| v.fabric_id != named.id));
        assert!(catalog.subnets.is_empty());
        assert!(store.ip_ranges().await.unwrap().is_empty());
        store.delete_space(space.id).await.unwrap();
        assert!(store.network_catalog().await.unwrap().spaces.is_empty());
    }

    pub async fn nodes_create_and_read(store: Arc<dyn Store>) {
        let mut params = BTreeMap::new();
        params.insert("power_address".to_owned(), "10.0.0.9".to_owned());
        let mut node = new_node(
            "4y3h7n",
            "kind-dory",
            &["52:54:00:12:34:56", "52:54:00:12:34:57"],
        );
        node.power_type = "ipmi".into();
        node.power_parameters = params.clone();
        let created = store.create_node(node).await.unwrap();
        assert_eq!(created.system_id, "4y3h7n");
        assert_eq!(created.status, NodeStatus::New);
        assert_eq!(created.domain.name, "maas");
        assert_eq!(created.zone.name, "default");
        assert_eq!(created.pool.as_ref().unwrap().name, "default");
        assert_eq!(created.power_parameters, params);
        assert_eq!(created.power_state, PowerState::Unknown);
        assert_eq!(created.interfaces.len(), 2);
        assert_eq!(created.interfaces[0].name, "eth0");
        assert_eq!(
            created.interfaces[0].mac_address.as_deref(),
            Some("52:54:00:12:34:56")
        );
        assert_eq!(created.boot_interface_id, Some(created.interfaces[0].id));
        assert!(created.owner.is_none());

        let same_mac = store
            .create_node(new_node("bbbbbb", "other", &["52:54:00:12:34:57"]))
            .await;
        assert!(
            matches!(same_mac, Err(StoreError::Conflict { .. })),
            "{same_mac:?}"
        );
        let same_host = store
            .create_node(new_node("cccccc", "kind-dory", &["52:54:00:00:00:09"]))
            .await;
        assert!(
            matches!(same_host, Err(StoreError::Conflict { .. })),
            "{same_host:?}"
        );
        let same_id = store
            .create_node(new_node("4y3h7n", "x", &["52:54:00:00:00:0a"]))
            .await;
        assert!(
            matches!(same_id, Err(StoreError::Conflict { .. })),
            "{same_id:?}"
        );
        // A failed create leaves nothing behind.
        assert!(store.node_by_system_id("bbbbbb").await.unwrap().is_none());
        assert!(
            store
                .macs_in_use(&["52:54:00:00:00:09".into()])
                .await
                .unwrap()
                .is_empty()
        );

        let by_mac = store
            .node_by_mac("52:54:00:12:34:57")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_mac.system_id, "4y3h7n");
        let in_use = store
            .macs_in_use(&["52:54:00:12:34:56".into(), "52:54:00:99:99:99".into()])
            .await
            .unwrap();
        assert_eq!(in_use, ["52:54:00:12:34:56"]);
        store.delete_node(created.id).await.unwrap();
        assert!(store.node_by_system_id("4y3h7n").await.unwrap().is_none());
        assert!(matches!(
            store.delete_node(created.id).await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(
            store
                .macs_in_use(&["52:54:00:12:34:56".into()])
                .await
                .unwrap()
                .is_empty()
        );
    }

    pub async fn node_filters(store: Arc<dyn Store>) {
        let alice = user(&store, "alice", false).await;
        let gpu = store
            .create_tag(Tag {
                id: 0,
                name: "gpu".into(),
                definition: String::new(),
                comment: String::new(),
                kernel_opts: None,
            })
            .await
            .unwrap();
        let ssd = store
            .create_tag(Tag {
                id: 0,
                name: "ssd".into(),
                ..gpu.clone()
            })
            .await
            .unwrap();
        let zone = store.create_zone("z1", "", 1).await.unwrap();
        for (i, arch) in ["amd64/generic", "amd64/hwe-22.04", "arm64/generic"]
            .iter()
            .enumerate()
        {
            let mut node = new_node(
                &format!("node{i}a"),
                &format!("node{i}"),
                &[&format!("52:54:00:00:01:0{i}")],
            );
            node.architecture = Some((*arch).to_owned());
            if i == 2 {
                node.zone_id = zone.id;
            }
            store.create_node(node).await.unwrap();
        }
        store
            .tag_nodes(gpu.id, &["node0a".into(), "node1a".into()], &[])
            .await
            .unwrap();
        store
            .tag_nodes(ssd.id, &["node1a".into()], &[])
            .await
            .unwrap();
        let n1 = store.node_by_system_id("node1a").await.unwrap().unwrap();
        let mut take = status_change(NodeStatus::New, NodeStatus::Ready);
        take.owner = Some(Some(alice.id));
        assert!(store.change_status(n1.id, take).await.unwrap());

        async fn ids(store: &Arc<dyn Store>, filter: NodeFilter) -> Vec<String> {
            let nodes = store.nodes(&filter, 0, 100).await.unwrap();
            nodes.into_iter().map(|n| n.system_id).collect()
        }
        let all = NodeFilter::default();
        assert_eq!(
            ids(&store, all.clone()).await,
            ["node0a", "node1a", "node2a"]
        );
        let f = NodeFilter {
            hostnames: vec!["node2".into()],
            ..all.clone()
        };
        assert_eq!(ids(&store, f).await, ["node2a"]);
        let f = NodeFilter {
            not_hostnames: vec!["node2".into()],
            ..all.clone()
        };
        assert_eq!(ids(&store, f).await, ["node0a", "node1a"]);
        let f = NodeFilter {
            archs: vec!["amd64".into()],
            ..all.clone()
        };
        assert_eq!(ids(&store, f).await, ["node0a", "node1a"]);
        let f = NodeFilter {
            archs: vec!["amd64/generic".into()],
            ..all.clone()
        };
        assert_eq!(ids(&store, f).await, ["node0a"]);
        let f = NodeFilter {
            not_archs: vec!["amd64".into()],
            ..all.clone()
        };
        assert_eq!(ids(&store, f).await, ["node2a"]);
        let f = NodeFilter {
            tags: vec!["gpu".into(), "ssd".into()],
            ..all.clone()
        };
        assert_eq!(ids(&store, f).await, ["node1a"]);
        let f = NodeFilter {
            tags: vec!["gpu".into()],
            ..all.clone()
        };
        assert_eq!(ids(&store, f).await, ["node0a", "node1a"]);
        let f = NodeFilter {
            not_tags: vec!["ssd".into()],
            ..all.clone()
        };
        assert_eq!(ids(&store, f).await, ["node0a", "node2a"]);
        let f = NodeFilter {
            zones: vec!["z1".into()],
            ..all.clone()
        };
        assert_eq!(ids(&store, f).await, ["node2a"]);
        let f = NodeFilter {
            not_zones: vec!["z1".into()],
            ..all.clone()
        };
        assert_eq!(ids(&store, f).await, ["node0a", "node1a"]);
        let f = NodeFilter {
            statuses: vec![NodeStatus::Ready],
            ..all.clone()
        };
        assert_eq!(ids(&store, f).await, ["node1a"]);
        let f = NodeFilter {
            not_statuses: vec![NodeStatus::Ready],
            ..all.clone()
        };
        assert_eq!(ids(&store, f).await, ["node0a", "node2a"]);
        let f = NodeFilter {
            owners: vec!["alice".into()],
            ..all.clone()
        };
        assert_eq!(ids(&store, f).await, ["node1a"]);
        let f = NodeFilter {
            not_owners: vec!["alice".into()],
            ..all.clone()
        };
        assert_eq!(ids(&store, f).await, ["node0a", "node2a"]);
        let f = NodeFilter {
            mac_addresses: vec!["52:54:00:00:01:02".into()],
            ..all.clone()
        };
        assert_eq!(ids(&store, f).await, ["node2a"]);
        let f = NodeFilter {
            pools: vec!["default".into()],
            not_system_ids: vec!["node0a".into()],
            ..all.clone()
        };
        assert_eq!(ids(&store, f).await, ["node1a", "node2a"]);
        let f = NodeFilter {
            not_pools: vec!["default".into()],
            ..all.clone()
        };
        assert!(ids(&store, f).await.is_empty());
        let f = NodeFilter {
            domains: vec!["maas".into()],
            system_ids: vec!["node0a".into()],
            ..all.clone()
        };
        assert_eq!(ids(&store, f).await, ["node0a"]);
        let f = NodeFilter {
            power_states: vec![PowerState::Unknown],
            ..all.clone()
        };
        assert_eq!(ids(&store, f).await.len(), 3);
        let f = NodeFilter {
            not_power_states: vec![PowerState::Unknown],
            ..all.clone()
        };
        assert!(ids(&store, f).await.is_empty());
        let f = NodeFilter {
            min_cpu_count: Some(1),
            ..all.clone()
        };
        assert!(ids(&store, f).await.is_empty());
        let f = NodeFilter {
            node_types: vec![NodeType::Device],
            ..all.clone()
        };
        assert!(ids(&store, f).await.is_empty());
        let bob = user(&store, "bob", false).await;
        let f = NodeFilter {
            visible_to: Some(bob.id),
            ..all.clone()
        };
        assert_eq!(ids(&store, f).await, ["node0a", "node2a"]);
        let f = NodeFilter {
            visible_to: Some(alice.id),
            ..all.clone()
        };
        assert_eq!(ids(&store, f).await.len(), 3);
        let f = NodeFilter {
            fabrics: vec!["fabric-0".into()],
            ..all.clone()
        };
        assert!(
            ids(&store, f).await.is_empty(),
            "no interface is on a VLAN yet"
        );
    }

    pub async fn node_paging(store: Arc<dyn Store>) {
        for i in 0..25 {
            let node = new_node(
                &format!("page{i:02}"),
                &format!("page-{i}"),
                &[&format!("52:54:00:00:02:{i:02x}")],
            );
            store.create_node(node).await.unwrap();
        }
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let page = store
                .nodes(&NodeFilter::default(), after, 10)
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 10);
            after = page.last().unwrap().id;
            seen.extend(page.into_iter().map(|n| (n.system_id, n.interfaces.len())));
        }
        assert_eq!(seen.len(), 25);
        assert!(seen.iter().all(|(_, interfaces)| *interfaces == 1));
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
    }

    pub async fn inventory_round_trip(store: Arc<dyn Store>) {
        let node = store
            .create_node(new_node("invent", "inv", &["52:54:00:00:03:01"]))
            .await
            .unwrap();
        let subnet = store
            .create_subnet(
                SubnetFields {
                    name: "10.1.0.0/24".into(),
                    description: String::new(),
                    cidr: "10.1.0.0/24".into(),
                    vlan_id: DEFAULT_VLAN_ID,
                    gateway_ip: None,
                    dns_servers: vec![],
                    rdns_mode: 2,
                    allow_dns: true,
                    allow_proxy: true,
                    active_discovery: false,
                    managed: true,
                    disabled_boot_architectures: vec![],
                },
                1,
            )
            .await
            .unwrap();
        let nic = |name: &str, mac: &str, boot: bool| NewInterface {
            name: name.into(),
            kind: InterfaceType::Physical,
            mac_address: Some(mac.into()),
            vlan_id: Some(DEFAULT_VLAN_ID),
            enabled: true,
            params: String::new(),
            tags: vec!["sriov".into()],
            vendor: Some("Intel".into()),
            product: Some("X710".into()),
            firmware_version: Some("1.0".into()),
            link_connected: true,
            interface_speed: 10_000,
            link_speed: 10_000,
            numa_node: Some(0),
            sriov_max_vf: 8,
            mtu: 1500,
            parents: vec![],
            links: vec![],
            discovered: vec![],
            boot,
        };
        let mut bond = nic("bond0", "52:54:00:00:03:01", false);
        bond.kind = InterfaceType::Bond;
        bond.parents = vec![0, 1];
        bond.params = r#"{"bond_mode":"802.3ad"}"#.into();
        bond.links = vec![NewIpLink {
            mode: LinkMode::Static,
            subnet_id: Some(subnet.id),
            ip: Some("10.1.0.5".into()),
        }];
        let root = Filesystem {
            fstype: "ext4".into(),
            label: Some("root".into()),
            uuid: Some("8b30d12c".into()),
            mount_point: Some("/".into()),
            mount_options: None,
        };
        let inventory = Inventory {
            cpu_count: 8,
            cpu_speed: 2400,
            memory: 16384,
            hardware_uuid: Some("5fa3".into()),
            hardware_info: [("system_vendor".to_owned(), "QEMU".to_owned())].into(),
            bios_boot_method: Some("uefi".into()),
            interfaces: vec![
                nic("eth0", "52:54:00:00:03:01", true),
                nic("eth1", "52:54:00:00:03:02", false),
                bond,
            ],
            block_devices: vec![NewBlockDevice {
                name: "sda".into(),
                kind: BlockDeviceType::Physical,
                model: Some("QEMU HARDDISK".into()),
                serial: Some("QM00001".into()),
                id_path: Some("/dev/disk/by-id/ata-QEMU".into()),
                size: 256_060_514_304,
                block_size: 512,
                tags: vec!["ssd".into()],
                uuid: None,
                firmware_version: Some("2.5+".into()),
                numa_node: Some(0),
                partition_table_type: Some("GPT".into()),
                filesystem: None,
                partitions: vec![NewPartition {
                    uuid: Some("e8cf55ff".into()),
                    size: 256_053_018_624,
                    bootable: false,
                    tags: vec![],
                    filesystem: Some(root.clone()),
                }],
                boot: true,
            }],
        };
        store
            .set_inventory(node.id, inventory.clone(), 50)
            .await
            .unwrap();
        let got = store.node_by_system_id("invent").await.unwrap().unwrap();
        assert_eq!((got.cpu_count, got.cpu_speed, got.memory), (8, 2400, 16384));
        assert_eq!(
            got.hardware_info.get("system_vendor").map(String::as_str),
            Some("QEMU")
        );
        assert_eq!(got.interfaces.len(), 3);
        let bond = &got.interfaces[2];
        assert_eq!(bond.kind, InterfaceType::Bond);
        assert_eq!(
            bond.parent_ids,
            vec![got.interfaces[0].id, got.interfaces[1].id]
        );
        assert_eq!(bond.links.len(), 1);
        assert_eq!(bond.links[0].ip.as_deref(), Some("10.1.0.5"));
        assert_eq!(bond.links[0].mode, LinkMode::Static);
        assert_eq!(got.interfaces[0].tags, ["sriov"]);
        assert_eq!(got.boot_interface_id, Some(got.interfaces[0].id));
        assert_eq!(got.block_devices.len(), 1);
        let disk = &got.block_devices[0];
        assert_eq!(got.boot_disk_id, Some(disk.id));
        assert_eq!(disk.size, 256_060_514_304);
        assert_eq!(disk.partitions.len(), 1);
        assert_eq!(disk.partitions[0].filesystem, Some(root));
        let f = NodeFilter {
            subnet_ids: vec![subnet.id],
            ..NodeFilter::default()
        };
        assert_eq!(store.nodes(&f, 0, 10).await.unwrap().len(), 1);
        let f = NodeFilter {
            not_subnet_ids: vec![subnet.id],
            ..NodeFilter::default()
        };
        assert!(store.nodes(&f, 0, 10).await.unwrap().is_empty());
        let f = NodeFilter {
            fabrics: vec!["fabric-0".into()],
            ..NodeFilter::default()
        };
        assert_eq!(store.nodes(&f, 0, 10).await.unwrap().len(), 1);

        // A second inventory replaces the first entirely.
        let smaller = Inventory {
            interfaces: inventory.interfaces[..1].to_vec(),
            block_devices: vec![],
            ..inventory
        };
        store.set_inventory(node.id, smaller, 60).await.unwrap();
        let got = store.node_by_system_id("invent").await.unwrap().unwrap();
        assert_eq!(got.interfaces.len(), 1);
        assert!(got.block_devices.is_empty());
        assert_eq!(got.boot_disk_id, None);
    }

    pub async fn conditional_status_change_has_one_winner(store: Arc<dyn Store>) {
        let node = store
            .create_node(new_node("racers", "race", &["52:54:00:00:04:01"]))
            .await
            .unwrap();
        assert!(
            store
                .change_status(node.id, status_change(NodeStatus::New, NodeStatus::Ready))
                .await
                .unwrap()
        );
        let mut users = Vec::new();
        for i in 0..8 {
            users.push(user(&store, &format!("racer{i}"), false).await);
        }
        let mut tasks = Vec::new();
        for racer in &users {
            let store = store.clone();
            let mut change = status_change(NodeStatus::Ready, NodeStatus::Allocated);
            change.owner = Some(Some(racer.id));
            change.owner_must_be = Some(None);
            tasks.push(tokio::spawn(async move {
                store.change_status(node.id, change).await.unwrap()
            }));
        }
        let mut winners = 0;
        for task in tasks {
            if task.await.unwrap() {
                winners += 1;
            }
        }
        assert_eq!(winners, 1);
        let node = store.node_by_system_id("racers").await.unwrap().unwrap();
        assert_eq!(node.status, NodeStatus::Allocated);
        assert_eq!(node.previous_status, NodeStatus::Ready);
        assert!(node.owner.is_some());
    }

    pub async fn node_updates(store: Arc<dyn Store>) {
        let node = store
            .create_node(new_node("update", "upd", &["52:54:00:00:05:01"]))
            .await
            .unwrap();
        store
            .create_node(new_node("other1", "taken", &["52:54:00:00:05:02"]))
            .await
            .unwrap();
        let update = NodeUpdate {
            hostname: Some("renamed".into()),
            description: Some("rack 4".into()),
            cpu_count: Some(4),
            memory: Some(8192),
            swap_size: Some(Some(1 << 30)),
            power_type: Some("ipmi".into()),
            power_parameters: Some([("power_user".to_owned(), "root".to_owned())].into()),
            power_state: Some(PowerState::On),
            locked: Some(true),
            owner_data: Some([("owner".to_owned(), "juju".to_owned())].into()),
            updated: 7_000,
            ..NodeUpdate::default()
        };
        store.update_node(node.id, update).await.unwrap();
        let got = store.node_by_system_id("update").await.unwrap().unwrap();
        assert_eq!(got.hostname, "renamed");
        assert_eq!(got.description, "rack 4");
        assert_eq!(
            (got.cpu_count, got.memory, got.swap_size),
            (4, 8192, Some(1 << 30))
        );
        assert_eq!(got.power_type, "ipmi");
        assert_eq!(
            got.power_parameters.get("power_user").map(String::as_str),
            Some("root")
        );
        assert_eq!(got.power_state, PowerState::On);
        assert!(got.locked);
        assert_eq!(
            got.owner_data.get("owner").map(String::as_str),
            Some("juju")
        );
        assert_eq!(got.updated, 7_000);
        let clash = NodeUpdate {
            hostname: Some("taken".into()),
            updated: 8_000,
            ..NodeUpdate::default()
        };
        assert!(matches!(
            store.update_node(node.id, clash).await,
            Err(StoreError::Conflict { .. })
        ));
        let missing = NodeUpdate {
            updated: 8_000,
            ..NodeUpdate::default()
        };
        assert!(matches!(
            store.update_node(99_999, missing).await,
            Err(StoreError::NotFound { .. })
        ));
    }

    pub async fn events_and_status_messages(store: Arc<dyn Store>) {
        let admin = user(&store, "admin", true).await;
        let node = store
            .create_node(new_node("evnode", "ev", &["52:54:00:00:06:01"]))
            .await
            .unwrap();
        let other = store
            .create_node(new_node("evothr", "ev2", &["52:54:00:00:06:02"]))
            .await
            .unwrap();
        let event = |node_id: i64, event_type: &str, level: EventLevel, is_status: bool| NewEvent {
            node_id: Some(node_id),
            event_type: event_type.into(),
            description: if is_status {
                "from the API".into()
            } else {
                String::new()
            },
            action: "commission".into(),
            level,
            user_id: Some(admin.id),
            created: 10_000,
            is_status,
        };
        let first = store
            .create_event(event(node.id, "Commissioning", EventLevel::Info, true))
            .await
            .unwrap();
        store
            .create_event(event(node.id, "Debug noise", EventLevel::Debug, false))
            .await
            .unwrap();
        store
            .create_event(event(other.id, "Ready", EventLevel::Info, true))
            .await
            .unwrap();
        store
            .create_event(event(node.id, "Power on", EventLevel::Audit, false))
            .await
            .unwrap();
        let got = store.node_by_system_id("evnode").await.unwrap().unwrap();
        assert_eq!(
            got.status_message.as_deref(),
            Some("Commissioning - from the API")
        );
        assert_eq!(got.status_action.as_deref(), Some("commission"));

        let query = |f: &dyn Fn(&mut EventQuery)| {
            let mut q = EventQuery {
                limit: 100,
                ..EventQuery::default()
            };
            f(&mut q);
            q
        };
        let all = store.events(&query(&|_| {})).await.unwrap();
        assert_eq!(all.len(), 4);
        assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        assert_eq!(all.last().unwrap().id, first);
        assert_eq!(all[0].username.as_deref(), Some("admin"));
        assert_eq!(all[0].system_id.as_deref(), Some("evnode"));
        assert_eq!(all[0].hostname, "ev");
        let info = store
            .events(&query(&|q| q.level = Some(EventLevel::Info)))
            .await
            .unwrap();
        assert_eq!(info.len(), 2);
        let audit = store
            .events(&query(&|q| q.level = Some(EventLevel::Audit)))
            .await
            .unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].event_type, "Power on");
        let by_host = store
            .events(&query(&|q| q.hostnames = vec!["ev2".into()]))
            .await
            .unwrap();
        assert_eq!(by_host.len(), 1);
        let by_id = store
            .events(&query(&|q| q.system_ids = vec!["evnode".into()]))
            .await
            .unwrap();
        assert_eq!(by_id.len(), 3);
        let by_mac = store
            .events(&query(&|q| {
                q.mac_addresses = vec!["52:54:00:00:06:02".into()]
            }))
            .await
            .unwrap();
        assert_eq!(by_mac.len(), 1);
        let page = store.events(&query(&|q| q.limit = 2)).await.unwrap();
        assert_eq!(page.len(), 2);
        let older = store
            .events(&query(&|q| {
                q.limit = 2;
                q.before = Some(page[1].id);
            }))
            .await
            .unwrap();
        assert_eq!(
            older.iter().map(|e| e.id).collect::<Vec<_>>(),
            all[2..].iter().map(|e| e.id).collect::<Vec<_>>()
        );
        let newer = store
            .events(&query(&|q| {
                q.limit = 2;
                q.after = Some(first);
            }))
            .await
            .unwrap();
        assert_eq!(
            newer.iter().map(|e| e.id).collect::<Vec<_>>(),
            all[1..3].iter().map(|e| e.id).collect::<Vec<_>>()
        );
        // Deleting a node keeps its events, named by system_id and hostname.
        store.delete_node(other.id).await.unwrap();
        let kept = store
            .events(&query(&|q| q.hostnames = vec!["ev2".into()]))
            .await
            .unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].system_id.as_deref(), Some("evothr"));
    }

    pub async fn delete_user_transfers_nodes(store: Arc<dyn Store>) {
        let admin = user(&store, "admin", true).await;
        let leaver = user(&store, "leaver", false).await;
        let node = store
            .create_node(new_node("owned1", "owned", &["52:54:00:00:07:01"]))
            .await
            .unwrap();
        let mut change = status_change(NodeStatus::New, NodeStatus::Ready);
        change.owner = Some(Some(leaver.id));
        assert!(store.change_status(node.id, change).await.unwrap());
        assert_eq!(store.owned_node_count(leaver.id).await.unwrap(), 1);
        store.delete_user(leaver.id, Some(admin.id)).await.unwrap();
        assert!(store.user_by_username("leaver").await.unwrap().is_none());
        let node = store.node_by_system_id("owned1").await.unwrap().unwrap();
        assert_eq!(node.owner.unwrap().username, "admin");
        assert!(matches!(
            store.delete_user(leaver.id, None).await,
            Err(StoreError::NotFound { .. })
        ));
    }

    pub async fn scripts_and_results(store: Arc<dyn Store>) {
        let script = |name: &str, body: &str| Script {
            id: 0,
            name: name.into(),
            title: String::new(),
            description: "builtin".into(),
            tags: vec!["commissioning".into()],
            script_type: script_type::COMMISSIONING,
            hardware_type: 0,
            parallel: 0,
            timeout_seconds: 600,
            destructive: false,
            is_default: true,
            may_reboot: false,
            script: body.into(),
        };
        let first = store
            .upsert_script(script("50-maas-01-commissioning", "#!/bin/sh\necho 1\n"), 1)
            .await
            .unwrap();
        let again = store
            .upsert_script(script("50-maas-01-commissioning", "#!/bin/sh\necho 2\n"), 2)
            .await
            .unwrap();
        assert_eq!(first.id, again.id, "upsert keeps the id");
        assert!(again.script.contains("echo 2"));
        store
            .upsert_script(script("maas-lshw", "lshw"), 1)
            .await
            .unwrap();
        let names: Vec<String> = store
            .scripts()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["50-maas-01-commissioning", "maas-lshw"]);
        assert!(store.script_by_name("maas-lshw").await.unwrap().is_some());

        let node = store
            .create_node(new_node("script", "scripted", &["52:54:00:00:08:01"]))
            .await
            .unwrap();
        let results = vec![
            NewScriptResult {
                script_id: Some(first.id),
                name: first.name.clone(),
                status: 0,
                parameters: "{}".into(),
            },
            NewScriptResult {
                script_id: None,
                name: "maas-lshw".into(),
                status: 0,
                parameters: "{}".into(),
            },
        ];
        let set = store
            .create_script_set(node.id, result_type::COMMISSIONING, results, 10)
            .await
            .unwrap();
        assert_eq!(set.results.len(), 2);
        let node = store.node_by_system_id("script").await.unwrap().unwrap();
        assert_eq!(node.current_commissioning_set_id, Some(set.id));
        assert_eq!(node.current_testing_set_id, None);
        let update = ScriptResultUpdate {
            status: Some(2),
            exit_status: Some(Some(0)),
            started: Some(11),
            ended: Some(12),
            runtime: Some("0:00:01".into()),
            stdout: Some(b"{\"api_version\": \"1.0\"}".to_vec()),
            output: Some(vec![0, 159, 146, 150]),
            updated: 12,
            ..ScriptResultUpdate::default()
        };
        store
            .update_script_result(set.results[0].id, update)
            .await
            .unwrap();
        store.touch_script_set(set.id, 13).await.unwrap();
        let full = store.script_set(set.id, true).await.unwrap().unwrap();
        assert_eq!(full.last_ping, Some(13));
        assert_eq!(full.results[0].status, 2);
        assert_eq!(full.results[0].exit_status, Some(0));
        assert_eq!(
            full.results[0].output.as_deref(),
            Some(&[0u8, 159, 146, 150][..]),
            "binary output survives"
        );
        let light = store.script_set(set.id, false).await.unwrap().unwrap();
        assert_eq!(light.results[0].output, None);
        let extra = store
            .add_script_result(
                set.id,
                NewScriptResult {
                    script_id: None,
                    name: "custom".into(),
                    status: 1,
                    parameters: "{}".into(),
                },
                14,
            )
            .await
            .unwrap();
        assert_eq!(extra.status, 1);
        let moved = store
            .set_result_statuses(&[set.id], &[0, 1], 5, 15)
            .await
            .unwrap();
        assert_eq!(
            moved, 2,
            "the pending lshw and the running custom result are aborted"
        );
        let testing = store
            .create_script_set(node.id, result_type::TESTING, vec![], 20)
            .await
            .unwrap();
        let sets = store.script_sets(node.id).await.unwrap();
        assert_eq!(
            sets.iter().map(|s| s.id).collect::<Vec<_>>(),
            [testing.id, set.id],
            "newest first"
        );
        assert_eq!(sets[1].results.len(), 3);
        assert!(matches!(
            store
                .update_script_result(999_999, ScriptResultUpdate::default())
                .await,
            Err(StoreError::NotFound { .. })
        ));
        store.delete_node(node.id).await.unwrap();
        assert!(
            store.script_set(set.id, false).await.unwrap().is_none(),
            "sets go with their node"
        );
    }

    pub async fn node_tokens(store: Arc<dyn Store>) {
        let node = store
            .create_node(new_node("tokens", "tok", &["52:54:00:00:08:02"]))
            .await
            .unwrap();
        assert!(store.node_token(node.id).await.unwrap().is_none());
        let token = |k: &str| NodeToken {
            node_id: node.id,
            consumer_key: format!("ck-{k}"),
            token_key: format!("tk-{k}"),
            token_secret: Secret::new(format!("ts-{k}")),
        };
        store.set_node_token(token("a"), 1).await.unwrap();
        store.set_node_token(token("b"), 2).await.unwrap();
        assert_eq!(
            store.node_token(node.id).await.unwrap(),
            Some(token("b")),
            "one token per node"
        );
        let (found, owner) = store.node_by_token("tk-b").await.unwrap().unwrap();
        assert_eq!(found.token_secret.expose(), "ts-b");
        assert_eq!(owner.system_id, "tokens");
        assert!(store.node_by_token("tk-a").await.unwrap().is_none());
        store.delete_node_token(node.id).await.unwrap();
        assert!(store.node_by_token("tk-b").await.unwrap().is_none());
    }

    pub async fn power_polled(store: Arc<dyn Store>) {
        let mut ipmi = new_node("poll1", "p1", &["52:54:00:00:09:01"]);
        ipmi.power_type = "ipmi".to_owned();
        ipmi.power_parameters
            .insert("power_address".to_owned(), "10.0.0.9:623".to_owned());
        ipmi.power_parameters
            .insert("power_pass".to_owned(), "secret".to_owned());
        let ipmi = store.create_node(ipmi).await.unwrap();
        let mut redfish = new_node("poll2", "p2", &["52:54:00:00:09:02"]);
        redfish.power_type = "redfish".to_owned();
        store.create_node(redfish).await.unwrap();
        store
            .create_node(new_node("poll3", "p3", &["52:54:00:00:09:03"]))
            .await
            .unwrap();
        let mut unset = new_node("poll4", "p4", &["52:54:00:00:09:04"]);
        unset.power_type = String::new();
        store.create_node(unset).await.unwrap();
        let update = NodeUpdate {
            power_state: Some(PowerState::On),
            updated: 3,
            ..NodeUpdate::default()
        };
        store.update_node(ipmi.id, update).await.unwrap();
        let polled: Vec<_> = store
            .power_polled_nodes()
            .await
            .unwrap()
            .into_iter()
            .filter(|n| n.system_id.starts_with("poll"))
            .collect();
        assert_eq!(
            polled.len(),
            2,
            "manual and unset are not polled: {polled:?}"
        );
        assert_eq!(polled[0].system_id, "poll1");
        assert_eq!(polled[0].power_type, "ipmi");
        assert_eq!(polled[0].power_address, "10.0.0.9:623");
        assert_eq!(polled[0].power_state, PowerState::On);
        assert_eq!(polled[1].system_id, "poll2");
        assert_eq!(polled[1].power_address, "");
        assert_eq!(polled[1].power_state, PowerState::Unknown);
    }

    pub async fn timers(store: Arc<dyn Store>) {
        let a = store
            .create_node(new_node("timer1", "t1", &["52:54:00:00:08:03"]))
            .await
            .unwrap();
        let b = store
            .create_node(new_node("timer2", "t2", &["52:54:00:00:08:04"]))
            .await
            .unwrap();
        let mut change = status_change(NodeStatus::New, NodeStatus::Commissioning);
        change.status_expires = Some(Some(5_000));
        assert!(store.change_status(a.id, change).await.unwrap());
        let update = NodeUpdate {
            status_expires: Some(Some(9_000)),
            updated: 1,
            ..NodeUpdate::default()
        };
        store.update_node(b.id, update).await.unwrap();
        assert!(store.expired_nodes(4_999).await.unwrap().is_empty());
        let due = store.expired_nodes(5_000).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(
            (due[0].system_id.as_str(), due[0].status),
            ("timer1", NodeStatus::Commissioning)
        );
        assert_eq!(store.expired_nodes(10_000).await.unwrap().len(), 2);
        // Heartbeat supervision: no timer, and the set went quiet.
        let cleared = NodeUpdate {
            status_expires: Some(None),
            updated: 2,
            ..NodeUpdate::default()
        };
        store.update_node(a.id, cleared).await.unwrap();
        let set = store
            .create_script_set(a.id, result_type::COMMISSIONING, vec![], 3)
            .await
            .unwrap();
        assert!(
            store
                .silent_nodes(
                    &[NodeStatus::Commissioning],
                    result_type::COMMISSIONING,
                    100
                )
                .await
                .unwrap()
                .is_empty(),
            "never pinged"
        );
        store.touch_script_set(set.id, 50).await.unwrap();
        let silent = store
            .silent_nodes(
                &[NodeStatus::Commissioning],
                result_type::COMMISSIONING,
                100,
            )
            .await
            .unwrap();
        assert_eq!(silent.len(), 1);
        assert_eq!(silent[0].system_id, "timer1");
        assert!(
            store
                .silent_nodes(&[NodeStatus::Commissioning], result_type::COMMISSIONING, 50)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .silent_nodes(&[NodeStatus::Testing], result_type::COMMISSIONING, 100)
                .await
                .unwrap()
                .is_empty()
        );
    }

    pub async fn previous_status_kept(store: Arc<dyn Store>) {
        let node = store
            .create_node(new_node("prevst", "prev", &["52:54:00:00:08:05"]))
            .await
            .unwrap();
        assert!(
            store
                .change_status(node.id, status_change(NodeStatus::New, NodeStatus::Ready))
                .await
                .unwrap()
        );
        assert!(
            store
                .change_status(
                    node.id,
                    status_change(NodeStatus::Ready, NodeStatus::Testing)
                )
                .await
                .unwrap()
        );
        let mut back = status_change(NodeStatus::Testing, NodeStatus::Ready);
        back.keep_previous = true;
        assert!(store.change_status(node.id, back).await.unwrap());
        let node = store.node_by_system_id("prevst").await.unwrap().unwrap();
        assert_eq!(node.status, NodeStatus::Ready);
        assert_eq!(
            node.previous_status,
            NodeStatus::Ready,
            "left as it was before testing"
        );
        // A stale precondition writes nothing.
        assert!(
            !store
                .change_status(node.id, status_change(NodeStatus::New, NodeStatus::Broken))
                .await
                .unwrap()
        );
    }

    pub async fn match_none(store: Arc<dyn Store>) {
        store
            .create_node(new_node("nonone", "none", &["52:54:00:00:08:06"]))
            .await
            .unwrap();
        let f = NodeFilter {
            match_none: true,
            ..NodeFilter::default()
        };
        assert!(store.nodes(&f, 0, 10).await.unwrap().is_empty());
        assert_eq!(
            store
                .nodes(&NodeFilter::default(), 0, 10)
                .await
                .unwrap()
                .len(),
            1
        );
    }

    pub async fn sessions(store: Arc<dyn Store>) {
        let alice = user(&store, "sess-alice", false).await;
        let bob = user(&store, "sess-bob", false).await;
        let session = |key: &str, user_id: i64, expires: Millis| Session {
            key_hash: key.to_owned(),
            user_id,
            csrf_token: format!("csrf-{key}"),
            created: 1_000,
            expires,
        };
        store
            .create_session(session("k1", alice.id, 10_000))
            .await
            .unwrap();
        store
            .create_session(session("k2", alice.id, 20_000))
            .await
            .unwrap();
        store
            .create_session(session("k3", bob.id, 5_000))
            .await
            .unwrap();
        assert!(matches!(
            store.create_session(session("k1", bob.id, 10_000)).await,
            Err(StoreError::Conflict { .. })
        ));
        let (found, owner) = store.session("k1", 9_999).await.unwrap().unwrap();
        assert_eq!(found, session("k1", alice.id, 10_000));
        assert_eq!(owner.username, "sess-alice");
        assert!(
            store.session("k1", 10_000).await.unwrap().is_none(),
            "expired"
        );
        assert!(store.session("nope", 0).await.unwrap().is_none());

        assert_eq!(store.delete_expired_sessions(10_000).await.unwrap(), 2);
        assert!(store.session("k2", 0).await.unwrap().is_some());
        assert!(store.delete_session("k2").await.unwrap());
        assert!(!store.delete_session("k2").await.unwrap());

        store
            .create_session(session("k4", bob.id, 50_000))
            .await
            .unwrap();
        store
            .create_session(session("k5", bob.id, 50_000))
            .await
            .unwrap();
        assert_eq!(store.delete_user_sessions(bob.id).await.unwrap(), 2);
        // Deleting a user takes their sessions with them.
        store
            .create_session(session("k6", alice.id, 50_000))
            .await
            .unwrap();
        store.delete_user(alice.id, None).await.unwrap();
        assert!(store.session("k6", 0).await.unwrap().is_none());
    }

    pub async fn node_listing_sort_group_count(store: Arc<dyn Store>) {
        let owner = user(&store, "list-owner", false).await;
        let pool = store.create_pool("list-pool", "", 1).await.unwrap();
        // (hostname, cpus, memory, disk sizes, owned, status, in list-pool)
        type Spec = (
            &'static str,
            i64,
            i64,
            &'static [i64],
            bool,
            NodeStatus,
            bool,
        );
        let specs: [Spec; 5] = [
            (
                "delta",
                8,
                4096,
                &[100, 200],
                false,
                NodeStatus::Ready,
                false,
            ),
            ("alpha", 2, 8192, &[500], true, NodeStatus::Deployed, true),
            ("charlie", 4, 1024, &[], false, NodeStatus::New, false),
            (
                "Bravo-50%",
                16,
                2048,
                &[50, 50, 50],
                false,
                NodeStatus::Ready,
                true,
            ),
            ("echo", 1, 512, &[1000], true, NodeStatus::Deployed, false),
        ];
        for (i, (hostname, cpus, memory, disks, owned, status, in_pool)) in specs.iter().enumerate()
        {
            let mut new = new_node(
                &format!("list{i:02}"),
                hostname,
                &[&format!("52:54:00:00:09:{i:02}")],
            );
            new.description = format!("machine number {i}");
            new.status = *status;
            new.owner_id = owned.then_some(owner.id);
            new.pool_id = Some(if *in_pool { pool.id } else { DEFAULT_POOL_ID });
            let node = store.create_node(new).await.unwrap();
            let inventory = Inventory {
                cpu_count: *cpus,
                memory: *memory,
                block_devices: disks
                    .iter()
                    .enumerate()
                    .map(|(d, size)| NewBlockDevice {
                        name: format!("sd{d}"),
                        kind: BlockDeviceType::Physical,
                        model: None,
                        serial: None,
                        id_path: None,
                        size: *size,
                        block_size: 512,
                        tags: vec![],
                        uuid: None,
                        firmware_version: None,
                        numa_node: None,
                        partition_table_type: None,
                        filesystem: None,
                        partitions: vec![],
                        boot: d == 0,
                    })
                    .collect(),
                ..Inventory::default()
            };
            store
                .set_inventory(node.id, inventory, 3_000)
                .await
                .unwrap();
        }
        let hostnames =
            |nodes: Vec<Node>| -> Vec<String> { nodes.into_iter().map(|n| n.hostname).collect() };
        let query = |sort: NodeSort, descending: bool| NodeQuery {
            sort,
            descending,
            ..NodeQuery::default()
        };
        assert_eq!(
            hostnames(
                store
                    .node_page(&query(NodeSort::CpuCount, false), 0, 10)
                    .await
                    .unwrap()
            ),
            ["echo", "alpha", "charlie", "delta", "Bravo-50%"]
        );
        assert_eq!(
            hostnames(
                store
                    .node_page(&query(NodeSort::Memory, true), 0, 10)
                    .await
                    .unwrap()
            ),
            ["alpha", "delta", "Bravo-50%", "charlie", "echo"]
        );
        assert_eq!(
            hostnames(
                store
                    .node_page(&query(NodeSort::Storage, false), 0, 10)
                    .await
                    .unwrap()
            ),
            ["charlie", "Bravo-50%", "delta", "alpha", "echo"]
        );
        assert_eq!(
            hostnames(
                store
                    .node_page(&query(NodeSort::Disks, true), 0, 2)
                    .await
                    .unwrap()
            ),
            ["Bravo-50%", "delta"]
        );
        // Paging by offset walks the same order.
        assert_eq!(
            hostnames(
                store
                    .node_page(&query(NodeSort::CpuCount, false), 2, 2)
                    .await
                    .unwrap()
            ),
            ["charlie", "delta"]
        );
        // Pages carry their hardware like every other listing.
        let page = store
            .node_page(&query(NodeSort::Storage, true), 0, 1)
            .await
            .unwrap();
        assert_eq!(page[0].block_devices.len(), 1);

        // Grouping orders by the group first; counts come per group in that order.
        let grouped = NodeQuery {
            group: Some(NodeGroup::Status),
            sort: NodeSort::CpuCount,
            ..NodeQuery::default()
        };
        assert_eq!(
            hostnames(store.node_page(&grouped, 0, 10).await.unwrap()),
            ["charlie", "delta", "Bravo-50%", "echo", "alpha"]
        );
        let counts = store
            .node_group_counts(&grouped, NodeGroup::Status)
            .await
            .unwrap();
        let expected: Vec<NodeGroupCount> = [
            (NodeStatus::New, 1),
            (NodeStatus::Ready, 2),
            (NodeStatus::Deployed, 2),
        ]
        .into_iter()
        .map(|(status, count)| NodeGroupCount {
            key: Some(status.number().to_string()),
            count,
        })
        .collect();
        assert_eq!(counts, expected);
        let by_owner = store
            .node_group_counts(&grouped, NodeGroup::Owner)
            .await
            .unwrap();
        assert_eq!(
            by_owner,
            [
                NodeGroupCount {
                    key: None,
                    count: 3
                },
                NodeGroupCount {
                    key: Some("list-owner".into()),
                    count: 2
                },
            ]
        );
        let by_pool = store
            .node_group_counts(&grouped, NodeGroup::Pool)
            .await
            .unwrap();
        assert_eq!(
            by_pool,
            [
                NodeGroupCount {
                    key: Some("default".into()),
                    count: 3
                },
                NodeGroupCount {
                    key: Some("list-pool".into()),
                    count: 2
                },
            ]
        );

        // Free text: case-insensitive substrings of hostname, system_id or
        // description; LIKE wildcards in a term are literal.
        let text = |terms: &[&str]| NodeQuery {
            text: terms.iter().map(|t| (*t).to_owned()).collect(),
            ..NodeQuery::default()
        };
        assert_eq!(
            hostnames(store.node_page(&text(&["BRAVO"]), 0, 10).await.unwrap()),
            ["Bravo-50%"]
        );
        assert_eq!(store.node_count(&text(&["50%"])).await.unwrap(), 1);
        assert_eq!(store.node_count(&text(&["5_%"])).await.unwrap(), 0);
        assert_eq!(store.node_count(&text(&["list0"])).await.unwrap(), 5);
        assert_eq!(store.node_count(&text(&["number 3"])).await.unwrap(), 1);
        assert_eq!(
            store.node_count(&text(&["har", "li"])).await.unwrap(),
            1,
            "charlie"
        );

        // Filters apply to pages, counts and groups alike.
        let visible = NodeQuery {
            filter: NodeFilter {
                statuses: vec![NodeStatus::Ready, NodeStatus::Deployed],
                pools: vec!["list-pool".into()],
                ..NodeFilter::default()
            },
            ..NodeQuery::default()
        };
        assert_eq!(store.node_count(&visible).await.unwrap(), 2);
        assert_eq!(
            hostnames(store.node_page(&visible, 0, 10).await.unwrap()),
            ["Bravo-50%", "alpha"]
        );
        let none = NodeQuery {
            filter: NodeFilter {
                match_none: true,
                ..NodeFilter::default()
            },
            ..NodeQuery::default()
        };
        assert_eq!(store.node_count(&none).await.unwrap(), 0);
        assert!(
            store
                .node_group_counts(&none, NodeGroup::Zone)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
