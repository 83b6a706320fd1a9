//! [`Influx3Receiver`]: a local receiver of the InfluxDB 3 HTTP API, NOT a real InfluxDB 3
//! server (none can be installed on these machines). It checks every request exactly as the
//! InfluxDB 3 Core HTTP API reference documents it and answers as InfluxDB 3 does.
//!
//! What it serves, as documented (Core OpenAPI spec and the "write_lp", "List databases",
//! "Create a database" guides):
//!
//! - `POST /api/v3/write_lp?db=&precision=&accept_partial=&no_sync=`: no other query
//!   parameter; `precision` one of `auto`, `nanosecond`, `microsecond`, `millisecond`,
//!   `second` (or `ns`, `us`, `ms`, `s`); `Content-Type: text/plain[; charset=utf-8]`;
//!   `Content-Encoding: gzip` or `identity` or none; the body is parsed as line protocol by
//!   the `influxdb-line-protocol` crate (InfluxDB's own parser, the crate pivitals encodes
//!   with). 204 when every line is written; with `accept_partial` (default true) the good
//!   lines are written and 400 `{"error": "partial write of line protocol occurred", "data":
//!   [{"original_line", "line_number", "error_message"}]}` names the others; with
//!   `accept_partial=false` nothing is written and 400 `parsing failed for write_lp
//!   endpoint`. A write to a missing database creates it without retention, as InfluxDB 3
//!   does: [`Influx3Receiver::created_by_write`] tells a test that happened.
//! - `GET /api/v3/configure/database?format=json`: `[{"iox::database": name}, …]`.
//! - `POST /api/v3/configure/database` `{"db", "retention_period"}` (JSON): 200 created, 409
//!   when it exists.
//! - `POST /api/v3/query_sql` `{"db": "_internal", "q": "SELECT database_name,
//!   retention_period_ns FROM system.databases", "format": "json"}`: only that query; rows
//!   leave `retention_period_ns` out when there is none, as InfluxDB's JSON writer does.
//! - With a token, every request needs `Authorization: Bearer TOKEN` (or `Token TOKEN`):
//!   401 otherwise.
//!
//! Anything not as documented is answered 400 and recorded in
//! [`Influx3Receiver::violations`], which a test asserts empty. A test can script the answers
//! of the next writes ([`WriteAnswer`]) to play overload, outages and refusals.

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// How the receiver answers one write instead of writing it.
#[derive(Debug, Clone)]
pub enum WriteAnswer {
    /// Answer this status (with `Retry-After` seconds when given) and write nothing.
    Status {
        status: u16,
        retry_after: Option<u64>,
        body: String,
    },
    /// Refuse these lines (1-based) as a schema conflict would, write the rest: the partial
    /// write of InfluxDB 3 (400, or nothing written with `accept_partial=false`).
    RefuseLines(Vec<usize>),
}

/// One write request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct WriteSeen {
    /// When it arrived.
    pub at: Instant,
    /// The database it named.
    pub db: String,
    /// Its lines of line protocol (decompressed).
    pub lines: Vec<String>,
    /// The status it was answered.
    pub status: u16,
}

/// One request of any kind: method, path, query and the status answered.
#[derive(Debug, Clone)]
pub struct RequestSeen {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub authorization: Option<String>,
    pub body: String,
    pub status: u16,
}

#[derive(Default)]
struct Inner {
    token: Option<String>,
    /// Name → retention in nanoseconds (`None`: kept forever).
    databases: BTreeMap<String, Option<u64>>,
    /// Written lines per database.
    points: BTreeMap<String, Vec<String>>,
    writes: Vec<WriteSeen>,
    requests: Vec<RequestSeen>,
    violations: Vec<String>,
    script: VecDeque<WriteAnswer>,
    created_by_write: Vec<String>,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Inner> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// The receiver, serving on `127.0.0.1` on its own thread until dropped.
pub struct Influx3Receiver {
    url: String,
    shared: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Influx3Receiver {
    /// Starts a receiver without auth (as `influxdb3 serve --without-auth`) when `token` is
    /// `None`, else one that requires that token. It knows the `_internal` database (7 days).
    pub fn start(token: Option<&str>) -> Influx3Receiver {
        Self::start_on(0, token)
    }

    /// [`Influx3Receiver::start`] on `127.0.0.1:port` (0: any free port), for a test whose
    /// client was pointed at the address before the server came up.
    pub fn start_on(port: u16, token: Option<&str>) -> Influx3Receiver {
        let shared: Shared = Arc::default();
        {
            let mut inner = lock(&shared);
            inner.token = token.map(str::to_owned);
            inner
                .databases
                .insert("_internal".to_owned(), Some(7 * 86_400 * 1_000_000_000));
        }
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind 127.0.0.1");
        listener.set_nonblocking(true).expect("non-blocking");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new()
            .route("/api/v3/write_lp", post(write_lp))
            .route(
                "/api/v3/configure/database",
                get(list_databases).post(create_database),
            )
            .route("/api/v3/query_sql", post(query_sql))
            .fallback(unknown)
            .with_state(Arc::clone(&shared));
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            runtime.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        Influx3Receiver {
            url,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Adds a database as `influxdb3 create database [--retention-period]` would have.
    pub fn add_database(&self, name: &str, retention: Option<Duration>) {
        lock(&self.shared)
            .databases
            .insert(name.to_owned(), retention.map(|d| d.as_nanos() as u64));
    }

    /// The database's retention: `None` when it does not exist, `Some(None)` when it keeps
    /// data forever.
    pub fn retention(&self, name: &str) -> Option<Option<Duration>> {
        lock(&self.shared)
            .databases
            .get(name)
            .map(|ns| ns.map(Duration::from_nanos))
    }

    /// The lines written to `db`, in order.
    pub fn lines(&self, db: &str) -> Vec<String> {
        lock(&self.shared)
            .points
            .get(db)
            .cloned()
            .unwrap_or_default()
    }

    /// Answers the next writes with these, in order, before writing normally again.
    pub fn script_writes(&self, answers: impl IntoIterator<Item = WriteAnswer>) {
        lock(&self.shared).script.extend(answers);
    }

    /// How many scripted answers are still to be given.
    pub fn script_left(&self) -> usize {
        lock(&self.shared).script.len()
    }

    /// Every write request so far.
    pub fn writes(&self) -> Vec<WriteSeen> {
        lock(&self.shared).writes.clone()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<RequestSeen> {
        lock(&self.shared).requests.clone()
    }

    /// Every way a request differed from the documented API.
    pub fn violations(&self) -> Vec<String> {
        lock(&self.shared).violations.clone()
    }

    /// Databases that a write created (without retention): a client relied on that.
    pub fn created_by_write(&self) -> Vec<String> {
        lock(&self.shared).created_by_write.clone()
    }
}

impl Drop for Influx3Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Handlers

type Params = Query<Vec<(String, String)>>;
type JsonObject = serde_json::Map<String, Value>;

/// Records the request and builds the answer; `violation` also goes to the list.
struct Exchange<'a> {
    inner: MutexGuard<'a, Inner>,
    seen: RequestSeen,
}

impl<'a> Exchange<'a> {
    fn new(
        shared: &'a Shared,
        method: &str,
        path: &str,
        params: Vec<(String, String)>,
        headers: &HeaderMap,
        body: String,
    ) -> Exchange<'a> {
        Exchange {
            inner: lock(shared),
            seen: RequestSeen {
                method: method.to_owned(),
                path: path.to_owned(),
                query: params,
                authorization: text(headers, header::AUTHORIZATION),
                body,
                status: 0,
            },
        }
    }

    /// The checks every endpoint makes after [`Exchange::new`]: only `allowed` query
    /// parameters, each at most once, and the token. Err is the answer already given.
    fn checked(mut self, allowed: &[&str]) -> Result<Exchange<'a>, Box<Response>> {
        self.check_params(allowed)?;
        self.authorize()?;
        Ok(self)
    }

    /// [`Exchange::checked`] for a `POST` of a JSON object (`request`, a schema of the API
    /// reference, whose keys are `keys`) with no query parameter: Content-Type
    /// `application/json`, a JSON object, no key but `keys`. The exchange and the object.
    fn open_json(
        shared: &'a Shared,
        path: &str,
        params: Vec<(String, String)>,
        headers: &HeaderMap,
        body: &[u8],
        (request, keys): (&str, &[&str]),
    ) -> Result<(Exchange<'a>, JsonObject), Box<Response>> {
        let body = String::from_utf8_lossy(body).into_owned();
        let mut x = Exchange::new(shared, "POST", path, params, headers, body).checked(&[])?;
        if text(headers, header::CONTENT_TYPE).as_deref() != Some("application/json") {
            let what = "Content-Type is not application/json".into();
            return Err(Box::new(x.violation(what)));
        }
        let Ok(Value::Object(object)) = serde_json::from_str::<Value>(&x.seen.body) else {
            return Err(Box::new(
                x.violation("the body is not a JSON object".into()),
            ));
        };
        if let Some(key) = object.keys().find(|k| !keys.contains(&k.as_str())) {
            let what = format!("unknown key {key:?} in {request}");
            return Err(Box::new(x.violation(what)));
        }
        Ok((x, object))
    }

    fn param(&self, key: &str) -> Option<&str> {
        self.seen
            .query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Only `allowed` keys, each at most once.
    fn check_params(&mut self, allowed: &[&str]) -> Result<(), Box<Response>> {
        for (i, (key, _)) in self.seen.query.iter().enumerate() {
            if !allowed.contains(&key.as_str()) {
                return Err(Box::new(
                    self.violation(format!("unknown query parameter {key:?}")),
                ));
            }
            if self.seen.query[..i].iter().any(|(k, _)| k == key) {
                return Err(Box::new(
                    self.violation(format!("query parameter {key:?} given twice")),
                ));
            }
        }
        Ok(())
    }

    /// 401 unless the token matches (`Bearer` or `Token` scheme), when the receiver has one.
    fn authorize(&mut self) -> Result<(), Box<Response>> {
        let Some(token) = self.inner.token.clone() else {
            return Ok(());
        };
        let given = self.seen.authorization.as_deref().unwrap_or_default();
        if given == format!("Bearer {token}") || given == format!("Token {token}") {
            return Ok(());
        }
        Err(Box::new(self.answer(
            401,
            json!({"error": "the request was not authenticated"}),
        )))
    }

    fn violation(&mut self, what: String) -> Response {
        let what = format!("{} {}: {what}", self.seen.method, self.seen.path);
        self.inner.violations.push(what.clone());
        self.answer(400, json!({"error": what}))
    }

    fn answer(&mut self, status: u16, body: Value) -> Response {
        let text = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        self.finish(status, None, text)
    }

    fn finish(&mut self, status: u16, retry_after: Option<u64>, body: String) -> Response {
        self.seen.status = status;
        self.inner.requests.push(self.seen.clone());
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = if body.is_empty() {
            code.into_response()
        } else {
            (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

fn text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

const PRECISIONS: &[&str] = &[
    "auto",
    "nanosecond",
    "microsecond",
    "millisecond",
    "second",
    "ns",
    "us",
    "ms",
    "s",
];

async fn write_lp(
    State(shared): State<Shared>,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let encoding = text(&headers, header::CONTENT_ENCODING);
    let decoded = match encoding.as_deref() {
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(&body[..])
                .read_to_end(&mut out)
                .map(|_| out)
        }
        _ => Ok(body.to_vec()),
    };
    let body_text = decoded
        .as_ref()
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        .unwrap_or_default();
    let opened = Exchange::new(
        &shared,
        "POST",
        "/api/v3/write_lp",
        params,
        &headers,
        body_text.clone(),
    )
    .checked(&["db", "precision", "accept_partial", "no_sync"]);
    let mut x = match opened {
        Ok(x) => x,
        Err(answer) => return *answer,
    };
    let Some(db) = x.param("db").map(str::to_owned).filter(|d| !d.is_empty()) else {
        return x.violation("the required query parameter db is missing".into());
    };
    let precision = x.param("precision").unwrap_or("auto").to_owned();
    if !PRECISIONS.contains(&precision.as_str()) {
        return x.violation(format!("precision={precision:?} is not documented"));
    }
    let mut accept_partial = true;
    for key in ["accept_partial", "no_sync"] {
        match x.param(key) {
            None => {}
            Some("true") if key == "accept_partial" => accept_partial = true,
            Some("false") if key == "accept_partial" => accept_partial = false,
            Some("true" | "false") => {}
            Some(other) => return x.violation(format!("{key}={other:?} is not a boolean")),
        }
    }
    match text(&headers, header::CONTENT_TYPE).as_deref() {
        Some("text/plain" | "text/plain; charset=utf-8") => {}
        other => return x.violation(format!("Content-Type {other:?} is not text/plain")),
    }
    match (encoding.as_deref(), &decoded) {
        (None | Some("identity"), _) => {}
        (Some("gzip"), Ok(_)) => {}
        (Some("gzip"), Err(e)) => return x.violation(format!("the gzip body is broken: {e}")),
        (Some(other), _) => return x.violation(format!("Content-Encoding {other:?}")),
    }
    let Ok(bytes) = decoded else {
        return x.violation("unreadable body".into());
    };
    let Ok(body) = String::from_utf8(bytes) else {
        return x.violation("the body is not UTF-8".into());
    };

    // Parse every line as InfluxDB does; then apply a scripted answer, if any.
    let mut good = Vec::new();
    let mut refused = Vec::new();
    let mut number = 0usize;
    for line in influxdb_line_protocol::split_lines(&body) {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        number += 1;
        match influxdb_line_protocol::parse_lines(trimmed).next() {
            Some(Ok(parsed)) => {
                let nanos_plausible = parsed
                    .timestamp
                    .is_some_and(|ts| ts > 1_000_000_000_000_000_000);
                if matches!(precision.as_str(), "nanosecond" | "ns") && !nanos_plausible {
                    return x.violation(format!(
                        "line {number} has no nanosecond timestamp under precision={precision}"
                    ));
                }
                good.push((number, trimmed.to_owned()));
            }
            Some(Err(e)) => refused.push((number, trimmed.to_owned(), e.to_string())),
            None => {}
        }
    }
    if number == 0 {
        return x.violation("the body holds no line protocol".into());
    }
    let lines: Vec<String> = good.iter().map(|(_, l)| l.clone()).collect();
    let scripted = x.inner.script.pop_front();
    let record = |x: &mut Exchange<'_>, status: u16| {
        x.inner.writes.push(WriteSeen {
            at: Instant::now(),
            db: db.clone(),
            lines: lines.clone(),
            status,
        });
    };
    match scripted {
        Some(WriteAnswer::Status {
            status,
            retry_after,
            body,
        }) => {
            record(&mut x, status);
            return x.finish(status, retry_after, body);
        }
        Some(WriteAnswer::RefuseLines(numbers)) => {
            good.retain(|(n, line)| {
                let refuse = numbers.contains(n);
                if refuse {
                    refused.push((
                        *n,
                        line.clone(),
                        "invalid column type for column 'x', expected \
                         iox::column_type::field::float, got iox::column_type::field::string"
                            .to_owned(),
                    ));
                }
                !refuse
            });
            refused.sort();
        }
        None => {}
    }

    if !x.inner.databases.contains_key(&db) {
        x.inner.databases.insert(db.clone(), None);
        x.inner.created_by_write.push(db.clone());
    }
    if refused.is_empty() {
        record(&mut x, 204);
        x.inner
            .points
            .entry(db)
            .or_default()
            .extend(good.into_iter().map(|(_, l)| l));
        return x.finish(204, None, String::new());
    }
    record(&mut x, 400);
    let details = |(n, line, message): &(usize, String, String)| json!({"original_line": line, "line_number": n, "error_message": message});
    if !accept_partial {
        let first = refused.first().map(details).unwrap_or(Value::Null);
        return x.answer(
            400,
            json!({"error": "parsing failed for write_lp endpoint", "data": first}),
        );
    }
    x.inner
        .points
        .entry(db)
        .or_default()
        .extend(good.into_iter().map(|(_, l)| l));
    let data: Vec<Value> = refused.iter().map(details).collect();
    x.answer(
        400,
        json!({"error": "partial write of line protocol occurred", "data": data}),
    )
}

const FORMATS: &[&str] = &["json", "csv", "parquet", "json_lines", "jsonl", "pretty"];

async fn list_databases(
    State(shared): State<Shared>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    let opened = Exchange::new(
        &shared,
        "GET",
        "/api/v3/configure/database",
        params,
        &headers,
        String::new(),
    )
    .checked(&["format", "show_deleted"]);
    let mut x = match opened {
        Ok(x) => x,
        Err(answer) => return *answer,
    };
    match x.param("format") {
        Some("json") => {}
        Some(f) if FORMATS.contains(&f) => {
            return x.violation(format!("format={f} is documented but not served here"));
        }
        other => return x.violation(format!("format is required, got {other:?}")),
    }
    let names: Vec<Value> = x
        .inner
        .databases
        .keys()
        .map(|name| json!({"iox::database": name}))
        .collect();
    x.answer(200, Value::Array(names))
}

async fn create_database(
    State(shared): State<Shared>,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let schema = ("CreateDatabaseRequest", &["db", "retention_period"][..]);
    let (mut x, request) = match Exchange::open_json(
        &shared,
        "/api/v3/configure/database",
        params,
        &headers,
        &body,
        schema,
    ) {
        Ok(opened) => opened,
        Err(answer) => return *answer,
    };
    let Some(db) = request.get("db").and_then(Value::as_str) else {
        return x.violation("db is required".into());
    };
    let name_ok = db.len() <= 64
        && db.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && db
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/'));
    if !name_ok {
        return x.violation(format!("{db:?} is not a valid database name"));
    }
    let retention = match request.get("retention_period") {
        None => None,
        Some(Value::String(period)) => match humantime::parse_duration(period) {
            Ok(d) if d.is_zero() => {
                return x.violation(format!(
                    "retention_period {period:?} is zero: it hides every point at once"
                ));
            }
            Ok(d) => Some(d.as_nanos() as u64),
            Err(e) => return x.violation(format!("retention_period {period:?}: {e}")),
        },
        Some(other) => return x.violation(format!("retention_period {other} is no string")),
    };
    if x.inner.databases.contains_key(db) {
        return x.answer(
            409,
            json!({"error": "attempted to create resource that already exists"}),
        );
    }
    x.inner.databases.insert(db.to_owned(), retention);
    x.answer(200, Value::Null)
}

const SYSTEM_DATABASES: &str = "select database_name, retention_period_ns from system.databases";

async fn query_sql(
    State(shared): State<Shared>,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let schema = ("QueryRequestObject", &["db", "q", "format", "params"][..]);
    let (mut x, request) = match Exchange::open_json(
        &shared,
        "/api/v3/query_sql",
        params,
        &headers,
        &body,
        schema,
    ) {
        Ok(opened) => opened,
        Err(answer) => return *answer,
    };
    let db = request
        .get("db")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let q = request.get("q").and_then(Value::as_str).unwrap_or_default();
    let format = request
        .get("format")
        .and_then(Value::as_str)
        .unwrap_or("json");
    let normal = q.split_whitespace().collect::<Vec<_>>().join(" ");
    if db != "_internal" || !normal.eq_ignore_ascii_case(SYSTEM_DATABASES) || format != "json" {
        return x.violation(format!(
            "this receiver answers only {SYSTEM_DATABASES:?} on _internal as json, got \
             {q:?} on {db:?} as {format}"
        ));
    }
    let rows: Vec<Value> = x
        .inner
        .databases
        .iter()
        .map(|(name, retention)| match retention {
            Some(ns) => json!({"database_name": name, "retention_period_ns": ns}),
            None => json!({"database_name": name}),
        })
        .collect();
    x.answer(200, Value::Array(rows))
}

async fn unknown(
    State(shared): State<Shared>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let mut x = Exchange::new(
        &shared,
        method.as_str(),
        uri.path(),
        Vec::new(),
        &headers,
        String::new(),
    );
    let response = x.violation("not an endpoint this receiver serves".into());
    let mut response = response;
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}
