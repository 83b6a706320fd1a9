//! HTTPS: a primary with a certificate generated here (signed by a CA generated here) serves
//! the agent's client when the agent trusts that CA, and the client refuses it, with an error
//! that says why, when it trusts another CA.

use std::time::Duration;

use pivitals_agent::Secret;
use pivitals_agent::client::{CallError, ClientTls, PrimaryClient};
use pivitals_common::{NodeInfo, RegisterRequest, VitalsPayload, VitalsPush};
use pivitals_primary::config::PrimaryConfig;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use reqwest::Url;
use tokio::net::TcpListener;

const ENROLL: &str = "enroll-token-for-tls-tests-01";

/// A CA's PEM certificate, and a server certificate and key it signed for 127.0.0.1.
fn ca_and_server() -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "pivitals test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    (ca_cert.pem(), server.pem(), server_key.serialize_pem())
}

fn request(name: &str) -> RegisterRequest {
    RegisterRequest {
        node_name: name.into(),
        info: NodeInfo {
            hostname: name.into(),
            ..Default::default()
        },
        labels: Default::default(),
        interval_seconds: 10,
    }
}

#[tokio::test]
async fn the_agent_pushes_over_https_and_refuses_a_certificate_of_another_ca() {
    pivitals_primary::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_and_server();
    let cert_path = dir.path().join("primary.crt");
    let key_path = dir.path().join("primary.key");
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let env = [
        (
            "PIVITALS_DATA_DIR",
            dir.path().join("data").to_str().unwrap(),
        ),
        ("PIVITALS_ENROLL_TOKEN", ENROLL),
        ("PIVITALS_SELF_MONITOR", "false"),
        ("PIVITALS_TLS__CERT", cert_path.to_str().unwrap()),
        ("PIVITALS_TLS__KEY", key_path.to_str().unwrap()),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let config = PrimaryConfig::load(None, env).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("https://{}/", listener.local_addr().unwrap())).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(pivitals_primary::run(listener, config, async {
        let _ = stopped.await;
    }));

    let trusting = PrimaryClient::with_tls(
        &url,
        &ClientTls {
            ca_pem: Some(ca.into_bytes()),
            insecure_skip_verify: false,
        },
    )
    .unwrap();
    let mut reply = None;
    for _ in 0..50 {
        match trusting
            .register(&Secret::new(ENROLL), &request("pi-tls"))
            .await
        {
            Ok(r) => {
                reply = Some(r);
                break;
            }
            Err(CallError::Transport(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("{e}"),
        }
    }
    let reply = reply.expect("the primary never answered over HTTPS");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let push = VitalsPush {
        samples: vec![VitalsPayload {
            timestamp_ms: now,
            uptime_seconds: Some(5),
            ..Default::default()
        }],
    };
    let accepted = trusting
        .push(&Secret::new(reply.node_token.clone()), &push)
        .await
        .unwrap();
    assert_eq!(accepted, 1);

    let (other_ca, _, _) = ca_and_server();
    let wary = PrimaryClient::with_tls(
        &url,
        &ClientTls {
            ca_pem: Some(other_ca.into_bytes()),
            insecure_skip_verify: false,
        },
    )
    .unwrap();
    let err = wary
        .register(&Secret::new(ENROLL), &request("pi-mitm"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, CallError::Transport(_)), "{text}");
    assert!(text.contains("invalid peer certificate"), "{text}");

    // The system store does not know the test CA either.
    let system = PrimaryClient::new(&url).unwrap();
    let err = system
        .push(&Secret::new(reply.node_token.clone()), &push)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");

    let careless = PrimaryClient::with_tls(
        &url,
        &ClientTls {
            ca_pem: None,
            insecure_skip_verify: true,
        },
    )
    .unwrap();
    careless
        .push(&Secret::new(reply.node_token), &push)
        .await
        .unwrap();

    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_certificate_without_its_key_is_a_configuration_error() {
    let env = [("PIVITALS_TLS__CERT", "/nonexistent/primary.crt")]
        .map(|(k, v)| (k.to_string(), v.to_string()));
    let err = PrimaryConfig::load(None, env).unwrap_err();
    assert!(err.to_string().contains("PIVITALS_TLS__KEY"), "{err}");
}

mod support;

#[tokio::test]
async fn the_agent_binary_lands_over_https_and_says_why_it_refuses_another_ca() {
    pivitals_primary::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_and_server();
    let (other_ca, _, _) = ca_and_server();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let (ca_path, other_ca_path) = (write("ca.pem", &ca), write("other-ca.pem", &other_ca));
    let (cert_path, key_path) = (write("primary.crt", &cert), write("primary.key", &key));
    let env = [
        (
            "PIVITALS_DATA_DIR",
            dir.path().join("data").to_str().unwrap().to_owned(),
        ),
        ("PIVITALS_ENROLL_TOKEN", support::ENROLL.to_owned()),
        ("PIVITALS_SELF_MONITOR", "false".to_owned()),
        ("PIVITALS_TLS__CERT", cert_path),
        ("PIVITALS_TLS__KEY", key_path),
    ]
    .map(|(k, v)| (k.to_string(), v));
    let config = PrimaryConfig::load(None, env).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(pivitals_primary::run(listener, config, async {
        let _ = stopped.await;
    }));

    let agent_env = |name: &str, ca: &str| {
        vec![
            ("PIVITALS_PRIMARY_URL", url.clone()),
            ("PIVITALS_ENROLL_TOKEN", support::ENROLL.to_owned()),
            ("PIVITALS_NODE_NAME", name.to_owned()),
            ("PIVITALS_INTERVAL", "1s".to_owned()),
            (
                "PIVITALS_STATE_DIR",
                dir.path().join(name).display().to_string(),
            ),
            ("PIVITALS_TLS__CA", ca.to_owned()),
        ]
    };
    let binary = support::workspace_binary("pivitals-agent");
    let mut trusting = support::Proc::spawn(
        "tls-good",
        &binary,
        &agent_env("tls-good", &ca_path),
        dir.path(),
    );
    let mut wrong = support::Proc::spawn(
        "tls-wrong",
        &binary,
        &agent_env("tls-wrong", &other_ca_path),
        dir.path(),
    );

    let reader = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .build()
        .unwrap();
    let mut landed = false;
    for _ in 0..100 {
        let nodes: serde_json::Value = reader
            .get(format!("{url}/api/v1/nodes"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let good = nodes
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == "tls-good");
        if good.is_some_and(|n| n["latest"]["cpu"].is_object()) {
            assert!(
                nodes
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|n| n["name"] != "tls-wrong"),
                "an agent that does not trust the certificate registered: {nodes}"
            );
            landed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(landed, "no sample over HTTPS:\n{}", trusting.log_tail());
    let log = wrong.log();
    assert!(
        log.contains("certificate"),
        "the refusal does not say why:\n{log}"
    );
    assert!(trusting.terminate(Duration::from_secs(20)).success());
    wrong.kill_hard();
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
