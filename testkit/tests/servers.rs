//! The helpers start real servers, answer queries, and clean up after themselves.

use pivitals_testkit::{InfluxV1, VictoriaMetrics, free_port, http};

#[test]
fn free_port_is_bindable() {
    // Outgoing connections of concurrent tests draw from the same ephemeral range, so one
    // port may be taken again at once; a few tries must find one that stays free.
    let bound = (0..5).any(|_| {
        let port = free_port();
        port != 0 && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
    });
    assert!(bound, "no port from free_port() could be bound");
}

#[test]
fn influx_v1_starts_writes_counts_and_removes_its_directory() {
    let influx = InfluxV1::start().unwrap();
    influx.create_database("kit").unwrap();
    let write = http::request(
        "POST",
        &format!("{}/write?db=kit", influx.url()),
        &[],
        b"m,node=a v=1 1000000000\nm,node=b v=2 1000000000\n",
    )
    .unwrap();
    assert_eq!(write.status, 204, "{}", write.text());
    assert_eq!(influx.count("kit", "SELECT count(v) FROM m").unwrap(), 2);
    assert_eq!(
        influx.count("kit", "SELECT count(v) FROM nothing").unwrap(),
        0
    );
    assert!(influx.query("kit", "SELEKT nonsense").is_err());

    let url = influx.url();
    drop(influx);
    assert!(
        http::get(&format!("{url}/ping")).is_err(),
        "server still answers after drop"
    );
}

#[test]
fn influx_v1_with_auth_refuses_anonymous_writes() {
    let influx = InfluxV1::start_with_auth("admin", "s3cret").unwrap();
    influx.create_database("kit").unwrap();
    let anonymous = http::request(
        "POST",
        &format!("{}/write?db=kit", influx.url()),
        &[],
        b"m v=1",
    )
    .unwrap();
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    let with_user = http::request(
        "POST",
        &format!("{}/write?db=kit&u=admin&p=s3cret", influx.url()),
        &[],
        b"m v=1",
    )
    .unwrap();
    assert_eq!(with_user.status, 204, "{}", with_user.text());
    assert_eq!(influx.count("kit", "SELECT count(v) FROM m").unwrap(), 1);
}

#[test]
fn victoria_metrics_starts_and_exports_line_protocol() {
    let vm = VictoriaMetrics::start().unwrap();
    let write = http::request(
        "POST",
        &format!("{}/write", vm.url()),
        &[],
        b"cpu,node=pi1 usage=12.5,temp=40\n",
    )
    .unwrap();
    assert_eq!(write.status, 204, "{}", write.text());
    let series = vm.export_eventually("{__name__=~\"cpu_.*\"}", 2).unwrap();
    assert_eq!(series.len(), 2, "{series:?}");
    assert!(
        series.iter().all(|s| s["metric"]["node"] == "pi1"),
        "{series:?}"
    );
    assert_eq!(vm.series_count("cpu_usage").unwrap(), 1);
}
