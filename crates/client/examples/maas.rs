//! The client commands as a stand-alone program, for trying them by hand:
//! `cargo run -p maas-client --example maas -- login admin http://localhost:5240/MAAS/ KEY`.
//! The real `maas` binary (crates/cli) adds the region's local admin commands.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(maas_client::run_std(&args));
}
