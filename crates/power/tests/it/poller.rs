//! The poller keeping 200 BMCs current: webhook endpoints on our HTTP peer
//! (one of them hung), plus a few pyghmi IPMI BMCs when pyghmi is there.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use maas_power::poller::{self, PollTarget, Poller, PollerConfig};
use maas_power::{PowerDriver, PowerError, PowerState};

use crate::http_peer::HttpPeer;
use crate::support::{self, Emulator};

fn webhook(peer: &HttpPeer, node: &str) -> Arc<dyn PowerDriver> {
    support::build(
        "webhook",
        &[
            ("power_on_uri", &peer.url(&format!("/node/{node}/on"))),
            ("power_off_uri", &peer.url(&format!("/node/{node}/off"))),
            (
                "power_query_uri",
                &peer.url(&format!("/node/{node}/status")),
            ),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_bmcs_with_bounded_concurrency_and_a_hung_one() {
    let peer = HttpPeer::start().await;
    peer.state.delay_ms.store(20, Ordering::SeqCst);

    // Five IPMI BMCs in one pyghmi process, if pyghmi is installed.
    let python = support::venv_python(&["pyghmi.ipmi.bmc"]);
    let ipmi_count = if python.is_some() { 5u16 } else { 0 };
    let mut _pyghmi = None;
    let ipmi_port = support::free_udp_port();
    if let Some(python) = python {
        let log = std::env::temp_dir().join(format!("maas-power-poller-pyghmi-{ipmi_port}.log"));
        let mut command = Command::new(python);
        command.arg(support::bmc_script("ipmi_bmc.py")).args([
            "--port",
            &ipmi_port.to_string(),
            "--ports",
            &ipmi_count.to_string(),
            "--password",
            "secret",
        ]);
        let mut emulator = Emulator::start("pyghmi BMCs", &mut command, log);
        emulator.wait_until(Duration::from_secs(15), |e| e.log_text().contains("ready"));
        _pyghmi = Some(emulator);
    } else {
        support::require("pyghmi in .venv (IPMI BMCs in the poller test)", false);
    }

    let mut targets = vec![PollTarget {
        key: "hung".to_owned(),
        driver: webhook(&peer, "hang"),
    }];
    let mut expected = std::collections::HashMap::new();
    for n in 0..ipmi_count {
        let address = format!("127.0.0.1:{}", ipmi_port + n);
        let driver = support::build(
            "ipmi",
            &[
                ("power_address", &address),
                ("power_user", "admin"),
                ("power_pass", "secret"),
            ],
        );
        targets.push(PollTarget {
            key: format!("ipmi-{n}"),
            driver,
        });
        expected.insert(format!("ipmi-{n}"), PowerState::Off);
    }
    while targets.len() < 200 {
        let node = format!("w{}", targets.len());
        let on = targets.len() % 3 == 0;
        peer.state.set(&node, on);
        expected.insert(
            node.clone(),
            if on { PowerState::On } else { PowerState::Off },
        );
        targets.push(PollTarget {
            key: node.clone(),
            driver: webhook(&peer, &node),
        });
    }
    assert_eq!(targets.len(), 200);

    let config = PollerConfig {
        concurrency: 8,
        per_bmc_concurrency: 1,
        query_timeout: Duration::from_secs(2),
        ..PollerConfig::default()
    };
    let started = Instant::now();
    let mut results = Vec::new();
    poller::query_all(&config, targets, |key, result| {
        results.push((key, result, started.elapsed()))
    })
    .await;
    let elapsed = started.elapsed();

    assert_eq!(results.len(), 200);
    for (key, result, _) in &results {
        if key == "hung" {
            assert!(
                matches!(result, Err(PowerError::Timeout { .. })),
                "hung BMC: {result:?}"
            );
        } else {
            assert_eq!(result.as_ref().ok(), expected.get(key), "{key}: {result:?}");
        }
    }
    let max = peer.state.max_in_flight.load(Ordering::SeqCst);
    // The peer sees webhook conversations only; IPMI ones come on top, and
    // the poller's total is capped at 8 (the hung one holds one slot).
    assert!(max <= 8, "peer saw {max} requests at once");
    assert!(max >= 4, "concurrency was not used: at most {max} at once");
    // One at a time, 199 answers of 20 ms and the hung one's 2 s would take
    // 6 s; 7 or 8 at a time they take about 2 s. 5 s leaves room for a
    // loaded machine.
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    let last_good = results
        .iter()
        .filter(|(key, ..)| key != "hung")
        .map(|(.., at)| *at)
        .max()
        .unwrap_or_default();
    eprintln!(
        "poller: 200 BMCs in {elapsed:?} (last healthy one at {last_good:?}), at most {max} HTTP requests at once"
    );
}

#[tokio::test]
async fn reports_changes_and_failures() {
    let peer = HttpPeer::start().await;
    let targets: Vec<PollTarget<String>> = (0..20)
        .map(|n| PollTarget {
            key: format!("n{n}"),
            driver: webhook(&peer, &format!("n{n}")),
        })
        .chain(std::iter::once(PollTarget {
            key: "hung".to_owned(),
            driver: webhook(&peer, "hang"),
        }))
        .collect();
    let config = PollerConfig {
        interval: Duration::from_millis(200),
        concurrency: 4,
        per_bmc_concurrency: 1,
        query_timeout: Duration::from_millis(500),
        max_backoff: Duration::from_secs(5),
    };
    let (sender, mut receiver) = tokio::sync::mpsc::channel(64);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(Poller::new(config, targets).run(sender, async move {
        let _ = stopped.await;
    }));

    // First results for all 21.
    let mut first = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while first.len() < 21 && Instant::now() < deadline {
        let report = tokio::time::timeout(Duration::from_secs(2), receiver.recv())
            .await
            .ok()
            .flatten()
            .expect("a report");
        if report.key == "hung" {
            assert_eq!(report.state(), PowerState::Error);
        }
        first.insert(report.key);
    }
    assert_eq!(first.len(), 21);

    // A machine turned on behind MAAS's back is noticed within a few
    // intervals, with its previous state.
    peer.state.set("n7", true);
    let noticed = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            let report = receiver.recv().await?;
            if report.key == "n7" {
                return Some(report);
            }
        }
    })
    .await
    .ok()
    .flatten()
    .expect("the change of n7 was reported");
    assert_eq!(noticed.result.as_ref().ok(), Some(&PowerState::On));
    assert_eq!(noticed.previous, Some(PowerState::Off));
    let _ = stop.send(());
    task.await.expect("poller task");
}
