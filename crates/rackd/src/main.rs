//! `maas-rack`: the rack controller. `register` records the region and its secret; `start`
//! runs the rack in the foreground. Everything else is in the `maas_rackd` library.

use std::process::ExitCode;

use maas_rackd::cli::{self, Command};

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(error) => {
            tracing::warn!(target: "maas_rackd", %error, "cannot watch SIGTERM; stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!(target: "maas_rackd", "shutting down");
}

async fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Help => {
            eprintln!("{}", cli::USAGE);
            Ok(())
        }
        Command::Register {
            url,
            secret,
            data_dir,
        } => {
            init_logging(false);
            let region = maas_rackd::register(&data_dir, &url, &secret).await?;
            eprintln!(
                "maas-rack: registered with region {region} at {url}; configuration in {}",
                data_dir.display()
            );
            Ok(())
        }
        Command::Start { data_dir } => {
            let (config, secret, json) = cli::load(data_dir)?;
            init_logging(json);
            maas_rackd::run(config, secret, shutdown_signal()).await
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("maas-rack: {error:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("maas-rack: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(execute(command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("maas-rack: {error:#}");
            ExitCode::from(1)
        }
    }
}
