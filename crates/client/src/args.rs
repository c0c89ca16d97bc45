//! Command-line argument parsing with argparse's conventions, as far as maascli relies on them:
//! options may appear anywhere, `--` ends them, long options may be abbreviated, short flags
//! may be grouped, and `-5` is a positional.

use std::path::PathBuf;

/// One option a command knows.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    /// The key it is stored under, e.g. `"insecure"`.
    pub key: &'static str,
    pub long: &'static str,
    pub short: Option<char>,
    pub takes_value: bool,
}

pub const HELP: OptionSpec = OptionSpec {
    key: "help",
    long: "--help",
    short: Some('h'),
    takes_value: false,
};

pub const DEBUG: OptionSpec = OptionSpec {
    key: "debug",
    long: "--debug",
    short: Some('d'),
    takes_value: false,
};

pub const INSECURE: OptionSpec = OptionSpec {
    key: "insecure",
    long: "--insecure",
    short: Some('k'),
    takes_value: false,
};

pub const CACERTS: OptionSpec = OptionSpec {
    key: "cacerts",
    long: "--cacerts",
    short: None,
    takes_value: true,
};

/// Options and positionals, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub flags: Vec<&'static str>,
    pub values: Vec<(&'static str, String)>,
    pub positionals: Vec<String>,
}

impl Parsed {
    pub fn flag(&self, key: &str) -> bool {
        self.flags.contains(&key)
    }

    pub fn value(&self, key: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(known, _)| *known == key)
            .map(|(_, value)| value.as_str())
    }
}

/// How far to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Read everything.
    AtEnd,
    /// Stop at the first positional (a sub-command); it and the rest are left unread.
    AtFirstPositional,
}

/// Parses `args`; returns what was read and the index of the first unread argument.
pub fn parse(
    args: &[String],
    options: &[OptionSpec],
    stop: Stop,
) -> Result<(Parsed, usize), String> {
    let mut parsed = Parsed::default();
    let mut index = 0;
    let mut only_positionals = false;
    while index < args.len() {
        let arg = &args[index];
        if only_positionals || !looks_like_option(arg) {
            if stop == Stop::AtFirstPositional {
                return Ok((parsed, index));
            }
            parsed.positionals.push(arg.clone());
            index += 1;
            continue;
        }
        if arg == "--" {
            only_positionals = true;
            index += 1;
            continue;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline_value) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (long, None),
            };
            let spec = find_long(options, name, arg)?;
            if spec.takes_value {
                let value = match inline_value {
                    Some(value) => value,
                    None => {
                        index += 1;
                        args.get(index)
                            .filter(|value| !looks_like_option(value))
                            .cloned()
                            .ok_or_else(|| {
                                format!("argument {}: expected one argument", spec.long)
                            })?
                    }
                };
                parsed.values.push((spec.key, value));
            } else if inline_value.is_some() {
                return Err(format!("argument {}: ignored explicit argument", spec.long));
            } else {
                parsed.flags.push(spec.key);
            }
            index += 1;
            continue;
        }
        // A group of short options such as `-dk`.
        let letters: Vec<char> = arg[1..].chars().collect();
        for (position, letter) in letters.iter().enumerate() {
            let spec = options
                .iter()
                .find(|spec| spec.short == Some(*letter))
                .ok_or_else(|| format!("unrecognized arguments: {arg}"))?;
            if spec.takes_value {
                let rest: String = letters[position + 1..].iter().collect();
                let value = if rest.is_empty() {
                    index += 1;
                    args.get(index)
                        .cloned()
                        .ok_or_else(|| format!("argument -{letter}: expected one argument"))?
                } else {
                    rest
                };
                parsed.values.push((spec.key, value));
                break;
            }
            parsed.flags.push(spec.key);
        }
        index += 1;
    }
    Ok((parsed, index))
}

/// argparse treats `-x…` as an option, but not `-` alone or a negative number.
fn looks_like_option(arg: &str) -> bool {
    if !arg.starts_with('-') || arg == "-" {
        return false;
    }
    let rest = &arg[1..];
    let is_negative_number = !rest.is_empty()
        && rest.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && rest.bytes().filter(|&b| b == b'.').count() <= 1
        && rest != ".";
    !is_negative_number
}

fn find_long(options: &[OptionSpec], name: &str, arg: &str) -> Result<OptionSpec, String> {
    let wanted = format!("--{name}");
    if let Some(spec) = options.iter().find(|spec| spec.long == wanted) {
        return Ok(*spec);
    }
    let candidates: Vec<&OptionSpec> = options
        .iter()
        .filter(|spec| spec.long.starts_with(&wanted))
        .collect();
    match candidates.as_slice() {
        [spec] => Ok(**spec),
        [] => Err(format!("unrecognized arguments: {arg}")),
        several => Err(format!(
            "ambiguous option: {arg} could match {}",
            several
                .iter()
                .map(|spec| spec.long)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// A `key=value` or `key@=path` action argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataArg {
    Text { name: String, value: String },
    File { name: String, path: PathBuf },
}

impl DataArg {
    pub fn name(&self) -> &str {
        match self {
            DataArg::Text { name, .. } | DataArg::File { name, .. } => name,
        }
    }
}

/// maascli's `name_value_pair`: split at the first `=` or `@=`, whichever comes first.
pub fn name_value_pair(arg: &str) -> Result<DataArg, String> {
    let equals = arg.find('=');
    let at_equals = arg.find("@=");
    match (equals, at_equals) {
        (Some(eq), Some(at)) if at < eq => Ok(DataArg::File {
            name: arg[..at].to_owned(),
            path: PathBuf::from(&arg[at + 2..]),
        }),
        (Some(eq), _) => Ok(DataArg::Text {
            name: arg[..eq].to_owned(),
            value: arg[eq + 1..].to_owned(),
        }),
        (None, _) => Err(format!(
            "{arg:?} is not a name=value or name@=filename pair"
        )),
    }
}

/// The positionals of an action: the handler's URI params in order, then data arguments
/// if the action accepts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionArgs {
    pub params: Vec<(String, String)>,
    pub data: Vec<DataArg>,
}

/// How data arguments are read for an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataStyle {
    /// `key=value` and `key@=path`.
    NameValue,
    /// `sshkeys import`: every argument is a `keysource` (`lp:user`, `gh:user`).
    KeySource,
}

/// Splits positionals into URI params and data, with argparse's messages.
pub fn action_args(
    positionals: &[String],
    param_names: &[String],
    accepts_data: bool,
    style: DataStyle,
) -> Result<ActionArgs, String> {
    if positionals.len() < param_names.len() {
        let missing = &param_names[positionals.len()..];
        return Err(format!(
            "the following arguments are required: {}",
            missing.join(", ")
        ));
    }
    let (params, rest) = positionals.split_at(param_names.len());
    if !accepts_data && !rest.is_empty() {
        return Err(format!("unrecognized arguments: {}", rest.join(" ")));
    }
    let data = rest
        .iter()
        .map(|arg| match style {
            DataStyle::NameValue => name_value_pair(arg),
            DataStyle::KeySource => key_source(arg),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ActionArgs {
        params: param_names
            .iter()
            .cloned()
            .zip(params.iter().cloned())
            .collect(),
        data,
    })
}

/// `lp:user` → `keysource=lp:user`. An explicit `keysource=…` is accepted too (maascli
/// would send the whole text as the key source).
fn key_source(arg: &str) -> Result<DataArg, String> {
    if arg.is_empty() {
        return Err(format!(
            "{arg:?} is not in a protocol:auth_id or auth_id format"
        ));
    }
    let value = arg.strip_prefix("keysource=").unwrap_or(arg);
    Ok(DataArg::Text {
        name: "keysource".to_owned(),
        value: value.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| (*arg).to_owned()).collect()
    }

    #[test]
    fn options_anywhere_and_positionals_in_order() {
        let args = strings(&["-d", "abc", "--insecure", "x=1", "--", "-k"]);
        let (parsed, next) = parse(&args, &[HELP, DEBUG, INSECURE], Stop::AtEnd).unwrap();
        assert_eq!(next, args.len());
        assert!(parsed.flag("debug") && parsed.flag("insecure") && !parsed.flag("help"));
        assert_eq!(parsed.positionals, ["abc", "x=1", "-k"]);
    }

    #[test]
    fn grouped_abbreviated_and_valued_options() {
        let args = strings(&["-dk", "--he", "--cacerts=/a.pem", "--cacerts", "/b.pem"]);
        let (parsed, _) = parse(&args, &[HELP, DEBUG, INSECURE, CACERTS], Stop::AtEnd).unwrap();
        assert!(parsed.flag("debug") && parsed.flag("insecure") && parsed.flag("help"));
        assert_eq!(parsed.value("cacerts"), Some("/b.pem"));
    }

    #[test]
    fn unknown_options_are_refused_but_negative_numbers_are_positional() {
        let args = strings(&["-5", "-1.5", "-"]);
        let (parsed, _) = parse(&args, &[HELP], Stop::AtEnd).unwrap();
        assert_eq!(parsed.positionals, ["-5", "-1.5", "-"]);
        assert_eq!(
            parse(&strings(&["-x"]), &[HELP], Stop::AtEnd).unwrap_err(),
            "unrecognized arguments: -x"
        );
        assert_eq!(
            parse(&strings(&["--cacerts"]), &[CACERTS], Stop::AtEnd).unwrap_err(),
            "argument --cacerts: expected one argument"
        );
        assert!(parse(&strings(&["--help=1"]), &[HELP], Stop::AtEnd).is_err());
    }

    #[test]
    fn stopping_at_the_sub_command() {
        let args = strings(&["-h", "machines", "read", "-d"]);
        let (parsed, next) = parse(&args, &[HELP], Stop::AtFirstPositional).unwrap();
        assert!(parsed.flag("help"));
        assert_eq!(next, 1);
    }

    #[test]
    fn name_value_pairs_split_at_the_first_separator() {
        fn check(arg: &str, expected: Result<DataArg, ()>) {
            assert_eq!(name_value_pair(arg).map_err(|_| ()), expected, "{arg}");
        }
        let text = |name: &str, value: &str| {
            Ok(DataArg::Text {
                name: name.to_owned(),
                value: value.to_owned(),
            })
        };
        let file = |name: &str, path: &str| {
            Ok(DataArg::File {
                name: name.to_owned(),
                path: PathBuf::from(path),
            })
        };
        check("hostname=node2", text("hostname", "node2"));
        check("a=b=c", text("a", "b=c"));
        check("a=b@=c", text("a", "b@=c"));
        check("content@=/tmp/root.tgz", file("content", "/tmp/root.tgz"));
        check("a@=b=c", file("a", "b=c"));
        check("empty=", text("empty", ""));
        check("=v", text("", "v"));
        check("plain", Err(()));
    }

    #[test]
    fn positionals_become_params_then_data() {
        let names = strings(&["fabric_id", "vid"]);
        let args = action_args(
            &strings(&["0", "100", "mtu=9000", "mtu=1500"]),
            &names,
            true,
            DataStyle::NameValue,
        )
        .unwrap();
        assert_eq!(
            args.params,
            [
                ("fabric_id".to_owned(), "0".to_owned()),
                ("vid".to_owned(), "100".to_owned())
            ]
        );
        assert_eq!(args.data.len(), 2);
        assert_eq!(args.data[1].name(), "mtu");
        assert_eq!(
            action_args(&strings(&["0"]), &names, true, DataStyle::NameValue).unwrap_err(),
            "the following arguments are required: vid"
        );
        assert_eq!(
            action_args(
                &strings(&["0", "1", "x=1"]),
                &names,
                false,
                DataStyle::NameValue
            )
            .unwrap_err(),
            "unrecognized arguments: x=1"
        );
        assert!(
            action_args(
                &strings(&["0", "1", "bad"]),
                &names,
                true,
                DataStyle::NameValue
            )
            .is_err()
        );
    }

    #[test]
    fn sshkeys_import_takes_bare_key_sources() {
        let args = action_args(
            &strings(&["lp:someone", "keysource=gh:other"]),
            &[],
            true,
            DataStyle::KeySource,
        )
        .unwrap();
        assert_eq!(
            args.data,
            [
                DataArg::Text {
                    name: "keysource".to_owned(),
                    value: "lp:someone".to_owned()
                },
                DataArg::Text {
                    name: "keysource".to_owned(),
                    value: "gh:other".to_owned()
                }
            ]
        );
    }
}
