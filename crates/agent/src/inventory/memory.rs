//! Memory: installed size from memory blocks (what the firmware gave the machine, not
//! `MemTotal` after the kernel's reservations), usage and huge pages from `meminfo`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::sysfs::Sysfs;

#[derive(Clone, Debug, Serialize)]
pub struct Memory {
    pub nodes: Vec<Node>,
    /// Bytes reserved for huge pages.
    pub hugepages_total: u64,
    pub hugepages_used: u64,
    pub hugepages_size: u64,
    pub used: u64,
    pub total: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Node {
    pub numa_node: u64,
    pub hugepages_used: u64,
    pub hugepages_total: u64,
    pub used: u64,
    pub total: u64,
}

/// A `meminfo` value in bytes (`MemTotal:  1024 kB`; `HugePages_Total: 4` is a count).
fn meminfo_value(fields: &BTreeMap<String, String>, key: &str) -> u64 {
    let Some(value) = fields.get(key) else {
        return 0;
    };
    let mut parts = value.split_whitespace();
    let number: u64 = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    match parts.next() {
        Some("kB") => number * 1024,
        _ => number,
    }
}

pub fn collect(fs: &Sysfs) -> Memory {
    let meminfo = fs.key_values("proc/meminfo", ':');
    let mem_total = meminfo_value(&meminfo, "MemTotal");
    let available = meminfo_value(&meminfo, "MemAvailable");
    let page_size = meminfo_value(&meminfo, "Hugepagesize");
    let huge_total = meminfo_value(&meminfo, "HugePages_Total") * page_size;
    let huge_free = meminfo_value(&meminfo, "HugePages_Free") * page_size;

    let block_size = fs.hex("sys/devices/system/memory/block_size_bytes");
    let mut nodes = Vec::new();
    let mut blocks_total = 0;
    for node in fs.entries("sys/devices/system/node") {
        let Some(number) = node
            .strip_prefix("node")
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let base = format!("sys/devices/system/node/{node}");
        // Node meminfo lines read "Node 0 MemTotal:  1024 kB".
        let node_info: BTreeMap<String, String> = fs
            .text(&format!("{base}/meminfo"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.split_once(':'))
            .filter_map(|(key, value)| {
                Some((
                    key.split_whitespace().nth(2)?.to_owned(),
                    value.trim().to_owned(),
                ))
            })
            .collect();
        let online_blocks = fs
            .entries(&base)
            .iter()
            .filter(|entry| entry.starts_with("memory") && entry[6..].parse::<u64>().is_ok())
            .filter(|entry| {
                fs.number(&format!("sys/devices/system/memory/{entry}/online")) == Some(1)
            })
            .count() as u64;
        let total = match block_size {
            Some(size) if online_blocks > 0 => size * online_blocks,
            _ => meminfo_value(&node_info, "MemTotal"),
        };
        blocks_total += total;
        let node_page = page_size.max(1);
        let node_huge_total = fs
            .number(&format!(
                "{base}/hugepages/hugepages-{}kB/nr_hugepages",
                node_page / 1024
            ))
            .unwrap_or(0)
            * page_size;
        let node_huge_free = fs
            .number(&format!(
                "{base}/hugepages/hugepages-{}kB/free_hugepages",
                node_page / 1024
            ))
            .unwrap_or(0)
            * page_size;
        nodes.push(Node {
            numa_node: number,
            hugepages_used: node_huge_total.saturating_sub(node_huge_free),
            hugepages_total: node_huge_total,
            used: meminfo_value(&node_info, "MemUsed"),
            total,
        });
    }
    let total = if blocks_total > 0 {
        blocks_total
    } else {
        mem_total
    };
    if nodes.is_empty() && total > 0 {
        nodes.push(Node {
            numa_node: 0,
            hugepages_used: huge_total.saturating_sub(huge_free),
            hugepages_total: huge_total,
            used: mem_total.saturating_sub(available),
            total,
        });
    }
    Memory {
        nodes,
        hugepages_total: huge_total,
        hugepages_used: huge_total.saturating_sub(huge_free),
        hugepages_size: page_size,
        used: mem_total.saturating_sub(available),
        total,
    }
}
