//! Test helpers that start real storage servers on free loopback ports.
//!
//! Everything here is synchronous and uses only `std` for HTTP, so it works the same from a
//! plain `#[test]` and from a `#[tokio::test]` (the calls are short and local).
//!
//! - [`InfluxV1`] runs the Debian `influxdb` package's `influxd` (1.x) in a temporary directory.
//! - [`VictoriaMetrics`] runs the Debian `victoria-metrics` package's single-node server.
//! - [`http`] is a tiny HTTP/1.1 client for poking at those servers from tests.
//!
//! A missing binary is an error that says what to install; tests fail with it rather than
//! skip, so a machine without the servers cannot pass by accident.
//!
//! **Architecture Invariant:** this crate is a dev-dependency only; nothing in it ships.

pub mod http;
mod influx_v1;
mod process;
mod victoria;

pub use http::HttpResponse;
pub use influx_v1::InfluxV1;
pub use victoria::VictoriaMetrics;

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
///
/// The port is found by binding port 0 and dropping the listener, so another process can
/// take it before the caller does; the server helpers retry their start-up for that reason.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("binding 127.0.0.1:0 must work on a test machine")
}
