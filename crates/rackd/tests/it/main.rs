//! Integration tests of the rack daemon: the region link against a fake region over real
//! TCP on loopback, the `maas-rack` binary, and a rack serving DHCP to busybox udhcpc in
//! network namespaces the test creates (root).

mod daemon;
mod fake_region;
mod link;
mod netns;
mod support;
