//! A node's info (its identity: addresses, MACs, OS, kernel, board) as pushes update it, on a
//! primary running in-process (testkit's harness): `GET /api/v1/nodes/{name}` shows the
//! newest, with `primary_ipv4`/`primary_ipv6`; it survives a restart of the primary; an info
//! over its caps is refused (422 naming the field) and nothing of the push is stored.

use pivitals_common::{InterfaceInfo, NodeInfo, VitalsPush};
use pivitals_testkit::harness::{InProcessPrimary as Primary, metric};
use pivitals_testkit::samples::{now_ms, register_request, sample};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A Pi 4 after a DHCP renewal gave `eth0` the address `ipv4`.
fn renewed_info(hostname: &str, ipv4: &str) -> NodeInfo {
    NodeInfo {
        hostname: hostname.into(),
        os: "Debian GNU/Linux".into(),
        os_version: "12".into(),
        kernel: "6.6.51+rpt-rpi-v8".into(),
        board_model: Some("Raspberry Pi 4 Model B Rev 1.4".into()),
        board_serial: Some("10000000a1b2c3d4".into()),
        default_interface: Some("eth0".into()),
        interfaces: vec![
            InterfaceInfo {
                name: "wlan0".into(),
                mac: Some("dc:a6:32:01:02:04".into()),
                ipv4: vec!["192.168.1.40".into()],
                ipv6: vec![],
            },
            InterfaceInfo {
                name: "eth0".into(),
                mac: Some("dc:a6:32:01:02:03".into()),
                ipv4: vec![ipv4.into()],
                ipv6: vec!["fd00::dea6:32ff:fe01:203".into()],
            },
        ],
        ..Default::default()
    }
}

fn push_with_info(info: &NodeInfo) -> Value {
    serde_json::to_value(VitalsPush {
        samples: vec![sample(now_ms(), 7.0)],
        info: Some(info.clone()),
    })
    .expect("a push serializes")
}

#[tokio::test]
async fn a_push_with_new_info_updates_the_node_and_survives_a_restart() {
    let primary = Primary::start().await;
    let token = primary.register("pi-ident").await;
    let (status, node) = primary.get("/api/v1/nodes/pi-ident").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(node["primary_ipv4"], Value::Null, "{node}");
    assert_eq!(node["info"]["interfaces"], json!([]));

    let info = renewed_info("pi-ident.lan", "192.168.1.21");
    let (status, body) = primary.push(&token, &push_with_info(&info)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, node) = primary.get("/api/v1/nodes/pi-ident").await;
    assert_eq!(node["info"]["hostname"], "pi-ident.lan");
    assert_eq!(node["info"]["board_serial"], "10000000a1b2c3d4");
    assert_eq!(node["info"]["default_interface"], "eth0");
    assert_eq!(
        node["info"]["interfaces"][1],
        json!({
            "name": "eth0",
            "mac": "dc:a6:32:01:02:03",
            "ipv4": ["192.168.1.21"],
            "ipv6": ["fd00::dea6:32ff:fe01:203"],
        })
    );
    // The default route's interface wins over the first one listed.
    assert_eq!(node["primary_ipv4"], "192.168.1.21");
    assert_eq!(node["primary_ipv6"], "fd00::dea6:32ff:fe01:203");
    // The existing fields are unchanged.
    assert_eq!(node["name"], "pi-ident");
    assert_eq!(node["labels"], json!({"stack": "1"}));
    assert_eq!(node["latest"]["cpu"]["usage_percent"], 7.0);

    // The next renewal: a push with the new address; the list shows it too.
    let renewed = renewed_info("pi-ident.lan", "192.168.1.77");
    let (status, body) = primary.push(&token, &push_with_info(&renewed)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, nodes) = primary.get("/api/v1/nodes").await;
    assert_eq!(nodes[0]["primary_ipv4"], "192.168.1.77");
    assert_eq!(
        nodes[0]["info"]["interfaces"][1]["ipv4"],
        json!(["192.168.1.77"])
    );

    let dir = primary.stop().await;
    let primary = Primary::start_in(dir, &[]).await;
    let (_, node) = primary.get("/api/v1/nodes/pi-ident").await;
    assert_eq!(node["primary_ipv4"], "192.168.1.77", "{node}");
    assert_eq!(node["info"], serde_json::to_value(&renewed).unwrap());
    primary.stop().await;
}

#[tokio::test]
async fn an_oversized_info_is_refused_and_nothing_is_stored() {
    let primary = Primary::start_with(&[("PIVITALS_LIMITS__MAX_INTERFACES", "4")]).await;
    let token = primary.register("pi-big").await;
    let before = metric(&primary.metrics().await, "pivitals_points_received_total");

    let mut long_name = renewed_info("pi-big", "192.168.1.21");
    long_name.hostname = "h".repeat(300);
    let mut many_addresses = renewed_info("pi-big", "192.168.1.21");
    many_addresses.interfaces[1].ipv6 = (0..17).map(|i| format!("fd00::{i:x}")).collect();
    let mut many_interfaces = renewed_info("pi-big", "192.168.1.21");
    many_interfaces.interfaces = vec![InterfaceInfo::default(); 5];
    for (info, field) in [
        (long_name, "info.hostname"),
        (many_addresses, "info.interfaces[1].ipv6"),
        (many_interfaces, "info.interfaces"),
    ] {
        let (status, body) = primary.push(&token, &push_with_info(&info)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.starts_with(&format!("{field}: at most")), "{body}");
    }
    let metrics = primary.metrics().await;
    assert_eq!(
        metric(&metrics, "pivitals_points_received_total"),
        before,
        "{metrics}"
    );
    assert!(
        metrics.contains("pivitals_pushes_total{result=\"refused\"} 3"),
        "{metrics}"
    );
    assert!(primary.archived_vitals().is_empty());
    let (_, node) = primary.get("/api/v1/nodes/pi-big").await;
    assert_eq!(node["info"]["hostname"], "pi-big");
    assert_eq!(node["latest"], Value::Null);

    // Registration checks the same caps.
    let mut request = register_request("pi-big-2");
    request.info.board_serial = Some("s".repeat(257));
    let (status, body) = primary
        .call(
            primary
                .http
                .post(format!("{}/api/v1/register", primary.url))
                .bearer_auth(pivitals_testkit::harness::ENROLL)
                .json(&request),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("info.board_serial"),
        "{body}"
    );
    let (status, _) = primary.get("/api/v1/nodes/pi-big-2").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    primary.stop().await;
}
