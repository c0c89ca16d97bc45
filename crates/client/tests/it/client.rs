//! The typed HTTP helper that other crates' tests use.

use std::sync::Arc;

use maas_client::{Client, Credentials, Params};

use crate::KEY;
use crate::peer::{Peer, Reply};

#[test]
fn client_calls_are_encoded_and_signed_like_maascli() {
    let peer = Peer::start(|request| {
        Reply::json(200, r#"{"ok": true}"#).with_header("X-Path", request.path())
    });
    let credentials = Credentials::parse("ck:tk:ts").unwrap();
    let client = Client::new(&peer.maas_url(), Some(credentials))
        .unwrap()
        .with_nonce_source(Arc::new(|| ("4242".to_owned(), 1710000000)));

    let response = client
        .get(
            "machines/",
            &Params::new()
                .op("power_parameters")
                .text("id", "a")
                .text("id", "b"),
        )
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-path"), Some("/MAAS/api/2.0/machines/"));
    assert_eq!(response.json().unwrap()["ok"], true);

    client
        .post(
            "machines/",
            &Params::new().op("allocate").text("name", "node1"),
        )
        .unwrap();
    client.put("machines/abc/", &Params::new()).unwrap();
    client
        .delete("/MAAS/api/2.0/tags/x/", &Params::new())
        .unwrap();

    let requests = peer.requests();
    assert_eq!(
        requests[0].target,
        "/MAAS/api/2.0/machines/?op=power_parameters&id=a&id=b"
    );
    assert_eq!(
        requests[0].header("authorization"),
        Some(
            "OAuth oauth_nonce=\"4242\", oauth_timestamp=\"1710000000\", oauth_version=\"1.0\", \
             oauth_signature_method=\"PLAINTEXT\", oauth_consumer_key=\"ck\", oauth_token=\"tk\", \
             oauth_signature=\"%26ts\""
        )
    );
    assert_eq!(requests[1].target, "/MAAS/api/2.0/machines/?op=allocate");
    assert!(
        requests[1]
            .header("content-type")
            .unwrap()
            .starts_with("multipart/form-data; boundary=\"")
    );
    assert_eq!(
        (requests[2].method.as_str(), requests[2].target.as_str()),
        ("PUT", "/MAAS/api/2.0/machines/abc/")
    );
    assert_eq!(requests[2].header("content-length"), Some("0"));
    assert_eq!(
        (requests[3].method.as_str(), requests[3].target.as_str()),
        ("DELETE", "/MAAS/api/2.0/tags/x/")
    );
}

#[test]
fn non_2xx_answers_are_responses_not_errors() {
    let peer = Peer::start(|_| Reply::text(409, "No machine available."));
    let client = Client::new(&peer.maas_url(), Some(Credentials::parse(KEY).unwrap())).unwrap();
    let response = client
        .post("machines/", &Params::new().op("allocate"))
        .unwrap();
    assert_eq!(response.status, 409);
    assert!(!response.is_success());
    assert_eq!(response.text(), "No machine available.");
    assert_eq!(response.header("Content-Type"), Some("text/plain"));
}

#[test]
fn anonymous_clients_send_no_authorization() {
    let peer = Peer::start(|_| Reply::json(200, r#"{"version": "3.5.0"}"#));
    let client = Client::new(&peer.maas_url(), None).unwrap();
    let response = client.get("version/", &Params::new()).unwrap();
    assert_eq!(response.json().unwrap()["version"], "3.5.0");
    assert_eq!(peer.requests()[0].header("authorization"), None);
}

#[test]
fn a_query_in_the_path_is_kept_before_the_params() {
    let peer = Peer::start(|_| Reply::json(200, "{}"));
    let client = Client::new(&peer.maas_url(), None).unwrap();
    client
        .get(
            "events/?op=query&limit=2",
            &Params::new().text("level", "INFO"),
        )
        .unwrap();
    assert_eq!(
        peer.requests()[0].target,
        "/MAAS/api/2.0/events/?op=query&limit=2&level=INFO"
    );
}

#[test]
fn form_posts_are_urlencoded() {
    let peer = Peer::start(|_| {
        Reply::json(
            200,
            r#"{"consumer_key": "a", "token_key": "b", "token_secret": "c"}"#,
        )
    });
    let client = Client::new(&peer.maas_url(), None).unwrap();
    let response = client
        .post_form(
            "/MAAS/accounts/authenticate/",
            &[
                ("username", "admin"),
                ("password", "p w&d"),
                ("consumer", "me@host"),
            ],
        )
        .unwrap();
    assert_eq!(response.json().unwrap()["token_secret"], "c");
    let request = &peer.requests()[0];
    assert_eq!(request.target, "/MAAS/accounts/authenticate/");
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        request.body,
        b"username=admin&password=p+w%26d&consumer=me%40host"
    );
    assert_eq!(request.header("authorization"), None);
}
