//! Integration tests of the rack servers with real clients: busybox udhcpc, ISC dhcrelay,
//! curl, tftp-hpa and atftp. DHCP runs inside network namespaces the tests create (root);
//! TFTP and HTTP run on loopback high ports.

mod dhcp;
mod http;
mod image_cache;
mod pxe;
mod support;
mod tftp;
