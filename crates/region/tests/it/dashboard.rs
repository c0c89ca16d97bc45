//! The web dashboard (issue 8) and session login (api.md §1, §2.7), driven
//! in memory through the router with a cookie jar, as a browser would.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use futures_util::StreamExt;
use maas_domain::{NodeStatus, NodeType, PowerState, SystemId};
use maas_store::defaults::{DEFAULT_DOMAIN_ID, DEFAULT_POOL_ID, DEFAULT_ZONE_ID};
use maas_store::{BlockDeviceType, Inventory, NewBlockDevice, NewNode, Tag};

use crate::support::{HOST, Reply, TestRegion, p};

/// A browser: cookies kept between requests, forms posted urlencoded.
struct Browser<'t> {
    t: &'t TestRegion,
    cookies: BTreeMap<String, String>,
    accept: &'static str,
}

fn encode(fields: &[(&str, &str)]) -> String {
    let mut body = form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        body.append_pair(name, value);
    }
    body.finish()
}

impl<'t> Browser<'t> {
    fn new(t: &'t TestRegion) -> Browser<'t> {
        Browser {
            t,
            cookies: BTreeMap::new(),
            accept: "text/html,application/xhtml+xml,*/*;q=0.8",
        }
    }

    /// An API-style client (no `text/html` in Accept).
    fn api(t: &'t TestRegion) -> Browser<'t> {
        Browser {
            accept: "application/json",
            ..Browser::new(t)
        }
    }

    async fn logged_in(t: &'t TestRegion, username: &str, password: &str) -> Browser<'t> {
        let mut browser = Browser::new(t);
        let reply = browser
            .post_raw(
                "/MAAS/accounts/login/",
                &[("username", username), ("password", password)],
                &[],
            )
            .await;
        assert_eq!(reply.status.as_u16(), 303, "login: {}", reply.text());
        assert!(browser.cookies.contains_key("sessionid"));
        browser
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn csrf(&self) -> String {
        self.cookies.get("csrftoken").cloned().unwrap_or_default()
    }

    fn absorb(&mut self, reply: &Reply) {
        for value in reply.headers.get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if text.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    async fn send(&mut self, request: axum::http::request::Builder, body: Body) -> Reply {
        let request = request
            .header("host", HOST)
            .header("accept", self.accept)
            .header("cookie", self.cookie_header())
            .body(body)
            .unwrap();
        let reply = self.t.raw(request).await;
        self.absorb(&reply);
        reply
    }

    async fn get(&mut self, path: &str) -> Reply {
        self.send(Request::builder().method("GET").uri(path), Body::empty())
            .await
    }

    /// Follows one redirect, as a browser after a form post.
    async fn follow(&mut self, reply: &Reply) -> Reply {
        let location = reply
            .headers
            .get("location")
            .unwrap_or_else(|| panic!("no redirect: {} {}", reply.status, reply.text()))
            .to_str()
            .unwrap()
            .to_owned();
        self.get(&location).await
    }

    async fn post_raw(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/x-www-form-urlencoded");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request, Body::from(encode(fields))).await
    }

    /// Posts a form with the CSRF field, as the dashboard's forms do.
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let csrf = self.csrf();
        let mut all = vec![("csrfmiddlewaretoken", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all, &[]).await
    }
}

async fn user_with_password(t: &TestRegion, name: &str) {
    t.user(name).await;
}

/// Machines straight into the store, quicker than the API for hundreds.
async fn seed(t: &TestRegion, count: usize) -> Vec<String> {
    let store = t.region.store.as_ref();
    let pool = store.create_pool("gpu-pool", "", 1).await.unwrap();
    let tag = store
        .create_tag(Tag {
            id: 0,
            name: "gpu".into(),
            definition: String::new(),
            comment: String::new(),
            kernel_opts: None,
        })
        .await
        .unwrap();
    let owner = store.user_by_username("alice").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..count {
        let status = match i % 3 {
            0 => NodeStatus::Ready,
            1 => NodeStatus::Deployed,
            _ => NodeStatus::New,
        };
        let system_id = SystemId::from_random(i as u64 * 7919 + 17).to_string();
        let node = store
            .create_node(NewNode {
                system_id: system_id.clone(),
                hostname: format!("node-{i:04}"),
                description: String::new(),
                node_type: NodeType::Machine,
                status,
                owner_id: match (&owner, status) {
                    (Some(owner), NodeStatus::Deployed) if i % 2 == 1 => Some(owner.id),
                    _ => None,
                },
                domain_id: DEFAULT_DOMAIN_ID,
                zone_id: DEFAULT_ZONE_ID,
                pool_id: Some(if i % 5 == 0 { pool.id } else { DEFAULT_POOL_ID }),
                architecture: Some("amd64/generic".into()),
                min_hwe_kernel: None,
                power_type: "manual".into(),
                power_parameters: BTreeMap::new(),
                is_dpu: false,
                created: 1_000,
                mac_addresses: vec![format!("52:54:01:{:02x}:{:02x}:01", i / 256, i % 256)],
            })
            .await
            .unwrap();
        store
            .set_inventory(
                node.id,
                Inventory {
                    cpu_count: (i % 16) as i64 + 1,
                    memory: 1024 * ((i % 8) as i64 + 1),
                    block_devices: vec![NewBlockDevice {
                        name: "sda".into(),
                        kind: BlockDeviceType::Physical,
                        model: Some("QEMU HARDDISK".into()),
                        serial: Some(format!("SER{i}")),
                        id_path: None,
                        size: 10_000_000_000 * (i as i64 % 4 + 1),
                        block_size: 512,
                        tags: vec![],
                        uuid: None,
                        firmware_version: None,
                        numa_node: None,
                        partition_table_type: None,
                        filesystem: None,
                        partitions: vec![],
                        boot: true,
                    }],
                    ..Inventory::default()
                },
                2_000,
            )
            .await
            .unwrap();
        if i % 4 == 0 {
            store
                .tag_nodes(tag.id, std::slice::from_ref(&system_id), &[])
                .await
                .unwrap();
        }
        ids.push(system_id);
    }
    ids
}

/// The `Showing a–b of n machines` line, as numbers.
fn showing(page: &str) -> (usize, usize, usize) {
    let at = page
        .find("Showing ")
        .unwrap_or_else(|| panic!("no summary in: {page}"));
    let text: String = page[at + 8..].chars().take(60).collect();
    let numbers: Vec<usize> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(3)
        .map(|s| s.parse().unwrap())
        .collect();
    (numbers[0], numbers[1], numbers[2])
}

/// Hostnames of the machine rows in a page, in order.
fn hostnames(page: &str) -> Vec<String> {
    page.match_indices("<td class=\"hostname\"><a href=\"/MAAS/r/machine/")
        .map(|(at, _)| {
            let rest = &page[at..];
            let start = rest.find("\">").unwrap() + 2;
            let rest = &rest[start..];
            let start = rest.find("\">").unwrap() + 2;
            rest[start..rest.find("</a>").unwrap()].to_owned()
        })
        .collect()
}

#[tokio::test]
async fn login_logout_and_csrf_follow_the_api_contract() {
    let t = TestRegion::new().await;
    let mut client = Browser::api(&t);

    // GET login/ answers JSON for API clients.
    let reply = client.get("/MAAS/accounts/login/").await;
    reply.expect(200);
    assert_eq!(
        reply.json(),
        serde_json::json!({"authenticated": false, "external_auth_url": null, "no_users": false})
    );

    // Failures are 400 with Django's form-error object.
    let reply = client
        .post_raw("/MAAS/accounts/login/", &[("username", "admin")], &[])
        .await;
    reply.expect(400);
    assert_eq!(reply.json()["password"][0], "This field is required.");
    let reply = client
        .post_raw(
            "/MAAS/accounts/login/",
            &[("username", "admin"), ("password", "wrong")],
            &[],
        )
        .await;
    reply.expect(400);
    assert!(
        reply.json()["__all__"][0]
            .as_str()
            .unwrap()
            .contains("correct username and password")
    );
    assert!(!client.cookies.contains_key("sessionid"));

    // Success: 204, a session cookie (HttpOnly) and a CSRF cookie.
    let reply = client
        .post_raw(
            "/MAAS/accounts/login/",
            &[("username", "admin"), ("password", "admin-pw")],
            &[],
        )
        .await;
    reply.expect(204);
    let set_cookies: Vec<&str> = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(set_cookies.iter().any(|c| c.starts_with("sessionid=")
        && c.contains("HttpOnly")
        && c.contains("Path=/MAAS/")));
    assert!(set_cookies.iter().any(|c| c.starts_with("csrftoken=")));
    // The database holds only a hash of the session key.
    let key = client.cookies["sessionid"].clone();
    assert!(
        t.region
            .store
            .session(&key, t.region.now())
            .await
            .unwrap()
            .is_none()
    );
    let reply = client.get("/MAAS/accounts/login/").await;
    assert_eq!(reply.json()["authenticated"], true);
    // Logging in again with a live session answers at once.
    client
        .post_raw("/MAAS/accounts/login/", &[], &[])
        .await
        .expect(204);

    // The API accepts the session like an OAuth user.
    let reply = client.get("/MAAS/api/2.0/users/?op=whoami").await;
    reply.expect(200);
    assert_eq!(reply.json()["username"], "admin");

    // Unsafe API requests with a session need X-CSRFToken = csrftoken.
    let reply = client
        .post_raw("/MAAS/api/2.0/zones/", &[("name", "east")], &[])
        .await;
    reply.expect(403);
    assert_eq!(
        reply.text(),
        "CSRF Failed: CSRF token missing or incorrect."
    );
    let reply = client
        .post_raw(
            "/MAAS/api/2.0/zones/",
            &[("name", "east")],
            &[("x-csrftoken", "not-the-token")],
        )
        .await;
    reply.expect(403);
    let csrf = client.csrf();
    client
        .post_raw(
            "/MAAS/api/2.0/zones/",
            &[("name", "east")],
            &[("x-csrftoken", &csrf)],
        )
        .await
        .expect(200);

    // account/csrf/: the session's token, POST only, 403 without a session.
    let reply = client.post_raw("/MAAS/account/csrf/", &[], &[]).await;
    reply.expect(200);
    assert_eq!(reply.json()["csrf"], csrf.as_str());
    client.get("/MAAS/account/csrf/").await.expect(405);
    Browser::api(&t)
        .post_raw("/MAAS/account/csrf/", &[], &[])
        .await
        .expect(403);

    // Logout: POST only, CSRF checked, then the session is gone.
    client.get("/MAAS/accounts/logout/").await.expect(405);
    client
        .post_raw("/MAAS/accounts/logout/", &[], &[])
        .await
        .expect(403);
    let old_cookies = client.cookies.clone();
    client
        .post_raw("/MAAS/accounts/logout/", &[], &[("x-csrftoken", &csrf)])
        .await
        .expect(204);
    assert!(!client.cookies.contains_key("sessionid"));
    client.cookies = old_cookies;
    client
        .get("/MAAS/api/2.0/users/?op=whoami")
        .await
        .expect(401);
    assert_eq!(
        client.get("/MAAS/accounts/login/").await.json()["authenticated"],
        false
    );

    // OAuth clients send no cookies and never meet CSRF.
    t.post("zones/", p().text("name", "west")).await.expect(200);
}

#[tokio::test]
async fn browser_login_redirects_and_pages_need_a_session() {
    let t = TestRegion::new().await;
    let mut browser = Browser::new(&t);
    let reply = browser.get("/MAAS/r/machines?q=status%3Aready").await;
    reply.expect(303);
    let location = reply.headers["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("/MAAS/accounts/login/?next="),
        "{location}"
    );
    let page = browser.follow(&reply).await;
    page.expect(200);
    assert!(page.content_type().starts_with("text/html"));
    assert!(page.text().contains("Log in to MAAS"));

    // A bad password shows the form again with the error.
    let reply = browser
        .post_raw(
            "/MAAS/accounts/login/",
            &[
                ("username", "admin"),
                ("password", "nope"),
                ("next", "/MAAS/r/machines"),
            ],
            &[],
        )
        .await;
    reply.expect(400);
    assert!(
        reply
            .text()
            .contains("Please enter a correct username and password")
    );

    let reply = browser
        .post_raw(
            "/MAAS/accounts/login/",
            &[
                ("username", "admin"),
                ("password", "admin-pw"),
                ("next", "/MAAS/r/machines?q=status%3Aready"),
            ],
            &[],
        )
        .await;
    reply.expect(303);
    assert_eq!(
        reply.headers["location"],
        "/MAAS/r/machines?q=status%3Aready"
    );
    // `next` never leaves the dashboard.
    let mut other = Browser::new(&t);
    let reply = other
        .post_raw(
            "/MAAS/accounts/login/",
            &[
                ("username", "admin"),
                ("password", "admin-pw"),
                ("next", "https://evil.example/"),
            ],
            &[],
        )
        .await;
    assert_eq!(reply.headers["location"], "/MAAS/r/");

    // Fragments and the stream answer 401 rather than redirecting.
    let mut anonymous = Browser::new(&t);
    anonymous.get("/MAAS/r/stream").await.expect(401);
    anonymous
        .get("/MAAS/r/machines/rows?id=x")
        .await
        .expect(401);
    // Static assets need no session.
    let script = anonymous.get("/MAAS/r/static/dashboard.js").await;
    script.expect(200);
    assert!(script.content_type().starts_with("text/javascript"));
    anonymous.get("/MAAS/r/static/nope.js").await.expect(404);

    // Logging out from a page goes back to the login page.
    let csrf = browser.csrf();
    let reply = browser
        .post_raw(
            "/MAAS/accounts/logout/",
            &[("csrfmiddlewaretoken", &csrf)],
            &[],
        )
        .await;
    reply.expect(303);
    assert_eq!(reply.headers["location"], "/MAAS/accounts/login/");
    browser.get("/MAAS/r/").await.expect(303);
}

#[tokio::test]
async fn every_page_renders_for_admin_and_non_admin() {
    let t = TestRegion::new().await;
    user_with_password(&t, "alice").await;
    let machine = t.machine("page-test", "52:54:00:aa:00:01").await;
    let system_id = machine["system_id"].as_str().unwrap().to_owned();
    let mut admin = Browser::logged_in(&t, "admin", "admin-pw").await;
    let mut alice = Browser::logged_in(&t, "alice", "pw").await;
    let pages: &[(&str, &str)] = &[
        ("/MAAS/r/", "Recent events"),
        ("/MAAS/r/machines", "page-test"),
        ("/MAAS/r/machines/add", "Add machine"),
        (&format!("/MAAS/r/machine/{system_id}"), "page-test"),
        (
            &format!("/MAAS/r/machine/{system_id}?tab=network"),
            "52:54:00:aa:00:01",
        ),
        (
            &format!("/MAAS/r/machine/{system_id}?tab=storage"),
            "commissioning finds them",
        ),
        (
            &format!("/MAAS/r/machine/{system_id}?tab=commissioning"),
            "No commissioning results",
        ),
        (
            &format!("/MAAS/r/machine/{system_id}?tab=tests"),
            "No tests results",
        ),
        (&format!("/MAAS/r/machine/{system_id}?tab=events"), "New"),
        (&format!("/MAAS/r/machine/{system_id}?tab=config"), "Zone"),
        ("/MAAS/r/controllers", "Region controller"),
        ("/MAAS/r/images", "Image settings"),
        ("/MAAS/r/networks", "Fabrics and VLANs"),
        ("/MAAS/r/zones", "default"),
        ("/MAAS/r/pools", "default"),
        ("/MAAS/r/tags", "Tags"),
        ("/MAAS/r/users", "alice"),
        ("/MAAS/r/settings", "maas name"),
    ];
    for (browser, who) in [(&mut admin, "admin"), (&mut alice, "alice")] {
        for (path, expected) in pages {
            let reply = browser.get(path).await;
            assert_eq!(reply.status.as_u16(), 200, "{who} {path}: {}", reply.text());
            let text = reply.text();
            assert!(text.contains(expected), "{who} {path}: no {expected:?}");
            assert!(text.contains(who), "{who} {path}: user not shown");
        }
    }

    // What admins get and others don't.
    let admin_config = admin
        .get(&format!("/MAAS/r/machine/{system_id}?tab=config"))
        .await
        .text();
    assert!(admin_config.contains("Save power"));
    assert!(admin_config.contains("name=\"pp_ipmi_power_address\""));
    let alice_config = alice
        .get(&format!("/MAAS/r/machine/{system_id}?tab=config"))
        .await
        .text();
    assert!(alice_config.contains("Only administrators can change"));
    assert!(!alice_config.contains("Save power"));
    let admin_header = admin
        .get(&format!("/MAAS/r/machine/{system_id}"))
        .await
        .text();
    let alice_header = alice
        .get(&format!("/MAAS/r/machine/{system_id}"))
        .await
        .text();
    assert!(admin_header.contains(">Commission</button>"));
    assert!(admin_header.contains(">Delete</button>"));
    assert!(!alice_header.contains(">Commission</button>"));
    assert!(!alice_header.contains(">Delete</button>"));
    assert!(admin.get("/MAAS/r/users").await.text().contains("Add user"));
    assert!(!alice.get("/MAAS/r/users").await.text().contains("Add user"));
    assert!(
        alice
            .get("/MAAS/r/settings")
            .await
            .text()
            .contains("Only administrators can change settings")
    );
    assert!(!alice.get("/MAAS/r/zones").await.text().contains("Add zone"));
    assert!(admin.get("/MAAS/r/zones").await.text().contains("Add zone"));

    // The services refuse non-admins what the API refuses them.
    let reply = alice.post("/MAAS/r/zones", &[("name", "mine")]).await;
    reply.expect(303);
    let page = alice.follow(&reply).await.text();
    assert!(
        page.contains("This method is reserved for admin users."),
        "{page}"
    );
    assert!(t.region.store.zone_by_name("mine").await.unwrap().is_none());
    let reply = alice
        .post("/MAAS/r/settings", &[("maas_name", "hijacked")])
        .await;
    reply.expect(303);
    assert!(
        alice
            .follow(&reply)
            .await
            .text()
            .contains("reserved for admin users")
    );
    let reply = alice
        .post(
            &format!("/MAAS/r/machine/{system_id}/action"),
            &[("action", "delete")],
        )
        .await;
    reply.expect(303);
    assert!(alice.follow(&reply).await.text().contains("permission"));
    assert!(
        t.region
            .store
            .node_by_system_id(&system_id)
            .await
            .unwrap()
            .is_some()
    );

    // A machine owned by someone else is a 403 page, as the API answers.
    let bob = t.user("bob").await;
    let owned = t.machine("bobs", "52:54:00:aa:00:02").await;
    let owned_id = owned["system_id"].as_str().unwrap().to_owned();
    t.post(&format!("machines/{owned_id}/"), p().op("mark_broken"))
        .await;
    let store = t.region.store.as_ref();
    let node = store.node_by_system_id(&owned_id).await.unwrap().unwrap();
    let bob_user = store.user_by_username("bob").await.unwrap().unwrap();
    store
        .change_status(
            node.id,
            maas_store::StatusChange {
                from: node.status,
                to: NodeStatus::Allocated,
                owner: Some(Some(bob_user.id)),
                owner_must_be: None,
                agent_name: None,
                status_expires: None,
                error_description: None,
                keep_previous: false,
                events: vec![],
                updated: 5,
            },
        )
        .await
        .unwrap();
    drop(bob);
    alice
        .get(&format!("/MAAS/r/machine/{owned_id}"))
        .await
        .expect(403);
    assert!(!alice.get("/MAAS/r/machines").await.text().contains("bobs"));
    assert!(admin.get("/MAAS/r/machines").await.text().contains("bobs"));
    admin.get("/MAAS/r/machine/nosuch").await.expect(404);
    admin.get("/MAAS/r/nowhere").await.expect(404);
}

#[tokio::test]
async fn machine_list_filters_groups_sorts_and_pages_in_the_store() {
    let t = TestRegion::new().await;
    user_with_password(&t, "alice").await;
    seed(&t, 300).await;
    let mut admin = Browser::logged_in(&t, "admin", "admin-pw").await;

    let page = admin.get("/MAAS/r/machines").await;
    page.expect(200);
    let text = page.text();
    assert_eq!(showing(&text), (1, 50, 300));
    // Grouped by status by default, each header with its count over all pages.
    assert!(text.contains("New"), "group header");
    assert!(text.contains(" 100 machines"));
    assert_eq!(hostnames(&text).len(), 50);

    // MAAS search syntax, through the API's filter.
    let page = admin
        .get("/MAAS/r/machines?q=status%3Aready+pool%3Agpu-pool&group=none&per_page=25")
        .await
        .text();
    // Ready: i % 3 == 0; gpu-pool: i % 5 == 0; so i % 15 == 0: 20 machines.
    assert_eq!(showing(&page), (1, 20, 20));
    let names = hostnames(&page);
    assert_eq!(names[0], "node-0000");
    assert_eq!(names[1], "node-0015");
    let page = admin
        .get("/MAAS/r/machines?q=tags%3Agpu+%21status%3Aready&group=none")
        .await
        .text();
    // Tagged: i % 4 == 0 (75); not Ready removes i % 12 == 0 (25).
    assert_eq!(showing(&page).2, 50);
    let page = admin
        .get("/MAAS/r/machines?q=node-02&group=none&per_page=200")
        .await
        .text();
    assert_eq!(showing(&page).2, 100, "free text matches hostnames");
    let page = admin.get("/MAAS/r/machines?q=cores%3A16").await.text();
    assert_eq!(showing(&page).2, 18, "minimum cores (i % 16 == 15)");

    // Sorting by a hardware column, both ways, with pagination.
    let page = admin
        .get("/MAAS/r/machines?group=none&sort=cores&dir=desc&per_page=25&page=2")
        .await
        .text();
    assert_eq!(showing(&page), (26, 50, 300));
    assert!(page.contains("rel=\"prev\""));
    assert!(page.contains("rel=\"next\""));
    let cores: Vec<usize> = page
        .match_indices("<td class=\"num\">")
        .step_by(4)
        .map(|(at, m)| {
            let rest = &page[at + m.len()..];
            rest[..rest.find('<').unwrap()].parse().unwrap()
        })
        .collect();
    assert_eq!(cores.len(), 25);
    assert!(cores.windows(2).all(|w| w[0] >= w[1]), "{cores:?}");
    assert_eq!(
        cores[0], 15,
        "page 2 of cores descending (18 machines have 16)"
    );
    let page = admin
        .get("/MAAS/r/machines?group=none&sort=hostname&dir=desc&per_page=25")
        .await
        .text();
    assert_eq!(hostnames(&page)[0], "node-0299");
    // A page past the end shows the last page.
    let page = admin
        .get("/MAAS/r/machines?group=none&per_page=200&page=99")
        .await
        .text();
    assert_eq!(showing(&page), (201, 300, 300));

    // Grouping by pool and by owner.
    let page = admin.get("/MAAS/r/machines?group=pool").await.text();
    assert!(page.contains("gpu-pool"));
    assert!(page.contains(" 240 machines"));
    let page = admin
        .get("/MAAS/r/machines?group=owner&per_page=200")
        .await
        .text();
    assert!(page.contains("No owner"));

    // Search mistakes are field errors under the search box.
    let page = admin.get("/MAAS/r/machines?q=colour%3Ared").await;
    page.expect(200);
    assert!(
        page.text().contains("Unknown filter &#39;colour&#39;")
            || page.text().contains("Unknown filter 'colour'")
    );
    let page = admin.get("/MAAS/r/machines?q=tags%3Anosuch").await.text();
    assert!(page.contains("No such tag(s)"), "{page}");
    assert!(page.contains("No machines match."));

    // A non-admin sees unowned machines and their own only: alice owns the
    // Deployed machines with odd i (i % 6 == 1: 50); nobody else owns any.
    let mut alice = Browser::logged_in(&t, "alice", "pw").await;
    let page = alice.get("/MAAS/r/machines").await.text();
    assert_eq!(showing(&page).2, 300);
    let page = alice
        .get("/MAAS/r/machines?q=owner%3Aalice&group=none")
        .await
        .text();
    assert_eq!(showing(&page).2, 50);
}

#[tokio::test]
async fn actions_through_forms_check_csrf_and_act_once() {
    let t = TestRegion::new().await;
    let machine = t.machine("act-one", "52:54:00:bb:00:01").await;
    let system_id = machine["system_id"].as_str().unwrap().to_owned();
    let mut admin = Browser::logged_in(&t, "admin", "admin-pw").await;

    // Without the CSRF field the form is refused and nothing happens.
    let reply = admin
        .post_raw(
            &format!("/MAAS/r/machine/{system_id}/action"),
            &[("action", "commission")],
            &[],
        )
        .await;
    reply.expect(403);
    assert!(reply.text().contains("CSRF Failed"));
    let status = |t: &TestRegion| {
        let id = system_id.clone();
        let store = t.region.store.clone();
        async move { store.node_by_system_id(&id).await.unwrap().unwrap().status }
    };
    assert_eq!(status(&t).await, NodeStatus::New);

    // With it, the action runs through the life cycle, as op=commission would.
    let reply = admin
        .post(
            &format!("/MAAS/r/machine/{system_id}/action"),
            &[("action", "commission"), ("once", "token-1")],
        )
        .await;
    reply.expect(303);
    let page = admin.follow(&reply).await.text();
    assert!(page.contains("Commission: done."), "{page}");
    assert!(page.contains("Commissioning"));
    assert_eq!(status(&t).await, NodeStatus::Commissioning);

    // A second submission of the same form (a double click) does nothing.
    let reply = admin
        .post(
            &format!("/MAAS/r/machine/{system_id}/action"),
            &[("action", "abort"), ("once", "token-1")],
        )
        .await;
    reply.expect(303);
    let page = admin.follow(&reply).await.text();
    assert!(page.contains("already submitted"), "{page}");
    assert_eq!(status(&t).await, NodeStatus::Commissioning);

    // A refused action comes back as a message with the service's reason.
    let reply = admin
        .post(
            &format!("/MAAS/r/machine/{system_id}/action"),
            &[("action", "mark_fixed")],
        )
        .await;
    let page = admin.follow(&reply).await.text();
    assert!(
        page.contains("Can&#39;t mark a non-broken node as &#39;Ready&#39;.")
            || page.contains("Can't mark a non-broken node"),
        "{page}"
    );

    // Bulk: abort commissioning on the selected machines; unknown ones are reported.
    let other = t.machine("act-two", "52:54:00:bb:00:02").await;
    let other_id = other["system_id"].as_str().unwrap().to_owned();
    let reply = admin
        .post(
            "/MAAS/r/machines/action",
            &[
                ("action", "mark_broken"),
                ("system_id", &system_id),
                ("system_id", &other_id),
                ("system_id", "nosuch"),
                ("comment", "bad fan"),
                ("back", "/MAAS/r/machines?group=none"),
            ],
        )
        .await;
    reply.expect(303);
    assert_eq!(reply.headers["location"], "/MAAS/r/machines?group=none");
    let page = admin.follow(&reply).await.text();
    assert!(
        page.contains("Mark broken: done on 2 machines (act-one, act-two)."),
        "{page}"
    );
    assert!(
        page.contains("nosuch: No Machine matches the given query."),
        "{page}"
    );
    assert_eq!(status(&t).await, NodeStatus::Broken);

    // Set zone through the bulk form, with its argument.
    t.post("zones/", p().text("name", "rack-2"))
        .await
        .expect(200);
    let reply = admin
        .post(
            "/MAAS/r/machines/action",
            &[
                ("action", "set_zone"),
                ("zone", "rack-2"),
                ("system_id", &other_id),
            ],
        )
        .await;
    admin.follow(&reply).await;
    let read = t.get(&format!("machines/{other_id}/"), p()).await;
    assert_eq!(read.json()["zone"]["name"], "rack-2");

    // A bulk action without a choice is a field error on the list page.
    let reply = admin
        .post("/MAAS/r/machines/action", &[("system_id", &other_id)])
        .await;
    reply.expect(400);
    assert!(reply.text().contains("Choose an action."));
    let reply = admin
        .post(
            "/MAAS/r/machines/action",
            &[("action", "set_pool"), ("pool", "")],
        )
        .await;
    reply.expect(400);
    assert!(reply.text().contains("This field is required."));
}

#[tokio::test]
async fn forms_show_the_services_field_errors() {
    let t = TestRegion::new().await;
    let mut admin = Browser::logged_in(&t, "admin", "admin-pw").await;

    // Add machine: the API's creation checks, shown next to their fields.
    let reply = admin
        .post(
            "/MAAS/r/machines/add",
            &[
                ("hostname", "bad_name!"),
                ("architecture", "amd64/generic"),
                ("mac_addresses", "zz:zz"),
                ("power_type", "ipmi"),
                ("pp_ipmi_power_address", "10.0.0.9"),
            ],
        )
        .await;
    reply.expect(400);
    let page = reply.text();
    assert!(page.contains("data-field=\"mac_addresses\""), "{page}");
    assert!(page.contains("is not a valid MAC address."));
    assert!(page.contains("data-field=\"hostname\""));
    // What was typed is kept.
    assert!(page.contains("value=\"10.0.0.9\""));

    // A good one is created (and commissioned: admin, with a power type).
    let reply = admin
        .post(
            "/MAAS/r/machines/add",
            &[
                ("hostname", "fresh"),
                ("architecture", "amd64/generic"),
                ("mac_addresses", "52:54:00:cc:00:01\n52:54:00:cc:00:02"),
                ("power_type", "ipmi"),
                ("pp_ipmi_power_address", "10.0.0.9"),
                ("pp_ipmi_power_user", "maas"),
                ("pp_ipmi_power_pass", "secret"),
                ("pp_virsh_power_address", "qemu+ssh://ignored"),
                ("commission", "true"),
            ],
        )
        .await;
    reply.expect(303);
    let page = admin.follow(&reply).await.text();
    assert!(page.contains("Machine fresh added."), "{page}");
    let node = t
        .region
        .store
        .nodes(
            &maas_store::NodeFilter {
                hostnames: vec!["fresh".into()],
                ..Default::default()
            },
            0,
            1,
        )
        .await
        .unwrap()
        .remove(0);
    assert_eq!(node.status, NodeStatus::Commissioning);
    assert_eq!(node.interfaces.len(), 2);
    assert_eq!(node.power_parameters["power_address"], "10.0.0.9");
    assert_eq!(node.power_parameters["power_pass"], "secret");
    assert!(
        !node.power_parameters.contains_key("power_id"),
        "other types' fields are ignored"
    );

    // Machine configuration: an unknown zone is the update's field error.
    let reply = admin
        .post(
            &format!("/MAAS/r/machine/{}/config", node.system_id),
            &[
                ("section", "general"),
                ("hostname", "fresh"),
                ("zone", "nowhere"),
            ],
        )
        .await;
    reply.expect(400);
    let page = reply.text();
    assert!(
        page.contains("Select a valid choice. nowhere is not one of the available choices."),
        "{page}"
    );
    // An empty password field keeps the stored one.
    let reply = admin
        .post(
            &format!("/MAAS/r/machine/{}/config", node.system_id),
            &[
                ("section", "power"),
                ("power_type", "ipmi"),
                ("pp_ipmi_power_address", "10.0.0.10"),
                ("pp_ipmi_power_pass", ""),
            ],
        )
        .await;
    reply.expect(303);
    let node = t
        .region
        .store
        .node_by_system_id(&node.system_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(node.power_parameters["power_address"], "10.0.0.10");
    assert_eq!(node.power_parameters["power_pass"], "secret");

    // DHCP needs a rack and a dynamic range: the VLAN update says so.
    let reply = admin
        .post("/MAAS/r/networks/vlan/5001", &[("dhcp_on", "true")])
        .await;
    reply.expect(400);
    let page = reply.text();
    assert!(
        page.contains("dhcp can only be turned on when a primary rack controller is set."),
        "{page}"
    );

    // Zones, users and settings: the same validation as their API.
    let reply = admin.post("/MAAS/r/zones", &[("name", "bad name")]).await;
    reply.expect(400);
    assert!(reply.text().contains("Invalid zone name"));
    admin
        .post("/MAAS/r/zones", &[("name", "good")])
        .await
        .expect(303);
    let reply = admin.post("/MAAS/r/zones", &[("name", "good")]).await;
    reply.expect(400);
    assert!(reply.text().contains("Zone with this Name already exists."));
    let reply = admin
        .post("/MAAS/r/users", &[("username", "carol"), ("email", "")])
        .await;
    reply.expect(400);
    let page = reply.text();
    assert!(page.contains("data-field=\"email\""));
    assert!(page.contains("data-field=\"password\""));
    let reply = admin
        .post(
            "/MAAS/r/settings",
            &[("node_timeout", "soon"), ("maas_name", "lab")],
        )
        .await;
    reply.expect(400);
    assert!(reply.text().contains("Enter a whole number."));
    assert_eq!(
        maas_region::service::config::get(t.region.store.as_ref(), "maas_name")
            .await
            .unwrap(),
        "maas",
        "nothing is saved when a value is bad"
    );
    let reply = admin
        .post(
            "/MAAS/r/settings",
            &[("node_timeout", "45"), ("maas_name", "lab")],
        )
        .await;
    reply.expect(303);
    assert!(
        admin
            .follow(&reply)
            .await
            .text()
            .contains("Settings saved (2 changed).")
    );
}

/// Reads frames from an event stream until one contains `needle`.
async fn read_until(
    stream: &mut (impl futures_util::Stream<Item = Result<bytes::Bytes, axum::Error>> + Unpin),
    needle: &str,
) -> String {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let frame = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in the stream; saw: {seen}"))
            .expect("stream ended")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&frame));
        if seen.contains(needle) {
            return seen;
        }
    }
}

#[tokio::test]
async fn the_event_stream_reports_status_changes_the_user_may_see() {
    let t = TestRegion::new().await;
    t.user("alice").await;
    let bob = t.user("bob").await;
    let mine = t.machine("visible", "52:54:00:dd:00:01").await;
    let mine_id = mine["system_id"].as_str().unwrap().to_owned();
    let theirs = t.machine("hidden", "52:54:00:dd:00:02").await;
    let theirs_id = theirs["system_id"].as_str().unwrap().to_owned();
    // Bob owns "hidden" (a deployed registration owned by its registrar).
    let store = t.region.store.as_ref();
    let hidden = store.node_by_system_id(&theirs_id).await.unwrap().unwrap();
    let bob_user = store.user_by_username("bob").await.unwrap().unwrap();
    store
        .change_status(
            hidden.id,
            maas_store::StatusChange {
                from: NodeStatus::New,
                to: NodeStatus::Allocated,
                owner: Some(Some(bob_user.id)),
                owner_must_be: None,
                agent_name: None,
                status_expires: None,
                error_description: None,
                keep_previous: false,
                events: vec![],
                updated: 5,
            },
        )
        .await
        .unwrap();

    let alice = Browser::logged_in(&t, "alice", "pw").await;
    let request = Request::builder()
        .uri("/MAAS/r/stream")
        .header("host", HOST)
        .header("cookie", alice.cookie_header())
        .body(Body::empty())
        .unwrap();
    let router = maas_region::http::router(t.region.clone());
    let response = tower::ServiceExt::oneshot(router, request).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.into_body().into_data_stream();
    read_until(&mut stream, "event: ready").await;

    // Bob's machine changes first; alice must not hear of it.
    t.call(
        "POST",
        &format!("machines/{theirs_id}/"),
        p().op("mark_broken"),
        Some(&bob),
    )
    .await
    .expect(200);
    // Then an unowned one she can see.
    t.post(&format!("machines/{mine_id}/"), p().op("mark_broken"))
        .await
        .expect(200);
    let seen = read_until(&mut stream, &mine_id).await;
    assert!(seen.contains("event: machine"));
    assert!(seen.contains("\"status_name\":\"Broken\""), "{seen}");
    assert!(
        !seen.contains(&theirs_id),
        "another user's machine leaked: {seen}"
    );

    // Power changes are events too.
    t.region.changes.power(
        &t.region
            .store
            .node_by_system_id(&mine_id)
            .await
            .unwrap()
            .unwrap(),
        PowerState::On,
    );
    let seen = read_until(&mut stream, "\"power_state\":\"on\"").await;
    assert!(seen.contains(&mine_id));

    // The row fragment the page then fetches shows the new status.
    let mut alice = alice;
    let rows = alice
        .get(&format!(
            "/MAAS/r/machines/rows?id={mine_id}&id={theirs_id}"
        ))
        .await;
    rows.expect(200);
    let text = rows.text();
    assert!(text.contains(&format!("data-system-id=\"{mine_id}\"")));
    assert!(text.contains("Broken"));
    assert!(
        !text.contains(&theirs_id),
        "rows leave out what alice can't see"
    );
    let header = alice
        .get(&format!("/MAAS/r/machine/{mine_id}/header"))
        .await;
    header.expect(200);
    assert!(header.text().contains("id=\"machine-header\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_event_streams_end_at_shutdown() {
    use std::io::{Read, Write};

    let t = TestRegion::new().await;
    let browser = Browser::logged_in(&t, "admin", "admin-pw").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(maas_region::serve(t.region.clone(), listener, async {
        let _ = stopped.await;
    }));
    let cookie = browser.cookie_header();
    let reader = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(
            stream,
            "GET /MAAS/r/stream HTTP/1.1\r\nHost: {address}\r\nCookie: {cookie}\r\n\r\n"
        )
        .unwrap();
        let mut seen = Vec::new();
        let mut buffer = [0u8; 4096];
        // Read until the server ends the response (chunked terminator) or closes.
        loop {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buffer[..n]),
            }
            if seen.ends_with(b"0\r\n\r\n") {
                break;
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    // Let the stream open, then shut down.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("shutdown waited on an open event stream")
        .unwrap()
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .unwrap()
        .unwrap();
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(seen.contains("event: ready"), "{seen}");
}
