//! CPUs: `/proc/cpuinfo` for names and flags, sysfs topology, cpufreq and NUMA nodes.

use std::collections::BTreeMap;

use serde::Serialize;

use super::sysfs::{Sysfs, parse_cpulist};

#[derive(Clone, Debug, Serialize)]
pub struct Cpu {
    pub architecture: String,
    pub sockets: Vec<Socket>,
    /// Number of threads.
    pub total: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Socket {
    pub name: String,
    pub vendor: String,
    pub socket: u64,
    pub cores: Vec<Core>,
    /// MHz: the average current frequency of the socket's threads.
    pub frequency: u64,
    pub frequency_minimum: u64,
    pub frequency_turbo: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Core {
    pub core: u64,
    pub die: u64,
    pub threads: Vec<Thread>,
    pub frequency: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Thread {
    pub id: u64,
    pub numa_node: u64,
    pub thread: u64,
    pub online: bool,
    pub isolated: bool,
}

pub struct Collected {
    pub cpu: Cpu,
    /// The `hypervisor` flag: the machine is a virtual machine.
    pub hypervisor: bool,
}

struct Processor {
    id: u64,
    fields: BTreeMap<String, String>,
}

fn parse_cpuinfo(text: &str) -> Vec<Processor> {
    let mut processors = Vec::new();
    for block in text.split("\n\n") {
        let fields: BTreeMap<String, String> = block
            .lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
            .collect();
        if let Some(id) = fields.get("processor").and_then(|id| id.parse().ok()) {
            processors.push(Processor { id, fields });
        }
    }
    processors
}

pub fn collect(fs: &Sysfs) -> Collected {
    let processors = parse_cpuinfo(&fs.text("proc/cpuinfo").unwrap_or_default());
    let hypervisor = processors.iter().any(|p| {
        p.fields
            .get("flags")
            .is_some_and(|flags| flags.split_whitespace().any(|flag| flag == "hypervisor"))
    });
    let mut numa_of: BTreeMap<u64, u64> = BTreeMap::new();
    for node in fs.entries("sys/devices/system/node") {
        let Some(number) = node.strip_prefix("node").and_then(|n| n.parse().ok()) else {
            continue;
        };
        let list = fs
            .text(&format!("sys/devices/system/node/{node}/cpulist"))
            .unwrap_or_default();
        for cpu in parse_cpulist(&list) {
            numa_of.insert(cpu, number);
        }
    }
    let isolated = parse_cpulist(
        &fs.text("sys/devices/system/cpu/isolated")
            .unwrap_or_default(),
    );

    // socket -> (core, die) -> threads as (cpu id, thread index)
    type Cores = BTreeMap<(u64, u64), Vec<(u64, u64)>>;
    let mut sockets: BTreeMap<u64, Cores> = BTreeMap::new();
    let mut first_of_socket: BTreeMap<u64, usize> = BTreeMap::new();
    let mut frequency: BTreeMap<u64, (u64, u64, u64)> = BTreeMap::new();
    let mut online: BTreeMap<u64, bool> = BTreeMap::new();
    for (index, processor) in processors.iter().enumerate() {
        let base = format!("sys/devices/system/cpu/cpu{}", processor.id);
        let field_number = |key: &str| processor.fields.get(key).and_then(|v| v.parse().ok());
        let socket = fs
            .number(&format!("{base}/topology/physical_package_id"))
            .or_else(|| field_number("physical id"))
            .unwrap_or(0);
        let core = fs
            .number(&format!("{base}/topology/core_id"))
            .or_else(|| field_number("core id"))
            .unwrap_or(processor.id);
        let die = fs.number(&format!("{base}/topology/die_id")).unwrap_or(0);
        let cpuinfo_mhz = processor
            .fields
            .get("cpu MHz")
            .and_then(|mhz| mhz.parse::<f64>().ok())
            .map_or(0, |mhz| mhz.round() as u64);
        let khz = |name: &str| {
            fs.number(&format!("{base}/cpufreq/{name}"))
                .map(|k| k / 1000)
        };
        frequency.insert(
            processor.id,
            (
                khz("scaling_cur_freq").unwrap_or(cpuinfo_mhz),
                khz("cpuinfo_min_freq").unwrap_or(0),
                khz("cpuinfo_max_freq").unwrap_or(0),
            ),
        );
        online.insert(
            processor.id,
            fs.number(&format!("{base}/online"))
                .is_none_or(|state| state == 1),
        );
        first_of_socket.entry(socket).or_insert(index);
        let threads = sockets
            .entry(socket)
            .or_default()
            .entry((core, die))
            .or_default();
        let thread = threads.len() as u64;
        threads.push((processor.id, thread));
    }

    let sockets = sockets
        .into_iter()
        .map(|(socket, cores)| {
            let first = &processors[first_of_socket[&socket]];
            let cores: Vec<Core> = cores
                .into_iter()
                .map(|((core, die), threads)| {
                    let frequencies: Vec<u64> =
                        threads.iter().map(|(id, _)| frequency[id].0).collect();
                    Core {
                        core,
                        die,
                        frequency: average(&frequencies),
                        threads: threads
                            .into_iter()
                            .map(|(id, thread)| Thread {
                                id,
                                numa_node: numa_of.get(&id).copied().unwrap_or(0),
                                thread,
                                online: online[&id],
                                isolated: isolated.contains(&id),
                            })
                            .collect(),
                    }
                })
                .collect();
            let ids: Vec<u64> = cores
                .iter()
                .flat_map(|c| c.threads.iter().map(|t| t.id))
                .collect();
            Socket {
                name: first.fields.get("model name").cloned().unwrap_or_default(),
                vendor: first.fields.get("vendor_id").cloned().unwrap_or_default(),
                socket,
                frequency: average(&ids.iter().map(|id| frequency[id].0).collect::<Vec<_>>()),
                frequency_minimum: ids.iter().map(|id| frequency[id].1).min().unwrap_or(0),
                frequency_turbo: ids.iter().map(|id| frequency[id].2).max().unwrap_or(0),
                cores,
            }
        })
        .collect();
    Collected {
        cpu: Cpu {
            architecture: fs
                .text("proc/sys/kernel/arch")
                .unwrap_or_else(|| std::env::consts::ARCH.to_owned()),
            sockets,
            total: processors.len() as u64,
        },
        hypervisor,
    }
}

fn average(values: &[u64]) -> u64 {
    if values.is_empty() {
        0
    } else {
        values.iter().sum::<u64>() / values.len() as u64
    }
}
