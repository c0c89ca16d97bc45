//! Dead and wrong BMCs give clear errors within bounded time.

use std::time::{Duration, Instant};

use maas_power::{PowerAction, PowerError, PowerErrorKind};

use crate::support;

/// The bound: quick_options allow 3 attempts of 700 ms per exchange.
const BOUND: Duration = Duration::from_millis(3000);

fn check_retryable(error: &PowerError, started: Instant, address: &str) {
    let took = started.elapsed();
    assert!(took < BOUND, "took {took:?}: {error}");
    assert!(error.is_retryable(), "{error}");
    assert_eq!(error.kind(), PowerErrorKind::Connection);
    let message = error.to_string();
    assert!(message.contains(address), "{message} should name {address}");
    assert!(message.contains(PowerAction::Query.as_str()), "{message}");
}

#[cfg(feature = "ipmi")]
#[tokio::test]
async fn ipmi_nothing_listening() {
    let port = support::free_udp_port();
    let address = format!("127.0.0.1:{port}");
    let driver = support::build(
        "ipmi",
        &[
            ("power_address", &address),
            ("power_user", "admin"),
            ("power_pass", "x"),
        ],
    );
    let started = Instant::now();
    let error = driver.query().await.expect_err("nothing listens there");
    check_retryable(&error, started, &address);
    assert!(matches!(error, PowerError::Connection { .. }), "{error}");
}

#[cfg(feature = "ipmi")]
#[tokio::test]
async fn ipmi_blackholed() {
    // A socket that takes datagrams and never answers.
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    let address = sink.local_addr().expect("address").to_string();
    let driver = support::build(
        "ipmi",
        &[
            ("power_address", &address),
            ("power_user", "admin"),
            ("power_pass", "x"),
        ],
    );
    let started = Instant::now();
    let error = driver.query().await.expect_err("no answer");
    check_retryable(&error, started, &address);
    assert!(matches!(error, PowerError::Timeout { .. }), "{error}");
    drop(sink);
}

#[cfg(feature = "redfish")]
#[tokio::test]
async fn redfish_nothing_listening() {
    let port = support::free_tcp_port();
    let base = format!("http://127.0.0.1:{port}");
    let driver = support::build(
        "redfish",
        &[
            ("power_address", &base),
            ("power_user", "u"),
            ("power_pass", "p"),
        ],
    );
    let started = Instant::now();
    let error = driver.query().await.expect_err("nothing listens there");
    check_retryable(&error, started, &base);
}

#[cfg(feature = "redfish")]
#[tokio::test]
async fn redfish_accepts_but_never_answers() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let driver = support::build(
        "redfish",
        &[
            ("power_address", &base),
            ("power_user", "u"),
            ("power_pass", "p"),
        ],
    );
    let started = Instant::now();
    let error = driver.query().await.expect_err("never answers");
    check_retryable(&error, started, &base);
    assert!(matches!(error, PowerError::Timeout { .. }), "{error}");
    hold.abort();
}

#[cfg(all(
    feature = "ipmi",
    feature = "redfish",
    feature = "virsh",
    feature = "webhook"
))]
#[tokio::test]
async fn missing_settings_are_final_and_named() {
    for (power_type, key) in [
        ("ipmi", "power_address"),
        ("redfish", "power_address"),
        ("virsh", "power_address"),
        ("webhook", "power_on_uri"),
    ] {
        let error =
            maas_power::driver(power_type, &support::params(&[]), &support::quick_options())
                .expect_err("no settings");
        assert!(!error.is_retryable());
        assert_eq!(error.kind(), PowerErrorKind::Setting);
        assert_eq!(
            error.to_string(),
            format!("missing power setting {key} for power type {power_type}")
        );
    }
}
