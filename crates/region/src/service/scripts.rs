//! Scripts the booted machine runs: MAAS's builtin commissioning, testing
//! and release scripts (kept by their MAAS names, which operators and tag
//! definitions refer to), the script sets an action creates, and the
//! `maas-scripts` tarball of what is left to run.

use maas_domain::NodeStatus;
use maas_store::{
    Millis, NewScriptResult, Node, Script, ScriptSet, Store, result_type, script_type,
};

use crate::error::{FieldErrors, ServiceError, ServiceResult};
use crate::service::lifecycle::CommissionOptions;

/// Script result statuses with MAAS's numbers.
pub mod status {
    pub const PENDING: i64 = 0;
    pub const RUNNING: i64 = 1;
    pub const PASSED: i64 = 2;
    pub const FAILED: i64 = 3;
    pub const TIMEDOUT: i64 = 4;
    pub const ABORTED: i64 = 5;
    pub const DEGRADED: i64 = 6;
    pub const INSTALLING: i64 = 7;
    pub const FAILED_INSTALLING: i64 = 8;
    pub const SKIPPED: i64 = 9;
    pub const APPLYING_NETCONF: i64 = 10;
    pub const FAILED_APPLYING_NETCONF: i64 = 11;

    pub fn name(status: i64) -> &'static str {
        match status {
            PENDING => "Pending",
            RUNNING => "Running",
            PASSED => "Passed",
            FAILED => "Failed",
            TIMEDOUT => "Timed out",
            ABORTED => "Aborted",
            DEGRADED => "Degraded",
            INSTALLING => "Installing dependencies",
            FAILED_INSTALLING => "Failed installing dependencies",
            SKIPPED => "Skipped",
            APPLYING_NETCONF => "Applying custom network configuration",
            FAILED_APPLYING_NETCONF => "Failed to apply custom network configuration",
            _ => "Unknown",
        }
    }

    /// Still to finish: the statuses an abort or failure sweeps up.
    pub const UNFINISHED: [i64; 4] = [PENDING, RUNNING, INSTALLING, APPLYING_NETCONF];

    pub fn is_failure(status: i64) -> bool {
        matches!(
            status,
            FAILED | TIMEDOUT | FAILED_INSTALLING | FAILED_APPLYING_NETCONF
        )
    }
}

/// The script that carries the machine-resources JSON the region ingests.
pub const COMMISSIONING_RESOURCES: &str = "50-maas-01-commissioning";
pub const KERNEL_CMDLINE: &str = "maas-kernel-cmdline";
pub const LSHW: &str = "maas-lshw";
pub const WIPE_DISKS: &str = "wipe-disks";

struct Builtin {
    name: &'static str,
    kind: i64,
    hardware_type: i64,
    timeout_seconds: i64,
    tags: &'static [&'static str],
    destructive: bool,
    description: &'static str,
    body: &'static str,
}

const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "20-maas-03-machine-resources",
        kind: script_type::COMMISSIONING,
        hardware_type: 0,
        timeout_seconds: 60,
        tags: &["commissioning", "node"],
        destructive: false,
        description: "Gather the hardware inventory (LXD machine-resources JSON) into $MAAS_RESOURCES_FILE.",
        body: "#!/bin/sh\n# Gathers the hardware inventory in the LXD resources format with the machine-resources\n# helper the region serves, and keeps it for 50-maas-01-commissioning.\nset -e\narch=$(dpkg --print-architecture 2>/dev/null || uname -m)\nhelper=$DOWNLOAD_PATH/machine-resources\nwget -q -O \"$helper\" \"${MAAS_BASE_URL%/}/MAAS/machine-resources/$arch\"\nchmod +x \"$helper\"\n\"$helper\" > \"$MAAS_RESOURCES_FILE\"\ncat \"$MAAS_RESOURCES_FILE\"\n",
    },
    Builtin {
        name: "30-maas-01-bmc-config",
        kind: script_type::COMMISSIONING,
        hardware_type: 0,
        timeout_seconds: 300,
        tags: &["bmc-config", "node"],
        destructive: false,
        description: "Detect the BMC and report its power type and parameters.",
        body: "#!/bin/sh\n# Detects an IPMI BMC through ipmitool and reports its address; the credentials MAAS\n# would create are left to the operator in this region.\nif command -v ipmitool >/dev/null 2>&1 && ipmitool lan print >/dev/null 2>&1; then\n  address=$(ipmitool lan print | awk -F': ' '/^IP Address  /{print $2}')\n  printf 'power_type: ipmi\\npower_address: %s\\n' \"$address\" > \"$BMC_CONFIG_PATH\"\nfi\nexit 0\n",
    },
    Builtin {
        name: COMMISSIONING_RESOURCES,
        kind: script_type::COMMISSIONING,
        hardware_type: 0,
        timeout_seconds: 60,
        tags: &["commissioning", "node"],
        destructive: false,
        description: "Report the hardware inventory to the region.",
        body: "#!/bin/sh\n# Prints the hardware inventory gathered by 20-maas-03-machine-resources; the region\n# reads this script's stdout to fill in the machine's CPU, memory, disks and NICs.\nexec cat \"$MAAS_RESOURCES_FILE\"\n",
    },
    Builtin {
        name: LSHW,
        kind: script_type::COMMISSIONING,
        hardware_type: 0,
        timeout_seconds: 300,
        tags: &["commissioning", "node"],
        destructive: false,
        description: "Hardware details as lshw XML, for tag definitions.",
        // Our own in-memory environment carries no lshw (the agent gathers the inventory
        // natively); there the script says so and succeeds, as the XML only feeds tags.
        body: "#!/bin/sh\nif ! command -v lshw >/dev/null 2>&1; then\n  echo 'lshw is not in this environment; no lshw XML for tag definitions' >&2\n  exit 0\nfi\nexec lshw -xml\n",
    },
    Builtin {
        name: KERNEL_CMDLINE,
        kind: script_type::COMMISSIONING,
        hardware_type: 0,
        timeout_seconds: 10,
        tags: &["commissioning", "node"],
        destructive: false,
        description: "The kernel command line; BOOTIF names the boot interface.",
        body: "#!/bin/sh\nexec cat /proc/cmdline\n",
    },
    Builtin {
        name: "maas-list-modaliases",
        kind: script_type::COMMISSIONING,
        hardware_type: 0,
        timeout_seconds: 10,
        tags: &["commissioning", "node"],
        destructive: false,
        description: "Device modaliases, one per line.",
        body: "#!/bin/sh\nfind /sys/devices -name modalias -print0 | xargs -0 cat | sort -u\n",
    },
    Builtin {
        name: "maas-serial-ports",
        kind: script_type::COMMISSIONING,
        hardware_type: 0,
        timeout_seconds: 10,
        tags: &["commissioning", "node"],
        destructive: false,
        description: "Serial ports the kernel found.",
        body: "#!/bin/sh\nfind /sys/class/tty -name 'ttyS*' -exec basename {} \\; 2>/dev/null | sort\n",
    },
    Builtin {
        name: "smartctl-validate",
        kind: script_type::TESTING,
        hardware_type: 3,
        timeout_seconds: 300,
        tags: &["commissioning", "storage"],
        destructive: false,
        description: "Validate SMART health of each disk (skipped where smartctl or SMART is absent).",
        body: "#!/bin/sh\n# Checks SMART health with smartctl; without smartctl the result is 'skipped'.\nif ! command -v smartctl >/dev/null 2>&1; then\n  [ -n \"$RESULT_PATH\" ] && echo 'status: skipped' > \"$RESULT_PATH\"\n  exit 0\nfi\nstatus=0\nfor disk in /sys/block/sd* /sys/block/nvme*n*; do\n  [ -e \"$disk\" ] || continue\n  smartctl -H \"/dev/$(basename \"$disk\")\" || status=1\ndone\nexit $status\n",
    },
    Builtin {
        name: WIPE_DISKS,
        kind: script_type::RELEASE,
        hardware_type: 3,
        timeout_seconds: 7200,
        tags: &["wipe"],
        destructive: true,
        description: "Erase the machine's disks: secure erase where supported, else quick or full.",
        body: "#!/bin/sh\n# Erases every disk. Parameters: secure_erase, quick_erase (true/false).\n# The machine agent implements this natively; this body is for generic runners.\nfor disk in /sys/block/sd* /sys/block/vd* /sys/block/nvme*n*; do\n  [ -e \"$disk\" ] || continue\n  dev=/dev/$(basename \"$disk\")\n  if [ \"$quick_erase\" = true ]; then\n    wipefs -a \"$dev\" && dd if=/dev/zero of=\"$dev\" bs=1M count=1 conv=fsync\n  else\n    dd if=/dev/zero of=\"$dev\" bs=4M conv=fsync 2>/dev/null || true\n  fi\ndone\n",
    },
];

/// Writes MAAS's builtin scripts into the store (at every start, so a new
/// version of the region updates them).
pub async fn install_builtins(store: &dyn Store, now: Millis) -> ServiceResult<()> {
    for builtin in BUILTINS {
        store
            .upsert_script(
                Script {
                    id: 0,
                    name: builtin.name.to_owned(),
                    title: builtin.name.to_owned(),
                    description: builtin.description.to_owned(),
                    tags: builtin.tags.iter().map(|t| (*t).to_owned()).collect(),
                    script_type: builtin.kind,
                    hardware_type: builtin.hardware_type,
                    parallel: 0,
                    timeout_seconds: builtin.timeout_seconds,
                    destructive: builtin.destructive,
                    is_default: true,
                    may_reboot: false,
                    script: builtin.body.to_owned(),
                },
                now,
            )
            .await?;
    }
    Ok(())
}

fn result_for(script: &Script) -> NewScriptResult {
    NewScriptResult {
        script_id: Some(script.id),
        name: script.name.clone(),
        status: status::PENDING,
        parameters: "{}".to_owned(),
    }
}

/// Scripts named (or tagged) by `requested`, of one type; unknown names are errors.
fn select(
    all: &[Script],
    kind: i64,
    requested: &[String],
    field: &str,
    errors: &mut FieldErrors,
) -> Vec<Script> {
    let mut chosen: Vec<Script> = Vec::new();
    let mut unknown = Vec::new();
    for wanted in requested {
        let matches: Vec<&Script> = all
            .iter()
            .filter(|s| s.script_type == kind && (s.name == *wanted || s.tags.contains(wanted)))
            .collect();
        if matches.is_empty() {
            unknown.push(wanted.clone());
        }
        for script in matches {
            if !chosen.iter().any(|c| c.id == script.id) {
                chosen.push(script.clone());
            }
        }
    }
    if !unknown.is_empty() {
        errors.add(field, format!("Unknown scripts: {}", unknown.join(", ")));
    }
    chosen
}

/// The commissioning and testing results a commissioning run starts with.
pub struct CommissioningPlan {
    pub commissioning: Vec<NewScriptResult>,
    pub testing: Vec<NewScriptResult>,
}

pub async fn plan_commissioning(
    store: &dyn Store,
    options: &CommissionOptions,
) -> ServiceResult<CommissioningPlan> {
    let all = store.scripts().await?;
    let mut errors = FieldErrors::new();
    let mut scripts: Vec<Script> = all
        .iter()
        .filter(|s| s.script_type == script_type::COMMISSIONING && s.is_default)
        .filter(|s| !(options.skip_bmc_config && s.tags.iter().any(|t| t == "bmc-config")))
        .cloned()
        .collect();
    for extra in select(
        &all,
        script_type::COMMISSIONING,
        &options.commissioning_scripts,
        "commissioning_scripts",
        &mut errors,
    ) {
        if !scripts.iter().any(|s| s.id == extra.id) {
            scripts.push(extra);
        }
    }
    let testing = match &options.testing_scripts {
        Some(names) => select(
            &all,
            script_type::TESTING,
            names,
            "testing_scripts",
            &mut errors,
        ),
        None => all
            .iter()
            .filter(|s| {
                s.script_type == script_type::TESTING && s.tags.iter().any(|t| t == "commissioning")
            })
            .cloned()
            .collect(),
    };
    errors.check()?;
    scripts.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(CommissioningPlan {
        commissioning: scripts.iter().map(result_for).collect(),
        testing: testing.iter().map(result_for).collect(),
    })
}

pub async fn plan_testing(
    store: &dyn Store,
    names: Option<&[String]>,
) -> ServiceResult<Vec<NewScriptResult>> {
    let all = store.scripts().await?;
    let mut errors = FieldErrors::new();
    let scripts = match names {
        Some(names) => select(
            &all,
            script_type::TESTING,
            names,
            "testing_scripts",
            &mut errors,
        ),
        None => all
            .iter()
            .filter(|s| {
                s.script_type == script_type::TESTING && s.tags.iter().any(|t| t == "commissioning")
            })
            .cloned()
            .collect(),
    };
    errors.check()?;
    Ok(scripts.iter().map(result_for).collect())
}

pub async fn create_sets(
    store: &dyn Store,
    node: &Node,
    plan: CommissioningPlan,
    now: Millis,
) -> ServiceResult<()> {
    store
        .create_script_set(node.id, result_type::COMMISSIONING, plan.commissioning, now)
        .await?;
    store
        .create_script_set(node.id, result_type::TESTING, plan.testing, now)
        .await?;
    Ok(())
}

/// A release set that erases the disks with these options.
pub async fn create_erase_set(
    store: &dyn Store,
    node: &Node,
    secure: bool,
    quick: bool,
    now: Millis,
) -> ServiceResult<ScriptSet> {
    let script = store.script_by_name(WIPE_DISKS).await?.ok_or_else(|| {
        ServiceError::bad_request(
            "the wipe-disks script is missing; restart the region to reinstall builtin scripts",
        )
    })?;
    let parameters = serde_json::json!({"secure_erase": secure, "quick_erase": quick}).to_string();
    Ok(store
        .create_script_set(
            node.id,
            result_type::RELEASE,
            vec![NewScriptResult {
                script_id: Some(script.id),
                name: script.name,
                status: status::PENDING,
                parameters,
            }],
            now,
        )
        .await?)
}

fn current_sets(node: &Node) -> Vec<i64> {
    [
        node.current_commissioning_set_id,
        node.current_testing_set_id,
        node.current_installation_set_id,
        node.current_release_set_id,
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Unfinished results of the node's current sets become ABORTED.
pub async fn abort_current(store: &dyn Store, node: &Node, now: Millis) -> ServiceResult<()> {
    store
        .set_result_statuses(
            &current_sets(node),
            &status::UNFINISHED,
            status::ABORTED,
            now,
        )
        .await?;
    Ok(())
}

/// On a failure: running results become FAILED... as MAAS marks them, the
/// running ones TIMEDOUT-or-FAILED is decided by the caller; pending ones ABORTED.
pub async fn fail_current(store: &dyn Store, node: &Node, now: Millis) -> ServiceResult<()> {
    let sets = current_sets(node);
    store
        .set_result_statuses(
            &sets,
            &[
                status::RUNNING,
                status::INSTALLING,
                status::APPLYING_NETCONF,
            ],
            status::TIMEDOUT,
            now,
        )
        .await?;
    store
        .set_result_statuses(&sets, &[status::PENDING], status::ABORTED, now)
        .await?;
    Ok(())
}

/// Which script sets the machine should run now (provisioning.md §2.4).
pub fn sets_to_run(node: &Node) -> Vec<(i64, &'static str)> {
    let mut sets = Vec::new();
    match node.status {
        NodeStatus::Commissioning | NodeStatus::EnteringRescueMode | NodeStatus::RescueMode => {
            if let Some(id) = node.current_commissioning_set_id {
                sets.push((id, "commissioning_scripts"));
            }
            if let Some(id) = node.current_testing_set_id {
                sets.push((id, "testing_scripts"));
            }
        }
        NodeStatus::Releasing | NodeStatus::DiskErasing => {
            if let Some(id) = node.current_release_set_id {
                sets.push((id, "release_scripts"));
            }
        }
        NodeStatus::Deploying => {
            if let Some(id) = node.current_installation_set_id {
                sets.push((id, "deployment_scripts"));
            }
        }
        NodeStatus::Testing => {
            if let Some(id) = node.current_testing_set_id {
                sets.push((id, "testing_scripts"));
            }
        }
        NodeStatus::New
        | NodeStatus::FailedCommissioning
        | NodeStatus::Missing
        | NodeStatus::Ready
        | NodeStatus::Reserved
        | NodeStatus::Deployed
        | NodeStatus::Retired
        | NodeStatus::Broken
        | NodeStatus::Allocated
        | NodeStatus::FailedDeployment
        | NodeStatus::FailedReleasing
        | NodeStatus::FailedDiskErasing
        | NodeStatus::FailedEnteringRescueMode
        | NodeStatus::ExitingRescueMode
        | NodeStatus::FailedExitingRescueMode
        | NodeStatus::FailedTesting => {}
    }
    sets
}

fn type_dir(kind: i64) -> &'static str {
    match kind {
        script_type::TESTING => "testing",
        script_type::RELEASE => "release",
        _ => "commissioning",
    }
}

fn build_tar(
    files: &[(String, Vec<u8>)],
    index: serde_json::Value,
    mtime: u64,
) -> ServiceResult<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let io = |e: std::io::Error| {
        ServiceError::bad_request(format!("building the scripts tarball failed: {e}"))
    };
    let mut append = |path: &str, data: &[u8], mode: u32| -> std::io::Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, data)
    };
    for (path, body) in files {
        append(path, body, 0o755).map_err(io)?;
    }
    append("index.json", index.to_string().as_bytes(), 0o644).map_err(io)?;
    builder.into_inner().map_err(io)
}

fn index_item(
    script: &Script,
    result_id: Option<i64>,
    parameters: serde_json::Value,
    started: bool,
) -> serde_json::Value {
    serde_json::json!({
        "name": script.name,
        "path": format!("{}/{}", type_dir(script.script_type), script.name),
        "script_result_id": result_id,
        "script_version_id": script.id,
        "timeout_seconds": script.timeout_seconds,
        "parallel": script.parallel,
        "hardware_type": script.hardware_type,
        "parameters": parameters,
        "packages": {},
        "for_hardware": [],
        "apply_configured_networking": false,
        "has_started": started,
        "has_finished": false,
        "default": script.is_default,
        "tags": script.tags,
    })
}

/// The anonymous `maas-scripts` of an enlisting machine: the default
/// commissioning scripts (and those tagged `enlisting`), with no result ids:
/// results are posted once the machine has enlisted and has credentials.
pub async fn enlistment_tarball(store: &dyn Store) -> ServiceResult<Option<Vec<u8>>> {
    let all = store.scripts().await?;
    let scripts: Vec<&Script> = all
        .iter()
        .filter(|s| {
            s.script_type == script_type::COMMISSIONING
                && (s.is_default || s.tags.iter().any(|t| t == "enlisting"))
        })
        .collect();
    if scripts.is_empty() {
        return Ok(None);
    }
    let items: Vec<serde_json::Value> = scripts
        .iter()
        .map(|s| index_item(s, None, serde_json::json!({}), false))
        .collect();
    let files: Vec<(String, Vec<u8>)> = scripts
        .iter()
        .map(|s| {
            (
                format!("{}/{}", type_dir(s.script_type), s.name),
                s.script.clone().into_bytes(),
            )
        })
        .collect();
    let index = serde_json::json!({"1.0": {"commissioning_scripts": items, "testing_scripts": [], "release_scripts": [], "deployment_scripts": []}});
    build_tar(&files, index, 0).map(Some)
}

/// The `maas-scripts` tarball: every unfinished script of the sets to run,
/// as `<type>/<name>` (mode 0755), plus `index.json`. `None` when there is
/// nothing to run (the API answers 204).
pub async fn tarball(store: &dyn Store, node: &Node) -> ServiceResult<Option<Vec<u8>>> {
    let all = store.scripts().await?;
    let mut index = serde_json::Map::new();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for (set_id, key) in sets_to_run(node) {
        let Some(set) = store.script_set(set_id, false).await? else {
            continue;
        };
        let mut items = Vec::new();
        for result in set
            .results
            .iter()
            .filter(|r| status::UNFINISHED.contains(&r.status))
        {
            let Some(script) = result
                .script_id
                .and_then(|id| all.iter().find(|s| s.id == id))
            else {
                continue;
            };
            let path = format!("{}/{}", type_dir(script.script_type), script.name);
            let parameters: serde_json::Value =
                serde_json::from_str(&result.parameters).unwrap_or_else(|_| serde_json::json!({}));
            items.push(index_item(
                script,
                Some(result.id),
                parameters,
                result.status != status::PENDING,
            ));
            if !files.iter().any(|(p, _)| *p == path) {
                files.push((path, script.script.clone().into_bytes()));
            }
        }
        index.insert(key.to_owned(), serde_json::Value::Array(items));
    }
    if files.is_empty() {
        return Ok(None);
    }
    for key in [
        "commissioning_scripts",
        "testing_scripts",
        "release_scripts",
        "deployment_scripts",
    ] {
        index
            .entry(key.to_owned())
            .or_insert_with(|| serde_json::json!([]));
    }
    let index = serde_json::json!({"1.0": serde_json::Value::Object(index)});
    build_tar(&files, index, (node.updated / 1000).max(0) as u64).map(Some)
}
