//! The state of the rack's services (`rackd`, `dhcpd`, `tftp`, `http`), as the daemon sees
//! them; the region link reports it to the region (MAAS `UpdateServices`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use maas_rpc::ServiceState;
use tokio::sync::watch;

/// MAAS's service status values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceStatus {
    Running,
    Degraded,
    Dead,
    Off,
    Unknown,
}

impl ServiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceStatus::Running => "running",
            ServiceStatus::Degraded => "degraded",
            ServiceStatus::Dead => "dead",
            ServiceStatus::Off => "off",
            ServiceStatus::Unknown => "unknown",
        }
    }
}

/// Shared between the daemon, which updates it, and the region link, which reports it.
#[derive(Debug)]
pub struct ServiceRegistry {
    states: Mutex<BTreeMap<String, (ServiceStatus, String)>>,
    /// Bumped on every change.
    version: watch::Sender<u64>,
}

impl Default for ServiceRegistry {
    fn default() -> ServiceRegistry {
        ServiceRegistry::new()
    }
}

impl ServiceRegistry {
    pub fn new() -> ServiceRegistry {
        ServiceRegistry {
            states: Mutex::new(BTreeMap::new()),
            version: watch::channel(0).0,
        }
    }

    /// Records a service's state; wakes whoever reports it when it differs from before.
    pub fn set(&self, name: &str, status: ServiceStatus, status_info: impl Into<String>) {
        let entry = (status, status_info.into());
        let mut states = self
            .states
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if states.get(name) == Some(&entry) {
            return;
        }
        states.insert(name.to_owned(), entry);
        drop(states);
        self.version.send_modify(|v| *v += 1);
    }

    pub fn set_running(&self, name: &str) {
        self.set(name, ServiceStatus::Running, "");
    }

    pub fn set_dead(&self, name: &str, status_info: impl Into<String>) {
        self.set(name, ServiceStatus::Dead, status_info);
    }

    pub fn status(&self, name: &str) -> Option<(ServiceStatus, String)> {
        self.states
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(name)
            .cloned()
    }

    /// Every service, by name.
    pub fn snapshot(&self) -> Vec<ServiceState> {
        self.states
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|(name, (status, info))| ServiceState {
                name: name.clone(),
                status: status.as_str().to_owned(),
                status_info: info.clone(),
            })
            .collect()
    }

    /// Changes as they happen: `changed()` on the receiver resolves after each.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_lists_every_service_by_name() {
        let registry = ServiceRegistry::new();
        let mut changes = registry.subscribe();
        registry.set_running("tftp");
        assert!(changes.has_changed().expect("registry alive"));
        changes.borrow_and_update();
        registry.set_running("tftp");
        assert!(!changes.has_changed().expect("registry alive"));
        registry.set_dead("dhcpd", "cannot bind UDP 0.0.0.0:67: permission denied");
        let names: Vec<_> = registry
            .snapshot()
            .into_iter()
            .map(|s| (s.name, s.status, s.status_info))
            .collect();
        assert_eq!(
            names,
            vec![
                (
                    "dhcpd".to_owned(),
                    "dead".to_owned(),
                    "cannot bind UDP 0.0.0.0:67: permission denied".to_owned()
                ),
                ("tftp".to_owned(), "running".to_owned(), String::new()),
            ]
        );
        assert_eq!(
            registry.status("tftp"),
            Some((ServiceStatus::Running, String::new()))
        );
    }
}
