//! HTTPS: a primary with a certificate generated here (signed by a CA generated here) serves
//! the agent's client when the agent trusts that CA, and the client refuses it, with an error
//! that says why, when it trusts another CA. The primary runs in-process (testkit's harness);
//! the agent as its client library and as its binary.

use std::path::Path;
use std::time::Duration;

use pivitals_agent::Secret;
use pivitals_agent::client::{CallError, ClientTls, PrimaryClient};
use pivitals_common::{VitalsPayload, VitalsPush};
use pivitals_primary::config::PrimaryConfig;
use pivitals_testkit::harness::{ENROLL, InProcessPrimary, start_agent_with};
use pivitals_testkit::samples::{now_ms, register_request};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use reqwest::Url;

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

/// Writes `text` to `dir/name`; the path as a string.
fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A primary in-process (testkit's harness) serving HTTPS with `cert` and `key` from `dir`.
async fn https_primary(dir: &Path, cert: &str, key: &str) -> InProcessPrimary {
    let cert_path = write(dir, "primary.crt", cert);
    let key_path = write(dir, "primary.key", key);
    let primary = InProcessPrimary::start_with(&[
        ("PIVITALS_TLS__CERT", &cert_path),
        ("PIVITALS_TLS__KEY", &key_path),
    ])
    .await;
    assert!(primary.url.starts_with("https://"), "{}", primary.url);
    primary
}

#[tokio::test]
async fn the_agent_pushes_over_https_and_refuses_a_certificate_of_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_and_server();
    let primary = https_primary(dir.path(), &cert, &key).await;
    let url = Url::parse(&format!("{}/", primary.url)).unwrap();

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
            .register(&Secret::new(ENROLL), &register_request("pi-tls"))
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
    let now = now_ms();
    let push = VitalsPush {
        samples: vec![VitalsPayload {
            timestamp_ms: now,
            uptime_seconds: Some(5),
            ..Default::default()
        }],
        ..Default::default()
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
        .register(&Secret::new(ENROLL), &register_request("pi-mitm"))
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

    primary.stop().await;
}

#[tokio::test]
async fn a_certificate_without_its_key_is_a_configuration_error() {
    let env = [("PIVITALS_TLS__CERT", "/nonexistent/primary.crt")]
        .map(|(k, v)| (k.to_string(), v.to_string()));
    let err = PrimaryConfig::load(None, env).unwrap_err();
    assert!(err.to_string().contains("PIVITALS_TLS__KEY"), "{err}");
}

#[tokio::test]
async fn the_agent_binary_lands_over_https_and_says_why_it_refuses_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_and_server();
    let (other_ca, _, _) = ca_and_server();
    let ca_path = write(dir.path(), "ca.pem", &ca);
    let other_ca_path = write(dir.path(), "other-ca.pem", &other_ca);
    let primary = https_primary(dir.path(), &cert, &key).await;
    let url = primary.url.clone();
    let agent = |name: &str, ca: &str| {
        start_agent_with(
            dir.path(),
            name,
            &url,
            "1s",
            &[("PIVITALS_TLS__CA", ca.to_owned())],
        )
    };
    let mut trusting = agent("tls-good", &ca_path);
    let mut wrong = agent("tls-wrong", &other_ca_path);

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
    primary.stop().await;
}

/// One kept-alive TLS connection (a client of rustls trusting the test CA): requests after
/// pauses, in which the primary parks the connection, and two pipelined in one TLS record,
/// where the second may wait as plaintext rustls already decrypted when the first is answered.
#[tokio::test]
async fn a_kept_alive_tls_connection_serves_requests_after_pauses_and_pipelined() {
    use pivitals_testkit::http::read_one_answer;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio::io::AsyncWriteExt;

    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_and_server();
    let primary = https_primary(dir.path(), &cert, &key).await;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let address = primary.url.trim_start_matches("https://");
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let request = "GET /healthz HTTP/1.1\r\nHost: pivitals\r\n\r\n";
    for round in 0..3 {
        let requests = if round == 2 {
            request.repeat(2)
        } else {
            request.to_owned()
        };
        tls.write_all(requests.as_bytes()).await.unwrap();
        tls.flush().await.unwrap();
        for _ in 0..requests.matches("GET").count() {
            let answer = tokio::time::timeout(Duration::from_secs(10), read_one_answer(&mut tls))
                .await
                .expect("an answer on the kept-alive connection")
                .unwrap();
            assert_eq!(answer.status, 200, "{}", answer.text());
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    primary.stop().await;
}
