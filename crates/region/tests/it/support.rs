//! A region on a fresh SQLite database, and helpers to call it the way the
//! `maas` CLI does (same URL layout, same multipart bodies, same OAuth header).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use maas_client::Credentials;
use maas_client::http::{Method, Params, prepare};
use maas_region::power::{PowerControl, PowerFailure, PowerRequest};
use maas_region::service::users;
use maas_region::{Clock, ManualClock, Region, RegionConfig};
use maas_store::Node;
use tower::ServiceExt;

pub const HOST: &str = "testserver:5240";

/// The power port as a test double: records every request and answers as
/// told. (The drivers themselves are tested against BMC emulators in
/// maas-power; here the region's use of the port is under test.)
#[derive(Default)]
pub struct RecordingPower {
    pub calls: std::sync::Mutex<Vec<(String, PowerRequest)>>,
    /// System ids whose BMC refuses every request.
    pub broken: std::sync::Mutex<Vec<String>>,
}

impl RecordingPower {
    pub fn calls_for(&self, system_id: &str) -> Vec<PowerRequest> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(id, _)| id == system_id)
            .map(|(_, r)| *r)
            .collect()
    }
}

#[async_trait::async_trait]
impl PowerControl for RecordingPower {
    async fn execute(
        &self,
        node: &Node,
        request: PowerRequest,
    ) -> Result<Option<maas_domain::PowerState>, PowerFailure> {
        self.calls
            .lock()
            .unwrap()
            .push((node.system_id.clone(), request));
        if self.broken.lock().unwrap().contains(&node.system_id) {
            return Err(PowerFailure {
                message: format!("BMC of {} refused the {}", node.system_id, request.name()),
                retryable: false,
            });
        }
        Ok(Some(match request {
            PowerRequest::Off { .. } => maas_domain::PowerState::Off,
            PowerRequest::Query => node.power_state,
            PowerRequest::On | PowerRequest::Cycle => maas_domain::PowerState::On,
        }))
    }
}

/// The shared secret of every test region.
pub const TEST_SECRET: &str = "0123456789abcdef0123456789abcdef";

pub struct TestRegion {
    pub region: Arc<Region>,
    pub clock: Arc<ManualClock>,
    pub power: Arc<RecordingPower>,
    pub admin: Credentials,
    _dir: tempfile::TempDir,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[track_caller]
    pub fn expect(&self, status: u16) -> &Reply {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        self
    }
}

static NONCE: AtomicU64 = AtomicU64::new(1);

fn now_ms() -> i64 {
    maas_region::SystemClock.now_millis()
}

impl TestRegion {
    pub async fn new() -> TestRegion {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("maas.db");
        let store = maas_store_sql::connect(path.to_str().unwrap())
            .await
            .unwrap();
        let clock = Arc::new(ManualClock::new(now_ms()));
        let power = Arc::new(RecordingPower::default());
        let mut config = RegionConfig {
            secret: Some(maas_rpc::Secret::from_hex(TEST_SECRET).unwrap()),
            ..RegionConfig::default()
        };
        config.images.dir = Some(dir.path().join("images"));
        config.images.importer = importer_config();
        let region = Region::with_power(store, config, clock.clone(), power.clone());
        maas_region::service::scripts::install_builtins(region.store.as_ref(), now_ms())
            .await
            .unwrap();
        let admin = {
            let user = users::create_user(
                region.store.as_ref(),
                users::NewUserInput {
                    username: "admin",
                    email: "admin@example.com",
                    password: Some("admin-pw"),
                    is_superuser: true,
                },
                now_ms(),
            )
            .await
            .unwrap();
            Self::key_of(&region, user.id).await
        };
        TestRegion {
            region,
            clock,
            power,
            admin,
            _dir: dir,
        }
    }

    async fn key_of(region: &Region, user_id: i64) -> Credentials {
        let tokens = region.store.tokens_for_user(user_id).await.unwrap();
        Credentials::parse(&maas_region::credentials::key_text(&tokens[0])).unwrap()
    }

    /// A non-admin user and its key.
    pub async fn user(&self, name: &str) -> Credentials {
        let user = users::create_user(
            self.region.store.as_ref(),
            users::NewUserInput {
                username: name,
                email: &format!("{name}@example.com"),
                password: Some("pw"),
                is_superuser: false,
            },
            now_ms(),
        )
        .await
        .unwrap();
        Self::key_of(&self.region, user.id).await
    }

    /// The `Authorization` header maascli would send now.
    pub fn authorization(&self, credentials: &Credentials) -> String {
        let nonce = NONCE.fetch_add(1, Ordering::Relaxed).to_string();
        let timestamp = (self.clock.now_millis() / 1000) as u64;
        credentials.authorization_header(&nonce, timestamp)
    }

    /// Sends a raw request through the router.
    pub async fn raw(&self, request: Request<Body>) -> Reply {
        let router = maas_region::http::router(self.region.clone());
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Sends what maascli would send for `method path` with `params`, signed with `credentials`.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        params: Params,
        credentials: Option<&Credentials>,
    ) -> Reply {
        let method = Method::parse(method).unwrap();
        let url = format!("http://{HOST}/MAAS/api/2.0/{path}");
        let prepared = prepare(method, &url, &params);
        let mut builder = Request::builder()
            .method(method.as_str())
            .uri(
                prepared
                    .url
                    .strip_prefix(&format!("http://{HOST}"))
                    .unwrap(),
            )
            .header("host", HOST);
        for (name, value) in &prepared.headers {
            builder = builder.header(name, value);
        }
        if let Some(credentials) = credentials {
            let nonce = NONCE.fetch_add(1, Ordering::Relaxed).to_string();
            let timestamp = (self.clock.now_millis() / 1000) as u64;
            builder = builder.header(
                "authorization",
                credentials.authorization_header(&nonce, timestamp),
            );
        }
        let body = prepared.body.map(Body::from).unwrap_or_else(Body::empty);
        self.raw(builder.body(body).unwrap()).await
    }

    pub async fn get(&self, path: &str, params: Params) -> Reply {
        let admin = self.admin.clone();
        self.call("GET", path, params, Some(&admin)).await
    }

    pub async fn post(&self, path: &str, params: Params) -> Reply {
        let admin = self.admin.clone();
        self.call("POST", path, params, Some(&admin)).await
    }

    pub async fn put(&self, path: &str, params: Params) -> Reply {
        let admin = self.admin.clone();
        self.call("PUT", path, params, Some(&admin)).await
    }

    pub async fn delete(&self, path: &str, params: Params) -> Reply {
        let admin = self.admin.clone();
        self.call("DELETE", path, params, Some(&admin)).await
    }

    /// Creates a machine as the admin, New (not commissioning), and returns its JSON.
    pub async fn machine(&self, hostname: &str, mac: &str) -> serde_json::Value {
        let reply = self
            .post(
                "machines/",
                Params::new()
                    .text("architecture", "amd64/generic")
                    .text("mac_addresses", mac)
                    .text("hostname", hostname)
                    .text("power_type", "manual")
                    .text("commission", "false"),
            )
            .await;
        reply.expect(200);
        reply.json()
    }
}

/// Importer settings for tests: fast retries, short timeouts, no implicit bootloaders.
pub fn importer_config() -> maas_images::ImporterConfig {
    maas_images::ImporterConfig {
        max_concurrent_downloads: 2,
        retry: maas_images::RetryPolicy {
            attempts: 3,
            initial_backoff: std::time::Duration::from_millis(20),
            max_backoff: std::time::Duration::from_millis(100),
        },
        fetch: maas_images::FetchConfig {
            proxy: None,
            connect_timeout: std::time::Duration::from_secs(5),
            idle_timeout: std::time::Duration::from_secs(10),
            max_document_bytes: 1024 * 1024,
        },
        bootloaders: Vec::new(),
    }
}

pub fn p() -> Params {
    Params::new()
}
