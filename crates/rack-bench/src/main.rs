//! `maas-rack-bench`: runs one of the rack's servers (DHCP, TFTP or HTTP boot) in the
//! foreground from a rack backend file (`FileBackend`), for `bench/rack.sh`.
//! It stops on SIGTERM or SIGINT. Logging goes to stderr, filtered by `RUST_LOG` (default warn).
//!
//! ```text
//! maas-rack-bench dhcp --backend FILE --state-dir DIR [--port 67] [--no-fsync]
//!                      [--sync-interval-us N] [--coalesce-us N]
//! maas-rack-bench tftp --backend FILE --root DIR [--listen 0.0.0.0:69]
//! maas-rack-bench http --backend FILE --root DIR [--listen 0.0.0.0:5248]
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use maas_rack::{
    BootFiles, BootFilesConfig, DhcpServer, DhcpServerConfig, FileBackend, HttpConfig, HttpServer,
    TftpConfig, TftpServer,
};

const USAGE: &str = "usage: maas-rack-bench dhcp|tftp|http --backend FILE \
[--state-dir DIR] [--root DIR] [--listen ADDR] [--port N] [--no-fsync] \
[--sync-interval-us N] [--coalesce-us N]";

struct Args {
    server: String,
    backend: PathBuf,
    state_dir: Option<PathBuf>,
    root: Option<PathBuf>,
    listen: Option<SocketAddr>,
    port: Option<u16>,
    fsync: bool,
    sync_interval_us: Option<u64>,
    coalesce_us: Option<u64>,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args> {
    let server = argv.next().context(USAGE)?;
    let mut args = Args {
        server,
        backend: PathBuf::new(),
        state_dir: None,
        root: None,
        listen: None,
        port: None,
        fsync: true,
        sync_interval_us: None,
        coalesce_us: None,
    };
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--backend" => args.backend = value()?.into(),
            "--state-dir" => args.state_dir = Some(value()?.into()),
            "--root" => args.root = Some(value()?.into()),
            "--listen" => args.listen = Some(value()?.parse().context("--listen")?),
            "--port" => args.port = Some(value()?.parse().context("--port")?),
            "--no-fsync" => args.fsync = false,
            "--sync-interval-us" => {
                args.sync_interval_us = Some(value()?.parse().context("--sync-interval-us")?)
            }
            "--coalesce-us" => args.coalesce_us = Some(value()?.parse().context("--coalesce-us")?),
            _ => bail!("unknown flag {flag}\n{USAGE}"),
        }
    }
    if args.backend.as_os_str().is_empty() {
        bail!("--backend is required\n{USAGE}");
    }
    Ok(args)
}

async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

fn boot_files(args: &Args, backend: Arc<FileBackend>) -> Result<Arc<BootFiles>> {
    let root = args.root.clone().context("--root is required")?;
    let config = BootFilesConfig {
        root,
        images: None,
        http_port: 5248,
    };
    Ok(Arc::new(BootFiles::new(config, backend)))
}

async fn run(args: Args) -> Result<()> {
    let backend = Arc::new(
        FileBackend::load(&args.backend)
            .with_context(|| format!("reading rack backend {}", args.backend.display()))?,
    );
    match args.server.as_str() {
        "dhcp" => {
            let state_dir = args.state_dir.clone().context("--state-dir is required")?;
            let mut config = DhcpServerConfig::new(state_dir);
            config.fsync = args.fsync;
            if let Some(micros) = args.sync_interval_us {
                config.sync_interval = Duration::from_micros(micros);
            }
            if let Some(micros) = args.coalesce_us {
                config.receive_coalesce = Duration::from_micros(micros);
            }
            if let Some(port) = args.port {
                config.server_port = port;
            }
            let server = DhcpServer::bind(config, backend).await?;
            server.run(shutdown()).await?;
        }
        "tftp" => {
            let config = TftpConfig {
                listen: vec![args.listen.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 69)))],
                ..TftpConfig::default()
            };
            let server = TftpServer::bind(config, boot_files(&args, backend)?).await?;
            server.run(shutdown()).await?;
        }
        "http" => {
            let config = HttpConfig {
                listen: args
                    .listen
                    .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 5248))),
            };
            let server = HttpServer::bind(config, boot_files(&args, backend)?).await?;
            server.run(shutdown()).await?;
        }
        other => bail!("unknown server {other:?}\n{USAGE}"),
    }
    Ok(())
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = parse(std::env::args().skip(1))?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(run(args))
}
