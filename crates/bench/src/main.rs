//! `maas-bench api`: times the region's machine endpoints over HTTP with
//! machines shaped like MAAS's own performance data set (8 interfaces with
//! VLANs and links, 7 block devices with partitions, tags, owners), and
//! prints p50/p99 and response sizes next to Canonical MAAS's figures.
//!
//! The region runs as a separate `maas start` process (so its memory can be
//! read from /proc), on a SQLite database this program fills directly.

mod fleet;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use maas_client::Credentials;

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn maas_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("MAAS_BIN") {
        return Ok(PathBuf::from(path));
    }
    let here = std::env::current_exe().context("locating maas-bench")?;
    let candidate = here.with_file_name("maas");
    if candidate.exists() {
        return Ok(candidate);
    }
    bail!(
        "no maas binary next to {}; build it (cargo build --release -p maas-cli) or set MAAS_BIN",
        here.display()
    )
}

fn start_server(data_dir: &std::path::Path) -> anyhow::Result<Server> {
    let mut child = Command::new(maas_binary()?)
        .args(["start", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("MAAS_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn,maas::admin=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting maas start")?;
    let stderr = child.stderr.take().context("server stderr")?;
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(listen) = value["fields"]["listen"].as_str()
            {
                let _ = sender.send(listen.to_owned());
            }
        }
    });
    let listen = receiver
        .recv_timeout(Duration::from_secs(60))
        .context("waiting for the region to listen")?;
    Ok(Server {
        child,
        url: format!("http://{listen}"),
    })
}

/// CPU time the process has used (user + system), from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // Linux reports clock ticks of 1/100 s.
    Duration::from_millis(ticks * 10)
}

/// Resident memory and its peak, in KiB, from /proc.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Http {
    agent: ureq::Agent,
    base: String,
    credentials: Credentials,
}

impl Http {
    /// Sends a signed request and reads the body to the end without keeping it.
    fn call(
        &self,
        method: &str,
        path: &str,
        form: Option<&[(&str, String)]>,
    ) -> anyhow::Result<(u16, u64, Duration)> {
        let url = format!("{}{path}", self.base);
        let auth = self.credentials.sign_now();
        let started = Instant::now();
        let response = match (method, form) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            ("POST", Some(fields)) => {
                let pairs: Vec<(&str, &str)> =
                    fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
                self.agent
                    .post(&url)
                    .header("Authorization", &auth)
                    .send_form(pairs)
            }
            _ => bail!("unsupported request {method}"),
        }
        .with_context(|| format!("{method} {path}"))?;
        let status = response.status().as_u16();
        let mut reader = response.into_body().into_reader();
        let mut buffer = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        loop {
            let n = reader.read(&mut buffer).context("reading the response")?;
            if n == 0 {
                break;
            }
            size += n as u64;
        }
        Ok((status, size, started.elapsed()))
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

struct Row {
    call: String,
    runs: usize,
    p50: Duration,
    p99: Duration,
    bytes: u64,
    /// Server CPU time per call (steadier than wall time on a busy machine).
    cpu: Duration,
    maas: &'static str,
}

fn measure(
    pid: u32,
    call: &str,
    runs: usize,
    maas: &'static str,
    mut request: impl FnMut(usize) -> anyhow::Result<(u16, u64, Duration)>,
) -> anyhow::Result<Row> {
    let mut times = Vec::with_capacity(runs);
    let mut bytes = 0;
    // One warm-up request, not counted.
    request(usize::MAX)?;
    let cpu_before = cpu_time(pid);
    for i in 0..runs {
        let (status, size, elapsed) = request(i)?;
        if !(200..300).contains(&status) {
            bail!("{call}: HTTP {status}");
        }
        bytes = size;
        times.push(elapsed);
    }
    let cpu = cpu_time(pid).saturating_sub(cpu_before) / runs.max(1) as u32;
    times.sort();
    Ok(Row {
        call: call.to_owned(),
        runs,
        p50: percentile(&times, 50.0),
        p99: percentile(&times, 99.0),
        bytes,
        cpu,
        maas,
    })
}

/// `load DIR N`: a data directory with N benchmark machines, for profiling
/// the region by hand (`maas start --data-dir DIR`).
fn load(args: &[String]) -> anyhow::Result<()> {
    let (Some(dir), Some(count)) = (args.first(), args.get(1)) else {
        bail!("usage: maas-bench load DATA_DIR N");
    };
    let count: usize = count.parse().context("N must be a number")?;
    let status = Command::new(maas_binary()?)
        .args(["init", "--data-dir", dir])
        .status()?;
    if !status.success() {
        bail!("maas init failed");
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let path = std::path::Path::new(dir).join("maas.db");
    let store = runtime.block_on(maas_store_sql::connect(path.to_str().context("path")?))?;
    let fixture = runtime.block_on(fleet::Fixture::create(store.as_ref()))?;
    runtime.block_on(fixture.load(store.as_ref(), 0, count))?;
    println!("{}", fixture.admin_key);
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("api") => {}
        Some("load") => return load(&args[1..]),
        _ => {
            eprintln!(
                "usage: maas-bench api [--max N]            time the API (N: largest fleet, default 10000)\n       maas-bench load DATA_DIR N           fill a new data directory with N machines and print the admin key"
            );
            std::process::exit(2);
        }
    }
    let max: usize = match args.iter().position(|a| a == "--max") {
        Some(i) => args
            .get(i + 1)
            .context("--max needs a number")?
            .parse()
            .context("--max needs a number")?,
        None => 10_000,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir)?;
    let status = Command::new(maas_binary()?)
        .args(["init", "--data-dir"])
        .arg(&data_dir)
        .status()?;
    if !status.success() {
        bail!("maas init failed");
    }
    let store = runtime.block_on(maas_store_sql::connect(
        data_dir.join("maas.db").to_str().context("path")?,
    ))?;
    let fixture = runtime.block_on(fleet::Fixture::create(store.as_ref()))?;
    let credentials = Credentials::parse(&fixture.admin_key)?;

    let server = start_server(&data_dir)?;
    let pid = server.child.id();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let http = Http {
        agent,
        base: format!("{}/MAAS/api/2.0/", server.url),
        credentials,
    };

    let (rss_start, _) = memory_kib(pid);
    let mut rows = Vec::new();
    let mut loaded = 0;
    let sizes: Vec<usize> = [100, 1_000, 10_000]
        .into_iter()
        .filter(|n| *n <= max)
        .collect();
    let mut system_ids: Vec<String> = Vec::new();
    let mut memory: Vec<(usize, u64, u64)> = Vec::new();
    for &size in &sizes {
        let started = Instant::now();
        let ids = runtime.block_on(fixture.load(store.as_ref(), loaded, size - loaded))?;
        system_ids.extend(ids);
        eprintln!(
            "loaded {} machines in {:.1} s",
            size - loaded,
            started.elapsed().as_secs_f64()
        );
        loaded = size;
        let runs = match size {
            100 => 30,
            1_000 => 10,
            _ => 5,
        };
        let maas = match size {
            100 => "2.97 s (4.3 MB)",
            _ => "not measured",
        };
        rows.push(measure(
            pid,
            &format!("GET machines/ ({size})"),
            runs,
            maas,
            |_| http.call("GET", "machines/", None),
        )?);
        let (rss, peak) = memory_kib(pid);
        memory.push((size, rss, peak));
        if size == 100 {
            let (status, size, _) =
                http.call("GET", &format!("machines/{}/", system_ids[0]), None)?;
            eprintln!("one machine: HTTP {status}, {size} bytes of JSON");
        }
    }
    let (_, peak_after_lists) = memory_kib(pid);
    let ids = system_ids.clone();
    rows.push(measure(
        pid,
        "GET machines/{system_id}/",
        300,
        "188 ms",
        |i| {
            let id = &ids[i.wrapping_mul(7919) % ids.len()];
            http.call("GET", &format!("machines/{id}/"), None)
        },
    )?);
    let mut counter = 0u32;
    rows.push(measure(pid, "POST machines/", 300, "154 ms", |_| {
        counter += 1;
        let mac = format!(
            "52:54:01:{:02x}:{:02x}:{:02x}",
            (counter >> 16) & 0xff,
            (counter >> 8) & 0xff,
            counter & 0xff
        );
        let form = [
            ("architecture", "amd64/generic".to_owned()),
            ("mac_addresses", mac),
            ("power_type", "manual".to_owned()),
        ];
        http.call("POST", "machines/", Some(&form))
    })?);
    let (rss_end, peak) = memory_kib(pid);

    println!("\nRegion API benchmark: machines shaped like MAAS's performance data set");
    println!(
        "(8 interfaces with VLANs and links, 7 block devices with partitions, tags, owners), SQLite, one client, sequential requests.\n"
    );
    println!("| call | runs | p50 | p99 | region CPU per call | response | Canonical MAAS p50 |");
    println!("|---|---|---|---|---|---|---|");
    for row in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {:.1} KB | {} |",
            row.call,
            row.runs,
            ms(row.p50),
            ms(row.p99),
            ms(row.cpu),
            row.bytes as f64 / 1000.0,
            row.maas
        );
    }
    for (size, rss, peak) in &memory {
        println!(
            "After listing {size} machines: region RSS {:.1} MiB (peak so far {:.1} MiB).",
            *rss as f64 / 1024.0,
            *peak as f64 / 1024.0
        );
    }
    println!(
        "\nRegion resident memory: {:.1} MiB at start, {:.1} MiB peak after the listings, {:.1} MiB at the end (peak {:.1} MiB).",
        rss_start as f64 / 1024.0,
        peak_after_lists as f64 / 1024.0,
        rss_end as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    Ok(())
}
