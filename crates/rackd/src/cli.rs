//! The `maas-rack` command line: `register` and `start`.

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::config::{self, RackConfig};

pub const USAGE: &str = "\
usage:
  maas-rack register --url URL --secret SECRET [--data-dir DIR]
      Check the region URL (http://REGION:5240/MAAS) and its shared secret (the hex
      string in the region's <data dir>/secret), then record them in DIR/rackd.toml
      and DIR/secret.
  maas-rack start [--data-dir DIR]
      Run the rack in the foreground until SIGTERM or Ctrl-C.

DIR defaults to $MAAS_RACK_DATA_DIR, else /var/lib/maas-rack for root and
~/.local/share/maas-rack otherwise. RUST_LOG filters the log (default info).";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Register {
        url: String,
        secret: String,
        data_dir: PathBuf,
    },
    Start {
        data_dir: PathBuf,
    },
    Help,
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> anyhow::Result<Command> {
    let Some((command, rest)) = args.split_first() else {
        bail!("no command given\n{USAGE}");
    };
    let mut values: Vec<(String, String)> = Vec::new();
    let mut iter = rest.iter();
    while let Some(arg) = iter.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        let Some(flag) = arg.strip_prefix("--") else {
            bail!("unexpected argument {arg:?}\n{USAGE}");
        };
        let (name, value) = match flag.split_once('=') {
            Some((name, value)) => (name.to_owned(), value.to_owned()),
            None => {
                let value = iter
                    .next()
                    .with_context(|| format!("--{flag} needs a value"))?;
                (flag.to_owned(), value.clone())
            }
        };
        values.push((name, value));
    }
    let allowed: &[&str] = match command.as_str() {
        "register" => &["url", "secret", "data-dir"],
        "start" => &["data-dir"],
        "help" | "-h" | "--help" => return Ok(Command::Help),
        other => bail!("unknown command {other:?}\n{USAGE}"),
    };
    if let Some((name, _)) = values.iter().find(|(n, _)| !allowed.contains(&n.as_str())) {
        bail!("{command} does not take --{name}\n{USAGE}");
    }
    let value = |name: &str| {
        values
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let data_dir = config::data_dir(value("data-dir").as_deref());
    match command.as_str() {
        "register" => Ok(Command::Register {
            url: value("url").with_context(|| format!("register needs --url\n{USAGE}"))?,
            secret: value("secret").with_context(|| format!("register needs --secret\n{USAGE}"))?,
            data_dir,
        }),
        _ => Ok(Command::Start { data_dir }),
    }
}

/// Reads `rackd.toml` and the secret for `start`; also says whether logs are JSON.
pub fn load(data_dir: PathBuf) -> anyhow::Result<(RackConfig, maas_rpc::Secret, bool)> {
    let Some(file) = config::read_file(&data_dir)? else {
        bail!(
            "{} does not exist: run `maas-rack register --url URL --secret SECRET` first",
            data_dir.join(config::CONFIG_FILE).display()
        );
    };
    let secret = config::read_secret(&data_dir)?;
    let (config, json) = config::resolve(data_dir, file)?;
    Ok((config, secret, json))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn commands_and_flags() {
        assert_eq!(
            parse(&args(
                "register --url http://r:5240/MAAS --secret=abcd --data-dir /tmp/x"
            ))
            .expect("parses"),
            Command::Register {
                url: "http://r:5240/MAAS".into(),
                secret: "abcd".into(),
                data_dir: PathBuf::from("/tmp/x"),
            }
        );
        assert_eq!(
            parse(&args("start --data-dir /tmp/y")).expect("parses"),
            Command::Start {
                data_dir: PathBuf::from("/tmp/y")
            }
        );
        assert_eq!(parse(&args("start --help")).expect("parses"), Command::Help);
        for bad in [
            "",
            "dance",
            "register --url x",
            "start --url x",
            "start extra",
            "start --data-dir",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
