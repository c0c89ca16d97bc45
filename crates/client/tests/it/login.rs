//! `maas login`, `logout`, `list` and `refresh` against the test peer.

use crate::peer::{Peer, Reply};
use crate::{FIXTURE_HASH, KEY, assert_signed, fixture_text, maas, save_profile, temp_dir};
use maas_client::ProfileStore;

/// A region that accepts any key and serves the fixture description.
fn region(whoami_status: u16, describe_type: &'static str) -> Peer {
    Peer::start(move |request| match request.path() {
        "/MAAS/api/2.0/users/" if request.query() == "op=whoami" => {
            Reply::json(whoami_status, r#"{"username": "admin"}"#)
        }
        "/MAAS/api/2.0/describe/" => Reply::new(200, Some(describe_type), fixture_text()),
        "/MAAS/api/2.0/account/" => Reply::text(401, "Authorization Error"),
        _ => Reply::text(404, "Unknown API endpoint"),
    })
}

#[test]
fn login_checks_the_key_then_saves_the_description() {
    let peer = region(200, "application/json");
    let dir = temp_dir("login-ok");
    let profiles = dir.join("maas").join("profiles.json");
    let run = maas(&profiles, &["login", "admin", &peer.maas_url(), KEY], "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let api_url = format!("{}/MAAS/api/2.0/", peer.origin());
    assert!(
        run.stdout.replace('\n', " ").contains(&format!(
            "logged in to the MAAS server at {api_url} with the profile name 'admin'."
        )),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("maas admin --help"), "{}", run.stdout);

    let requests = peer.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].target, "/MAAS/api/2.0/users/?op=whoami");
    assert_signed(requests[0].header("authorization"));
    assert!(requests[0].body.is_empty());
    assert_eq!(requests[1].method, "GET");
    assert_eq!(requests[1].target, "/MAAS/api/2.0/describe/");
    assert_eq!(requests[1].header("authorization"), None);

    let store = ProfileStore::load(&profiles).unwrap();
    let profile = store.get("admin").unwrap();
    assert_eq!(profile.url, api_url);
    assert_eq!(profile.credentials.as_ref().unwrap().to_key_string(), KEY);
    assert_eq!(profile.description["hash"], FIXTURE_HASH);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&profiles).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn login_reads_the_key_from_stdin_with_a_dash() {
    let peer = region(200, "application/json");
    let dir = temp_dir("login-stdin");
    let profiles = dir.join("profiles.json");
    let run = maas(
        &profiles,
        &["login", "admin", &peer.maas_url(), "-"],
        &format!("{KEY}\n"),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_signed(peer.requests()[0].header("authorization"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_rejected_key_exits_1_and_saves_nothing() {
    let peer = region(401, "application/json");
    let dir = temp_dir("login-401");
    let profiles = dir.join("profiles.json");
    let run = maas(&profiles, &["login", "admin", &peer.maas_url(), KEY], "");
    assert_eq!(run.code, 1);
    assert_eq!(run.stderr, "The MAAS server rejected your API key.\n");
    assert_eq!(peer.requests().len(), 1, "describe must not be fetched");
    assert!(!profiles.exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn another_whoami_status_is_an_unexpected_response() {
    let peer = region(500, "application/json");
    let dir = temp_dir("login-500");
    let run = maas(
        &dir.join("p.json"),
        &["login", "admin", &peer.maas_url(), KEY],
        "",
    );
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        "The MAAS server gave an unexpected response: 500\n"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn describe_must_be_exactly_application_json() {
    let peer = region(200, "application/json; charset=utf-8");
    let dir = temp_dir("login-charset");
    let run = maas(
        &dir.join("p.json"),
        &["login", "admin", &peer.maas_url(), KEY],
        "",
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("Expected application/json, got: application/json; charset=utf-8"),
        "{}",
        run.stderr
    );
    assert!(!dir.join("p.json").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn without_a_key_the_user_is_asked_and_empty_means_anonymous() {
    let peer = region(200, "application/json");
    let dir = temp_dir("login-prompt");
    let profiles = dir.join("p.json");
    let run = maas(&profiles, &["login", "anon", &peer.maas_url()], "\n");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("API key (leave empty for anonymous access): ")
    );
    let requests = peer.requests();
    // The region is first asked for a token without credentials; a refusal means "prompt".
    assert_eq!(requests[0].method, "POST");
    assert_eq!(
        requests[0].target,
        "/MAAS/api/2.0/account/?op=create_authorisation_token"
    );
    assert_eq!(requests[0].header("authorization"), None);
    // Anonymous: no whoami, straight to describe.
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[1].target, "/MAAS/api/2.0/describe/");
    let store = ProfileStore::load(&profiles).unwrap();
    assert!(store.get("anon").unwrap().credentials.is_none());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_key_typed_at_the_prompt_is_checked() {
    let peer = region(200, "application/json");
    let dir = temp_dir("login-prompt-key");
    let run = maas(
        &dir.join("p.json"),
        &["login", "admin", &peer.maas_url()],
        &format!("{KEY}\n"),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let requests = peer.requests();
    assert_eq!(requests[1].target, "/MAAS/api/2.0/users/?op=whoami");
    assert_signed(requests[1].header("authorization"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn malformed_keys_and_urls_are_usage_errors() {
    let peer = region(200, "application/json");
    let dir = temp_dir("login-bad");
    let profiles = dir.join("p.json");
    let run = maas(&profiles, &["login", "admin", &peer.maas_url(), "a:b"], "");
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("malformed API key"), "{}", run.stderr);
    let run = maas(&profiles, &["login", "admin", "ftp://x/MAAS", KEY], "");
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("usage: maas login"), "{}", run.stderr);
    let run = maas(&profiles, &["login", "admin"], "");
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("required: url"), "{}", run.stderr);
    assert!(peer.requests().is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_unreachable_region_is_an_error_not_a_panic() {
    // Bind and drop a listener to find a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = temp_dir("login-refused");
    let url = format!("http://127.0.0.1:{port}/MAAS/");
    let run = maas(&dir.join("p.json"), &["login", "admin", &url, KEY], "");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.starts_with("maas: error: request to"),
        "{}",
        run.stderr
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn list_shows_name_url_and_key_and_logout_forgets() {
    let dir = temp_dir("list");
    let profiles = dir.join("p.json");
    save_profile(&profiles, "admin", "http://region:5240/MAAS/", Some(KEY));
    save_profile(&profiles, "anon", "http://region:5240/MAAS/", None);
    let run = maas(&profiles, &["list"], "");
    assert_eq!(run.code, 0);
    assert_eq!(
        run.stdout,
        format!(
            "admin http://region:5240/MAAS/api/2.0/ {KEY}\nanon http://region:5240/MAAS/api/2.0/\n"
        )
    );
    assert_eq!(maas(&profiles, &["logout", "admin"], "").code, 0);
    assert_eq!(
        maas(&profiles, &["list"], "").stdout,
        "anon http://region:5240/MAAS/api/2.0/\n"
    );
    // Like maascli, logging out twice is not an error.
    assert_eq!(maas(&profiles, &["logout", "admin"], "").code, 0);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn list_without_a_profile_file_prints_nothing() {
    let dir = temp_dir("list-empty");
    let run = maas(&dir.join("missing.json"), &["list"], "");
    assert_eq!((run.code, run.stdout.as_str()), (0, ""));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn refresh_fetches_every_description_again() {
    let newer = fixture_text().replace(FIXTURE_HASH, "1111111111111111111111111111111111111111");
    let peer = Peer::start(move |request| match request.path() {
        "/MAAS/api/2.0/describe/" => Reply::new(200, Some("application/json"), newer.clone()),
        _ => Reply::text(404, "nope"),
    });
    let dir = temp_dir("refresh");
    let profiles = dir.join("p.json");
    save_profile(&profiles, "admin", &peer.maas_url(), Some(KEY));
    let run = maas(&profiles, &["refresh"], "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "");
    let store = ProfileStore::load(&profiles).unwrap();
    assert_eq!(
        store.get("admin").unwrap().description["hash"],
        "1111111111111111111111111111111111111111"
    );
    assert_eq!(peer.requests()[0].header("authorization"), None);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn refresh_reports_profiles_that_failed() {
    let peer = Peer::start(|_| Reply::text(503, "down"));
    let dir = temp_dir("refresh-fail");
    let profiles = dir.join("p.json");
    save_profile(&profiles, "admin", &peer.maas_url(), Some(KEY));
    let run = maas(&profiles, &["refresh"], "");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("refreshing failed for admin"),
        "{}",
        run.stderr
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn https_to_a_plain_http_peer_fails_cleanly() {
    let peer = region(200, "application/json");
    let dir = temp_dir("login-https");
    let url = peer.maas_url().replace("http://", "https://");
    let run = maas(&dir.join("p.json"), &["login", "admin", &url, KEY], "");
    assert_eq!(run.code, 2);
    assert!(run.stderr.starts_with("maas: error:"), "{}", run.stderr);
    assert!(!dir.join("p.json").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn cacerts_and_insecure_together_are_refused() {
    let dir = temp_dir("login-tls-flags");
    let run = maas(
        &dir.join("p.json"),
        &[
            "login",
            "-k",
            "--cacerts",
            "/nonexistent.pem",
            "admin",
            "https://h/MAAS/",
            KEY,
        ],
        "",
    );
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        "You cannot use both cacerts and insecure arguments.\n"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
