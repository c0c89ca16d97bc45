//! The webhook driver against a local HTTP peer written in the test.

use maas_domain::SystemId;
use maas_power::{DriverOptions, PowerErrorKind, PowerState};

use crate::http_peer::HttpPeer;
use crate::support;

fn uris(peer: &HttpPeer, node: &str) -> [(&'static str, String); 3] {
    [
        ("power_on_uri", peer.url(&format!("/node/{node}/on"))),
        ("power_off_uri", peer.url(&format!("/node/{node}/off"))),
        ("power_query_uri", peer.url(&format!("/node/{node}/status"))),
    ]
}

#[tokio::test]
async fn on_off_query_cycle_with_basic_auth_and_system_id() {
    let peer = HttpPeer::start().await;
    let [on, off, query] = uris(&peer, "n1");
    let params = support::params(&[
        (on.0, &on.1),
        (off.0, &off.1),
        (query.0, &query.1),
        ("power_user", "maas"),
        ("power_pass", "secret"),
    ]);
    let options = DriverOptions {
        system_id: Some("4y3h7n".parse::<SystemId>().expect("system id")),
        ..support::quick_options()
    };
    let driver = maas_power::driver("webhook", &params, &options).expect("webhook driver");

    assert_eq!(driver.query().await.expect("query"), PowerState::Off);
    driver.on().await.expect("power on");
    assert!(peer.state.is_on("n1"));
    assert_eq!(driver.query().await.expect("query"), PowerState::On);
    driver.off().await.expect("power off");
    assert!(!peer.state.is_on("n1"));
    driver.cycle().await.expect("power cycle");
    assert!(peer.state.is_on("n1"));
    let error = driver
        .set_pxe_boot()
        .await
        .expect_err("webhook has no PXE control");
    assert_eq!(error.kind(), PowerErrorKind::Unsupported);

    let log = peer.state.log.lock().expect("peer log").clone();
    assert!(
        log.iter()
            .any(|(method, path, ..)| method == "POST" && path == "/node/n1/on")
    );
    // "maas:secret" in Basic auth, and the node's system id.
    assert!(
        log.iter().all(|(_, _, auth, system_id)| {
            auth.as_deref() == Some("Basic bWFhczpzZWNyZXQ=")
                && system_id.as_deref() == Some("4y3h7n")
        }),
        "{log:?}"
    );
}

#[tokio::test]
async fn bearer_token_and_bad_token() {
    let peer = HttpPeer::start().await;
    let [on, off, query] = uris(&peer, "locked");
    let build = |token: &str| {
        support::build(
            "webhook",
            &[
                (on.0, &on.1),
                (off.0, &off.1),
                (query.0, &query.1),
                ("power_token", token),
            ],
        )
    };
    assert_eq!(
        build("sesame")
            .query()
            .await
            .expect("query with the right token"),
        PowerState::Off
    );
    let error = build("wrong").on().await.expect_err("wrong token");
    assert_eq!(error.kind(), PowerErrorKind::Authentication, "{error}");
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("401"), "{error}");
    assert!(
        !error.to_string().contains("wrong"),
        "token leaked: {error}"
    );
}

#[tokio::test]
async fn custom_regexes_and_unknown_state() {
    let peer = HttpPeer::start().await;
    let [on, off, query] = uris(&peer, "n2");
    let driver = support::build(
        "webhook",
        &[
            (on.0, &on.1),
            (off.0, &off.1),
            (query.0, &query.1),
            ("power_on_regex", "nothing-matches"),
            ("power_off_regex", "also-not"),
        ],
    );
    assert_eq!(driver.query().await.expect("query"), PowerState::Unknown);
}
