//! Keeps many BMCs' power states current.
//!
//! [`Schedule`] is the pure part: which BMC is due, how far to back off from
//! one that fails, what counts as a change. It takes the time as an argument
//! and does no I/O. [`Poller`] runs it: it queries due BMCs with at most
//! [`PollerConfig::concurrency`] conversations at once (and at most
//! [`PollerConfig::per_bmc_concurrency`] per BMC address), bounds every query
//! by [`PollerConfig::query_timeout`] so a hung BMC delays nobody else, and
//! reports results through a channel.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{Instrument, debug, info_span};

use crate::PowerState;
use crate::driver::PowerDriver;
use crate::error::{PowerAction, PowerError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollerConfig {
    /// How often a healthy BMC is queried.
    pub interval: Duration,
    /// Most BMC conversations at once.
    pub concurrency: usize,
    /// Most conversations at once with one BMC address (chassis BMCs serve
    /// many nodes and many BMCs allow few sessions).
    pub per_bmc_concurrency: usize,
    /// Bound on one query, whatever the driver's own timeouts.
    pub query_timeout: Duration,
    /// Longest pause before querying a BMC that keeps failing again.
    pub max_backoff: Duration,
}

impl Default for PollerConfig {
    /// MAAS's defaults: every 15 s, 5 at once.
    fn default() -> PollerConfig {
        PollerConfig {
            interval: Duration::from_secs(15),
            concurrency: 5,
            per_bmc_concurrency: 1,
            query_timeout: Duration::from_secs(30),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// One node to keep current: its key (a system id, say) and its driver.
#[derive(Clone, Debug)]
pub struct PollTarget<K> {
    pub key: K,
    pub driver: Arc<dyn PowerDriver>,
}

/// The outcome of one query, sent for a node's first result, every change
/// of state and every failure.
#[derive(Debug)]
pub struct PowerReport<K> {
    pub key: K,
    pub result: Result<PowerState, PowerError>,
    /// The last state a query returned, if any did.
    pub previous: Option<PowerState>,
    /// How many queries in a row failed, this one included.
    pub consecutive_failures: u32,
}

impl<K> PowerReport<K> {
    /// The state to store: the result, or `error` for a failure, as MAAS
    /// does.
    pub fn state(&self) -> PowerState {
        match &self.result {
            Ok(state) => *state,
            Err(_) => PowerState::Error,
        }
    }
}

#[derive(Debug)]
struct Entry {
    bmc: String,
    next_due: Instant,
    in_flight: bool,
    failures: u32,
    last: Option<PowerState>,
    reported: bool,
}

/// Which BMCs are due and when the next one will be; pure bookkeeping.
#[derive(Debug)]
pub struct Schedule<K> {
    config: PollerConfig,
    entries: HashMap<K, Entry>,
    in_flight_by_bmc: HashMap<String, usize>,
    in_flight: usize,
}

/// What [`Schedule::complete`] decided about a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The result should be reported (first result, change or failure).
    pub report: bool,
    pub previous: Option<PowerState>,
    pub consecutive_failures: u32,
}

impl<K: Clone + Eq + Hash> Schedule<K> {
    pub fn new(config: PollerConfig) -> Schedule<K> {
        Schedule {
            config,
            entries: HashMap::new(),
            in_flight_by_bmc: HashMap::new(),
            in_flight: 0,
        }
    }

    /// Adds a node, due at once. Re-adding keeps its history.
    pub fn insert(&mut self, key: K, bmc: &str, now: Instant) {
        self.entries.entry(key).or_insert_with(|| Entry {
            bmc: bmc.to_owned(),
            next_due: now,
            in_flight: false,
            failures: 0,
            last: None,
            reported: false,
        });
    }

    pub fn remove(&mut self, key: &K) {
        if let Some(entry) = self.entries.remove(key).filter(|entry| entry.in_flight) {
            self.release(&entry.bmc);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn release(&mut self, bmc: &str) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(count) = self.in_flight_by_bmc.get_mut(bmc) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.in_flight_by_bmc.remove(bmc);
            }
        }
    }

    /// Nodes due at `now`, most overdue first, within the concurrency
    /// limits; they are marked in flight until [`Schedule::complete`].
    pub fn take_due(&mut self, now: Instant) -> Vec<K> {
        let mut due: Vec<(&K, &Entry)> = self
            .entries
            .iter()
            .filter(|(_, entry)| !entry.in_flight && entry.next_due <= now)
            .collect();
        due.sort_by_key(|(_, entry)| entry.next_due);
        let mut chosen = Vec::new();
        let mut per_bmc: HashMap<&str, usize> = HashMap::new();
        let mut budget = self
            .config
            .concurrency
            .max(1)
            .saturating_sub(self.in_flight);
        for (key, entry) in due {
            if budget == 0 {
                break;
            }
            let busy = self.in_flight_by_bmc.get(&entry.bmc).copied().unwrap_or(0)
                + per_bmc.get(entry.bmc.as_str()).copied().unwrap_or(0);
            if busy >= self.config.per_bmc_concurrency.max(1) {
                continue;
            }
            *per_bmc.entry(entry.bmc.as_str()).or_default() += 1;
            chosen.push(key.clone());
            budget -= 1;
        }
        for key in &chosen {
            if let Some(entry) = self.entries.get_mut(key) {
                entry.in_flight = true;
                *self.in_flight_by_bmc.entry(entry.bmc.clone()).or_default() += 1;
                self.in_flight += 1;
            }
        }
        chosen
    }

    /// Records a finished query (`Ok(state)` or a failure) and schedules
    /// the next one: after the interval, or after a backoff that doubles
    /// with each failure in a row up to `max_backoff`.
    pub fn complete(
        &mut self,
        key: &K,
        now: Instant,
        result: Result<PowerState, ()>,
    ) -> Option<Completion> {
        let entry = self.entries.get_mut(key)?;
        let was_in_flight = std::mem::replace(&mut entry.in_flight, false);
        let previous = entry.last;
        let report = match result {
            Ok(state) => {
                entry.failures = 0;
                entry.last = Some(state);
                entry.next_due = now + self.config.interval;
                !entry.reported || previous != Some(state)
            }
            Err(()) => {
                entry.failures = entry.failures.saturating_add(1);
                let factor = 1u32 << entry.failures.min(16).saturating_sub(1);
                let backoff = self
                    .config
                    .interval
                    .saturating_mul(factor)
                    .min(self.config.max_backoff.max(self.config.interval));
                entry.next_due = now + backoff;
                true
            }
        };
        entry.reported = true;
        let completion = Completion {
            report,
            previous,
            consecutive_failures: entry.failures,
        };
        if was_in_flight {
            let bmc = entry.bmc.clone();
            self.release(&bmc);
        }
        Some(completion)
    }

    /// When the next node not in flight falls due.
    pub fn next_due(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter(|entry| !entry.in_flight)
            .map(|entry| entry.next_due)
            .min()
    }
}

/// Runs a [`Schedule`] against real drivers.
pub struct Poller<K> {
    config: PollerConfig,
    schedule: Schedule<K>,
    drivers: HashMap<K, Arc<dyn PowerDriver>>,
}

impl<K> Poller<K>
where
    K: Clone + Eq + Hash + Send + Sync + std::fmt::Debug + 'static,
{
    pub fn new(
        config: PollerConfig,
        targets: impl IntoIterator<Item = PollTarget<K>>,
    ) -> Poller<K> {
        let mut poller = Poller {
            config,
            schedule: Schedule::new(config),
            drivers: HashMap::new(),
        };
        let now = Instant::now();
        for target in targets {
            poller
                .schedule
                .insert(target.key.clone(), target.driver.bmc(), now);
            poller.drivers.insert(target.key, target.driver);
        }
        poller
    }

    /// Polls until `shutdown` completes or the receiver of `reports` is
    /// dropped. Queries still running then are cancelled.
    pub async fn run(
        mut self,
        reports: mpsc::Sender<PowerReport<K>>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let mut running: JoinSet<(K, Result<PowerState, PowerError>)> = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let now = Instant::now();
            for key in self.schedule.take_due(now) {
                let Some(driver) = self.drivers.get(&key).cloned() else {
                    continue;
                };
                let timeout = self.config.query_timeout;
                let span = info_span!("power_poll", driver = driver.power_type(), bmc = driver.bmc(), node = ?key);
                running.spawn(
                    async move {
                        let result = match tokio::time::timeout(timeout, driver.query()).await {
                            Ok(result) => result,
                            Err(_) => Err(PowerError::Timeout {
                                bmc: driver.bmc().to_owned(),
                                action: PowerAction::Query,
                                waited: timeout,
                            }),
                        };
                        (key, result)
                    }
                    .instrument(span),
                );
            }
            let wake = self
                .schedule
                .next_due()
                .unwrap_or_else(|| now + self.config.interval);
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep_until(wake) => {}
                Some(joined) = running.join_next(), if !running.is_empty() => {
                    let Ok((key, result)) = joined else {
                        // A query task panicked or was cancelled; its node
                        // stays in flight no longer than this loop runs.
                        continue;
                    };
                    let outcome = result.as_ref().map(|state| *state).map_err(|_| ());
                    let Some(completion) = self.schedule.complete(&key, Instant::now(), outcome) else {
                        continue;
                    };
                    if let Err(error) = &result {
                        debug!(node = ?key, error = %error, "power query failed");
                    }
                    if completion.report {
                        let report = PowerReport {
                            key,
                            result,
                            previous: completion.previous,
                            consecutive_failures: completion.consecutive_failures,
                        };
                        if reports.send(report).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        running.abort_all();
    }
}

/// Queries every target once, at most `config.concurrency` at a time, each
/// bounded by `config.query_timeout`, calling `on_result` as results come
/// in: the shape of MAAS's rack loop over `ListNodePowerParameters`.
pub async fn query_all<K>(
    config: &PollerConfig,
    targets: impl IntoIterator<Item = PollTarget<K>>,
    mut on_result: impl FnMut(K, Result<PowerState, PowerError>),
) where
    K: Clone + Eq + Hash + Send + Sync + std::fmt::Debug + 'static,
{
    let (sender, mut receiver) = mpsc::channel(64);
    let targets: Vec<PollTarget<K>> = targets.into_iter().collect();
    let mut remaining = targets.len();
    if remaining == 0 {
        return;
    }
    let once = PollerConfig {
        // Long enough that nobody is queried twice before all are done.
        interval: Duration::from_secs(86_400),
        max_backoff: Duration::from_secs(86_400),
        ..*config
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let poller = Poller::new(once, targets);
    let task = tokio::spawn(poller.run(sender, async move {
        let _ = stopped.await;
    }));
    let mut seen = std::collections::HashSet::new();
    while remaining > 0 {
        let Some(report) = receiver.recv().await else {
            break;
        };
        if seen.insert(report.key.clone()) {
            remaining -= 1;
            on_result(report.key, report.result);
        }
    }
    let _ = stop.send(());
    let _ = task.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(concurrency: usize, per_bmc: usize) -> PollerConfig {
        PollerConfig {
            interval: Duration::from_secs(10),
            concurrency,
            per_bmc_concurrency: per_bmc,
            query_timeout: Duration::from_secs(5),
            max_backoff: Duration::from_secs(60),
        }
    }

    #[test]
    fn due_respects_both_limits() {
        let start = Instant::now();
        let mut schedule = Schedule::new(config(3, 1));
        for node in 0..5 {
            // Nodes 0-2 share one chassis BMC.
            let bmc = if node < 3 { "chassis" } else { "single" };
            let bmc = format!("{bmc}-{}", if node < 3 { 0 } else { node });
            schedule.insert(node, &bmc, start);
        }
        let first = schedule.take_due(start);
        assert_eq!(first.len(), 3);
        assert_eq!(
            first.iter().filter(|node| **node < 3).count(),
            1,
            "{first:?}"
        );
        assert!(schedule.take_due(start).is_empty(), "budget used up");
        // Finishing the chassis query lets the next chassis node go.
        let chassis = first
            .iter()
            .copied()
            .find(|node| *node < 3)
            .unwrap_or_default();
        schedule.complete(&chassis, start, Ok(PowerState::On));
        let next = schedule.take_due(start);
        assert_eq!(next.len(), 1);
        assert!(next[0] < 3 && next[0] != chassis, "{next:?}");
        assert_eq!(schedule.in_flight(), 3);
    }

    #[test]
    fn reports_first_result_changes_and_failures_and_backs_off() {
        let start = Instant::now();
        let mut schedule = Schedule::new(config(5, 1));
        schedule.insert("a", "bmc-a", start);
        let check =
            |schedule: &mut Schedule<&str>, at: Duration, result: Result<PowerState, ()>| {
                let now = start + at;
                assert_eq!(schedule.take_due(now), vec!["a"], "due at {at:?}");
                schedule
                    .complete(&"a", now, result)
                    .map(|c| (c.report, c.consecutive_failures))
            };
        assert_eq!(
            check(&mut schedule, Duration::ZERO, Ok(PowerState::Off)),
            Some((true, 0))
        );
        assert!(schedule.take_due(start + Duration::from_secs(9)).is_empty());
        assert_eq!(
            check(&mut schedule, Duration::from_secs(10), Ok(PowerState::Off)),
            Some((false, 0))
        );
        assert_eq!(
            check(&mut schedule, Duration::from_secs(20), Ok(PowerState::On)),
            Some((true, 0))
        );
        assert_eq!(
            check(&mut schedule, Duration::from_secs(30), Err(())),
            Some((true, 1))
        );
        // Backoff: 10 s, then 20 s, then 40 s, then capped at 60 s.
        assert_eq!(
            check(&mut schedule, Duration::from_secs(40), Err(())),
            Some((true, 2))
        );
        assert!(
            schedule
                .take_due(start + Duration::from_secs(59))
                .is_empty()
        );
        assert_eq!(
            check(&mut schedule, Duration::from_secs(60), Err(())),
            Some((true, 3))
        );
        assert!(
            schedule
                .take_due(start + Duration::from_secs(99))
                .is_empty()
        );
        assert_eq!(
            check(&mut schedule, Duration::from_secs(100), Err(())),
            Some((true, 4))
        );
        assert_eq!(schedule.next_due(), Some(start + Duration::from_secs(160)));
        assert_eq!(
            check(&mut schedule, Duration::from_secs(160), Ok(PowerState::On)),
            Some((false, 0))
        );
        assert_eq!(schedule.next_due(), Some(start + Duration::from_secs(170)));
    }

    #[test]
    fn removing_in_flight_frees_its_slot() {
        let start = Instant::now();
        let mut schedule = Schedule::new(config(1, 1));
        schedule.insert(1, "x", start);
        schedule.insert(2, "y", start);
        let first = schedule.take_due(start);
        assert_eq!(first.len(), 1);
        schedule.remove(&first[0]);
        assert_eq!(schedule.take_due(start).len(), 1);
        assert_eq!(schedule.len(), 1);
        assert_eq!(
            schedule.complete(&first[0], start, Ok(PowerState::On)),
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn hung_bmc_times_out_without_delaying_others() {
        use crate::drivers::fake::FakeDriver;
        let hung = FakeDriver::new("hung");
        hung.set_delay(Duration::from_secs(3600));
        let mut targets = vec![PollTarget {
            key: 0,
            driver: Arc::new(hung) as Arc<dyn PowerDriver>,
        }];
        for key in 1..20 {
            let fake = FakeDriver::new(&format!("bmc-{key}"));
            fake.set_state(if key % 2 == 0 {
                PowerState::On
            } else {
                PowerState::Off
            });
            targets.push(PollTarget {
                key,
                driver: Arc::new(fake),
            });
        }
        let mut results = Vec::new();
        let started = Instant::now();
        query_all(&config(4, 1), targets, |key, result| {
            results.push((key, result, started.elapsed()))
        })
        .await;
        assert_eq!(results.len(), 20);
        let (_, hung_result, hung_at) = results
            .iter()
            .find(|(key, ..)| *key == 0)
            .expect("hung BMC reported");
        assert!(
            matches!(hung_result, Err(PowerError::Timeout { .. })),
            "{hung_result:?}"
        );
        assert_eq!(*hung_at, Duration::from_secs(5));
        for (key, result, _) in &results {
            if *key != 0 {
                let expected = if key % 2 == 0 {
                    PowerState::On
                } else {
                    PowerState::Off
                };
                assert_eq!(result.as_ref().ok(), Some(&expected));
            }
        }
    }
}
