//! The client half of the `maas` command: `login`, `logout`, `list`, `refresh` and
//! `maas PROFILE HANDLER ACTION …`, built entirely from each profile's cached describe document.
//!
//! Exit codes follow maascli: 0 on success, 2 for an HTTP status outside 2xx (the body is
//! printed on stdout), a usage error or any other failure, and 1 when `login` is refused.

use std::io::{self, BufRead, IsTerminal as _, Write};
use std::path::PathBuf;

use crate::args::{self, CACERTS, DEBUG, DataArg, DataStyle, HELP, INSECURE, OptionSpec, Stop};
use crate::describe::{ActionCommand, CommandSet, DescribeError, HandlerCommand};
use crate::encode::Value;
use crate::http::{self, Client, ClientError, Method, Params, Response, TlsOptions};
use crate::oauth::{Credentials, CredentialsError};
use crate::output;
use crate::profile::{self, Profile, ProfileError, ProfileStore};
use crate::upload::{self, UploadError, UploadOutcome};
use crate::url::{self, SplitUrl, UrlError};

/// Where the command reads and writes, and whether each stream is a terminal.
pub struct Console<'a> {
    pub stdin: &'a mut dyn BufRead,
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
    pub stdin_is_tty: bool,
    pub stdout_is_tty: bool,
    pub stderr_is_tty: bool,
}

/// What the binary tells the library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliConfig {
    /// The program name used in usage lines, normally `maas`.
    pub program: String,
    /// The profile file; `None` when no location could be worked out.
    pub profiles_path: Option<PathBuf>,
    /// Commands the binary handles itself (name, one-line help), listed in `maas --help`.
    pub extra_commands: Vec<(String, String)>,
}

impl CliConfig {
    /// `maas`, with the profile file from the environment (see [`profile::default_profiles_path`]).
    pub fn from_env() -> Self {
        Self {
            program: "maas".to_owned(),
            profiles_path: profile::default_profiles_path(|name| std::env::var_os(name)),
            extra_commands: Vec::new(),
        }
    }
}

/// The names this library handles as the first argument, besides profile names.
pub const COMMANDS: [&str; 4] = ["login", "logout", "list", "refresh"];

/// Runs `maas ARGS…` (everything after the program name) on the process's real stdio, with
/// the profile file from the environment; returns the exit code.
pub fn run_std(args: &[String]) -> i32 {
    run_std_with(args, &CliConfig::from_env())
}

/// [`run_std`] with a given configuration (for example with extra commands for `--help`).
pub fn run_std_with(args: &[String], config: &CliConfig) -> i32 {
    let stdin = io::stdin();
    let stdout = io::stdout();
    let stderr = io::stderr();
    let stdin_is_tty = stdin.is_terminal();
    let stdout_is_tty = stdout.is_terminal();
    let stderr_is_tty = stderr.is_terminal();
    let mut stdin = stdin.lock();
    let mut stdout = stdout.lock();
    let mut stderr = stderr.lock();
    let mut console = Console {
        stdin: &mut stdin,
        stdout: &mut stdout,
        stderr: &mut stderr,
        stdin_is_tty,
        stdout_is_tty,
        stderr_is_tty,
    };
    run(args, config, &mut console)
}

/// Runs `maas ARGS…` (everything after the program name); returns the exit code.
pub fn run(args: &[String], config: &CliConfig, console: &mut Console<'_>) -> i32 {
    let code = match dispatch(args, config, console) {
        Ok(code) => code,
        Err(error) => report(&error, &config.program, console),
    };
    // Nothing useful can be done if the final flush fails.
    let _ = console.stdout.flush();
    let _ = console.stderr.flush();
    code
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{message}")]
    Usage { usage: String, message: String },
    /// `login` was refused: exit code 1.
    #[error("{0}")]
    LoginRefused(String),
    #[error("unknown profile {name:?}")]
    UnknownProfile { name: String },
    #[error("fetching the API description from {url} failed: {status} {reason}:\n{body}")]
    DescribeStatus {
        url: String,
        status: u16,
        reason: String,
        body: String,
    },
    #[error("Expected application/json, got: {content_type}")]
    DescribeContentType { content_type: String },
    #[error("the API description from {url} is not valid JSON")]
    DescribeJson {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("unexpected reply from {url}: HTTP {status}")]
    UnexpectedReply { url: String, status: u16 },
    #[error("cannot read {path}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Failed(String),
    #[error("no profile file location: set MAAS_CLI_CONFIG, XDG_CONFIG_HOME or HOME")]
    NoProfileLocation,
    #[error("refreshing failed for {}", .0.join(", "))]
    RefreshFailed(Vec<String>),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Describe(#[from] DescribeError),
    #[error(transparent)]
    Upload(#[from] UploadError),
    #[error("cannot write output")]
    Output(#[from] io::Error),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::LoginRefused(_) => 1,
            _ => 2,
        }
    }
}

fn report(error: &CliError, program: &str, console: &mut Console<'_>) -> i32 {
    let stderr = &mut *console.stderr;
    // Errors on stderr itself cannot be reported anywhere.
    let _ = match error {
        CliError::Usage { usage, message } => {
            writeln!(stderr, "{usage}\n{program}: error: {message}")
        }
        CliError::LoginRefused(message) => writeln!(stderr, "{message}"),
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            writeln!(stderr, "{program}: error: {text}")
        }
    };
    error.exit_code()
}

fn usage_error(usage: &str, message: impl Into<String>) -> CliError {
    CliError::Usage {
        usage: usage.to_owned(),
        message: message.into(),
    }
}

fn parse_or_usage(
    args: &[String],
    options: &[OptionSpec],
    stop: Stop,
    usage: &str,
) -> Result<(args::Parsed, usize), CliError> {
    args::parse(args, options, stop).map_err(|message| usage_error(usage, message))
}

fn dispatch(
    args: &[String],
    config: &CliConfig,
    console: &mut Console<'_>,
) -> Result<i32, CliError> {
    let program = config.program.as_str();
    // `--debug` before the command is accepted as maascli does; it changes nothing here.
    let top_options = [
        HELP,
        OptionSpec {
            key: "debug",
            long: "--debug",
            short: None,
            takes_value: false,
        },
    ];
    let usage = format!("usage: {program} [-h] COMMAND ...");
    let (parsed, next) = parse_or_usage(args, &top_options, Stop::AtFirstPositional, &usage)?;
    let store = || -> Result<ProfileStore, CliError> {
        let path = config
            .profiles_path
            .clone()
            .ok_or(CliError::NoProfileLocation)?;
        Ok(ProfileStore::load(path)?)
    };
    if parsed.flag("help") {
        let profiles = match &config.profiles_path {
            Some(path) => ProfileStore::load(path)
                .map(|store| store.profiles().to_vec())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        console
            .stdout
            .write_all(top_help(config, &profiles).as_bytes())?;
        return Ok(0);
    }
    let Some(command) = args.get(next) else {
        return Err(usage_error(&usage, "too few arguments"));
    };
    let rest = &args[next + 1..];
    match command.as_str() {
        "login" => login(rest, config, console),
        "logout" => logout(rest, config, store()?, console),
        "list" => list(rest, config, store()?, console),
        "refresh" => refresh(rest, config, store()?, console),
        name => {
            let store = store()?;
            match store.get(name) {
                Some(profile) => profile_command(profile, rest, program, console),
                None => {
                    let mut choices: Vec<String> =
                        COMMANDS.iter().map(|c| (*c).to_owned()).collect();
                    choices.extend(config.extra_commands.iter().map(|(name, _)| name.clone()));
                    choices.extend(store.profiles().iter().map(|p| p.name.clone()));
                    Err(usage_error(
                        &usage,
                        format!(
                            "argument COMMAND: invalid choice: {name:?} (choose from {})",
                            quoted_list(&choices)
                        ),
                    ))
                }
            }
        }
    }
}

fn quoted_list(names: &[String]) -> String {
    names
        .iter()
        .map(|name| format!("{name:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------
// Help texts.

fn top_help(config: &CliConfig, profiles: &[Profile]) -> String {
    let program = &config.program;
    let mut entries: Vec<(String, String)> = vec![
        (
            "login".to_owned(),
            "Log in to a MAAS region and remember its API description and key.".to_owned(),
        ),
        (
            "logout".to_owned(),
            "Forget a profile and its stored key.".to_owned(),
        ),
        (
            "list".to_owned(),
            "List the profiles you are logged in with.".to_owned(),
        ),
        (
            "refresh".to_owned(),
            "Fetch the API description of every profile again.".to_owned(),
        ),
    ];
    entries.extend(config.extra_commands.iter().cloned());
    entries.extend(profiles.iter().map(|profile| {
        (
            profile.name.clone(),
            format!("Interact with {}", profile.url),
        )
    }));
    format!(
        "usage: {program} [-h] COMMAND ...\n\n\
         Command-line client for the MAAS REST API.\n\n\
         commands:\n{}\n\
         options:\n  -h, --help  show this help message and exit\n",
        command_table(&entries)
    )
}

fn command_table(entries: &[(String, String)]) -> String {
    let width = entries
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0);
    let mut table = String::new();
    for (name, help) in entries {
        if help.is_empty() {
            table.push_str(&format!("  {name}\n"));
        } else {
            table.push_str(&format!("  {name:<width$}  {help}\n"));
        }
    }
    table
}

fn profile_usage(program: &str, profile: &Profile) -> String {
    format!("usage: {program} {} [-h] COMMAND ...", profile.name)
}

fn profile_help(program: &str, profile: &Profile, commands: &CommandSet) -> String {
    let entries: Vec<(String, String)> = commands
        .handlers
        .iter()
        .map(|handler| (handler.name.clone(), handler.title.clone()))
        .collect();
    format!(
        "{}\n\n\
         Issue commands to the MAAS region controller at {}.\n\n\
         commands:\n{}\n\
         The commands come from the API description saved at login; run\n\
         `{program} refresh` after the region is upgraded.\n",
        profile_usage(program, profile),
        profile.url,
        command_table(&entries)
    )
}

fn handler_usage(program: &str, profile: &Profile, handler: &HandlerCommand) -> String {
    format!(
        "usage: {program} {} {} [-h] COMMAND ...",
        profile.name, handler.name
    )
}

fn handler_help(program: &str, profile: &Profile, handler: &HandlerCommand) -> String {
    let entries: Vec<(String, String)> = handler
        .actions
        .iter()
        .map(|action| (action.name.clone(), action.title.clone()))
        .collect();
    let mut text = format!(
        "{}\n\n{}\n",
        handler_usage(program, profile, handler),
        handler.title
    );
    if !handler.body.trim().is_empty() {
        text.push('\n');
        text.push_str(handler.body.trim_end());
        text.push('\n');
    }
    text.push_str(&format!("\ncommands:\n{}", command_table(&entries)));
    text
}

fn action_usage(
    program: &str,
    profile: &Profile,
    handler: &HandlerCommand,
    action: &ActionCommand,
) -> String {
    let mut usage = format!(
        "usage: {program} {} {} {} [--help] [-d] [-k]",
        profile.name, handler.name, action.name
    );
    for param in &handler.params {
        usage.push(' ');
        usage.push_str(param);
    }
    if action.accepts_data {
        usage.push_str(" [data ...]");
    }
    usage
}

fn action_help(
    program: &str,
    profile: &Profile,
    handler: &HandlerCommand,
    action: &ActionCommand,
) -> String {
    let mut text = format!(
        "{}\n\n{}\n",
        action_usage(program, profile, handler, action),
        action.title
    );
    if !handler.params.is_empty() {
        text.push_str("\nPositional arguments:\n");
        for param in &handler.params {
            text.push_str(&format!("\t{param}\n"));
        }
    }
    let body = action.body.trim_end();
    if !body.is_empty() {
        text.push('\n');
        if body.contains(":param ") {
            text.push_str(
                "This method accepts keyword arguments. Pass each one as key=value\n\
                 (or key@=path to send a file's contents), after any positional\n\
                 arguments. Repeat a key to send a list.\n\n",
            );
        }
        text.push_str(body);
        text.push('\n');
    }
    text.push_str(
        "\nCommon command-line options:\n\
         \x20   --help, -h\n\tShow this help message and exit.\n\
         \x20   -d, --debug\n\tDisplay more information about API responses.\n\
         \x20   -k, --insecure\n\tDisable SSL certificate check\n",
    );
    text
}

// ---------------------------------------------------------------------------------------
// login, logout, list, refresh.

fn login(args: &[String], config: &CliConfig, console: &mut Console<'_>) -> Result<i32, CliError> {
    let program = &config.program;
    let usage = format!(
        "usage: {program} login [-h] [--cacerts CACERTS] [-k] profile-name url [credentials]"
    );
    let (parsed, _) = parse_or_usage(args, &[HELP, CACERTS, INSECURE], Stop::AtEnd, &usage)?;
    if parsed.flag("help") {
        writeln!(
            console.stdout,
            "{usage}\n\n\
             Log in to a MAAS region, and remember its API description and key.\n\n\
             positional arguments:\n\
             \x20 profile-name  the name you will use for this region in later commands\n\
             \x20 url           the region's URL, e.g. http://example.com:5240/MAAS/\n\
             \x20 credentials   the API key (consumer:token:secret); `-` reads it from stdin,\n\
             \x20               and without it you are asked for it (empty: anonymous)\n\n\
             options:\n\
             \x20 -h, --help         show this help message and exit\n\
             \x20 --cacerts CACERTS  CA certificates (PEM) to trust for https\n\
             \x20 -k, --insecure     do not check the server's certificate"
        )?;
        return Ok(0);
    }
    let (name, raw_url, key) = match parsed.positionals.as_slice() {
        [name, url] => (name, url, None),
        [name, url, key] => (name, url, Some(key.as_str())),
        [] => {
            return Err(usage_error(
                &usage,
                "the following arguments are required: profile-name, url",
            ));
        }
        [_] => {
            return Err(usage_error(
                &usage,
                "the following arguments are required: url",
            ));
        }
        [_, _, _, extra @ ..] => {
            return Err(usage_error(
                &usage,
                format!("unrecognized arguments: {}", extra.join(" ")),
            ));
        }
    };
    let api_url = url::api_url(raw_url)
        .map_err(|error| usage_error(&usage, format!("argument url: {error}")))?;
    let insecure = parsed.flag("insecure");
    if insecure && parsed.value("cacerts").is_some() {
        return Err(CliError::LoginRefused(
            "You cannot use both cacerts and insecure arguments.".to_owned(),
        ));
    }
    let cacerts = match parsed.value("cacerts") {
        Some(path) => {
            let pem = std::fs::read_to_string(path).map_err(|source| CliError::ReadFile {
                path: PathBuf::from(path),
                source,
            })?;
            http::validate_ca_certificates(&pem)
                .map_err(|_| CliError::Failed("Invalid PEM material".to_owned()))?;
            Some(pem)
        }
        None => None,
    };
    let tls = TlsOptions {
        insecure,
        ca_certificates_pem: cacerts.clone(),
    };
    let credentials = obtain_credentials(&api_url, key, &tls, console)?;
    if let Some(credentials) = &credentials {
        check_api_key(&api_url, credentials, &tls)?;
    }
    let description = fetch_description(&api_url, &tls)?;
    let path = config
        .profiles_path
        .clone()
        .ok_or(CliError::NoProfileLocation)?;
    let mut store = ProfileStore::load(path)?;
    store.insert(Profile {
        name: name.clone(),
        url: api_url.clone(),
        credentials,
        description,
        cacerts,
    });
    store.save()?;
    let message = format!(
        "You are now logged in to the MAAS server at {api_url} with the profile name '{name}'."
    );
    writeln!(
        console.stdout,
        "\n{}\n\nFor help with the available commands, try:\n\n  {program} {name} --help\n",
        wrap(&message, 70)
    )?;
    Ok(0)
}

/// The key from the command line, from stdin (`-`), from the region (macaroon login, which
/// only works with external authentication), or from a prompt. `None` means anonymous.
fn obtain_credentials(
    api_url: &str,
    key: Option<&str>,
    tls: &TlsOptions,
    console: &mut Console<'_>,
) -> Result<Option<Credentials>, CliError> {
    let text = match key {
        Some("-") => {
            let mut line = String::new();
            console.stdin.read_line(&mut line)?;
            Some(line.trim().to_owned())
        }
        Some(key) => Some(key.to_owned()),
        None => match key_from_region(api_url, tls)? {
            Some(key) => Some(key),
            None => prompt_for_key(console)?,
        },
    };
    match text {
        Some(text) if !text.trim().is_empty() => Ok(Some(Credentials::parse(&text)?)),
        _ => Ok(None),
    }
}

/// maascli first asks the region for a new token without a key; a region without external
/// authentication refuses (anything but 200), and the user is asked for a key instead.
fn key_from_region(api_url: &str, tls: &TlsOptions) -> Result<Option<String>, CliError> {
    let client = Client::with_tls(api_url, None, tls)?;
    let response = client.post("account/", &Params::new().op("create_authorisation_token"))?;
    if response.status != 200 {
        return Ok(None);
    }
    let Ok(document) = response.json() else {
        return Ok(None);
    };
    let part = |key: &str| {
        document
            .get(key)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    Ok(
        match (
            part("consumer_key"),
            part("token_key"),
            part("token_secret"),
        ) {
            (Some(consumer), Some(token), Some(secret)) => {
                Some(format!("{consumer}:{token}:{secret}"))
            }
            _ => None,
        },
    )
}

fn prompt_for_key(console: &mut Console<'_>) -> Result<Option<String>, CliError> {
    const PROMPT: &str = "API key (leave empty for anonymous access): ";
    if console.stdin_is_tty {
        // Read from the terminal without echo, as getpass does.
        return match rpassword::prompt_password(PROMPT) {
            Ok(key) => Ok(Some(key)),
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(error) => Err(error.into()),
        };
    }
    write!(console.stderr, "{PROMPT}")?;
    console.stderr.flush()?;
    let mut line = String::new();
    if console.stdin.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

/// A signed `GET users/?op=whoami`: 200 accepts the key, 401 refuses it, anything else is
/// unexpected (both refusals exit with 1).
fn check_api_key(
    api_url: &str,
    credentials: &Credentials,
    tls: &TlsOptions,
) -> Result<(), CliError> {
    let client = Client::with_tls(api_url, Some(credentials.clone()), tls)?;
    let response = client.get("users/", &Params::new().op("whoami"))?;
    match response.status {
        200 => Ok(()),
        401 => Err(CliError::LoginRefused(
            "The MAAS server rejected your API key.".to_owned(),
        )),
        status => Err(CliError::LoginRefused(format!(
            "The MAAS server gave an unexpected response: {status}"
        ))),
    }
}

/// An unsigned `GET describe/`, which must answer 200 with `Content-Type: application/json`
/// exactly.
pub fn fetch_description(api_url: &str, tls: &TlsOptions) -> Result<serde_json::Value, CliError> {
    let client = Client::with_tls(api_url, None, tls)?;
    let url = client.url_for("describe/")?;
    let response = client.get("describe/", &Params::new())?;
    if response.status != 200 {
        return Err(CliError::DescribeStatus {
            url,
            status: response.status,
            reason: response.reason.clone(),
            body: response.text(),
        });
    }
    match response.header("content-type") {
        Some("application/json") => {}
        other => {
            return Err(CliError::DescribeContentType {
                content_type: other.unwrap_or("(none)").to_owned(),
            });
        }
    }
    response
        .json()
        .map_err(|source| CliError::DescribeJson { url, source })
}

fn logout(
    args: &[String],
    config: &CliConfig,
    mut store: ProfileStore,
    console: &mut Console<'_>,
) -> Result<i32, CliError> {
    let usage = format!("usage: {} logout [-h] profile-name", config.program);
    let (parsed, _) = parse_or_usage(args, &[HELP], Stop::AtEnd, &usage)?;
    if parsed.flag("help") {
        writeln!(
            console.stdout,
            "{usage}\n\nForget a profile and the API key stored with it."
        )?;
        return Ok(0);
    }
    let name = match parsed.positionals.as_slice() {
        [name] => name,
        [] => {
            return Err(usage_error(
                &usage,
                "the following arguments are required: profile-name",
            ));
        }
        [_, extra @ ..] => {
            return Err(usage_error(
                &usage,
                format!("unrecognized arguments: {}", extra.join(" ")),
            ));
        }
    };
    // Like maascli, logging out of an unknown profile quietly succeeds.
    if store.remove(name).is_some() {
        store.save()?;
    }
    Ok(0)
}

fn list(
    args: &[String],
    config: &CliConfig,
    store: ProfileStore,
    console: &mut Console<'_>,
) -> Result<i32, CliError> {
    let usage = format!("usage: {} list [-h]", config.program);
    let (parsed, _) = parse_or_usage(args, &[HELP], Stop::AtEnd, &usage)?;
    if parsed.flag("help") {
        writeln!(
            console.stdout,
            "{usage}\n\nList the profiles you are logged in with: name, URL and API key."
        )?;
        return Ok(0);
    }
    if !parsed.positionals.is_empty() {
        return Err(usage_error(
            &usage,
            format!("unrecognized arguments: {}", parsed.positionals.join(" ")),
        ));
    }
    for profile in store.profiles() {
        match &profile.credentials {
            Some(credentials) => writeln!(
                console.stdout,
                "{} {} {}",
                profile.name,
                profile.url,
                credentials.to_key_string()
            )?,
            None => writeln!(console.stdout, "{} {}", profile.name, profile.url)?,
        }
    }
    Ok(0)
}

fn refresh(
    args: &[String],
    config: &CliConfig,
    mut store: ProfileStore,
    console: &mut Console<'_>,
) -> Result<i32, CliError> {
    let usage = format!("usage: {} refresh [-h]", config.program);
    let (parsed, _) = parse_or_usage(args, &[HELP], Stop::AtEnd, &usage)?;
    if parsed.flag("help") {
        writeln!(
            console.stdout,
            "{usage}\n\nFetch the API description of every profile again."
        )?;
        return Ok(0);
    }
    if !parsed.positionals.is_empty() {
        return Err(usage_error(
            &usage,
            format!("unrecognized arguments: {}", parsed.positionals.join(" ")),
        ));
    }
    let mut failures = Vec::new();
    let names: Vec<String> = store
        .profiles()
        .iter()
        .map(|profile| profile.name.clone())
        .collect();
    for name in names {
        let Some(profile) = store.get_mut(&name) else {
            continue;
        };
        let tls = TlsOptions {
            insecure: false,
            ca_certificates_pem: profile.cacerts.clone(),
        };
        match fetch_description(&profile.url, &tls) {
            Ok(description) => profile.description = description,
            Err(error) => failures.push(format!("{name} ({})", error_chain(&error))),
        }
    }
    store.save()?;
    if failures.is_empty() {
        Ok(0)
    } else {
        Err(CliError::RefreshFailed(failures))
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Greedy word wrap, like Python's `textwrap.fill`.
fn wrap(text: &str, width: usize) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines.join("\n")
}

// ---------------------------------------------------------------------------------------
// maas PROFILE HANDLER ACTION …

fn profile_command(
    profile: &Profile,
    args: &[String],
    program: &str,
    console: &mut Console<'_>,
) -> Result<i32, CliError> {
    let commands =
        CommandSet::from_description(&profile.description, profile.credentials.is_none())?;
    let usage = profile_usage(program, profile);
    let (parsed, next) = parse_or_usage(args, &[HELP], Stop::AtFirstPositional, &usage)?;
    if parsed.flag("help") {
        console
            .stdout
            .write_all(profile_help(program, profile, &commands).as_bytes())?;
        return Ok(0);
    }
    let Some(handler_name) = args.get(next) else {
        return Err(usage_error(&usage, "too few arguments"));
    };
    let Some(handler) = commands.handler(handler_name) else {
        for problem in &commands.problems {
            writeln!(
                console.stderr,
                "warning: skipped part of the API description: {problem}"
            )?;
        }
        let names: Vec<String> = commands.handlers.iter().map(|h| h.name.clone()).collect();
        return Err(usage_error(
            &usage,
            format!(
                "argument COMMAND: invalid choice: {handler_name:?} (choose from {})",
                quoted_list(&names)
            ),
        ));
    };
    let args = &args[next + 1..];
    let usage = handler_usage(program, profile, handler);
    let (parsed, next) = parse_or_usage(args, &[HELP], Stop::AtFirstPositional, &usage)?;
    if parsed.flag("help") {
        console
            .stdout
            .write_all(handler_help(program, profile, handler).as_bytes())?;
        return Ok(0);
    }
    let Some(action_name) = args.get(next) else {
        return Err(usage_error(&usage, "too few arguments"));
    };
    let Some(action) = handler.action(action_name) else {
        let names: Vec<String> = handler.actions.iter().map(|a| a.name.clone()).collect();
        return Err(usage_error(
            &usage,
            format!(
                "argument COMMAND: invalid choice: {action_name:?} (choose from {})",
                quoted_list(&names)
            ),
        ));
    };
    run_action(
        profile,
        handler,
        action,
        &args[next + 1..],
        program,
        console,
    )
}

/// The built-in special cases, found by command names as maascli finds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Special {
    Generic,
    BootResourcesCreate,
    SshKeysImport,
}

fn special_for(handler: &HandlerCommand, action: &ActionCommand) -> Special {
    match (handler.name.as_str(), action.name.as_str()) {
        ("boot-resources", "create") => Special::BootResourcesCreate,
        ("sshkeys", "import") => Special::SshKeysImport,
        _ => Special::Generic,
    }
}

fn run_action(
    profile: &Profile,
    handler: &HandlerCommand,
    action: &ActionCommand,
    args: &[String],
    program: &str,
    console: &mut Console<'_>,
) -> Result<i32, CliError> {
    let usage = action_usage(program, profile, handler, action);
    let (parsed, _) = parse_or_usage(args, &[HELP, DEBUG, INSECURE], Stop::AtEnd, &usage)?;
    if parsed.flag("help") {
        console
            .stdout
            .write_all(action_help(program, profile, handler, action).as_bytes())?;
        return Ok(0);
    }
    let special = special_for(handler, action);
    let style = if special == Special::SshKeysImport {
        DataStyle::KeySource
    } else {
        DataStyle::NameValue
    };
    let action_args = args::action_args(
        &parsed.positionals,
        &handler.params,
        action.accepts_data,
        style,
    )
    .map_err(|message| usage_error(&usage, message))?;
    let method = Method::parse(&action.method)?;
    let uri = action_url(profile, handler, &action_args.params)?;
    let tls = TlsOptions {
        insecure: parsed.flag("insecure"),
        ca_certificates_pem: profile.cacerts.clone(),
    };
    let client = Client::with_tls(&profile.url, profile.credentials.clone(), &tls)?;
    if special == Special::BootResourcesCreate {
        return boot_resources_create(&client, &uri, action_args.data, console);
    }
    let fields = read_fields(action_args.data)?;
    let request = http::prepare(
        method,
        &uri,
        &Params {
            op: action.op.clone(),
            fields,
        },
    );
    let response = client.execute(request)?;
    warn_on_hash_mismatch(profile, &response, console)?;
    if parsed.flag("debug") {
        output::print_response_summary(console.stderr, &response)?;
    }
    output::print_response(console.stdout, &response, console.stdout_is_tty)?;
    Ok(if response.is_success() { 0 } else { 2 })
}

/// `scheme://host` of the profile URL plus the handler's `path` with its placeholders filled.
fn action_url(
    profile: &Profile,
    handler: &HandlerCommand,
    params: &[(String, String)],
) -> Result<String, CliError> {
    let origin = SplitUrl::parse(&profile.url)?.origin();
    let mut path = handler.path.clone();
    for (name, value) in params {
        // Values go in as given, `/` included (`subnet read 10.0.0.0/24`), as maascli does.
        path = path.replace(&format!("{{{name}}}"), &url::escape_path(value));
    }
    Ok(format!("{origin}{path}"))
}

/// Reads `key@=path` files; `key=value` stays text.
fn read_fields(data: Vec<DataArg>) -> Result<Vec<(String, Value)>, CliError> {
    data.into_iter()
        .map(|arg| match arg {
            DataArg::Text { name, value } => Ok((name, Value::Text(value))),
            DataArg::File { name, path } => {
                let contents = std::fs::read(&path).map_err(|source| CliError::ReadFile {
                    path: path.clone(),
                    source,
                })?;
                Ok((
                    name,
                    Value::File {
                        contents,
                        local_name: Some(path.to_string_lossy().into_owned()),
                    },
                ))
            }
        })
        .collect()
}

fn warn_on_hash_mismatch(
    profile: &Profile,
    response: &Response,
    console: &mut Console<'_>,
) -> io::Result<()> {
    let Some(remote) = response.header("x-maas-api-hash") else {
        return Ok(());
    };
    let cached = profile
        .description
        .get("hash")
        .and_then(serde_json::Value::as_str);
    if cached == Some(remote) {
        return Ok(());
    }
    let rule = "*".repeat(70);
    let message = format!(
        "WARNING: the API on the server differs from the description cached for profile \
         '{}', so commands may fail or be missing. Update the cached description with \
         `maas refresh`.",
        profile.name
    );
    writeln!(console.stderr, "{rule}")?;
    for line in wrap(&message, 66).lines() {
        writeln!(console.stderr, "*** {line}")?;
    }
    writeln!(console.stderr, "{rule}")
}

fn boot_resources_create(
    client: &Client,
    uri: &str,
    data: Vec<DataArg>,
    console: &mut Console<'_>,
) -> Result<i32, CliError> {
    // maascli turns the arguments into a dict: the last value of a repeated key wins.
    let mut fields: Vec<(String, DataArg)> = Vec::new();
    for arg in data {
        let name = arg.name().to_owned();
        fields.retain(|(known, _)| *known != name);
        fields.push((name, arg));
    }
    let content = match fields.iter().position(|(name, _)| name == "content") {
        Some(index) => fields.remove(index).1,
        None => {
            writeln!(console.stdout, "Missing content.")?;
            return Ok(2);
        }
    };
    let DataArg::File {
        path: content_path, ..
    } = content
    else {
        return Err(CliError::Failed(
            "give the image as content@=FILE".to_owned(),
        ));
    };
    let fields = read_fields(fields.into_iter().map(|(_, arg)| arg).collect())?;
    let show_progress = console.stderr_is_tty;
    let stderr = &mut *console.stderr;
    let mut progress = |sent: u64, total: u64| {
        if show_progress {
            // Progress is decoration; a failed write must not stop the upload.
            let _ = draw_progress(stderr, sent, total);
        }
    };
    let outcome = upload::create_boot_resource(client, uri, fields, &content_path, &mut progress);
    if show_progress && matches!(outcome, Ok(UploadOutcome::Uploaded { chunks, .. }) if chunks > 0)
    {
        writeln!(console.stderr)?;
    }
    match outcome {
        Ok(_) => Ok(0),
        Err(UploadError::CreateRefused(response) | UploadError::ChunkRefused(response)) => {
            if show_progress {
                writeln!(console.stderr)?;
            }
            output::print_response(console.stdout, &response, console.stdout_is_tty)?;
            Ok(2)
        }
        Err(UploadError::UnidentifiedResource { detail }) => {
            writeln!(console.stdout, "Failed to identify created resource.")?;
            writeln!(console.stderr, "{detail}")?;
            Ok(2)
        }
        Err(other) => Err(other.into()),
    }
}

fn draw_progress(out: &mut dyn Write, sent: u64, total: u64) -> io::Result<()> {
    const WIDTH: u64 = 40;
    let fraction = if total == 0 {
        1.0
    } else {
        sent as f64 / total as f64
    };
    let filled = ((fraction * WIDTH as f64) as u64).min(WIDTH);
    let mebibyte = 1024.0 * 1024.0;
    write!(
        out,
        "\r[{}{}] {:>3}% {:.1}/{:.1} MiB",
        "#".repeat(filled as usize),
        " ".repeat((WIDTH - filled) as usize),
        (fraction * 100.0) as u64,
        sent as f64 / mebibyte,
        total as f64 / mebibyte
    )?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_fills_to_width() {
        assert_eq!(wrap("a bb ccc dddd", 6), "a bb\nccc\ndddd");
        assert_eq!(wrap("", 10), "");
    }

    #[test]
    fn action_url_fills_placeholders_on_the_profile_host() {
        let profile = Profile {
            name: "admin".to_owned(),
            url: "http://region:5240/MAAS/api/2.0/".to_owned(),
            credentials: None,
            description: serde_json::Value::Null,
            cacerts: None,
        };
        let handler = HandlerCommand {
            name: "vlan".to_owned(),
            resource_name: "VlanHandler".to_owned(),
            title: String::new(),
            body: String::new(),
            path: "/MAAS/api/2.0/fabrics/{fabric_id}/vlans/{vid}/".to_owned(),
            params: vec!["fabric_id".to_owned(), "vid".to_owned()],
            actions: Vec::new(),
        };
        let params = [
            ("fabric_id".to_owned(), "0".to_owned()),
            ("vid".to_owned(), "a b/c".to_owned()),
        ];
        assert_eq!(
            action_url(&profile, &handler, &params).unwrap(),
            "http://region:5240/MAAS/api/2.0/fabrics/0/vlans/a%20b/c/"
        );
    }

    #[test]
    fn progress_bar_shows_share_and_sizes() {
        let mut out = Vec::new();
        draw_progress(&mut out, 2 * 1024 * 1024, 4 * 1024 * 1024).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("\r[####################                    ]  50%"),
            "{text:?}"
        );
        assert!(text.ends_with("2.0/4.0 MiB"), "{text:?}");
    }
}
