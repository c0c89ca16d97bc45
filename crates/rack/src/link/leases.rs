//! Lease changes waiting for the region: a bounded queue, oldest first, from which batches
//! are sent and removed only once the region acknowledged them, so changes made while no
//! region was reachable are delivered after the link comes back.

use std::collections::VecDeque;

use maas_dhcp_wire::engine::LeaseEvent;
use maas_rpc::{LeaseAction, LeaseUpdate};

/// The region's view of a lease event; `None` for events MAAS does not report (a DECLINE
/// only blocks the address on this rack).
pub fn lease_update(event: &LeaseEvent) -> Option<LeaseUpdate> {
    let unix = |seconds: u64| i64::try_from(seconds).unwrap_or(i64::MAX);
    match event {
        LeaseEvent::Commit {
            mac,
            ip,
            hostname,
            start,
            lease_time,
        } => Some(LeaseUpdate {
            action: LeaseAction::Commit,
            mac: mac.to_string(),
            ip: (*ip).into(),
            timestamp: unix(*start),
            lease_time: Some(*lease_time),
            hostname: hostname.clone(),
        }),
        LeaseEvent::Release { mac, ip, at } => Some(LeaseUpdate {
            action: LeaseAction::Release,
            mac: mac.to_string(),
            ip: (*ip).into(),
            timestamp: unix(*at),
            lease_time: None,
            hostname: None,
        }),
        LeaseEvent::Expire { mac, ip, at } => Some(LeaseUpdate {
            action: LeaseAction::Expiry,
            mac: mac.to_string(),
            ip: (*ip).into(),
            timestamp: unix(*at),
            lease_time: None,
            hostname: None,
        }),
        LeaseEvent::Decline { .. } => None,
    }
}

/// A batch taken from the queue: acknowledge it with its `last` sequence number.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub last: u64,
    pub updates: Vec<LeaseUpdate>,
}

#[derive(Debug)]
pub struct LeaseQueue {
    entries: VecDeque<(u64, LeaseUpdate)>,
    capacity: usize,
    next_seq: u64,
    dropped: u64,
}

impl LeaseQueue {
    pub fn new(capacity: usize) -> LeaseQueue {
        LeaseQueue {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            next_seq: 0,
            dropped: 0,
        }
    }

    /// Queues an update; when full the oldest is dropped, and `true` says one was.
    pub fn push(&mut self, update: LeaseUpdate) -> bool {
        let dropped = if self.entries.len() >= self.capacity {
            self.entries.pop_front();
            self.dropped += 1;
            true
        } else {
            false
        };
        self.entries.push_back((self.next_seq, update));
        self.next_seq += 1;
        dropped
    }

    /// Up to `max` of the oldest updates, left in the queue until acknowledged.
    pub fn batch(&self, max: usize) -> Option<Batch> {
        let mut updates = Vec::new();
        let mut last = None;
        for (seq, update) in self.entries.iter().take(max.max(1)) {
            updates.push(update.clone());
            last = Some(*seq);
        }
        last.map(|last| Batch { last, updates })
    }

    /// Removes everything up to and including `last`; entries dropped meanwhile for room
    /// are already gone.
    pub fn ack(&mut self, last: u64) {
        while self.entries.front().is_some_and(|(seq, _)| *seq <= last) {
            self.entries.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Updates dropped for room since the rack started.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(n: u8) -> LeaseUpdate {
        LeaseUpdate {
            action: LeaseAction::Commit,
            mac: format!("52:54:00:00:00:{n:02x}"),
            ip: std::net::Ipv4Addr::new(10, 0, 0, n).into(),
            timestamp: i64::from(n),
            lease_time: Some(600),
            hostname: None,
        }
    }

    fn ips(batch: &Batch) -> Vec<u8> {
        batch
            .updates
            .iter()
            .map(|u| match u.ip {
                std::net::IpAddr::V4(v4) => v4.octets()[3],
                std::net::IpAddr::V6(_) => 0,
            })
            .collect()
    }

    #[test]
    fn batches_stay_until_acknowledged() {
        let mut queue = LeaseQueue::new(100);
        for n in 1..=5 {
            assert!(!queue.push(update(n)));
        }
        let first = queue.batch(2).expect("batch");
        assert_eq!(ips(&first), vec![1, 2]);
        // Not acknowledged (the call failed): the same batch comes again.
        assert_eq!(queue.batch(2), Some(first.clone()));
        queue.push(update(6));
        queue.ack(first.last);
        let second = queue.batch(10).expect("batch");
        assert_eq!(ips(&second), vec![3, 4, 5, 6]);
        queue.ack(second.last);
        assert!(queue.is_empty());
        assert_eq!(queue.batch(10), None);
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts() {
        let mut queue = LeaseQueue::new(3);
        for n in 1..=3 {
            queue.push(update(n));
        }
        let in_flight = queue.batch(3).expect("batch");
        assert!(queue.push(update(4)));
        assert!(queue.push(update(5)));
        assert_eq!(queue.dropped(), 2);
        assert_eq!(queue.len(), 3);
        // Acknowledging a batch whose head was dropped meanwhile removes only what remains
        // of it.
        queue.ack(in_flight.last);
        assert_eq!(ips(&queue.batch(10).expect("batch")), vec![4, 5]);
    }

    #[test]
    fn events_map_to_maas_actions() {
        let mac = "52:54:00:00:00:01".parse().expect("mac");
        let ip = std::net::Ipv4Addr::new(10, 0, 0, 9);
        let commit = lease_update(&LeaseEvent::Commit {
            mac,
            ip,
            hostname: Some("node".into()),
            start: 100,
            lease_time: 600,
        })
        .expect("reported");
        assert_eq!(commit.action, LeaseAction::Commit);
        assert_eq!(commit.mac, "52:54:00:00:00:01");
        assert_eq!((commit.timestamp, commit.lease_time), (100, Some(600)));
        assert_eq!(commit.hostname.as_deref(), Some("node"));
        let expiry = lease_update(&LeaseEvent::Expire { mac, ip, at: 7 }).expect("reported");
        assert_eq!((expiry.action, expiry.timestamp), (LeaseAction::Expiry, 7));
        let release = lease_update(&LeaseEvent::Release { mac, ip, at: 8 }).expect("reported");
        assert_eq!(release.action, LeaseAction::Release);
        assert_eq!(
            lease_update(&LeaseEvent::Decline {
                mac,
                ip,
                at: 1,
                until: 2
            }),
            None
        );
    }
}
