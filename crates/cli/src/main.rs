//! `maas`: the region's local admin commands, and every API client command
//! (`login`, `PROFILE RESOURCE ACTION …`), which `maas-client` runs.

// A faster allocator: listings allocate and free many small strings.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod admin;
mod config;

use std::process::ExitCode;

const ADMIN_COMMANDS: [(&str, &str); 5] = [
    (
        "init",
        "Write the region configuration and create the database.",
    ),
    ("start", "Run the region in the foreground until SIGTERM."),
    ("createadmin", "Create a MAAS administrator account."),
    ("apikey", "Print, create or delete a user's API keys."),
    ("changepassword", "Change a MAAS user's password."),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map(String::as_str).unwrap_or("");
    if ADMIN_COMMANDS.iter().any(|(name, _)| *name == command) {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                eprintln!("maas: cannot start the async runtime: {error}");
                return ExitCode::from(1);
            }
        };
        return match runtime.block_on(admin::run(command, &args[1..])) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("maas {command}: {error:#}");
                ExitCode::from(1)
            }
        };
    }
    let mut client_config = maas_client::CliConfig::from_env();
    client_config.extra_commands = ADMIN_COMMANDS
        .iter()
        .map(|(name, help)| ((*name).to_owned(), (*help).to_owned()))
        .collect();
    let code = maas_client::cli::run_std_with(&args, &client_config);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
