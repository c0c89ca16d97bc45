//! Integration tests: the `maas` commands and the HTTP client against a recording test peer.

// Test helpers outside #[test] functions fail loudly by design, like the tests themselves.
#![allow(clippy::unwrap_used)]

mod client;
mod commands;
mod login;
mod multipart_python;
mod peer;

use std::io::Cursor;
use std::path::{Path, PathBuf};

use maas_client::cli::{self, CliConfig, Console};
use maas_client::{Credentials, Profile, ProfileStore};

pub const KEY: &str = "ck18charsxxxxxxxxx:tk18charsxxxxxxxxx:ts32charsxxxxxxxxxxxxxxxxxxxxxxx";
pub const FIXTURE_HASH: &str = "0f3c5d0e9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e";

pub fn fixture_text() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/describe.json"
    ))
    .expect("describe fixture")
}

pub fn fixture() -> serde_json::Value {
    serde_json::from_str(&fixture_text()).expect("fixture is JSON")
}

/// A fresh directory for one test's files.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "maas-client-it-{name}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub struct Terminal {
    pub stdout_is_tty: bool,
    pub stderr_is_tty: bool,
}

pub const PIPES: Terminal = Terminal {
    stdout_is_tty: false,
    stderr_is_tty: false,
};

/// Runs `maas ARGS` with the given profile file and stdin.
pub fn maas(profiles: &Path, args: &[&str], stdin: &str) -> Run {
    maas_on(profiles, args, stdin, PIPES)
}

pub fn maas_on(profiles: &Path, args: &[&str], stdin: &str, terminal: Terminal) -> Run {
    let config = CliConfig {
        program: "maas".to_owned(),
        profiles_path: Some(profiles.to_owned()),
        extra_commands: vec![("init".to_owned(), "Initialise the region.".to_owned())],
    };
    let mut input = Cursor::new(stdin.as_bytes().to_vec());
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let code = {
        let mut console = Console {
            stdin: &mut input,
            stdout: &mut stdout,
            stderr: &mut stderr,
            stdin_is_tty: false,
            stdout_is_tty: terminal.stdout_is_tty,
            stderr_is_tty: terminal.stderr_is_tty,
        };
        cli::run(&args, &config, &mut console)
    };
    Run {
        code,
        stdout: String::from_utf8(stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(stderr).expect("utf-8 stderr"),
    }
}

/// Saves a profile for `url` with the fixture description, as `maas login` would.
pub fn save_profile(profiles: &Path, name: &str, url: &str, key: Option<&str>) {
    let mut store = ProfileStore::load(profiles).expect("load profiles");
    store.insert(Profile {
        name: name.to_owned(),
        url: maas_client::url::api_url(url).expect("valid URL"),
        credentials: key.map(|key| Credentials::parse(key).expect("valid key")),
        description: fixture(),
        cacerts: None,
    });
    store.save().expect("save profiles");
}

/// Checks the shape of maascli's OAuth header and that it carries the key.
pub fn assert_signed(header: Option<&str>) {
    let header = header.expect("an Authorization header");
    assert!(header.starts_with("OAuth oauth_nonce=\""), "{header}");
    for part in [
        "oauth_version=\"1.0\"",
        "oauth_signature_method=\"PLAINTEXT\"",
        "oauth_consumer_key=\"ck18charsxxxxxxxxx\"",
        "oauth_token=\"tk18charsxxxxxxxxx\"",
        "oauth_signature=\"%26ts32charsxxxxxxxxxxxxxxxxxxxxxxx\"",
    ] {
        assert!(header.contains(part), "{part} missing from {header}");
    }
    assert!(!header.contains("realm"), "{header}");
}
