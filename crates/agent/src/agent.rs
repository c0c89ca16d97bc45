//! The agent's flows: enlistment (§1.10), commissioning and testing (§2.4, §2.7),
//! deployment (§8) and release with disk erasure (§9), each reported step by step through
//! `signal` and the status webhook.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cmdline::Cmdline;
use crate::deploy::{self, Plan};
use crate::erase::{self, EraseOptions};
use crate::http::Client;
use crate::inventory::MachineResources;
use crate::log;
use crate::metadata::{
    EventFile, MetadataClient, MetadataError, Signal, SignalStatus, StatusEvent,
};
use crate::preseed::{Preseed, PreseedError};
use crate::scripts::{self, Bundle, Outcome, Script};

/// Why the agent could not do its work at all.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the kernel command line has no cloud-config-url= (or url=)")]
    NoPreseedUrl,
    #[error("fetching the preseed failed")]
    FetchPreseed(#[source] MetadataError),
    #[error("the preseed from {url} is unusable")]
    Preseed {
        url: String,
        #[source]
        source: PreseedError,
    },
    #[error("enlistment failed")]
    Enlist(#[source] MetadataError),
    #[error("the node's metadata cannot be read")]
    Metadata(#[source] MetadataError),
}

/// What the environment should do once the agent is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    PowerOff,
    Reboot,
    /// Stay up (rescue mode, `enable_ssh`, or `maas.agent.end=shell`).
    Stay,
}

impl Ending {
    /// The process exit code `init` acts on.
    pub fn exit_code(self) -> i32 {
        match self {
            Ending::PowerOff => 0,
            Ending::Reboot => 3,
            Ending::Stay => 4,
        }
    }
}

/// Everything the agent needs from its surroundings; tests point it at fixtures.
#[derive(Clone, Debug)]
pub struct Config {
    pub cmdline: String,
    /// Root of `/proc`, `/sys` for the inventory and erase (`/`).
    pub root: PathBuf,
    /// Where block devices live (`/dev`).
    pub dev: PathBuf,
    /// Scratch space for scripts, outputs and mounts.
    pub work: PathBuf,
    pub heartbeat: Duration,
    pub backoff: Vec<Duration>,
    pub http: Client,
}

impl Config {
    pub fn new(cmdline: String) -> Self {
        Config {
            cmdline,
            root: PathBuf::from("/"),
            dev: PathBuf::from("/dev"),
            work: PathBuf::from("/tmp/maas-agent"),
            heartbeat: Duration::from_secs(120),
            backoff: crate::metadata::MAAS_BACKOFF
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            http: Client::default(),
        }
    }
}

/// Runs the whole agent: fetch orders, then enlist, commission, test, deploy or release.
pub fn run(config: &Config) -> Result<Ending, AgentError> {
    let cmdline = Cmdline::parse(&config.cmdline);
    if cmdline.agent_option("debug").is_some() {
        log::enable_debug();
    }
    let preseed_url = cmdline
        .preseed_url
        .clone()
        .ok_or(AgentError::NoPreseedUrl)?;
    log::info("fetching orders", &[("preseed_url", &preseed_url)]);
    let preseed = fetch_preseed(config, &preseed_url)?;
    log::info(
        "orders",
        &[
            ("metadata_url", &preseed.metadata_url),
            ("known_node", &preseed.credentials.is_some()),
            ("deployment", &preseed.is_deployment()),
        ],
    );
    let stay = cmdline.agent_option("end") == Some("shell");
    let agent = Agent {
        config,
        cmdline,
        work: config.work.clone(),
    };
    let ending = match preseed.credentials {
        None => agent.enlist(&preseed)?,
        Some(_) => agent.node(&preseed, BTreeMap::new())?,
    };
    Ok(if stay { Ending::Stay } else { ending })
}

fn fetch_preseed(config: &Config, url: &str) -> Result<Preseed, AgentError> {
    let client = MetadataClient::new(url, None)
        .with_backoff(config.backoff.clone())
        .with_http(config.http);
    let response = client
        .request("GET", url, None, None, false)
        .map_err(AgentError::FetchPreseed)?;
    let body = response
        .read_body(crate::metadata::MAX_DOCUMENT)
        .map_err(|source| {
            AgentError::FetchPreseed(MetadataError::Http {
                method: "GET",
                url: url.to_owned(),
                source,
            })
        })?;
    Preseed::parse(&String::from_utf8_lossy(&body)).map_err(|source| AgentError::Preseed {
        url: url.to_owned(),
        source,
    })
}

struct Agent<'a> {
    config: &'a Config,
    cmdline: Cmdline,
    work: PathBuf,
}

/// Sends progress to the region and keeps the install log.
struct Reporter {
    client: Arc<MetadataClient>,
    system_id: String,
    lines: std::sync::Mutex<Vec<String>>,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Reporter {
    fn note(&self, line: &str) {
        log::info(line, &[]);
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{:.3} {line}", now()));
    }

    fn install_log(&self) -> Vec<u8> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let mut text = lines.join("\n");
        text.push('\n');
        text.into_bytes()
    }

    fn event(
        &self,
        event_type: &'static str,
        origin: &'static str,
        name: &str,
        description: &str,
        result: Option<&'static str>,
        files: Vec<EventFile>,
    ) {
        let event = StatusEvent {
            event_type,
            origin,
            name: name.to_owned(),
            description: description.to_owned(),
            result,
            timestamp: now(),
            files,
        };
        if let Err(error) = self.client.status_event(&self.system_id, &event) {
            log::error(
                "status event not delivered",
                &[("name", &name), ("error", &error)],
            );
        }
    }

    /// A step starting: logged by the region as an event (§1.9).
    fn start(&self, name: &str, description: &str) {
        self.note(description);
        self.event("start", "maas-agent", name, description, None, Vec::new());
    }

    fn finish(&self, name: &str, description: &str, success: bool) {
        if success {
            self.note(description);
        } else {
            log::error(description, &[]);
            self.lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{:.3} ERROR {description}", now()));
        }
        let result = if success { "SUCCESS" } else { "FAIL" };
        self.event(
            "finish",
            "maas-agent",
            name,
            description,
            Some(result),
            Vec::new(),
        );
    }

    fn signal(&self, signal: &Signal) -> bool {
        match self.client.signal(signal) {
            Ok(()) => true,
            Err(error) => {
                log::error(
                    "signal not delivered",
                    &[("status", &signal.status.as_str()), ("error", &error)],
                );
                false
            }
        }
    }
}

/// Sends `signal WORKING` every period until dropped.
struct Heartbeat {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeat {
    fn start(client: Arc<MetadataClient>, period: Duration) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                log::debug("heartbeat", &[]);
                if let Err(error) = client.signal(&Signal::new(SignalStatus::Working)) {
                    log::warn("heartbeat not delivered", &[("error", &error)]);
                }
            }
        });
        Heartbeat {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Builtin MAAS script names the agent implements natively.
const NATIVE: [&str; 5] = [
    "20-maas-03-machine-resources",
    "50-maas-01-commissioning",
    "maas-kernel-cmdline",
    "maas-list-modaliases",
    "wipe-disks",
];

/// Whether a result YAML says the script did not fail (`passed`, `skipped`, `degraded`).
fn result_overrides_to_success(result: Option<&[u8]>) -> Option<bool> {
    let text = String::from_utf8_lossy(result?);
    let status = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("status:"))?
        .trim()
        .trim_matches(['"', '\''])
        .to_ascii_lowercase();
    match status.as_str() {
        "passed" | "skipped" | "degraded" => Some(true),
        "failed" | "timedout" => Some(false),
        _ => None,
    }
}

impl Agent<'_> {
    fn client(&self, preseed: &Preseed) -> MetadataClient {
        MetadataClient::new(&preseed.metadata_url, preseed.credentials.clone())
            .with_backoff(self.config.backoff.clone())
            .with_http(self.config.http)
    }

    fn inventory(&self) -> MachineResources {
        MachineResources::collect(&self.config.root, self.cmdline.boot_mac.as_deref())
    }

    /// §1.10: an unknown machine registers itself, then commissions as the new node.
    fn enlist(&self, preseed: &Preseed) -> Result<Ending, AgentError> {
        let client = self.client(preseed);
        let inventory = self.inventory();
        let macs = inventory.macs();
        log::info("enlisting", &[("macs", &macs.join(","))]);
        for mac in &macs {
            if client.is_registered(mac).map_err(AgentError::Enlist)? {
                log::info("machine already registered; nothing to do", &[("mac", mac)]);
                return Ok(Ending::PowerOff);
            }
        }
        let bundle = match client.maas_scripts() {
            Ok(Some(bytes)) => Bundle::parse(&bytes).unwrap_or_else(|error| {
                log::warn("enlistment scripts unusable", &[("error", &error)]);
                Bundle::default()
            }),
            Ok(None) => Bundle::default(),
            Err(error) => {
                log::warn("no enlistment scripts", &[("error", &error)]);
                Bundle::default()
            }
        };
        // Run the enlistment scripts now; their results are uploaded once the node exists.
        let mut cached = BTreeMap::new();
        for script in &bundle.index.commissioning_scripts {
            let outcome = self.execute(script, "commissioning", &bundle, &inventory, None);
            cached.insert(script.name.clone(), outcome);
        }
        let mut fields = vec![
            ("architecture", inventory.maas_architecture()),
            ("commission", "true".to_owned()),
        ];
        for mac in &macs {
            fields.push(("mac_addresses", mac.clone()));
        }
        let system_id = client.create_machine(&fields).map_err(AgentError::Enlist)?;
        log::info("enlisted", &[("system_id", &system_id)]);
        let text = client
            .node_preseed(&system_id)
            .map_err(AgentError::Enlist)?;
        let node_preseed = Preseed::parse(&text).map_err(|source| AgentError::Preseed {
            url: client.versioned(&format!("by-id/{system_id}/?op=get_preseed")),
            source,
        })?;
        if node_preseed.credentials.is_none() {
            return Err(AgentError::Enlist(MetadataError::BadAnswer {
                url: client.versioned(&format!("by-id/{system_id}/?op=get_preseed")),
                reason: "the node preseed carries no credentials".into(),
            }));
        }
        let ending = self.node(&node_preseed, cached)?;
        // An enlisted machine powers off whatever its commissioning preseed says (§1.10 step 9).
        Ok(if ending == Ending::Stay {
            Ending::Stay
        } else {
            Ending::PowerOff
        })
    }

    /// A known node: run what the region hands out for its current status.
    fn node(
        &self,
        preseed: &Preseed,
        cached: BTreeMap<String, Outcome>,
    ) -> Result<Ending, AgentError> {
        let client = Arc::new(self.client(preseed));
        let system_id = client.instance_id().map_err(AgentError::Metadata)?;
        log::info("node", &[("system_id", &system_id)]);
        let reporter = Reporter {
            client: Arc::clone(&client),
            system_id: system_id.clone(),
            lines: std::sync::Mutex::new(Vec::new()),
        };
        let _heartbeat = Heartbeat::start(Arc::clone(&client), self.config.heartbeat);
        let inventory = self.inventory();
        let bundle = match client.maas_scripts() {
            Ok(Some(bytes)) => match Bundle::parse(&bytes) {
                Ok(bundle) => bundle,
                Err(error) => {
                    let message = format!("the maas-scripts tarball is unusable: {error}");
                    reporter.finish("maas-agent/scripts", &message, false);
                    reporter.signal(&Signal::new(SignalStatus::Failed).with_error(message));
                    return Ok(Ending::PowerOff);
                }
            },
            Ok(None) => Bundle::default(),
            Err(error) => return Err(AgentError::Metadata(error)),
        };
        let power = match preseed.power_mode.as_deref() {
            Some("reboot") => Ending::Reboot,
            Some("poweroff") => Ending::PowerOff,
            _ => Ending::Stay,
        };
        let index = &bundle.index;
        let (success, ending) = if preseed.is_deployment() || !index.deployment_scripts.is_empty() {
            self.deploy(&reporter, &bundle, &inventory, preseed)
        } else if !index.release_scripts.is_empty() {
            reporter.signal(&Signal::new(SignalStatus::Releasing));
            let failures = self.run_list(
                &reporter,
                "release",
                &index.release_scripts,
                &bundle,
                &inventory,
                &cached,
            );
            (self.finish_scripts(&reporter, "release", failures), power)
        } else {
            let mut failures = 0;
            if !index.commissioning_scripts.is_empty() {
                failures += self.run_list(
                    &reporter,
                    "commissioning",
                    &index.commissioning_scripts,
                    &bundle,
                    &inventory,
                    &cached,
                );
            }
            if !index.testing_scripts.is_empty() {
                reporter.signal(&Signal::new(SignalStatus::Testing));
                failures += self.run_list(
                    &reporter,
                    "testing",
                    &index.testing_scripts,
                    &bundle,
                    &inventory,
                    &cached,
                );
            }
            (self.finish_scripts(&reporter, "all", failures), power)
        };
        // What cloud-init's last stage reports; the region finalises release and
        // deployment on it (§2.6).
        reporter.event(
            "finish",
            "cloudinit",
            "modules-final",
            "running modules for final",
            Some(if success { "SUCCESS" } else { "FAIL" }),
            Vec::new(),
        );
        Ok(ending)
    }

    fn finish_scripts(&self, reporter: &Reporter, kind: &str, failures: usize) -> bool {
        if failures == 0 {
            reporter
                .signal(&Signal::new(SignalStatus::Ok).with_error("All scripts successfully ran"));
            true
        } else {
            let what = if kind == "all" {
                String::new()
            } else {
                format!("{kind} ")
            };
            reporter.signal(
                &Signal::new(SignalStatus::Failed)
                    .with_error(format!("{failures} {what}scripts failed to run")),
            );
            false
        }
    }

    /// Runs a list in order, uploading each result; returns how many failed.
    fn run_list(
        &self,
        reporter: &Reporter,
        kind: &str,
        list: &[Script],
        bundle: &Bundle,
        inventory: &MachineResources,
        cached: &BTreeMap<String, Outcome>,
    ) -> usize {
        let mut failures = 0;
        for (position, script) in list.iter().enumerate() {
            let mut starting = Signal::new(SignalStatus::Working).with_error(format!(
                "Starting {} [{}/{}]",
                script.name,
                position + 1,
                list.len()
            ));
            starting.script_result_id = script.script_result_id;
            starting.name = Some(script.name.clone());
            reporter.signal(&starting);
            reporter.start(
                &format!("maas-agent/{kind}/{}", script.name),
                &format!("running {kind} script {}", script.name),
            );
            let outcome = match cached.get(&script.name) {
                Some(outcome) => outcome.clone(),
                None => self.execute(script, kind, bundle, inventory, Some(reporter)),
            };
            let failed = match result_overrides_to_success(outcome.result.as_deref()) {
                Some(success) => !success,
                None => outcome.timed_out || outcome.exit_status != 0,
            };
            let mut result = Signal::new(if outcome.timed_out {
                SignalStatus::TimedOut
            } else {
                SignalStatus::Working
            });
            result.script_result_id = script.script_result_id;
            result.script_version_id = script.script_version_id;
            result.name = Some(script.name.clone());
            result.exit_status = Some(outcome.exit_status);
            result.runtime = Some(outcome.runtime);
            result.files = vec![
                (script.name.clone(), outcome.combined.clone()),
                (format!("{}.out", script.name), outcome.stdout.clone()),
                (format!("{}.err", script.name), outcome.stderr.clone()),
            ];
            if let Some(yaml) = &outcome.result {
                result
                    .files
                    .push((format!("{}.yaml", script.name), yaml.clone()));
            }
            reporter.signal(&result);
            let description = if outcome.timed_out {
                format!(
                    "{kind} script {} timed out after {:.0} s",
                    script.name, outcome.runtime
                )
            } else {
                format!(
                    "{kind} script {} exited {}",
                    script.name, outcome.exit_status
                )
            };
            reporter.finish(
                &format!("maas-agent/{kind}/{}", script.name),
                &description,
                !failed,
            );
            if failed {
                failures += 1;
            }
        }
        failures
    }

    /// One script: native for the builtins this environment implements, else the
    /// tarball's file.
    fn execute(
        &self,
        script: &Script,
        kind: &str,
        bundle: &Bundle,
        inventory: &MachineResources,
        reporter: Option<&Reporter>,
    ) -> Outcome {
        let started = Instant::now();
        let native = |stdout: Vec<u8>, stderr: Vec<u8>, exit_status: i32| {
            let mut combined = stdout.clone();
            combined.extend_from_slice(&stderr);
            Outcome {
                exit_status,
                timed_out: false,
                runtime: started.elapsed().as_secs_f64(),
                combined,
                stdout,
                stderr,
                result: None,
            }
        };
        match script.name.as_str() {
            "20-maas-03-machine-resources" | "50-maas-01-commissioning" => {
                return native(inventory.to_json().into_bytes(), Vec::new(), 0);
            }
            "maas-kernel-cmdline" => {
                return native(
                    format!("{}\n", self.config.cmdline.trim()).into_bytes(),
                    Vec::new(),
                    0,
                );
            }
            "maas-list-modaliases" => return native(self.modaliases().into_bytes(), Vec::new(), 0),
            "wipe-disks" => return self.wipe_disks(script, inventory, reporter, started),
            _ => {}
        }
        debug_assert!(!NATIVE.contains(&script.name.as_str()));
        let directory = self.work.join("scripts").join(kind);
        let program = match bundle.install(script, kind, &directory) {
            Ok(Some(program)) => program,
            Ok(None) => {
                return native(
                    Vec::new(),
                    format!("{} is not in the maas-scripts tarball\n", script.name).into_bytes(),
                    2,
                );
            }
            Err(error) => return native(Vec::new(), format!("{error}\n").into_bytes(), 2),
        };
        if script.default
            && let Some(interpreter) = bundle
                .content(script, kind)
                .and_then(scripts::interpreter_missing)
        {
            let mut outcome = native(
                Vec::new(),
                format!("skipped: {interpreter} is not available in this environment\n")
                    .into_bytes(),
                0,
            );
            outcome.result = Some(b"status: skipped\n".to_vec());
            return outcome;
        }
        let resources_file = self.work.join("resources.json");
        let _ = std::fs::write(&resources_file, inventory.to_json());
        let output = self.work.join("out").join(kind);
        let download = self.work.join("downloads").join(&script.name);
        let _ = std::fs::create_dir_all(&download);
        let maas_root = reporter.map(|r| r.client.maas_root()).unwrap_or_default();
        let environment = vec![
            (
                "MAAS_BASE_URL".to_owned(),
                maas_root.trim_end_matches("MAAS/").to_owned(),
            ),
            (
                "MAAS_RESOURCES_FILE".to_owned(),
                resources_file.display().to_string(),
            ),
            (
                "MAAS_MACHINE_EXTRA_FILE".to_owned(),
                self.work.join("machine-extra.json").display().to_string(),
            ),
            (
                "MAAS_STORAGE_CONFIG_FILE".to_owned(),
                self.work.join("storage-extra.json").display().to_string(),
            ),
            ("DOWNLOAD_PATH".to_owned(), download.display().to_string()),
            ("HAS_STARTED".to_owned(), script.has_started.to_string()),
            (
                "BMC_CONFIG_PATH".to_owned(),
                self.work.join("bmc-config.yaml").display().to_string(),
            ),
        ];
        scripts::run(&scripts::Run {
            program: &program,
            arguments: script.arguments(),
            environment,
            timeout: script.timeout(),
            output_directory: &output,
            name: &script.name,
        })
    }

    fn modaliases(&self) -> String {
        let mut aliases = std::collections::BTreeSet::new();
        let mut stack = vec![self.config.root.join("sys/devices")];
        let mut visited = 0;
        while let Some(directory) = stack.pop() {
            visited += 1;
            if visited > 200_000 {
                break;
            }
            let Ok(entries) = std::fs::read_dir(&directory) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    stack.push(entry.path());
                } else if kind.is_file()
                    && entry.file_name() == "modalias"
                    && let Ok(text) = std::fs::read_to_string(entry.path())
                    && !text.trim().is_empty()
                {
                    aliases.insert(text.trim().to_owned());
                }
            }
        }
        aliases.into_iter().map(|a| a + "\n").collect()
    }

    /// MAAS's `wipe-disks`, natively: every writable disk, with the requested method.
    fn wipe_disks(
        &self,
        script: &Script,
        inventory: &MachineResources,
        reporter: Option<&Reporter>,
        started: Instant,
    ) -> Outcome {
        let options = EraseOptions {
            secure: script.bool_parameter("secure_erase"),
            quick: script.bool_parameter("quick_erase"),
        };
        let mut stdout = String::new();
        let mut stderr = String::new();
        let mut exit_status = 0;
        for disk in &inventory.resources.storage.disks {
            if disk.read_only || disk.size == 0 {
                continue;
            }
            let target = erase::Target {
                path: self.config.dev.join(&disk.id),
                name: disk.id.clone(),
                sys_root: self.config.root.clone(),
            };
            let step = format!("maas-agent/erase/{}", disk.id);
            let wanted = match (options.secure, options.quick) {
                (true, _) => "secure erase",
                (false, true) => "quick erase",
                (false, false) => "full erase",
            };
            if let Some(reporter) = reporter {
                reporter.start(&step, &format!("{wanted} of {}", target.path.display()));
            }
            let mut lines = Vec::new();
            let result = erase::erase(&target, options, &mut |line| {
                log::info(&line, &[]);
                lines.push(line);
            });
            for line in &lines {
                stdout.push_str(line);
                stdout.push('\n');
            }
            let (description, success) = match result {
                Ok(method) => (
                    format!("{}: {}", target.path.display(), method.as_str()),
                    true,
                ),
                Err(error) => {
                    exit_status = 1;
                    let message = format!(
                        "{}: erase failed: {}",
                        target.path.display(),
                        error_chain(&error)
                    );
                    stderr.push_str(&message);
                    stderr.push('\n');
                    (message, false)
                }
            };
            if let Some(reporter) = reporter {
                reporter.finish(&step, &description, success);
            }
        }
        let mut combined = stdout.clone().into_bytes();
        combined.extend_from_slice(stderr.as_bytes());
        Outcome {
            exit_status,
            timed_out: false,
            runtime: started.elapsed().as_secs_f64(),
            combined,
            stdout: stdout.into_bytes(),
            stderr: stderr.into_bytes(),
            result: None,
        }
    }

    /// §8.1 steps 5–7 without curtin: plan, write, seed, boot loader, netboot_off, signal.
    fn deploy(
        &self,
        reporter: &Reporter,
        bundle: &Bundle,
        inventory: &MachineResources,
        preseed: &Preseed,
    ) -> (bool, Ending) {
        reporter.signal(&Signal::new(SignalStatus::Deploying));
        reporter.event(
            "start",
            "curtin",
            "cmd-install",
            "curtin command install",
            None,
            Vec::new(),
        );
        let result = self.install(reporter, inventory, preseed);
        let install_log = EventFile {
            path: "/tmp/install.log".into(),
            encoding: "base64",
            content: base64(&reporter.install_log()),
        };
        match result {
            Ok(()) => {
                reporter.event(
                    "finish",
                    "curtin",
                    "cmd-install",
                    "curtin command install",
                    Some("SUCCESS"),
                    vec![install_log],
                );
                let others: Vec<Script> = bundle
                    .index
                    .deployment_scripts
                    .iter()
                    .filter(|s| s.name != "50-curtin-install")
                    .cloned()
                    .collect();
                let failures = self.run_list(
                    reporter,
                    "deployment",
                    &others,
                    bundle,
                    inventory,
                    &BTreeMap::new(),
                );
                let success = self.finish_scripts(reporter, "deployment", failures);
                (
                    success,
                    if success {
                        Ending::Reboot
                    } else {
                        Ending::PowerOff
                    },
                )
            }
            Err(error) => {
                let message = format!("Installation failed: {error}");
                reporter.finish("maas-agent/install", &message, false);
                reporter.event(
                    "finish",
                    "curtin",
                    "cmd-install",
                    &message,
                    Some("FAIL"),
                    vec![EventFile {
                        path: "/tmp/install.log".into(),
                        encoding: "base64",
                        content: base64(&reporter.install_log()),
                    }],
                );
                reporter.signal(&Signal::new(SignalStatus::Failed).with_error(message));
                (false, Ending::PowerOff)
            }
        }
    }

    fn install(
        &self,
        reporter: &Reporter,
        inventory: &MachineResources,
        preseed: &Preseed,
    ) -> Result<(), String> {
        let client = &reporter.client;
        reporter.note("fetching the curtin configuration");
        let config = client
            .get("curtin-config")
            .map_err(|e| error_chain(&e))?
            .ok_or("the region has no curtin configuration for this node")?;
        let plan = Plan::parse(&String::from_utf8_lossy(&config)).map_err(|e| error_chain(&e))?;
        let disk = self.resolve_disk(&plan, inventory)?;
        reporter.note(&format!(
            "installing {} ({:?}) to {}",
            plan.source.url,
            plan.source.kind,
            disk.display()
        ));
        let credentials = preseed.credentials.clone().ok_or("no node credentials")?;
        let mut seed: Vec<deploy::TargetFile> = plan.files.clone();
        if !seed
            .iter()
            .any(|f| f.path.contains("/etc/cloud/cloud.cfg.d/"))
        {
            seed.extend(deploy::default_seed(
                &preseed.metadata_url,
                &credentials,
                &reporter.system_id,
            ));
        }
        let work = self.work.join("deploy");
        let download = self
            .config
            .http
            .send("GET", &plan.source.url, &[], None)
            .map_err(|e| format!("downloading {}: {}", plan.source.url, error_chain(&e)))?;
        if download.status != 200 {
            return Err(format!(
                "downloading {}: HTTP {}",
                plan.source.url, download.status
            ));
        }
        let reader = download.into_reader();
        let mut progress = |line: String| reporter.note(&line);
        match plan.source.kind {
            crate::image::ImageKind::Disk { .. } => {
                reporter.event(
                    "start",
                    "curtin",
                    "cmd-install/stage-extract",
                    "writing the disk image",
                    None,
                    Vec::new(),
                );
                let result =
                    deploy::deploy_disk_image(reader, &plan, &disk, &seed, &work, &mut progress);
                let ok = result.is_ok();
                reporter.event(
                    "finish",
                    "curtin",
                    "cmd-install/stage-extract",
                    "writing the disk image",
                    Some(if ok { "SUCCESS" } else { "FAIL" }),
                    Vec::new(),
                );
                result.map_err(|e| error_chain(&e))?;
            }
            crate::image::ImageKind::RootTar { .. } => {
                reporter.event(
                    "start",
                    "curtin",
                    "cmd-install/stage-partitioning",
                    "configuring storage",
                    None,
                    Vec::new(),
                );
                reporter.event(
                    "start",
                    "curtin",
                    "cmd-install/stage-extract",
                    "installing the root file system",
                    None,
                    Vec::new(),
                );
                let uefi = deploy::booted_uefi(&self.config.root);
                let result = deploy::deploy_root_tarball(
                    reader,
                    &plan,
                    &disk,
                    uefi,
                    &seed,
                    &self.cmdline.extra_opts.join(" "),
                    &work,
                    &mut progress,
                );
                let ok = result.is_ok();
                reporter.event(
                    "finish",
                    "curtin",
                    "cmd-install/stage-extract",
                    "installing the root file system",
                    Some(if ok { "SUCCESS" } else { "FAIL" }),
                    Vec::new(),
                );
                result.map_err(|e| error_chain(&e))?;
            }
        }
        reporter.event(
            "start",
            "curtin",
            "cmd-install/stage-curthooks",
            "configuring the installed system",
            None,
            Vec::new(),
        );
        client
            .netboot_off(&reporter.system_id)
            .map_err(|e| format!("netboot_off: {}", error_chain(&e)))?;
        reporter.note("netboot disabled");
        reporter.event(
            "finish",
            "curtin",
            "cmd-install/stage-curthooks",
            "configuring the installed system",
            Some("SUCCESS"),
            Vec::new(),
        );
        Ok(())
    }

    /// The storage config's boot disk: its `path` if that exists, else the disk with its
    /// serial, else the first writable disk.
    fn resolve_disk(&self, plan: &Plan, inventory: &MachineResources) -> Result<PathBuf, String> {
        // Paths under /dev are looked up in the configured device directory, so an
        // agent pointed at another one never writes to the host's disks.
        if let Some(path) = &plan.disk.path {
            let local = match path.strip_prefix("/dev/") {
                Some(rest) => self.config.dev.join(rest),
                None => PathBuf::from(path),
            };
            if local.exists() {
                return Ok(local);
            }
        }
        let disks = &inventory.resources.storage.disks;
        let by_serial = plan.disk.serial.as_ref().and_then(|serial| {
            disks
                .iter()
                .find(|d| !d.serial.is_empty() && &d.serial == serial)
        });
        let by_name = plan
            .disk
            .name
            .as_ref()
            .and_then(|name| disks.iter().find(|d| &d.id == name));
        let chosen = by_serial.or(by_name).or_else(|| {
            disks
                .iter()
                .find(|d| !d.read_only && !d.removable && d.size > 0)
        });
        chosen.map(|d| self.config.dev.join(&d.id)).ok_or_else(|| {
            format!(
                "no disk to install to (wanted {:?}; the machine has {} disks)",
                plan.disk,
                disks.len()
            )
        })
    }
}

/// An error and its sources, `: `-separated, for messages that leave the process.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn result_yaml_overrides() {
        assert_eq!(
            result_overrides_to_success(Some(b"status: skipped\n")),
            Some(true)
        );
        assert_eq!(
            result_overrides_to_success(Some(b"x: 1\nstatus: 'failed'\n")),
            Some(false)
        );
        assert_eq!(result_overrides_to_success(Some(b"garbage")), None);
        assert_eq!(result_overrides_to_success(None), None);
    }
}
