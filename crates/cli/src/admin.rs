//! The local admin commands: they read the data directory's configuration
//! and talk to the database directly, as MAAS's `maas createadmin` does.

use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use maas_region::service::users;
use maas_store::Store;

use crate::config::{self, FileConfig};

/// `--name value`, `--name=value` and bare flags, in order.
struct Flags {
    pairs: Vec<(String, Option<String>)>,
    positional: Vec<String>,
}

impl Flags {
    fn parse(args: &[String], with_value: &[&str], bare: &[&str]) -> anyhow::Result<Flags> {
        let mut flags = Flags {
            pairs: Vec::new(),
            positional: Vec::new(),
        };
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let Some(name) = arg.strip_prefix("--") else {
                flags.positional.push(arg.clone());
                continue;
            };
            let (name, inline) = match name.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (name, None),
            };
            if with_value.contains(&name) {
                let value = match inline {
                    Some(v) => v,
                    None => iter
                        .next()
                        .cloned()
                        .ok_or_else(|| anyhow!("--{name} needs a value"))?,
                };
                flags.pairs.push((name.to_owned(), Some(value)));
            } else if bare.contains(&name) {
                flags.pairs.push((name.to_owned(), None));
            } else {
                bail!("unknown option --{name}");
            }
        }
        Ok(flags)
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, _)| n == name)
    }
}

const USAGE: &str = "\
usage:
  maas init [--data-dir DIR] [--maas-url URL] [--database-uri URI]
  maas start [--data-dir DIR] [--listen ADDR:PORT] [--no-rack]
      (runs the region and, unless --no-rack or MAAS_RACK=off, a rack controller;
       rack settings in DIR/rack/rackd.toml)
  maas createadmin --username U --email E [--password P] [--data-dir DIR]
  maas apikey --username U [--generate | --delete KEY] [--data-dir DIR]
  maas changepassword USERNAME [--data-dir DIR]";

pub async fn run(command: &str, args: &[String]) -> anyhow::Result<()> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    match command {
        "init" => {
            let flags = Flags::parse(args, &["data-dir", "maas-url", "database-uri"], &[])?;
            init(&flags).await.map(|_| ())
        }
        "start" => {
            let flags = Flags::parse(args, &["data-dir", "listen"], &["no-rack"])?;
            start(&flags).await
        }
        "createadmin" => {
            let flags = Flags::parse(
                args,
                &["data-dir", "username", "email", "password", "ssh-import"],
                &[],
            )?;
            createadmin(&flags).await
        }
        "apikey" => {
            let flags = Flags::parse(
                args,
                &["data-dir", "username", "delete"],
                &["generate", "with-names"],
            )?;
            apikey(&flags).await
        }
        "changepassword" => {
            let flags = Flags::parse(args, &["data-dir", "username"], &[])?;
            changepassword(&flags).await
        }
        other => bail!("unknown command {other}\n{USAGE}"),
    }
}

/// Writes (or completes) `regiond.toml` and creates and migrates the
/// database. Running it again with the same arguments changes nothing.
async fn init(flags: &Flags) -> anyhow::Result<(config::Resolved, Arc<dyn Store>)> {
    let dir = config::data_dir(flags.value("data-dir"));
    let existing = config::read_file(&dir)?;
    let mut file = existing.clone().unwrap_or_default();
    if let Some(url) = flags.value("maas-url") {
        file.maas_url = Some(url.trim_end_matches('/').to_owned());
    }
    if let Some(uri) = flags.value("database-uri") {
        file.database_uri = Some(uri.to_owned());
    }
    let resolved = config::resolve(dir.clone(), file.clone(), None)?;
    let to_write = FileConfig {
        maas_url: Some(
            file.maas_url
                .clone()
                .unwrap_or_else(|| resolved.maas_url.clone()),
        ),
        database_uri: Some(
            file.database_uri
                .clone()
                .unwrap_or_else(|| resolved.database_uri.clone()),
        ),
        ..file.clone()
    };
    if existing.as_ref() != Some(&to_write) {
        config::write_file(&dir, &to_write)?;
    }
    config::ensure_secret(&dir)?;
    let store = open_store(&resolved).await?;
    // MAAS names itself after its host until an admin says otherwise.
    if store.config_value("maas_name").await?.is_none() {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "maas".to_owned());
        store
            .set_config_value("maas_name", &serde_json_string(&name))
            .await
            .context("storing maas_name")?;
    }
    // A region starts with MAAS's default boot source (or the configured one).
    maas_region::service::images::ensure_default_source(
        store.as_ref(),
        &default_boot_source(&resolved),
        now_ms(),
    )
    .await
    .map_err(|e| anyhow!("creating the default boot source: {e}"))?;
    if existing.is_none() {
        eprintln!(
            "MAAS region initialised in {} (database {}).",
            dir.display(),
            maas_store_sql::redact_url(&resolved.database_uri)
        );
    }
    Ok((resolved, store))
}

fn default_boot_source(
    resolved: &config::Resolved,
) -> maas_region::service::images::DefaultBootSource {
    maas_region::service::images::DefaultBootSource {
        url: resolved.boot_source_url.clone(),
        keyring_filename: resolved.boot_source_keyring.display().to_string(),
    }
}

fn serde_json_string(text: &str) -> String {
    // A JSON string literal: quote and escape.
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

async fn open_store(resolved: &config::Resolved) -> anyhow::Result<Arc<dyn Store>> {
    if resolved.database_uri.starts_with("sqlite:") {
        std::fs::create_dir_all(&resolved.data_dir)
            .with_context(|| format!("creating data directory {}", resolved.data_dir.display()))?;
    }
    maas_store_sql::connect(&resolved.database_uri)
        .await
        .map_err(|e| {
            anyhow!(
                "{e}: {}",
                std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            )
        })
        .with_context(|| {
            format!(
                "opening database {}",
                maas_store_sql::redact_url(&resolved.database_uri)
            )
        })
}

/// Opens the store of an initialised data directory.
async fn existing_store(flags: &Flags) -> anyhow::Result<Arc<dyn Store>> {
    let dir = config::data_dir(flags.value("data-dir"));
    let file = config::read_file(&dir)?.ok_or_else(|| {
        anyhow!(
            "no region configuration in {}; run `maas init` first",
            dir.display()
        )
    })?;
    let resolved = config::resolve(dir, file, None)?;
    open_store(&resolved).await
}

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

async fn start(flags: &Flags) -> anyhow::Result<()> {
    let dir = config::data_dir(flags.value("data-dir"));
    let (mut resolved, store) = if config::read_file(&dir)?.is_some() {
        let file = config::read_file(&dir)?.unwrap_or_default();
        let resolved = config::resolve(dir, file, flags.value("listen"))?;
        let store = open_store(&resolved).await?;
        (resolved, store)
    } else {
        let init_flags = Flags {
            pairs: vec![("data-dir".into(), Some(dir.display().to_string()))],
            positional: vec![],
        };
        init(&init_flags).await?
    };
    if let Some(listen) = flags.value("listen") {
        resolved.listen = listen
            .parse()
            .with_context(|| format!("listen address '{listen}' is not ADDR:PORT"))?;
    }
    init_logging(resolved.json_logs);
    let secret = config::ensure_secret(&resolved.data_dir)?;
    let region = maas_region::Region::new(
        store.clone(),
        maas_region::RegionConfig {
            maas_url: resolved.maas_url.clone(),
            agent_dir: resolved.agent_dir.clone(),
            secret: Some(secret.clone()),
            images: maas_region::service::images::ImagesConfig {
                dir: Some(resolved.images_dir.clone()),
                auto_import: resolved.images_auto_import,
                default_source: default_boot_source(&resolved),
                ..maas_region::service::images::ImagesConfig::default()
            },
            power_poll: (resolved.power_poll_interval > 0).then(|| {
                maas_power::poller::PollerConfig {
                    interval: std::time::Duration::from_secs(resolved.power_poll_interval),
                    ..maas_power::poller::PollerConfig::default()
                }
            }),
            ..maas_region::RegionConfig::default()
        },
        Arc::new(maas_region::SystemClock),
    );
    // Builtin scripts, status timers, heartbeat supervision and the power poller.
    let background = region
        .start()
        .await
        .map_err(|e| anyhow!("preparing the region: {e}"))?;
    let listener = tokio::net::TcpListener::bind(resolved.listen)
        .await
        .with_context(|| format!("listening on {}", resolved.listen))?;
    // With port 0 the kernel picks the port; say which one.
    let bound = listener
        .local_addr()
        .context("reading the listening address")?;
    tracing::info!(
        listen = %bound,
        database = store.backend_name(),
        data_dir = %resolved.data_dir.display(),
        "MAAS region started: http://{bound}/MAAS/"
    );
    // One signal stops both the region and the rack it runs.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let wait = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let rack = match all_in_one_rack(flags, &resolved, bound)? {
        Some(rack_config) => {
            tracing::info!(
                data_dir = %rack_config.data_dir.display(),
                region = ?rack_config.maas_urls,
                "starting the rack controller in this process"
            );
            let shutdown = wait(stopped.clone());
            Some(tokio::spawn(async move {
                if let Err(error) = maas_rackd::run(rack_config, secret, shutdown).await {
                    tracing::error!(error = %format!("{error:#}"), "the in-process rack stopped");
                }
            }))
        }
        None => None,
    };
    maas_region::serve(region, listener, wait(stopped))
        .await
        .context("serving the region API")?;
    if let Some(rack) = rack {
        let _ = rack.await;
    }
    background.abort();
    tracing::info!("MAAS region stopped");
    Ok(())
}

/// The rack `maas start` runs beside the region, unless `--no-rack` or `MAAS_RACK=off`:
/// its state under `<data dir>/rack`, its settings from `<data dir>/rack/rackd.toml` when
/// that exists (ports, listen addresses, DHCP on or off), linked to this region over the
/// same link a separate `maas-rack` uses.
fn all_in_one_rack(
    flags: &Flags,
    resolved: &config::Resolved,
    bound: std::net::SocketAddr,
) -> anyhow::Result<Option<maas_rackd::RackConfig>> {
    let off = std::env::var("MAAS_RACK")
        .map(|v| {
            matches!(
                v.to_ascii_lowercase().as_str(),
                "off" | "false" | "0" | "no"
            )
        })
        .unwrap_or(false);
    if flags.has("no-rack") || off {
        return Ok(None);
    }
    let dir = resolved.data_dir.join("rack");
    let mut file = maas_rackd::config::read_file(&dir)?.unwrap_or_default();
    let host = if bound.ip().is_unspecified() {
        match bound.ip() {
            std::net::IpAddr::V4(_) => "127.0.0.1".to_owned(),
            std::net::IpAddr::V6(_) => "[::1]".to_owned(),
        }
    } else {
        match bound.ip() {
            std::net::IpAddr::V4(v4) => v4.to_string(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        }
    };
    file.maas_url = vec![format!("http://{host}:{}/MAAS", bound.port())];
    let (config, _json) = maas_rackd::config::resolve(dir, file)?;
    Ok(Some(config))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGTERM; stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}

/// A password from the flag, a prompt (twice, on a terminal), or one line of stdin.
fn password(flag: Option<&str>, prompt: &str) -> anyhow::Result<String> {
    if let Some(p) = flag {
        return Ok(p.to_owned());
    }
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(prompt).context("reading password")?;
        let again = rpassword::prompt_password("Again: ").context("reading password")?;
        if first != again {
            bail!("the passwords do not match");
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading password from stdin")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn now_ms() -> i64 {
    use maas_region::Clock;
    maas_region::SystemClock.now_millis()
}

async fn createadmin(flags: &Flags) -> anyhow::Result<()> {
    if flags.has("ssh-import") {
        bail!(
            "--ssh-import is not supported: this region can't fetch keys from Launchpad or GitHub; add keys with `maas PROFILE sshkeys create key=...`"
        );
    }
    let username = flags
        .value("username")
        .ok_or_else(|| anyhow!("--username is required\n{USAGE}"))?;
    let email = flags
        .value("email")
        .ok_or_else(|| anyhow!("--email is required\n{USAGE}"))?;
    let password = password(flags.value("password"), "Password: ")?;
    if password.is_empty() {
        bail!("the password must not be empty");
    }
    let store = existing_store(flags).await?;
    let input = users::NewUserInput {
        username,
        email,
        password: Some(&password),
        is_superuser: true,
    };
    users::create_user(store.as_ref(), input, now_ms())
        .await
        .map_err(|e| anyhow!("{}", describe_error(e)))?;
    Ok(())
}

fn describe_error(error: maas_region::ServiceError) -> String {
    match error {
        maas_region::ServiceError::Validation(fields) => fields
            .into_iter()
            .map(|(field, messages)| format!("{field}: {}", messages.join(" ")))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

async fn apikey(flags: &Flags) -> anyhow::Result<()> {
    let username = flags
        .value("username")
        .ok_or_else(|| anyhow!("--username is required\n{USAGE}"))?;
    let store = existing_store(flags).await?;
    let user = store
        .user_by_username(username)
        .await?
        .ok_or_else(|| anyhow!("user {username} does not exist"))?;
    if let Some(key) = flags.value("delete") {
        if !store
            .delete_token(user.id, users::token_key_of(key))
            .await?
        {
            bail!("user {username} has no API key {key}");
        }
        return Ok(());
    }
    if flags.has("generate") {
        let token = users::create_token(store.as_ref(), &user, None, now_ms())
            .await
            .map_err(|e| anyhow!("{e}"))?;
        println!("{}", maas_region::credentials::key_text(&token));
        return Ok(());
    }
    let mut tokens = store.tokens_for_user(user.id).await?;
    if tokens.is_empty() {
        tokens.push(
            users::create_token(store.as_ref(), &user, None, now_ms())
                .await
                .map_err(|e| anyhow!("{e}"))?,
        );
    }
    for token in tokens {
        if flags.has("with-names") {
            println!(
                "{} {}",
                maas_region::credentials::key_text(&token),
                token.consumer_name
            );
        } else {
            println!("{}", maas_region::credentials::key_text(&token));
        }
    }
    Ok(())
}

async fn changepassword(flags: &Flags) -> anyhow::Result<()> {
    let username = flags
        .value("username")
        .or(flags.positional.first().map(String::as_str))
        .ok_or_else(|| anyhow!("which user? give USERNAME\n{USAGE}"))?;
    let store = existing_store(flags).await?;
    let user = store
        .user_by_username(username)
        .await?
        .ok_or_else(|| anyhow!("user {username} does not exist"))?;
    let password = password(None, &format!("Password for {username}: "))?;
    if password.is_empty() {
        bail!("the password must not be empty");
    }
    let hash = maas_region::credentials::hash_password(&password)?;
    store.set_password(user.id, hash).await?;
    eprintln!("Password changed successfully for user '{username}'");
    Ok(())
}
