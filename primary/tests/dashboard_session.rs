//! The dashboard's sign-in over HTTP: a `pivitals-primary` binary (testkit's harness) signs in
//! with the admin token and answers a session cookie (`HttpOnly`, `SameSite=Strict`, `Path=/`,
//! `Max-Age`), refuses a wrong token with 401 and any sign-in with 403 when it has no admin
//! token; the cookie reads the admin API, and starts an action only with the header
//! `X-Pivitals-Session: 1`; signing out makes the old cookie useless. A primary serving HTTPS
//! (in-process, with a certificate made here) marks the cookie `Secure`.

use pivitals_testkit::actions::{register, send_json};
use pivitals_testkit::free_port;
use pivitals_testkit::harness::{ADMIN, InProcessPrimary, start_primary};
use pivitals_testkit::samples::register_request;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};

/// Sends `method url` with `headers` and a JSON `body` (none when null); status, JSON body
/// and the `Set-Cookie` header.
fn call(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (u16, Value, Option<String>) {
    let response = send_json(method, url, headers, body);
    let json = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    let cookie = response.header("set-cookie").map(str::to_owned);
    (response.status, json, cookie)
}

/// The attributes of a `Set-Cookie` value after its `name=value`, lower-cased.
fn attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

/// The `name=value` pair of a `Set-Cookie` value, to send back as `Cookie`.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_owned()
}

#[test]
fn a_session_cookie_stands_in_for_the_admin_token_until_sign_out() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let _primary = start_primary(
        dir.path(),
        port,
        &[
            ("PIVITALS_ADMIN_TOKEN", ADMIN.to_owned()),
            ("PIVITALS_SELF_MONITOR", "false".to_owned()),
        ],
    );
    let node_token = format!("Bearer {}", register(&url, &register_request("pi-01")));
    let session = format!("{url}/api/v1/session");
    let actions = format!("{url}/api/v1/actions");
    let ping = json!({"action": "ping", "nodes": ["pi-01"]});

    let (status, reply, _) = call("GET", &session, &[], &Value::Null);
    assert_eq!(status, 200);
    assert_eq!(reply, json!({"signed_in": false, "admin_enabled": true}));

    let (status, reply, cookie) = call("POST", &session, &[], &json!({"token": "not-it"}));
    assert_eq!(status, 401, "{reply}");
    assert_eq!(reply["error"], "wrong admin token");
    assert_eq!(cookie, None, "no cookie for a wrong token");

    let (status, reply, cookie) = call("POST", &session, &[], &json!({"token": ADMIN}));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["signed_in"], true);
    let set_cookie = cookie.expect("a Set-Cookie header");
    let (name, id) = pair(&set_cookie)
        .split_once('=')
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .unwrap();
    assert_eq!(name, "pivitals_session");
    assert_eq!(id.len(), 64, "256 random bits in hex: {id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    assert!(!id.contains(ADMIN), "the cookie is not the token");
    let attrs = attributes(&set_cookie);
    for wanted in ["httponly", "samesite=strict", "path=/", "max-age=43200"] {
        assert!(
            attrs.iter().any(|a| a == wanted),
            "{wanted} in {set_cookie}"
        );
    }
    assert!(
        !attrs.iter().any(|a| a == "secure"),
        "no Secure over plain HTTP: {set_cookie}"
    );
    let cookie = pair(&set_cookie);
    let with_cookie = [("Cookie", cookie.as_str())];
    let with_cookie_and_header = [("Cookie", cookie.as_str()), ("X-Pivitals-Session", "1")];

    let (_, reply, _) = call("GET", &session, &with_cookie, &Value::Null);
    assert_eq!(reply["signed_in"], true);
    let (status, reply, _) = call("GET", &actions, &with_cookie, &Value::Null);
    assert_eq!(status, 200, "reading needs only the cookie: {reply}");

    let (status, reply, _) = call("POST", &actions, &with_cookie, &ping);
    assert_eq!(
        status, 403,
        "a cookie alone does not start an action: {reply}"
    );
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("X-Pivitals-Session"),
        "{reply}"
    );
    let (status, reply, _) = call(
        "POST",
        &actions,
        &[("Cookie", cookie.as_str()), ("X-Pivitals-Session", "0")],
        &ping,
    );
    assert_eq!(status, 403, "{reply}");
    let (status, reply, _) = call("POST", &actions, &with_cookie_and_header, &ping);
    assert_eq!(status, 202, "cookie and header start it: {reply}");
    let (status, reply, _) = call(
        "DELETE",
        &format!("{url}/api/v1/nodes/pi-01"),
        &with_cookie,
        &Value::Null,
    );
    assert_eq!(
        status, 403,
        "every admin endpoint asks for the header: {reply}"
    );

    // A bearer token decides alone, and a node token is still told apart.
    let wrong = "Bearer wrong-admin-token";
    let (status, _, _) = call(
        "POST",
        &actions,
        &[
            ("Cookie", cookie.as_str()),
            ("X-Pivitals-Session", "1"),
            ("Authorization", wrong),
        ],
        &ping,
    );
    assert_eq!(status, 401);
    let (status, reply, _) = call("POST", &actions, &[("Authorization", &node_token)], &ping);
    assert_eq!(status, 403, "{reply}");
    let (status, _, _) = call("POST", &actions, &[], &ping);
    assert_eq!(status, 401, "neither token nor cookie");
    let forged =
        "pivitals_session=00000000000000000000000000000000000000000000000000000000000000ff";
    let (status, _, _) = call(
        "POST",
        &actions,
        &[("Cookie", forged), ("X-Pivitals-Session", "1")],
        &ping,
    );
    assert_eq!(status, 401, "an id the primary never gave");

    let (status, reply, cleared) = call("DELETE", &session, &with_cookie, &Value::Null);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["signed_in"], false);
    let cleared = cleared.expect("the cookie is cleared");
    assert!(cleared.starts_with("pivitals_session=;"), "{cleared}");
    assert!(
        attributes(&cleared).iter().any(|a| a == "max-age=0"),
        "{cleared}"
    );

    let (status, reply, _) = call("POST", &actions, &with_cookie_and_header, &ping);
    assert_eq!(status, 401, "the old cookie is useless: {reply}");
    let (status, _, _) = call("GET", &actions, &with_cookie, &Value::Null);
    assert_eq!(status, 401);
    let (_, reply, _) = call("GET", &session, &with_cookie, &Value::Null);
    assert_eq!(reply["signed_in"], false);
}

#[test]
fn without_an_admin_token_sign_in_is_refused_with_403() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let _primary = start_primary(
        dir.path(),
        port,
        &[("PIVITALS_SELF_MONITOR", "false".to_owned())],
    );
    let session = format!("{url}/api/v1/session");
    let (status, reply, cookie) = call("POST", &session, &[], &json!({"token": ADMIN}));
    assert_eq!(status, 403, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("PIVITALS_ADMIN_TOKEN"),
        "{reply}"
    );
    assert_eq!(cookie, None);
    let (_, reply, _) = call("GET", &session, &[], &Value::Null);
    assert_eq!(reply, json!({"signed_in": false, "admin_enabled": false}));
    let (status, reply, _) = call("POST", &session, &[], &json!({"tokn": ADMIN}));
    assert_eq!(status, 422, "an unknown field is named: {reply}");
}

/// A CA's PEM certificate, and a server certificate and key it signed for 127.0.0.1.
fn ca_and_server() -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "pivitals session test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    (ca_cert.pem(), server.pem(), server_key.serialize_pem())
}

#[tokio::test]
async fn under_tls_the_session_cookie_is_secure() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_and_server();
    let cert_path = dir.path().join("primary.crt");
    let key_path = dir.path().join("primary.key");
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let primary = InProcessPrimary::start_with(&[
        ("PIVITALS_TLS__CERT", cert_path.to_str().unwrap()),
        ("PIVITALS_TLS__KEY", key_path.to_str().unwrap()),
    ])
    .await;
    assert!(primary.url.starts_with("https://"), "{}", primary.url);
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .build()
        .unwrap();
    let session = format!("{}/api/v1/session", primary.url);
    let mut answer = None;
    for _ in 0..50 {
        match client
            .post(&session)
            .json(&json!({"token": ADMIN}))
            .send()
            .await
        {
            Ok(response) => {
                answer = Some(response);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    let response = answer.expect("the HTTPS primary answers");
    assert_eq!(response.status(), 200);
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let attrs = attributes(&set_cookie);
    for wanted in ["secure", "httponly", "samesite=strict", "path=/"] {
        assert!(
            attrs.iter().any(|a| a == wanted),
            "{wanted} in {set_cookie}"
        );
    }
    let response = client
        .delete(&session)
        .header("Cookie", pair(&set_cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cleared = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        attributes(&cleared).iter().any(|a| a == "secure"),
        "{cleared}"
    );
    primary.stop().await;
}
