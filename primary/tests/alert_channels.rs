//! Notification channels end to end: every URL format parsed (and refused) as documented, each
//! web service's request checked against its API documentation, and e-mail through a real
//! SMTP server.
//!
//! ntfy, Gotify, Discord, Slack and Telegram cannot run here (the hosted APIs are out of
//! reach, and no self-hosted ntfy or Gotify server is packaged for this machine), so their
//! tests name it: a *local receiver* on 127.0.0.1 records each request, and the test checks
//! method, path, headers and body exactly as the service documents them. E-mail goes through
//! a real SMTP server, Python's `aiosmtpd` (see `pivitals_testkit::smtp`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use pivitals_primary::alerts::channels::{Channel, ChannelError, Message, Priority, SendError};
use pivitals_testkit::smtp::SmtpServer;
use serde_json::json;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    /// Path and query, as sent.
    target: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// An answer the receiver gives: status, headers, body.
type Answer = (u16, Vec<(&'static str, &'static str)>, &'static str);

#[derive(Clone, Default)]
struct Log {
    requests: Arc<Mutex<Vec<Recorded>>>,
    answers: Arc<Mutex<VecDeque<Answer>>>,
}

/// A local HTTP receiver on 127.0.0.1:0 that records every request and answers from a
/// script (200 `ok` once the script is used up).
struct Receiver {
    base: String,
    log: Log,
}

impl Receiver {
    async fn start(answers: Vec<Answer>) -> Receiver {
        let log = Log {
            answers: Arc::new(Mutex::new(answers.into())),
            ..Log::default()
        };
        let app = axum::Router::new().fallback(record).with_state(log.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { base, log }
    }

    /// `host:port` of the receiver.
    fn authority(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    fn requests(&self) -> Vec<Recorded> {
        self.log.requests.lock().unwrap().clone()
    }
}

async fn record(State(log): State<Log>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap().to_vec();
    log.requests.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        target: parts.uri.to_string(),
        headers: parts.headers,
        body,
    });
    let (status, headers, body) =
        log.answers
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or((200, vec![], "ok"));
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    for (name, value) in headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response.into_response()
}

fn client() -> reqwest::Client {
    pivitals_primary::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

const LINE: &str = "pi-07 hot: temperature cpu_thermal 82.1 °C > 80 for 2m";

fn message() -> Message {
    Message {
        title: "pi-07 hot".into(),
        text: LINE.into(),
        priority: Priority::Warning,
        tags: vec!["warning".into(), "thermometer".into()],
        json: json!({"node": "pi-07", "rule": "hot", "value": 82.1, "threshold": 80.0}),
    }
}

fn parse(url: &str) -> Channel {
    Channel::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
}

fn refused(url: &str) -> String {
    match Channel::parse(url) {
        Ok(channel) => panic!("{url} was accepted as {channel}"),
        Err(error) => error.to_string(),
    }
}

fn api_base(receiver: &Receiver) -> url::Url {
    url::Url::parse(&receiver.base).unwrap()
}

// ---- the web services, each against a local receiver ----------------------------------

/// https://docs.ntfy.sh/publish/: `POST`/`PUT` the message body to `/<topic>`; the title,
/// priority (1–5, 4 = high) and comma-separated tags as the `Title`, `Priority` and `Tags`
/// headers; username and password as HTTP basic auth.
#[tokio::test]
async fn ntfy_local_receiver_gets_the_request_as_ntfy_documents_it() {
    let receiver = Receiver::start(vec![]).await;
    let channel = parse(&format!(
        "ntfy://alice:s3cr%40t@{}/pi-alerts?scheme=http&tags=pi",
        receiver.authority()
    ));
    channel.send(&client(), &message()).await.unwrap();
    let [request] = receiver.requests().try_into().unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/pi-alerts");
    assert_eq!(request.header("title"), Some("pi-07 hot"));
    assert_eq!(request.header("priority"), Some("4"));
    assert_eq!(request.header("tags"), Some("warning,thermometer,pi"));
    // base64("alice:s3cr@t")
    assert_eq!(
        request.header("authorization"),
        Some("Basic YWxpY2U6czNjckB0")
    );
    assert_eq!(
        request.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(String::from_utf8(request.body).unwrap(), LINE);
}

/// ntfy also takes a server behind a path prefix, and no credentials; a critical message is
/// priority 5 (urgent) and an info one 3 (default).
#[tokio::test]
async fn ntfy_local_receiver_sees_prefix_and_priorities() {
    let receiver = Receiver::start(vec![]).await;
    let channel = parse(&format!(
        "ntfy://{}/ntfy/pi-alerts?scheme=http",
        receiver.authority()
    ));
    for priority in [Priority::Critical, Priority::Info] {
        let message = Message {
            priority,
            tags: vec![],
            ..message()
        };
        channel.send(&client(), &message).await.unwrap();
    }
    let requests = receiver.requests();
    assert_eq!(requests[0].target, "/ntfy/pi-alerts");
    assert_eq!(requests[0].header("priority"), Some("5"));
    assert_eq!(requests[1].header("priority"), Some("3"));
    assert_eq!(requests[0].header("authorization"), None);
    assert_eq!(requests[0].header("tags"), None);
}

/// https://gotify.net/api-docs (`POST /message`): the application token in `X-Gotify-Key`
/// (or `?token=`), a JSON body `{"title", "message", "priority"}`.
#[tokio::test]
async fn gotify_local_receiver_gets_the_request_as_gotify_documents_it() {
    let receiver = Receiver::start(vec![(200, vec![], "{\"id\":1}")]).await;
    let channel = parse(&format!(
        "gotify://{}/gotify/AzyoeNS.D4iJLVa?disabletls=yes",
        receiver.authority()
    ));
    channel.send(&client(), &message()).await.unwrap();
    let [request] = receiver.requests().try_into().unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/gotify/message");
    assert_eq!(request.header("x-gotify-key"), Some("AzyoeNS.D4iJLVa"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json(),
        json!({"title": "pi-07 hot", "message": LINE, "priority": 7})
    );
}

/// https://discord.com/developers/docs/resources/webhook#execute-webhook: `POST
/// /webhooks/{webhook.id}/{webhook.token}` under `https://discord.com/api`, JSON with
/// `content`; Discord answers 204 No Content.
#[tokio::test]
async fn discord_local_receiver_gets_the_request_as_discord_documents_it() {
    let receiver = Receiver::start(vec![(204, vec![], "")]).await;
    let channel =
        parse("discord://W3dE2OZz4C13_4z-Xy@693853386302554172").with_api_base(api_base(&receiver));
    channel.send(&client(), &message()).await.unwrap();
    let [request] = receiver.requests().try_into().unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.target,
        "/api/webhooks/693853386302554172/W3dE2OZz4C13_4z-Xy"
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.json(), json!({"content": LINE}));
}

/// https://api.slack.com/messaging/webhooks: `POST` to
/// `https://hooks.slack.com/services/T…/B…/X…` with `Content-type: application/json` and
/// `{"text": …}`; Slack answers 200 `ok`.
#[tokio::test]
async fn slack_local_receiver_gets_the_request_as_slack_documents_it() {
    let receiver = Receiver::start(vec![(200, vec![], "ok")]).await;
    let channel = parse("slack://hook:T000A0AAA-B000B0BBB-XXXXXXXXXXXXXXXXXXXXXXXX@webhook")
        .with_api_base(api_base(&receiver));
    channel.send(&client(), &message()).await.unwrap();
    let [request] = receiver.requests().try_into().unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.target,
        "/services/T000A0AAA/B000B0BBB/XXXXXXXXXXXXXXXXXXXXXXXX"
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.json(), json!({"text": LINE}));
}

/// https://core.telegram.org/bots/api#sendmessage (and #making-requests: `POST
/// https://api.telegram.org/bot<token>/sendMessage`, JSON body): `chat_id` (an integer or
/// `@channelusername`), `text`, and `message_thread_id` for a forum topic; one request per
/// chat.
#[tokio::test]
async fn telegram_local_receiver_gets_the_request_as_telegram_documents_it() {
    let ok = "{\"ok\":true,\"result\":{}}";
    let receiver = Receiver::start(vec![(200, vec![], ok), (200, vec![], ok)]).await;
    let channel = parse("telegram://123456:ABC-def_1@telegram?chats=@pi_alerts,-1001234567890:42")
        .with_api_base(api_base(&receiver));
    channel.send(&client(), &message()).await.unwrap();
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.method, "POST");
        assert_eq!(request.target, "/bot123456:ABC-def_1/sendMessage");
        assert_eq!(request.header("content-type"), Some("application/json"));
    }
    assert_eq!(
        requests[0].json(),
        json!({"chat_id": "@pi_alerts", "text": LINE})
    );
    assert_eq!(
        requests[1].json(),
        json!({"chat_id": -1001234567890_i64, "message_thread_id": 42, "text": LINE})
    );
}

/// The generic webhook (shoutrrr's `generic+https://` shortcut): the URL after `generic+` is
/// called as written, query included, with the message's JSON as the body.
#[tokio::test]
async fn generic_local_receiver_gets_the_json_body() {
    let receiver = Receiver::start(vec![(202, vec![], "")]).await;
    let channel = parse(&format!(
        "generic+http://{}/hooks/pivitals?key=k1",
        receiver.authority()
    ));
    channel.send(&client(), &message()).await.unwrap();
    let [request] = receiver.requests().try_into().unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/hooks/pivitals?key=k1");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.json(), message().json);
}

// ---- answers and dead channels ---------------------------------------------------------

/// 429 and 5xx are worth retrying (with `Retry-After`, or Telegram's
/// `parameters.retry_after`); another 4xx is not, and its error shows the service's words
/// but never the token.
#[tokio::test]
async fn local_receiver_answers_are_classified_for_the_retry_policy() {
    let receiver = Receiver::start(vec![
        (429, vec![("retry-after", "7")], "slow down"),
        (503, vec![], ""),
        (404, vec![], "{\"message\": \"Unknown Webhook\"}"),
        (
            429,
            vec![],
            "{\"ok\":false,\"error_code\":429,\"parameters\":{\"retry_after\":5}}",
        ),
    ])
    .await;
    let discord =
        parse("discord://SeCrEtToKeN@693853386302554172").with_api_base(api_base(&receiver));
    let http = client();
    let error = discord.send(&http, &message()).await.unwrap_err();
    assert!(error.is_retriable());
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
    let error = discord.send(&http, &message()).await.unwrap_err();
    assert!(error.is_retriable());
    assert_eq!(error.retry_after(), None);
    let error = discord.send(&http, &message()).await.unwrap_err();
    assert!(!error.is_retriable(), "{error}");
    assert_eq!(
        error.to_string(),
        "discord: answered 404: {\"message\": \"Unknown Webhook\"}"
    );
    let telegram =
        parse("telegram://1:SeCrEtToKeN@telegram?chats=1").with_api_base(api_base(&receiver));
    let error = telegram.send(&http, &message()).await.unwrap_err();
    assert_eq!(error.retry_after(), Some(Duration::from_secs(5)));
    assert_eq!(error.service(), "telegram");
    assert!(!format!("{error} {error:?}").contains("SeCrEtToKeN"));
}

/// A channel whose server is gone fails at once with a retriable error (the queue backs
/// off; nothing waits for a timeout), and the error does not show the token in the URL.
#[tokio::test]
async fn a_dead_channel_fails_quickly_and_retriably() {
    let port = pivitals_testkit::free_port();
    let http = client();
    let channels = [
        parse(&format!("ntfy://127.0.0.1:{port}/pi?scheme=http")),
        parse("telegram://1:SeCrEtToKeN@telegram?chats=1")
            .with_api_base(url::Url::parse(&format!("http://127.0.0.1:{port}")).unwrap()),
        parse(&format!(
            "smtp://127.0.0.1:{port}/?from=a@example.com&to=b@example.com&encryption=none"
        )),
    ];
    for channel in channels {
        let started = Instant::now();
        let error = channel.send(&http, &message()).await.unwrap_err();
        assert!(error.is_retriable(), "{channel}: {error}");
        assert!(started.elapsed() < Duration::from_secs(3), "{channel}");
        assert!(!format!("{error} {error:?}").contains("SeCrEtToKeN"));
    }
}

// ---- e-mail through a real SMTP server -------------------------------------------------

/// A real SMTP dialogue with aiosmtpd: the envelope and the `From`, `To` and `Subject`
/// headers arrive as configured, and the body is the one line (UTF-8 intact).
#[tokio::test]
async fn email_arrives_at_a_real_smtp_server() {
    let server = SmtpServer::start().unwrap();
    let channel = parse(&format!(
        "smtp://127.0.0.1:{}/?from=pivitals@example.com&fromname=Pivitals&to=ops@example.com,on%2Bcall@example.com&encryption=none",
        server.port()
    ));
    channel.send(&client(), &message()).await.unwrap();
    let [mail] = server.messages().unwrap().try_into().unwrap();
    assert_eq!(mail.mail_from, "pivitals@example.com");
    assert_eq!(mail.rcpt_to, ["ops@example.com", "on+call@example.com"]);
    assert_eq!(mail.from, "Pivitals <pivitals@example.com>");
    assert_eq!(mail.to, "ops@example.com, on+call@example.com");
    assert_eq!(mail.subject, "pi-07 hot");
    assert_eq!(mail.body.trim_end(), LINE);
}

/// STARTTLS is the default and is required: a server that does not offer it gets nothing,
/// and retrying would not help.
#[tokio::test]
async fn email_never_falls_back_to_plain_text_when_starttls_is_missing() {
    let server = SmtpServer::start().unwrap();
    let channel = parse(&format!(
        "smtp://user:pw@127.0.0.1:{}/?from=a@example.com&to=b@example.com",
        server.port()
    ));
    assert!(channel.to_string().ends_with("encryption=starttls"));
    let error = channel.send(&client(), &message()).await.unwrap_err();
    assert!(!error.is_retriable(), "{error}");
    assert!(server.messages().unwrap().is_empty());
}

// ---- parsing ---------------------------------------------------------------------------

#[test]
fn every_format_parses_and_prints_without_its_secrets() {
    let cases = [
        (
            "ntfy://ntfy.sh/pi-alerts",
            "ntfy",
            "ntfy://ntfy.sh/pi-alerts",
        ),
        (
            "ntfy://alice:pw@ntfy.lan:8080/pi-alerts?scheme=http&tags=pi,rack",
            "ntfy",
            "ntfy://alice:***@ntfy.lan:8080/pi-alerts?scheme=http&tags=pi,rack",
        ),
        (
            "ntfy://:tk_secret@ntfy.lan/pi",
            "ntfy",
            "ntfy://:***@ntfy.lan/pi",
        ),
        (
            "gotify://gotify.example.com:443/AzyoeNS.D4iJLVa",
            "gotify",
            "gotify://gotify.example.com/***",
        ),
        (
            "gotify://example.com/path/to/gotify/AzyoeNS.D4iJLVa/?disabletls=yes",
            "gotify",
            "gotify://example.com/path/to/gotify/***?disabletls=yes",
        ),
        (
            "discord://W3dE2OZz4C13@693853386302554172",
            "discord",
            "discord://***@693853386302554172",
        ),
        (
            "https://discord.com/api/webhooks/693853386302554172/W3dE2OZz4C13",
            "discord",
            "discord://***@693853386302554172",
        ),
        (
            "slack://hook:T000A0AAA-B000B0BBB-XXXXXXXXXXXXXXXXXXXXXXXX@webhook",
            "slack",
            "slack://hook:***@webhook",
        ),
        (
            "slack://T000A0AAA/B000B0BBB/XXXXXXXXXXXXXXXXXXXXXXXX",
            "slack",
            "slack://hook:***@webhook",
        ),
        (
            "https://hooks.slack.com/services/T000A0AAA/B000B0BBB/XXXXXXXXXXXXXXXXXXXXXXXX",
            "slack",
            "slack://hook:***@webhook",
        ),
        (
            "telegram://123456:ABC-def@telegram?chats=@pi_alerts,-100123:7&notification=no",
            "telegram",
            "telegram://***@telegram?chats=@pi_alerts,-100123:7&notification=no",
        ),
        (
            "telegram://123456:ABC-def@telegram/?channels=42",
            "telegram",
            "telegram://***@telegram?chats=42",
        ),
        (
            "smtp://alerts:pw@mail.example.com:587/?from=pi@example.com&to=me@example.com",
            "email",
            "smtp://alerts:***@mail.example.com:587/?from=pi@example.com&to=me@example.com&encryption=starttls",
        ),
        (
            "smtp://mail.example.com:465/?fromAddress=pi@example.com&toAddresses=a@example.com,b@example.com",
            "email",
            "smtp://mail.example.com:465/?from=pi@example.com&to=a@example.com,b@example.com&encryption=tls",
        ),
        (
            "smtp://mail.example.com/?from=pi@example.com&to=me@example.com&encryption=tls",
            "email",
            "smtp://mail.example.com:465/?from=pi@example.com&to=me@example.com&encryption=tls",
        ),
        (
            "smtp://localhost/?from=pi@example.com&to=me@example.com&encryption=none",
            "email",
            "smtp://localhost:25/?from=pi@example.com&to=me@example.com&encryption=none",
        ),
        (
            "generic+https://hooks.example.com/pivitals/secret?key=1",
            "generic",
            "generic+https://hooks.example.com/***",
        ),
        (
            "generic+http://10.0.0.5:8080/",
            "generic",
            "generic+http://10.0.0.5:8080",
        ),
    ];
    for (url, service, shown) in cases {
        let channel = parse(url);
        assert_eq!(channel.service(), service, "{url}");
        assert_eq!(channel.to_string(), shown, "{url}");
        assert_eq!(format!("{channel:?}"), format!("Channel({shown})"));
    }
    // Slack's three spellings are the same channel.
    assert_eq!(
        parse("slack://T000A0AAA/B000B0BBB/XXXXXXXXXXXXXXXXXXXXXXXX"),
        parse("https://hooks.slack.com/services/T000A0AAA/B000B0BBB/XXXXXXXXXXXXXXXXXXXXXXXX")
    );
}

#[test]
fn bad_urls_are_refused_in_one_line_that_names_the_problem_not_the_secret() {
    let cases = [
        (
            "pi-alerts",
            "not a notification URL: relative URL without a base",
        ),
        (
            "pushover://token@user",
            "unknown notification service `pushover://` (known: ntfy, gotify, discord, slack, telegram, smtp, generic+https, generic+http)",
        ),
        (
            "ntfy://ntfy.sh",
            "ntfy: the topic is missing (ntfy://host/topic)",
        ),
        (
            "ntfy://ntfy.sh/pi?scheme=ftp",
            "ntfy: `scheme` must be https or http",
        ),
        (
            "ntfy://ntfy.sh/pi?priority=5",
            "ntfy: unknown parameter `priority` (known: scheme, tags)",
        ),
        (
            "ntfy://ntfy.sh/bad%20topic",
            "ntfy: a topic is 1 to 64 letters, digits, `-` or `_`",
        ),
        (
            "gotify://gotify.lan",
            "gotify: the application token is missing (gotify://host/token)",
        ),
        (
            "gotify://gotify.lan/Atoken?disabletls=maybe",
            "gotify: `disabletls` must be yes or no",
        ),
        (
            "discord://SeCrEt@not-a-number",
            "discord: the webhook id (after @) must be digits (discord://token@webhookid)",
        ),
        (
            "discord://693853386302554172",
            "discord: the webhook token is missing (discord://token@webhookid)",
        ),
        (
            "slack://xoxb:SeCrEt-123@C001CH4NN3L",
            "slack: bot tokens are not supported; use a webhook (slack://hook:…@webhook)",
        ),
        (
            "slack://hook:SeCrEt@webhook",
            "slack: the webhook token must be three parts of letters and digits (T…-B…-X…)",
        ),
        (
            "telegram://123456:SeCrEt@telegram",
            "telegram: no chats (add ?chats=@channel or a chat id)",
        ),
        (
            "telegram://nodigits:SeCrEt@telegram?chats=1",
            "telegram: the bot token must look like 123456:ABC-def (telegram://token@telegram?chats=…)",
        ),
        (
            "telegram://1:SeCrEt@telegram?chats=pi alerts",
            "telegram: chat `pi alerts` is neither a chat id (number) nor an @channel name",
        ),
        (
            "smtp://u:SeCrEt@mail.example.com/?to=me@example.com",
            "smtp: `from` is missing (?from=alerts@example.com)",
        ),
        (
            "smtp://u:SeCrEt@mail.example.com/?from=pi@example.com",
            "smtp: `to` is missing (?to=you@example.com[,…])",
        ),
        (
            "smtp://mail.example.com/?from=pi@example.com&to=me@example.com&encryption=ssl",
            "smtp: `encryption` must be none, starttls or tls",
        ),
        (
            "smtp://mail.example.com/?from=nobody&to=me@example.com",
            "smtp: `from` is not an e-mail address: nobody",
        ),
        (
            "https://example.com/hook",
            "generic: a plain https:// URL is not a channel; write generic+https://… for the JSON webhook",
        ),
        (
            "https://discord.com/api/webhooks/SeCrEt",
            "discord: a webhook URL is https://discord.com/api/webhooks/webhookid/token",
        ),
    ];
    for (url, expected) in cases {
        let error = refused(url);
        assert_eq!(error, expected, "{url}");
        assert!(!error.contains("SeCrEt"), "{url}");
        assert!(!error.contains('\n'), "{url}");
    }
    assert!(matches!(
        Channel::parse("ntfy://h/t?nope=1"),
        Err(ChannelError::UnknownParameter { .. })
    ));
}

#[test]
fn a_comma_separated_list_keeps_commas_inside_urls() {
    let channels = Channel::parse_list(
        "ntfy://ntfy.sh/pi, telegram://1:tok@telegram?chats=1,2,smtp://mail.example.com/?from=a@example.com&to=b@example.com,c@example.com,",
    )
    .unwrap();
    let shown: Vec<String> = channels.iter().map(Channel::to_string).collect();
    assert_eq!(
        shown,
        [
            "ntfy://ntfy.sh/pi",
            "telegram://***@telegram?chats=1,2",
            "smtp://mail.example.com:587/?from=a@example.com&to=b@example.com,c@example.com&encryption=starttls",
        ]
    );
    assert!(Channel::parse_list("").unwrap().is_empty());
    assert!(Channel::parse_list("ntfy://ntfy.sh/pi,bogus://x").is_err());
}

#[test]
fn a_settings_file_holds_channels_as_urls() {
    #[derive(serde::Deserialize)]
    struct Settings {
        channels: std::collections::BTreeMap<String, Channel>,
    }
    let settings: Settings = serde_json::from_value(json!({
        "channels": {"phone": "ntfy://ntfy.sh/pi", "team": "discord://t@1"}
    }))
    .unwrap();
    assert_eq!(settings.channels["phone"].service(), "ntfy");
    let error = serde_json::from_value::<Settings>(json!({
        "channels": {"phone": "ntfy://ntfy.sh"}
    }))
    .err()
    .unwrap();
    assert!(
        error.to_string().contains("ntfy: the topic is missing"),
        "{error}"
    );
}

/// `SendError` is what the queue's retry policy reads.
#[test]
fn send_errors_say_whether_retrying_helps() {
    let retriable = SendError::Retriable {
        service: "ntfy",
        reason: "answered 503".into(),
        retry_after: Some(Duration::from_secs(3)),
    };
    assert!(retriable.is_retriable());
    assert_eq!(retriable.to_string(), "ntfy: answered 503 (will retry)");
    let refused = SendError::Refused {
        service: "slack",
        reason: "answered 404: no_service".into(),
    };
    assert!(!refused.is_retriable());
    assert_eq!(refused.retry_after(), None);
}
