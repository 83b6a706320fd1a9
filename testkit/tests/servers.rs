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

/// `POST /write?db=kit&precision=ms` with these lines.
fn write_ms(influx: &InfluxV1, lines: &str) -> Result<http::HttpResponse, String> {
    http::request(
        "POST",
        &format!("{}/write?db=kit&precision=ms", influx.url()),
        &[],
        lines.as_bytes(),
    )
}

#[test]
fn influx_v1_stop_refuses_connections_and_restart_keeps_data_and_url() {
    let mut influx = InfluxV1::start().unwrap();
    influx.create_database("kit").unwrap();
    let url = influx.url();
    let first = write_ms(&influx, "m,node=a v=1 1700000000000\n").unwrap();
    assert_eq!(first.status, 204, "{}", first.text());

    influx.stop();
    assert!(!influx.is_running());
    let error = write_ms(&influx, "m,node=a v=2 1700000001000\n").unwrap_err();
    assert!(
        error.to_ascii_lowercase().contains("connection refused"),
        "write while stopped: {error}"
    );
    influx.stop(); // stopping twice is fine

    influx
        .restart()
        .unwrap_or_else(|e| panic!("{e}\n{}", influx.log_tail()));
    assert!(influx.is_running());
    assert_eq!(influx.url(), url, "restart must keep the port");
    assert_eq!(
        influx.timestamps_ms("kit", "SELECT v FROM m").unwrap(),
        vec![1_700_000_000_000]
    );
    let second = write_ms(&influx, "m,node=a v=2 1700000001000\n").unwrap();
    assert_eq!(second.status, 204, "{}", second.text());
    assert_eq!(
        influx.timestamps_ms("kit", "SELECT v FROM m").unwrap(),
        vec![1_700_000_000_000, 1_700_000_001_000]
    );

    // Dropping a stopped server cleans up too (the running case is tested above).
    influx.stop();
    drop(influx);
    assert!(http::get(&format!("{url}/ping")).is_err());
}

#[test]
fn influx_v1_kill_keeps_acknowledged_writes_and_auth() {
    let mut influx = InfluxV1::start_with_auth("admin", "s3cret").unwrap();
    influx.create_database("kit").unwrap();
    let write = http::request(
        "POST",
        &format!(
            "{}/write?db=kit&precision=ms&u=admin&p=s3cret",
            influx.url()
        ),
        &[],
        b"m v=1 1700000000000\nm v=2 1700000000500\n",
    )
    .unwrap();
    assert_eq!(write.status, 204, "{}", write.text());

    influx.kill();
    assert!(http::get(&format!("{}/ping", influx.url())).is_err());
    // Restarting a running server stops it first.
    influx
        .restart()
        .unwrap_or_else(|e| panic!("{e}\n{}", influx.log_tail()));
    influx
        .restart()
        .unwrap_or_else(|e| panic!("{e}\n{}", influx.log_tail()));
    assert_eq!(
        influx.timestamps_ms("kit", "SELECT v FROM m").unwrap(),
        vec![1_700_000_000_000, 1_700_000_000_500]
    );
    let anonymous = http::request(
        "POST",
        &format!("{}/write?db=kit", influx.url()),
        &[],
        b"m v=3",
    )
    .unwrap();
    assert_eq!(anonymous.status, 401, "auth survives a restart");
}

#[test]
fn influx_v1_restart_fails_when_its_port_was_taken() {
    let mut influx = InfluxV1::start().unwrap();
    let url = influx.url();
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    influx.kill();

    let squatter = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let error = influx.restart().unwrap_err();
    assert!(
        error.contains("taken") && error.contains(&port.to_string()),
        "{error}"
    );
    assert!(!influx.is_running());
    assert_eq!(influx.url(), url);

    drop(squatter);
    influx
        .restart()
        .unwrap_or_else(|e| panic!("{e}\n{}", influx.log_tail()));
    assert_eq!(http::get(&format!("{url}/ping")).unwrap().status, 204);
}

#[test]
fn influx_v1_timestamps_ms_returns_every_row_of_every_series_sorted() {
    let influx = InfluxV1::start().unwrap();
    influx.create_database("kit").unwrap();
    let write = write_ms(
        &influx,
        "cpu,node=a usage_percent=3 1700000002000\n\
         cpu,node=b usage_percent=9 1700000000001\n\
         cpu,node=a usage_percent=1 1700000000000\n\
         cpu,node=a usage_percent=2 1700000001234\n",
    )
    .unwrap();
    assert_eq!(write.status, 204, "{}", write.text());

    assert_eq!(
        influx
            .timestamps_ms("kit", "SELECT usage_percent FROM cpu WHERE node = 'a'")
            .unwrap(),
        vec![1_700_000_000_000, 1_700_000_001_234, 1_700_000_002_000]
    );
    // GROUP BY gives one series per node; all rows come back in one sorted list.
    assert_eq!(
        influx
            .timestamps_ms("kit", "SELECT usage_percent FROM cpu GROUP BY node")
            .unwrap(),
        vec![
            1_700_000_000_000,
            1_700_000_000_001,
            1_700_000_001_234,
            1_700_000_002_000
        ]
    );
    assert_eq!(
        influx
            .timestamps_ms("kit", "SELECT usage_percent FROM cpu WHERE node = 'z'")
            .unwrap(),
        Vec::<i64>::new()
    );
    assert!(influx.timestamps_ms("kit", "SELEKT nonsense").is_err());
}
