//! The `maas-scripts` tarball (§2.4) and running one script with a timeout and captured
//! output.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Why a tarball was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScriptsError {
    #[error("maas-scripts is not a readable tar archive")]
    Tar(#[source] std::io::Error),
    #[error("maas-scripts has no index.json")]
    NoIndex,
    #[error("maas-scripts index.json is not valid")]
    Index(#[source] serde_json::Error),
    #[error("cannot write script {path} to {directory}")]
    Write {
        path: String,
        directory: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The script lists of `index.json` under `"1.0"`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Index {
    #[serde(default)]
    pub commissioning_scripts: Vec<Script>,
    #[serde(default)]
    pub testing_scripts: Vec<Script>,
    #[serde(default)]
    pub release_scripts: Vec<Script>,
    #[serde(default)]
    pub deployment_scripts: Vec<Script>,
}

#[derive(Deserialize)]
struct IndexFile {
    #[serde(rename = "1.0")]
    version_1: Index,
}

/// One script to run, as `index.json` describes it.
#[derive(Clone, Debug, Deserialize)]
pub struct Script {
    pub name: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub script_result_id: Option<u64>,
    #[serde(default)]
    pub script_version_id: Option<u64>,
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// 0 serial, 1 instance-parallel, 2 parallel.
    #[serde(default)]
    pub parallel: u8,
    /// 0 node, 1 cpu, 2 memory, 3 storage, 4 network, 5 gpu.
    #[serde(default)]
    pub hardware_type: u8,
    #[serde(default)]
    pub parameters: serde_json::Value,
    #[serde(default)]
    pub has_started: bool,
    #[serde(default)]
    pub default: bool,
    #[serde(default)]
    pub tags: Vec<String>,
}

impl Script {
    /// Runner order (§2.4): serial first, then instance-parallel, then parallel; within
    /// each, by hardware type (cpu, memory, storage, network, node last), then name.
    fn order_key(&self) -> (u8, u8, String) {
        let hardware = match self.hardware_type {
            0 => 9,
            other => other,
        };
        (self.parallel, hardware, self.name.clone())
    }

    /// A parameter's value: `{"value": x}` as MAAS stores it, or a bare value.
    pub fn parameter(&self, name: &str) -> Option<&serde_json::Value> {
        let parameter = self.parameters.get(name)?;
        match parameter.get("value") {
            Some(value) => Some(value),
            None if parameter.is_object() => None,
            None => Some(parameter),
        }
    }

    pub fn bool_parameter(&self, name: &str) -> bool {
        match self.parameter(name) {
            Some(serde_json::Value::Bool(value)) => *value,
            Some(serde_json::Value::String(text)) => {
                matches!(
                    text.to_ascii_lowercase().as_str(),
                    "true" | "1" | "yes" | "on"
                )
            }
            Some(serde_json::Value::Number(number)) => number.as_u64().is_some_and(|n| n != 0),
            _ => false,
        }
    }

    /// Command-line arguments from the parameters, as MAAS's runner builds them: booleans
    /// become `--flag` when true, other values `--name=value`; `argument_format` (with
    /// `{input}`, `{path}` or `{name}`) wins when given. `runtime` only sets the timeout.
    pub fn arguments(&self) -> Vec<String> {
        let Some(parameters) = self.parameters.as_object() else {
            return Vec::new();
        };
        let mut arguments = Vec::new();
        for (name, parameter) in parameters {
            let kind = parameter.get("type").and_then(|t| t.as_str()).unwrap_or("");
            if kind == "runtime" {
                continue;
            }
            let value = parameter.get("value").unwrap_or(parameter);
            let format = parameter.get("argument_format").and_then(|f| f.as_str());
            let flag = format!("--{}", name.replace('_', "-"));
            match value {
                serde_json::Value::Bool(true) => arguments.push(format.map_or(flag, str::to_owned)),
                serde_json::Value::Bool(false) | serde_json::Value::Null => {}
                serde_json::Value::Object(object) => {
                    let path = object.get("path").and_then(|p| p.as_str()).unwrap_or("");
                    let device = object.get("name").and_then(|p| p.as_str()).unwrap_or("");
                    arguments.push(match format {
                        Some(format) => format
                            .replace("{path}", path)
                            .replace("{name}", device)
                            .replace("{input}", path),
                        None => format!("{flag}={path}"),
                    });
                }
                other => {
                    let text = match other {
                        serde_json::Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    arguments.push(match format {
                        Some(format) => format.replace("{input}", &text),
                        None => format!("{flag}={text}"),
                    });
                }
            }
        }
        arguments
    }

    /// The timeout: the `runtime` parameter if given, else `timeout_seconds`; 0 is none.
    pub fn timeout(&self) -> Option<Duration> {
        let runtime = self
            .parameters
            .as_object()
            .and_then(|parameters| {
                parameters
                    .values()
                    .find(|p| p.get("type").and_then(|t| t.as_str()) == Some("runtime"))
            })
            .and_then(|p| p.get("value").unwrap_or(p).as_u64());
        runtime
            .or(self.timeout_seconds)
            .filter(|seconds| *seconds > 0)
            .map(Duration::from_secs)
    }
}

/// A parsed tarball: the index plus every member's bytes by path.
#[derive(Clone, Debug, Default)]
pub struct Bundle {
    pub index: Index,
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Bundle {
    /// Parses the tarball (plain or gzipped). Members with absolute or `..` paths are
    /// dropped.
    pub fn parse(bytes: &[u8]) -> Result<Self, ScriptsError> {
        let reader: Box<dyn Read> = if bytes.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::read::GzDecoder::new(bytes))
        } else {
            Box::new(bytes)
        };
        let mut archive = tar::Archive::new(reader);
        let mut files = BTreeMap::new();
        for entry in archive.entries().map_err(ScriptsError::Tar)? {
            let mut entry = entry.map_err(ScriptsError::Tar)?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = entry.path().map_err(ScriptsError::Tar)?.into_owned();
            if !is_safe(&path) {
                continue;
            }
            let mut content = Vec::new();
            entry.read_to_end(&mut content).map_err(ScriptsError::Tar)?;
            let name = path
                .components()
                .filter(|c| matches!(c, Component::Normal(_)))
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            files.insert(name, content);
        }
        let index = files.get("index.json").ok_or(ScriptsError::NoIndex)?;
        let index: IndexFile = serde_json::from_slice(index).map_err(ScriptsError::Index)?;
        let mut index = index.version_1;
        for list in [
            &mut index.commissioning_scripts,
            &mut index.testing_scripts,
            &mut index.release_scripts,
            &mut index.deployment_scripts,
        ] {
            list.sort_by_key(Script::order_key);
        }
        Ok(Bundle { index, files })
    }

    /// The script's file from the tarball (`path`, falling back to `<type>/<name>`).
    pub fn content(&self, script: &Script, kind: &str) -> Option<&[u8]> {
        let path = script.path.trim_start_matches("./");
        self.files
            .get(path)
            .or_else(|| self.files.get(&format!("{kind}/{}", script.name)))
            .map(Vec::as_slice)
    }

    /// Writes a script to `directory` with mode 0755 and returns its path.
    pub fn install(
        &self,
        script: &Script,
        kind: &str,
        directory: &Path,
    ) -> Result<Option<PathBuf>, ScriptsError> {
        let Some(content) = self.content(script, kind) else {
            return Ok(None);
        };
        let write = |source| ScriptsError::Write {
            path: script.name.clone(),
            directory: directory.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(directory).map_err(write)?;
        let name: String = script
            .name
            .chars()
            .map(|c| if c == '/' || c == '\0' { '_' } else { c })
            .collect();
        let path = directory.join(name);
        std::fs::write(&path, content).map_err(write)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(write)?;
        Ok(Some(path))
    }
}

fn is_safe(path: &Path) -> bool {
    path.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// What one run produced.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub exit_status: i32,
    pub timed_out: bool,
    pub runtime: f64,
    pub combined: Vec<u8>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The result YAML the script wrote to `$RESULT_PATH`, if any.
    pub result: Option<Vec<u8>>,
}

/// One script to execute.
#[derive(Clone, Debug)]
pub struct Run<'a> {
    pub program: &'a Path,
    pub arguments: Vec<String>,
    pub environment: Vec<(String, String)>,
    pub timeout: Option<Duration>,
    /// Where `RESULT_PATH` and the output files go.
    pub output_directory: &'a Path,
    pub name: &'a str,
}

/// How long to wait for output pipes after the script itself has exited (a daemon it
/// started may hold them open).
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// Runs a script in its own process group; on timeout the whole group is killed and the
/// exit status is 124. A script that cannot be started gets its errno (or 2) and the
/// reason on stderr.
pub fn run(run: &Run<'_>) -> Outcome {
    let started = Instant::now();
    let _ = std::fs::create_dir_all(run.output_directory);
    let result_path = run.output_directory.join(format!("{}.yaml", run.name));
    let _ = std::fs::remove_file(&result_path);
    let paths = [
        ("OUTPUT_COMBINED_PATH", run.output_directory.join(run.name)),
        (
            "OUTPUT_STDOUT_PATH",
            run.output_directory.join(format!("{}.out", run.name)),
        ),
        (
            "OUTPUT_STDERR_PATH",
            run.output_directory.join(format!("{}.err", run.name)),
        ),
        ("RESULT_PATH", result_path.clone()),
    ];
    let mut command = Command::new(run.program);
    command
        .args(&run.arguments)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .current_dir(run.output_directory);
    for (key, value) in &run.environment {
        command.env(key, value);
    }
    for (key, path) in &paths {
        command.env(key, path);
    }
    if let Some(timeout) = run.timeout {
        command.env("RUNTIME", timeout.as_secs().to_string());
    }
    use std::os::unix::process::CommandExt;
    command.process_group(0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            let message = format!("cannot start {}: {error}\n", run.program.display());
            return Outcome {
                exit_status: error.raw_os_error().unwrap_or(2),
                runtime: started.elapsed().as_secs_f64(),
                combined: message.clone().into_bytes(),
                stderr: message.into_bytes(),
                ..Outcome::default()
            };
        }
    };
    let combined = Arc::new(Mutex::new(Vec::new()));
    let (done_sender, done) = mpsc::channel();
    let mut readers = Vec::new();
    let pipes: [Option<Box<dyn Read + Send>>; 2] = [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ];
    for pipe in pipes.into_iter().flatten() {
        let own = Arc::new(Mutex::new(Vec::new()));
        readers.push(Arc::clone(&own));
        let combined = Arc::clone(&combined);
        let done_sender = done_sender.clone();
        std::thread::spawn(move || {
            let mut pipe = pipe;
            let mut buffer = [0u8; 8192];
            while let Ok(read) = pipe.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                lock(&own).extend_from_slice(&buffer[..read]);
                lock(&combined).extend_from_slice(&buffer[..read]);
            }
            let _ = done_sender.send(());
        });
    }
    drop(done_sender);
    let group = child.id();
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(_) => break None,
        }
        if run
            .timeout
            .is_some_and(|timeout| started.elapsed() > timeout)
        {
            timed_out = true;
            kill_group(group);
            break child.wait().ok();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let deadline = Instant::now() + PIPE_GRACE;
    for _ in 0..readers.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if done.recv_timeout(left).is_err() {
            break;
        }
    }
    use std::os::unix::process::ExitStatusExt;
    let exit_status = if timed_out {
        124
    } else {
        match status {
            Some(status) => status
                .code()
                .or_else(|| status.signal().map(|signal| 128 + signal))
                .unwrap_or(1),
            None => 1,
        }
    };
    let stdout = lock(&readers[0]).clone();
    let stderr = readers.get(1).map(|r| lock(r).clone()).unwrap_or_default();
    let combined = lock(&combined).clone();
    let _ = std::fs::write(&paths[0].1, &combined);
    let _ = std::fs::write(&paths[1].1, &stdout);
    let _ = std::fs::write(&paths[2].1, &stderr);
    Outcome {
        exit_status,
        timed_out,
        runtime: started.elapsed().as_secs_f64(),
        combined,
        stdout,
        stderr,
        result: std::fs::read(&result_path).ok(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn kill_group(group: u32) {
    if let Ok(group) = i32::try_from(group)
        && let Some(pid) = rustix::process::Pid::from_raw(group)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Whether a script's interpreter (`#!` line) exists, so a builtin script written for a
/// fuller environment can be reported as skipped rather than failed.
pub fn interpreter_missing(content: &[u8]) -> Option<String> {
    let first = content.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(first).ok()?.strip_prefix("#!")?.trim();
    let mut words = line.split_whitespace();
    let program = words.next()?;
    let program = if program.ends_with("/env") {
        words.next()?
    } else {
        program
    };
    let exists = if program.starts_with('/') {
        Path::new(program).exists()
    } else {
        std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|directory| directory.join(program).exists())
        })
    };
    (!exists).then(|| program.to_owned())
}
