//! A test agent: plays a booted machine using only the metadata API, the
//! way MAAS's script runner (and our machine agent) does: preseed for the
//! credentials, `maas-scripts` for what to run, `signal` for every script
//! and the end, `user-data` as the installed OS.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::http::Request;
use maas_client::Credentials;
use maas_client::encode::{Value, multipart};

use crate::support::{HOST, Reply, TestRegion};

pub const SMALL_VM: &[u8] = include_bytes!("../data/machine-resources/qemu-vm.json");
pub const SERVER: &[u8] = include_bytes!("../data/machine-resources/server-2s.json");

/// The small VM's inventory with its NIC's MAC replaced, so many machines
/// can commission with it (MACs are unique).
pub fn vm_resources(mac: &str) -> Vec<u8> {
    String::from_utf8(SMALL_VM.to_vec())
        .unwrap()
        .replace("52:54:00:12:34:56", mac)
        .into_bytes()
}

static NONCE: AtomicU64 = AtomicU64::new(1_000_000);

/// One script the region handed out.
#[derive(Debug, Clone)]
pub struct Script {
    pub name: String,
    pub result_id: Option<i64>,
    /// The script as the tarball carries it.
    pub body: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct Scripts {
    pub phases: BTreeMap<String, Vec<Script>>,
}

impl Scripts {
    pub fn phase(&self, key: &str) -> &[Script] {
        self.phases.get(key).map(Vec::as_slice).unwrap_or(&[])
    }
}

pub struct Agent<'a> {
    pub t: &'a TestRegion,
    pub credentials: Credentials,
}

fn preseed_value(preseed: &str, key: &str) -> String {
    preseed
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}:")))
        .map(|v| serde_json::from_str::<String>(v.trim()).unwrap())
        .unwrap_or_else(|| panic!("{key} missing from preseed:\n{preseed}"))
}

impl<'a> Agent<'a> {
    /// The credentials come from the anonymous preseed, as the runner gets them.
    pub async fn for_machine(t: &'a TestRegion, system_id: &str) -> Agent<'a> {
        let reply = t
            .raw(
                Request::get(format!(
                    "/MAAS/metadata/latest/by-id/{system_id}/?op=get_preseed"
                ))
                .header("host", HOST)
                .body(Body::empty())
                .unwrap(),
            )
            .await;
        reply.expect(200);
        let preseed = reply.text();
        assert!(preseed.starts_with("#cloud-config"), "{preseed}");
        // A deploying node gets curtin's metadata URL, every other the plain one.
        assert!(
            preseed.contains("metadata_url: \"http://testserver:5240/MAAS/metadata/\"")
                || preseed
                    .contains("metadata_url: \"http://testserver:5240/MAAS/metadata/curtin/\""),
            "{preseed}"
        );
        let key = format!(
            "{}:{}:{}",
            preseed_value(&preseed, "consumer_key"),
            preseed_value(&preseed, "token_key"),
            preseed_value(&preseed, "token_secret")
        );
        Agent {
            t,
            credentials: Credentials::parse(&key).unwrap(),
        }
    }

    fn auth(&self) -> String {
        use maas_region::Clock;
        let nonce = NONCE.fetch_add(1, Ordering::Relaxed).to_string();
        self.credentials
            .authorization_header(&nonce, (self.t.clock.now_millis() / 1000) as u64)
    }

    pub async fn get(&self, path: &str) -> Reply {
        let request = Request::get(format!("/MAAS/metadata/{path}"))
            .header("host", HOST)
            .header("authorization", self.auth())
            .body(Body::empty())
            .unwrap();
        self.t.raw(request).await
    }

    /// `POST latest/` with `op=signal` in the body, as the script runner sends it.
    pub async fn signal(
        &self,
        status: &str,
        fields: &[(&str, &str)],
        files: &[(&str, &[u8])],
    ) -> Reply {
        let mut parts: Vec<(String, Value)> = vec![
            ("op".into(), Value::Text("signal".into())),
            ("status".into(), Value::Text(status.into())),
        ];
        for (k, v) in fields {
            parts.push(((*k).to_owned(), Value::Text((*v).to_owned())));
        }
        for (name, content) in files {
            parts.push((
                (*name).to_owned(),
                Value::File {
                    contents: content.to_vec(),
                    local_name: None,
                },
            ));
        }
        let body = multipart(&parts);
        let request = Request::post("/MAAS/metadata/latest/")
            .header("host", HOST)
            .header("authorization", self.auth())
            .header("content-type", body.content_type)
            .body(Body::from(body.body))
            .unwrap();
        self.t.raw(request).await
    }

    /// `GET latest/maas-scripts`, unpacked; empty when the region answers 204.
    pub async fn scripts(&self) -> Scripts {
        let reply = self.get("latest/maas-scripts").await;
        if reply.status.as_u16() == 204 {
            return Scripts::default();
        }
        reply.expect(200);
        let mut archive = tar::Archive::new(reply.body.as_slice());
        let mut files = BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mode = entry.header().mode().unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            if path != "index.json" {
                assert_eq!(mode, 0o755, "{path} is executable");
            }
            files.insert(path, data);
        }
        let index: serde_json::Value =
            serde_json::from_slice(files.get("index.json").expect("index.json")).unwrap();
        let mut scripts = Scripts::default();
        for (phase, items) in index["1.0"].as_object().unwrap() {
            let list = items
                .as_array()
                .unwrap()
                .iter()
                .map(|item| {
                    let path = item["path"].as_str().unwrap().to_owned();
                    Script {
                        name: item["name"].as_str().unwrap().to_owned(),
                        body: files
                            .get(&path)
                            .cloned()
                            .unwrap_or_else(|| panic!("{path} not in the tarball")),
                        result_id: item["script_result_id"].as_i64(),
                    }
                })
                .collect();
            scripts.phases.insert(phase.clone(), list);
        }
        scripts
    }

    /// Runs one script: "Starting", then the result with its outputs.
    pub async fn run(&self, script: &Script, exit: i64, stdout: &[u8]) {
        let id = script.result_id.map(|i| i.to_string());
        let mut start = vec![("name", script.name.as_str()), ("error", "Starting")];
        if let Some(id) = &id {
            start.push(("script_result_id", id.as_str()));
        }
        self.signal("WORKING", &start, &[]).await.expect(200);
        let exit_text = exit.to_string();
        let mut done = vec![
            ("name", script.name.as_str()),
            ("exit_status", exit_text.as_str()),
            ("runtime", "0.25"),
        ];
        if let Some(id) = &id {
            done.push(("script_result_id", id.as_str()));
        }
        let out_name = format!("{}.out", script.name);
        let err_name = format!("{}.err", script.name);
        let files: Vec<(&str, &[u8])> = vec![
            (script.name.as_str(), stdout),
            (out_name.as_str(), stdout),
            (err_name.as_str(), b""),
        ];
        self.signal("WORKING", &done, &files).await.expect(200);
    }

    /// What a script prints when the test doesn't care.
    fn output_of(script: &Script, resources: &[u8]) -> Vec<u8> {
        match script.name.as_str() {
            "50-maas-01-commissioning" | "20-maas-03-machine-resources" => resources.to_vec(),
            "maas-kernel-cmdline" => b"console=ttyS0 BOOTIF=01-52-54-00-12-34-56\n".to_vec(),
            "maas-lshw" => {
                b"<?xml version=\"1.0\"?><list><node id=\"vm\" class=\"system\"/></list>".to_vec()
            }
            _ => format!("ran {}\n", script.name).into_bytes(),
        }
    }

    /// A whole commissioning run: every commissioning script, then the
    /// tests, then OK. `failing` names a script that exits 1.
    pub async fn commission(&self, resources: &[u8], failing: Option<&str>) {
        let scripts = self.scripts().await;
        let commissioning = scripts.phase("commissioning_scripts");
        assert!(
            commissioning
                .iter()
                .any(|s| s.name == "50-maas-01-commissioning"),
            "{scripts:?}"
        );
        assert!(
            commissioning.iter().all(|s| s.body.starts_with(b"#!")),
            "scripts are executable text"
        );
        let mut failed = 0;
        for script in commissioning {
            let exit = if Some(script.name.as_str()) == failing {
                1
            } else {
                0
            };
            failed += exit;
            self.run(script, exit, &Self::output_of(script, resources))
                .await;
        }
        // The runner stops after failed commissioning scripts.
        if failed > 0 {
            self.signal(
                "FAILED",
                &[(
                    "error",
                    &format!("{failed} commissioning scripts failed to run"),
                )],
                &[],
            )
            .await
            .expect(200);
            return;
        }
        let testing = scripts.phase("testing_scripts");
        if !testing.is_empty() {
            self.signal("TESTING", &[("error", "Running tests")], &[])
                .await
                .expect(200);
            for script in testing {
                let exit = if Some(script.name.as_str()) == failing {
                    1
                } else {
                    0
                };
                self.run(script, exit, b"ok\n").await;
            }
        }
        self.signal("OK", &[("error", "All scripts successfully ran")], &[])
            .await
            .expect(200);
    }

    /// The deployed OS's first boot: cloud-init fetches its user data.
    pub async fn installed_os_boots(&self) -> Reply {
        self.get("latest/user-data").await
    }
}
