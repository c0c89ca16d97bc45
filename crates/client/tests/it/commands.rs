//! `maas PROFILE HANDLER ACTION …` built from the fixture description, against the test peer.

use std::sync::{Arc, Mutex};

use base64::Engine as _;

use crate::peer::{Peer, Recorded, Reply};
use crate::{FIXTURE_HASH, KEY, Terminal, assert_signed, maas, maas_on, save_profile, temp_dir};

struct Setup {
    peer: Peer,
    dir: std::path::PathBuf,
    profiles: std::path::PathBuf,
}

impl Setup {
    fn new(name: &str, handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        let peer = Peer::start(handler);
        let dir = temp_dir(name);
        let profiles = dir.join("profiles.json");
        save_profile(&profiles, "admin", &peer.maas_url(), Some(KEY));
        save_profile(&profiles, "anon", &peer.maas_url(), None);
        Self {
            peer,
            dir,
            profiles,
        }
    }

    fn maas(&self, args: &[&str]) -> crate::Run {
        maas(&self.profiles, args, "")
    }

    fn only_request(&self) -> Recorded {
        let requests = self.peer.requests();
        assert_eq!(requests.len(), 1, "{requests:?}");
        requests.into_iter().next().unwrap()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The parts of a multipart body: (headers, decoded payload), checked against maascli's layout.
fn parts(request: &Recorded) -> Vec<(Vec<String>, Vec<u8>)> {
    let content_type = request.header("content-type").expect("content type");
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=\"")
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("unquoted boundary: {content_type}"));
    assert!(boundary.starts_with("==============="), "{boundary}");
    assert_eq!(request.header("mime-version"), Some("1.0"));
    assert_eq!(
        request.header("content-length").map(str::to_owned),
        Some(request.body.len().to_string())
    );
    let body = String::from_utf8(request.body.clone()).expect("ASCII body");
    let closing = format!("--{boundary}--");
    assert!(body.ends_with(&closing), "{body}");
    body[..body.len() - closing.len()]
        .split(&format!("--{boundary}\r\n"))
        .skip(1)
        .map(|part| {
            let (head, payload) = part.split_once("\r\n\r\n").expect("part head");
            let headers: Vec<String> = head.split("\r\n").map(str::to_owned).collect();
            assert_eq!(headers[0], "Content-Transfer-Encoding: base64");
            let text: String = payload.split_whitespace().collect();
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(text)
                .expect("base64 part");
            (headers, decoded)
        })
        .collect()
}

fn field(part: &(Vec<String>, Vec<u8>)) -> (String, String) {
    let disposition = part
        .0
        .iter()
        .find(|line| line.starts_with("Content-Disposition: form-data; name=\""))
        .expect("disposition");
    let name = disposition
        .trim_start_matches("Content-Disposition: form-data; name=\"")
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    (name, String::from_utf8(part.1.clone()).unwrap())
}

#[test]
fn get_puts_repeated_keys_in_the_query_and_indents_json() {
    let setup = Setup::new("get", |_| {
        Reply::json(
            200,
            r#"[{"hostname":"node2","system_id":"abc","tag_names":[]}]"#,
        )
        .with_header("X-MAAS-API-Hash", FIXTURE_HASH)
    });
    let run = setup.maas(&[
        "admin",
        "machines",
        "read",
        "hostname=node2",
        "hostname=node 3",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "[\n    {\n        \"hostname\": \"node2\",\n        \"system_id\": \"abc\",\n        \"tag_names\": []\n    }\n]"
    );
    assert_eq!(run.stderr, "", "a matching hash gives no warning");
    let request = setup.only_request();
    assert_eq!(request.method, "GET");
    assert_eq!(
        request.target,
        "/MAAS/api/2.0/machines/?hostname=node2&hostname=node+3"
    );
    assert_signed(request.header("authorization"));
    assert!(request.body.is_empty());
    assert_eq!(request.header("content-type"), None);
    assert_eq!(request.header("accept"), None);
}

#[test]
fn post_without_arguments_sends_no_body_at_all() {
    let setup = Setup::new("bare-post", |_| Reply::json(200, r#"{"system_id": "abc"}"#));
    let run = setup.maas(&["admin", "machine", "commission", "abc"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let request = setup.only_request();
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/MAAS/api/2.0/machines/abc/?op=commission");
    assert_eq!(request.header("content-length"), Some("0"));
    assert_eq!(request.header("content-type"), None);
    assert!(request.body.is_empty());
    assert_signed(request.header("authorization"));
}

#[test]
fn post_with_arguments_is_a_base64_multipart_body() {
    let setup = Setup::new("users-create", |_| Reply::json(200, r#"{"username": "u"}"#));
    let run = setup.maas(&[
        "admin",
        "users",
        "create",
        "username=u",
        "email=e@example.com",
        "password=p",
        "is_superuser=0",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let request = setup.only_request();
    assert_eq!(request.target, "/MAAS/api/2.0/users/");
    let parts = parts(&request);
    let fields: Vec<(String, String)> = parts.iter().map(field).collect();
    let expected = [
        ("username", "u"),
        ("email", "e@example.com"),
        ("password", "p"),
        ("is_superuser", "0"),
    ];
    assert_eq!(
        fields,
        expected.map(|(name, value)| (name.to_owned(), value.to_owned()))
    );
    for (headers, _) in &parts {
        assert_eq!(headers[2], "MIME-Version: 1.0");
        assert_eq!(headers[3], "Content-Type: text/plain; charset=\"utf-8\"");
    }
}

#[test]
fn file_arguments_become_file_parts_named_after_the_key() {
    let setup = Setup::new("file-part", |_| Reply::json(200, "{}"));
    let script = setup.dir.join("hook.sh");
    std::fs::write(&script, b"#!/bin/sh\necho hi\n").unwrap();
    let arg = format!("hostname@={}", script.display());
    let run = setup.maas(&["admin", "machine", "update", "abc", &arg]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let request = setup.only_request();
    assert_eq!(request.method, "PUT");
    assert_eq!(request.target, "/MAAS/api/2.0/machines/abc/");
    let parts = parts(&request);
    assert_eq!(
        parts[0].0[1],
        "Content-Disposition: form-data; name=\"hostname\"; filename=\"hostname\""
    );
    assert_eq!(parts[0].0[3], "Content-Type: application/x-sh");
    assert_eq!(parts[0].1, b"#!/bin/sh\necho hi\n");
}

#[test]
fn file_arguments_of_a_get_go_in_the_query() {
    let setup = Setup::new("file-get", |_| Reply::json(200, "[]"));
    let file = setup.dir.join("name.txt");
    std::fs::write(&file, b"a b&c").unwrap();
    let arg = format!("hostname@={}", file.display());
    assert_eq!(setup.maas(&["admin", "machines", "read", &arg]).code, 0);
    assert_eq!(
        setup.only_request().target,
        "/MAAS/api/2.0/machines/?hostname=a+b%26c"
    );
}

#[test]
fn positionals_fill_the_path_in_order() {
    let setup = Setup::new("vlan", |_| Reply::json(200, r#"{"mtu": 9000}"#));
    assert_eq!(
        setup
            .maas(&["admin", "vlan", "update", "0", "100", "mtu=9000"])
            .code,
        0
    );
    let request = setup.only_request();
    assert_eq!(request.method, "PUT");
    assert_eq!(request.target, "/MAAS/api/2.0/fabrics/0/vlans/100/");
    assert_eq!(
        parts(&request).iter().map(field).collect::<Vec<_>>(),
        [("mtu".to_owned(), "9000".to_owned())]
    );
}

#[test]
fn a_missing_positional_is_a_usage_error() {
    let setup = Setup::new("missing-positional", |_| Reply::json(200, "{}"));
    let run = setup.maas(&["admin", "vlan", "read", "0"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("the following arguments are required: vid"),
        "{}",
        run.stderr
    );
    assert!(setup.peer.requests().is_empty());
}

#[test]
fn key_value_arguments_need_a_param_line_in_the_doc() {
    let setup = Setup::new("param-rule", |_| Reply::json(200, "{}"));
    let run = setup.maas(&["admin", "machine", "read", "abc", "x=1"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("unrecognized arguments: x=1"),
        "{}",
        run.stderr
    );
    let run = setup.maas(&["admin", "machines", "read", "hostname"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("is not a name=value"), "{}", run.stderr);
    assert!(setup.peer.requests().is_empty());
}

#[test]
fn delete_puts_op_and_parameters_in_the_query_and_a_204_prints_nothing() {
    let setup = Setup::new("delete", |_| Reply::text(204, ""));
    let run = setup.maas(&["admin", "vlan", "delete", "0", "100"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, ""));
    let request = setup.only_request();
    assert_eq!(request.method, "DELETE");
    assert_eq!(request.target, "/MAAS/api/2.0/fabrics/0/vlans/100/");
    assert!(request.body.is_empty());
}

#[test]
fn a_non_2xx_answer_prints_the_body_and_exits_2() {
    let setup = Setup::new("404", |_| {
        Reply::text(404, "No Machine matches the given query.")
    });
    let run = setup.maas(&["admin", "machine", "read", "nope"]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "No Machine matches the given query.");
    assert_eq!(run.stderr, "");
}

#[test]
fn on_a_terminal_success_is_announced() {
    let setup = Setup::new("tty", |_| Reply::json(200, r#"{"a":1}"#));
    let run = maas_on(
        &setup.profiles,
        &["admin", "machine", "read", "abc"],
        "",
        Terminal {
            stdout_is_tty: true,
            stderr_is_tty: false,
        },
    );
    assert_eq!(run.code, 0);
    assert_eq!(
        run.stdout,
        "Success.\nMachine-readable output follows:\n{\n    \"a\": 1\n}\n"
    );
}

#[test]
fn a_different_api_hash_gives_a_warning_on_stderr() {
    let setup = Setup::new("hash", |_| {
        Reply::json(200, "[]").with_header("X-MAAS-API-Hash", "somethingelse")
    });
    let run = setup.maas(&["admin", "machines", "read"]);
    assert_eq!(run.code, 0);
    assert_eq!(run.stdout, "[]");
    assert!(run.stderr.contains("WARNING"), "{}", run.stderr);
    assert!(run.stderr.contains("maas refresh"), "{}", run.stderr);
}

#[test]
fn debug_shows_the_status_and_headers() {
    let setup = Setup::new("debug", |_| Reply::json(200, "[]"));
    let run = setup.maas(&["admin", "machines", "read", "-d"]);
    assert_eq!(run.code, 0);
    assert!(run.stderr.starts_with("200 OK\n\n"), "{}", run.stderr);
    assert!(
        run.stderr.contains("Content-Type: application/json"),
        "{}",
        run.stderr
    );
}

#[test]
fn anonymous_profiles_are_unsigned_and_see_only_anonymous_actions() {
    let setup = Setup::new("anon", |_| Reply::json(200, "false"));
    let run = setup.maas(&[
        "anon",
        "machines",
        "is-registered",
        "mac_address=00:11:22:33:44:55",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let request = setup.only_request();
    assert_eq!(
        request.target,
        "/MAAS/api/2.0/machines/?op=is_registered&mac_address=00%3A11%3A22%3A33%3A44%3A55"
    );
    assert_eq!(request.header("authorization"), None);
    let run = setup.maas(&["anon", "machines", "allocate"]);
    assert_eq!(run.code, 2, "allocate is an authenticated action");
    let run = setup.maas(&["anon", "users", "read"]);
    assert_eq!(run.code, 2, "users has no anonymous handler");
}

#[test]
fn authenticated_profiles_get_anonymous_actions_too() {
    let setup = Setup::new("merged", |_| Reply::json(200, "true"));
    let run = setup.maas(&["admin", "machines", "is-registered", "mac_address=x"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_signed(setup.only_request().header("authorization"));
    let run = setup.maas(&["admin", "version", "read"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn help_at_each_level_lists_what_the_description_offers() {
    let setup = Setup::new("help", |_| Reply::json(200, "{}"));
    let run = setup.maas(&["--help"]);
    assert_eq!(run.code, 0);
    for name in [
        "login", "logout", "list", "refresh", "init", "admin", "anon",
    ] {
        assert!(
            run.stdout.contains(&format!("\n  {name} ")),
            "{name}: {}",
            run.stdout
        );
    }
    let run = setup.maas(&["admin", "--help"]);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout
            .contains("boot-resources  Manage the boot resources."),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("sshkeys"), "{}", run.stdout);
    let run = setup.maas(&["admin", "machine", "-h"]);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.contains("power-on    Turn on a machine"),
        "{}",
        run.stdout
    );
    let run = setup.maas(&["admin", "machine", "deploy", "-h"]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.starts_with(
        "usage: maas admin machine deploy [--help] [-d] [-k] system_id [data ...]\n\nDeploy a machine\n"
    ));
    assert!(
        run.stdout.contains(":param distro_series:"),
        "{}",
        run.stdout
    );
    assert!(setup.peer.requests().is_empty());
}

#[test]
fn unknown_names_and_missing_sub_commands_are_usage_errors() {
    let setup = Setup::new("unknown", |_| Reply::json(200, "{}"));
    for args in [
        &["nobody"][..],
        &["admin"][..],
        &["admin", "nothing"][..],
        &["admin", "machines"][..],
        &["admin", "machines", "explode"][..],
        &["admin", "machines", "read", "--bogus"][..],
        &[][..],
    ] {
        let run = setup.maas(args);
        assert_eq!(run.code, 2, "{args:?}");
        assert!(
            run.stderr.contains("usage: maas"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert!(setup.peer.requests().is_empty());
}

#[test]
fn sshkeys_import_takes_a_bare_key_source() {
    let setup = Setup::new("sshkeys", |_| Reply::json(200, "[]"));
    let run = setup.maas(&["admin", "sshkeys", "import", "lp:someone"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let request = setup.only_request();
    assert_eq!(
        request.target,
        "/MAAS/api/2.0/account/prefs/sshkeys/?op=import"
    );
    assert_eq!(
        parts(&request).iter().map(field).collect::<Vec<_>>(),
        [("keysource".to_owned(), "lp:someone".to_owned())]
    );
}

/// A region that creates a boot resource and records uploaded chunks.
fn image_region(complete: bool, chunk_status: u16) -> Peer {
    Peer::start(
        move |request| match (request.method.as_str(), request.path()) {
            ("POST", "/MAAS/api/2.0/boot-resources/") => Reply::json(
                201,
                &format!(
                    r#"{{"id": 7, "sets": {{
                    "20240101.0": {{"files": {{"root-tgz": {{"complete": true, "size": 1}}}}}},
                    "20240301.0": {{"files": {{"root-tgz": {{"complete": {complete},
                        "upload_uri": "/MAAS/api/2.0/boot-resources/7/upload/18/"}}}}}}
                }}}}"#
                ),
            ),
            ("PUT", "/MAAS/api/2.0/boot-resources/7/upload/18/") => Reply::text(chunk_status, "OK"),
            _ => Reply::text(404, "nope"),
        },
    )
}

fn image_file(dir: &std::path::Path, size: usize) -> std::path::PathBuf {
    let path = dir.join("root.tgz");
    let contents: Vec<u8> = (0..size).map(|index| (index % 251) as u8).collect();
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn boot_resources_create_announces_then_uploads_in_4_mib_chunks() {
    let peer = image_region(false, 200);
    let dir = temp_dir("upload");
    let profiles = dir.join("p.json");
    save_profile(&profiles, "admin", &peer.maas_url(), Some(KEY));
    let size = (4 << 20) + 10;
    let image = image_file(&dir, size);
    let content = format!("content@={}", image.display());
    let run = maas(
        &profiles,
        &[
            "admin",
            "boot-resources",
            "create",
            "title=Custom",
            "name=custom/image",
            "architecture=amd64/generic",
            "filetype=tgz",
            &content,
        ],
        "",
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "", "nothing is printed on success");
    let requests = peer.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    let announce = &requests[0];
    assert_eq!(announce.target, "/MAAS/api/2.0/boot-resources/");
    assert_signed(announce.header("authorization"));
    let expected_sha = maas_client::upload::size_and_sha256(&image).unwrap().1;
    let fields: Vec<(String, String)> = parts(announce).iter().map(field).collect();
    let size_text = size.to_string();
    let expected = [
        ("architecture", "amd64/generic"),
        ("filetype", "tgz"),
        ("name", "custom/image"),
        ("sha256", expected_sha.as_str()),
        ("size", size_text.as_str()),
        ("title", "Custom"),
    ];
    assert_eq!(
        fields,
        expected.map(|(name, value)| (name.to_owned(), value.to_owned()))
    );
    let image_bytes = std::fs::read(&image).unwrap();
    for (request, range) in requests[1..].iter().zip([0..4 << 20, 4 << 20..size]) {
        assert_eq!(request.method, "PUT");
        assert_eq!(request.target, "/MAAS/api/2.0/boot-resources/7/upload/18/");
        assert_eq!(
            request.header("content-type"),
            Some("application/octet-stream")
        );
        assert_signed(request.header("authorization"));
        assert_eq!(request.body, image_bytes[range]);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn boot_resources_create_stops_when_the_file_is_already_complete() {
    let peer = image_region(true, 200);
    let dir = temp_dir("upload-complete");
    let profiles = dir.join("p.json");
    save_profile(&profiles, "admin", &peer.maas_url(), Some(KEY));
    let content = format!("content@={}", image_file(&dir, 100).display());
    let run = maas(
        &profiles,
        &[
            "admin",
            "boot-resources",
            "create",
            "name=x",
            "architecture=amd64/generic",
            &content,
        ],
        "",
    );
    assert_eq!((run.code, run.stdout.as_str()), (0, ""));
    assert_eq!(peer.requests().len(), 1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn boot_resources_create_fails_when_a_chunk_is_refused() {
    let peer = image_region(false, 400);
    let dir = temp_dir("upload-refused");
    let profiles = dir.join("p.json");
    save_profile(&profiles, "admin", &peer.maas_url(), Some(KEY));
    let content = format!("content@={}", image_file(&dir, 100).display());
    let run = maas(
        &profiles,
        &[
            "admin",
            "boot-resources",
            "create",
            "name=x",
            "architecture=amd64/generic",
            &content,
        ],
        "",
    );
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "OK");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn boot_resources_create_needs_content() {
    let setup = Setup::new("upload-missing", |_| Reply::json(201, "{}"));
    let run = setup.maas(&["admin", "boot-resources", "create", "name=x"]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "Missing content.\n");
    assert!(setup.peer.requests().is_empty());
}

#[test]
fn boot_resources_create_shows_progress_on_a_terminal() {
    let peer = image_region(false, 200);
    let dir = temp_dir("upload-progress");
    let profiles = dir.join("p.json");
    save_profile(&profiles, "admin", &peer.maas_url(), Some(KEY));
    let content = format!("content@={}", image_file(&dir, 1000).display());
    let run = maas_on(
        &profiles,
        &[
            "admin",
            "boot-resources",
            "create",
            "name=x",
            "architecture=amd64/generic",
            &content,
        ],
        "",
        Terminal {
            stdout_is_tty: true,
            stderr_is_tty: true,
        },
    );
    assert_eq!(run.code, 0);
    assert!(run.stderr.contains("100%"), "{:?}", run.stderr);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_reply_that_names_no_file_is_reported() {
    let setup = Setup::new("upload-nofile", |_| Reply::json(201, r#"{"sets": {}}"#));
    let image = image_file(&setup.dir, 10);
    let content = format!("content@={}", image.display());
    let run = setup.maas(&["admin", "boot-resources", "create", "name=x", &content]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "Failed to identify created resource.\n");
}

#[test]
fn requests_are_signed_with_a_fresh_nonce_each_time() {
    let nonces = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&nonces);
    let setup = Setup::new("nonces", move |request| {
        let header = request
            .header("authorization")
            .unwrap_or_default()
            .to_owned();
        seen.lock().unwrap().push(header);
        Reply::json(200, "[]")
    });
    setup.maas(&["admin", "machines", "read"]);
    setup.maas(&["admin", "machines", "read"]);
    let headers = nonces.lock().unwrap().clone();
    assert_eq!(headers.len(), 2);
    assert_ne!(headers[0], headers[1]);
}
