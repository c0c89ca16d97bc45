//! The machine agent: the program the in-memory environment runs on a booted machine.
//!
//! It reads its orders from the kernel command line and the MAAS metadata API
//! (provisioning.md §2–3), reports the hardware inventory in the machine-resources format,
//! runs the commissioning, testing and release scripts the region hands out, deploys an
//! image to a disk, erases disks, and reports every step to the region.
//!
//! It deliberately has no async runtime and no TLS: it is one static binary of a few
//! hundred kilobytes that talks plain HTTP to the rack, and everything it does is a
//! sequence of blocking steps.

pub mod agent;
pub mod cmdline;
pub mod deploy;
pub mod erase;
pub mod http;
pub mod image;
pub mod inventory;
pub mod log;
pub mod metadata;
pub mod multipart;
pub mod oauth;
pub mod preseed;
pub mod scripts;
