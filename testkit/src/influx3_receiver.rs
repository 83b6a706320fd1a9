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
//! - `GET` or `POST /query?db=&q=&epoch=&rp=&u=&p=&chunked=&chunk_size=&pretty=` (the
//!   v1-compatible InfluxQL query, `GetV1ExecuteQuery`; a `POST` may carry `db`, `q`, `epoch`
//!   as a JSON body instead): `q` required, `epoch` one of `ns`, `u`, `µ`, `ms`, `s`, `m`,
//!   `h`, `Accept` JSON (CSV and chunks are documented but not served here). One `SELECT …
//!   FROM m WHERE … GROUP BY time(Ns)[, tag] fill(none)` per request; it is recorded
//!   ([`Influx3Receiver::queries`]: measurement, `node` filter, time range, step, tag) and
//!   answered `{"results":[{"statement_id":0,"series":[{"name","tags","columns","values"}]}]}`
//!   from the series a test gave for that measurement ([`Influx3Receiver::answer_queries`],
//!   times in ms, kept inside the statement's time range and shown in its `epoch`), or
//!   `{"results":[{"statement_id":0}]}` when none are left, as InfluxDB 3 does (with `tags`
//!   per `GROUP BY` tag since InfluxDB 3 follows 1.x there). Scripted answers
//!   ([`QueryAnswer`]) play failures. The receiver does not compute aggregates: it is no
//!   InfluxQL engine, and a test asserts the statements themselves.
//! - With a token, every request needs `Authorization: Bearer TOKEN` (or `Token TOKEN`):
//!   401 otherwise; `/query` also takes the token as `p` or as the password of `Basic`.
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

/// How the receiver answers one `/query` request instead of answering from its series.
#[derive(Debug, Clone)]
pub enum QueryAnswer {
    /// Answer this status and body (JSON): a 500, or a 200 whose result holds an `error`.
    Status { status: u16, body: String },
}

/// One `/query` request as the receiver saw it, with the statement taken apart.
#[derive(Debug, Clone, Default)]
pub struct QuerySeen {
    pub method: String,
    pub db: String,
    /// The statement, as sent.
    pub q: String,
    pub epoch: Option<String>,
    pub authorization: Option<String>,
    /// The measurement after `FROM` (unquoted), `""` when the statement was not understood.
    pub measurement: String,
    /// The value of the `"node" = '…'` condition.
    pub node: Option<String>,
    /// The bounds of `time >= …ms AND time <= …ms`.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// `GROUP BY time(Ns)`.
    pub step_seconds: Option<i64>,
    /// The tag grouped by besides time.
    pub tag: Option<String>,
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
    /// Measurement → the series `/query` answers for it.
    query_series: BTreeMap<String, Vec<Value>>,
    query_script: VecDeque<QueryAnswer>,
    queries: Vec<QuerySeen>,
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
            .route("/query", get(query_v1_get).post(query_v1_post))
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

    /// Answers `/query` statements on `measurement` with `series`: InfluxDB 1.x series
    /// objects (`name`, optional `tags`, `columns` starting with `time`, `values` with the time
    /// in ms); rows outside a statement's time range are left out.
    pub fn answer_queries(&self, measurement: &str, series: Vec<Value>) {
        lock(&self.shared)
            .query_series
            .insert(measurement.to_owned(), series);
    }

    /// Answers the next `/query` requests with these, in order.
    pub fn script_queries(&self, answers: impl IntoIterator<Item = QueryAnswer>) {
        lock(&self.shared).query_script.extend(answers);
    }

    /// How many scripted `/query` answers are still to be given.
    pub fn query_script_left(&self) -> usize {
        lock(&self.shared).query_script.len()
    }

    /// Every `/query` request so far.
    pub fn queries(&self) -> Vec<QuerySeen> {
        lock(&self.shared).queries.clone()
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

// ---------------------------------------------------------------------------------------
// The v1-compatible InfluxQL query

const QUERY_PARAMS: &[&str] = &[
    "db",
    "q",
    "epoch",
    "rp",
    "u",
    "p",
    "chunked",
    "chunk_size",
    "pretty",
];
const QUERY_BODY_KEYS: &[&str] = &["db", "q", "epoch", "chunked", "chunk_size", "pretty"];
const EPOCHS: &[&str] = &["ns", "u", "µ", "ms", "s", "m", "h"];

async fn query_v1_get(
    State(shared): State<Shared>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    query_v1(&shared, "GET", params, &headers, String::new())
}

async fn query_v1_post(
    State(shared): State<Shared>,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = String::from_utf8_lossy(&body).into_owned();
    query_v1(&shared, "POST", params, &headers, body)
}

fn query_v1(
    shared: &Shared,
    method: &str,
    params: Vec<(String, String)>,
    headers: &HeaderMap,
    body: String,
) -> Response {
    let mut x = Exchange::new(shared, method, "/query", params, headers, body);
    let mut seen = QuerySeen {
        method: method.to_owned(),
        authorization: x.seen.authorization.clone(),
        ..QuerySeen::default()
    };
    let answer = query_answer(&mut x, &mut seen, headers);
    seen.status = answer.status().as_u16();
    x.inner.queries.push(seen);
    answer
}

fn query_answer(x: &mut Exchange<'_>, seen: &mut QuerySeen, headers: &HeaderMap) -> Response {
    if let Err(answer) = x.check_params(QUERY_PARAMS) {
        return *answer;
    }
    // A POST may carry its parameters as a JSON object instead of the query string.
    let mut fields = x.seen.query.clone();
    if x.seen.method == "POST" && !x.seen.body.trim().is_empty() {
        if text(headers, header::CONTENT_TYPE).as_deref() != Some("application/json") {
            return x.violation("a POST body that is not application/json".into());
        }
        let Ok(Value::Object(object)) = serde_json::from_str::<Value>(&x.seen.body) else {
            return x.violation("the body is not a JSON object".into());
        };
        for (key, value) in object {
            if !QUERY_BODY_KEYS.contains(&key.as_str()) {
                return x.violation(format!("unknown key {key:?} in the query body"));
            }
            let value = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            fields.push((key, value));
        }
    }
    let field = |key: &str| {
        fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    if let Some(token) = x.inner.token.clone() {
        let given = x.seen.authorization.clone().unwrap_or_default();
        let by_header = given == format!("Bearer {token}") || given == format!("Token {token}");
        let by_basic = basic_password(&given).is_some_and(|p| p == token);
        if !(by_header || by_basic || field("p").is_some_and(|p| p == token)) {
            return x.answer(401, json!({"error": "the request was not authenticated"}));
        }
    }
    match text(headers, header::ACCEPT).as_deref() {
        None | Some("application/json" | "*/*") => {}
        Some(csv @ ("application/csv" | "text/csv")) => {
            return x.violation(format!("Accept: {csv} is documented but not served here"));
        }
        Some(other) => return x.violation(format!("Accept: {other:?} is not documented")),
    }
    match field("chunked").as_deref() {
        None | Some("false") => {}
        Some("true") => {
            return x.violation("chunked=true is documented but not served here".into());
        }
        Some(other) => return x.violation(format!("chunked={other:?} is not a boolean")),
    }
    let epoch = field("epoch");
    if let Some(e) = epoch.as_deref().filter(|e| !EPOCHS.contains(e)) {
        return x.violation(format!("epoch={e:?} is not documented"));
    }
    let Some(q) = field("q").filter(|q| !q.trim().is_empty()) else {
        return x.violation("the required parameter q is missing".into());
    };
    seen.q = q.clone();
    seen.epoch = epoch.clone();
    let select = match parse_select(&q) {
        Ok(select) => select,
        Err(e) => return x.violation(format!("{e}: {q}")),
    };
    // `db`, or the database the statement names (`FROM "db"."rp"."m"`).
    let Some(db) = field("db")
        .filter(|d| !d.is_empty())
        .or_else(|| select.database.clone())
    else {
        return x.violation("db is missing and the statement names no database".into());
    };
    seen.db = db.clone();
    if !x.inner.databases.contains_key(&db) {
        return x.answer(404, json!({"error": format!("database not found: {db}")}));
    }
    seen.measurement = select.measurement.clone();
    seen.node = select.node.clone();
    seen.from_ms = select.from_ms;
    seen.to_ms = select.to_ms;
    seen.step_seconds = Some(select.step_seconds);
    seen.tag = select.tag.clone();
    if let Some(QueryAnswer::Status { status, body }) = x.inner.query_script.pop_front() {
        return x.finish(status, None, body);
    }

    let (from, to) = (
        select.from_ms.unwrap_or(i64::MIN),
        select.to_ms.unwrap_or(i64::MAX),
    );
    let mut series = Vec::new();
    let canned = x
        .inner
        .query_series
        .get(&select.measurement)
        .cloned()
        .unwrap_or_default();
    for mut one in canned {
        let rows: Vec<Value> = one["values"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|row| {
                let ms = row.get(0).and_then(Value::as_i64)?;
                let mut row = row.clone();
                row[0] = epoch_time(ms, epoch.as_deref());
                (from <= ms && ms <= to).then_some(row)
            })
            .collect();
        if rows.is_empty() {
            continue;
        }
        one["values"] = Value::Array(rows);
        if let (None, Some(object)) = (&select.tag, one.as_object_mut()) {
            object.remove("tags");
        }
        series.push(one);
    }
    let result = if series.is_empty() {
        json!({"statement_id": 0})
    } else {
        json!({"statement_id": 0, "series": series})
    };
    x.answer(200, json!({"results": [result]}))
}

/// A time in ms as InfluxDB shows it under `epoch` (RFC 3339 without one).
fn epoch_time(ms: i64, epoch: Option<&str>) -> Value {
    match epoch {
        Some("ns") => json!(ms * 1_000_000),
        Some("u" | "µ") => json!(ms * 1000),
        Some("ms") => json!(ms),
        Some("s") => json!(ms / 1000),
        Some("m") => json!(ms / 60_000),
        Some("h") => json!(ms / 3_600_000),
        _ => {
            let at = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
            json!(humantime::format_rfc3339_millis(at).to_string())
        }
    }
}

/// The password of a `Basic` credential.
fn basic_password(header: &str) -> Option<String> {
    let encoded = header.strip_prefix("Basic ")?.trim();
    let mut bits = 0u32;
    let mut count = 0;
    let mut bytes = Vec::new();
    for c in encoded.bytes().take_while(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        count += 6;
        if count >= 8 {
            count -= 8;
            bytes.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    let text = String::from_utf8(bytes).ok()?;
    text.split_once(':').map(|(_, p)| p.to_owned())
}

/// What the receiver understands of a history statement.
struct Select {
    /// The database of a `FROM "db"."rp"."m"`.
    database: Option<String>,
    measurement: String,
    node: Option<String>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    step_seconds: i64,
    tag: Option<String>,
}

/// Takes apart `SELECT … FROM m WHERE cond AND … GROUP BY time(Ns)[, tag] fill(none)`: the
/// only statement shape this receiver answers. Err names what is not that shape.
fn parse_select(q: &str) -> Result<Select, String> {
    let q = q.trim();
    // Keywords are looked for outside quotes only; the mask keeps byte positions.
    let upper = mask_quoted(q).to_ascii_uppercase();
    if upper.contains(';') {
        return Err("more than one statement in one request".into());
    }
    if !upper.starts_with("SELECT ") {
        return Err("not a SELECT".into());
    }
    let at = |keyword: &str| {
        let found: Vec<usize> = upper.match_indices(keyword).map(|(i, _)| i).collect();
        match found.as_slice() {
            [one] => Ok(*one),
            _ => Err(format!("not exactly one{keyword}")),
        }
    };
    let (from, r#where, group) = (at(" FROM ")?, at(" WHERE ")?, at(" GROUP BY ")?);
    if !(from < r#where && r#where < group) {
        return Err("FROM, WHERE and GROUP BY out of order".into());
    }
    let source = q[from + 6..r#where].trim();
    let names = split_outside_quotes(source, ".")
        .into_iter()
        .map(|name| unquote_ident(name.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    let (database, measurement) = match names.as_slice() {
        [m] => (None, m.clone()),
        [db, _rp, m] => (Some(db.clone()), m.clone()),
        _ => return Err(format!("FROM {source} is neither m nor db.rp.m")),
    };
    let mut select = Select {
        database,
        measurement,
        node: None,
        from_ms: None,
        to_ms: None,
        step_seconds: 0,
        tag: None,
    };
    for condition in split_outside_quotes(&q[r#where + 7..group], " AND ") {
        let condition = condition.trim();
        if let Some((left, right)) = condition.split_once(" = ") {
            if unquote_ident(left.trim())? != "node" || select.node.is_some() {
                return Err(format!("unexpected condition {condition}"));
            }
            select.node = Some(unquote_string(right.trim())?);
        } else if let Some(bound) = condition.strip_prefix("time >= ") {
            select.from_ms = Some(epoch_ms(bound)?);
        } else if let Some(bound) = condition.strip_prefix("time <= ") {
            select.to_ms = Some(epoch_ms(bound)?);
        } else {
            return Err(format!("unexpected condition {condition}"));
        }
    }
    let grouping = q[group + 10..].trim();
    let Some(grouping) = grouping
        .len()
        .checked_sub(" fill(none)".len())
        .filter(|cut| grouping[*cut..].eq_ignore_ascii_case(" fill(none)"))
        .map(|cut| &grouping[..cut])
    else {
        return Err("GROUP BY does not end in fill(none)".into());
    };
    let parts = split_outside_quotes(grouping, ",");
    let step = parts
        .first()
        .and_then(|t| t.trim().strip_prefix("time("))
        .and_then(|t| t.strip_suffix("s)"))
        .and_then(|t| t.parse::<i64>().ok())
        .filter(|s| *s > 0)
        .ok_or("GROUP BY does not start with time(Ns)")?;
    select.step_seconds = step;
    match &parts[1..] {
        [] => {}
        [tag] => select.tag = Some(unquote_ident(tag.trim())?),
        _ => return Err("GROUP BY more than one tag".into()),
    }
    Ok(select)
}

/// `text` with every character inside '…' or "…" replaced by as many `x` bytes.
fn mask_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in text.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                    out.push(c);
                    continue;
                }
                out.extend(std::iter::repeat_n('x', c.len_utf8()));
            }
            None => {
                if c == '\'' || c == '"' {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out
}

/// `text` split on `separator` (matched case-insensitively) outside quotes.
fn split_outside_quotes<'t>(text: &'t str, separator: &str) -> Vec<&'t str> {
    let upper = mask_quoted(text).to_ascii_uppercase();
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, _) in upper.match_indices(&separator.to_ascii_uppercase()) {
        parts.push(&text[start..i]);
        start = i + separator.len();
    }
    parts.push(&text[start..]);
    parts
}

/// An identifier, bare or in double quotes (with `\"` and `\\`).
fn unquote_ident(text: &str) -> Result<String, String> {
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => unescape(inner, '"'),
        None if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            Ok(text.to_owned())
        }
        None => Err(format!("{text} is not an identifier")),
    }
}

/// A string literal in single quotes (with `\'` and `\\`).
fn unquote_string(text: &str) -> Result<String, String> {
    let inner = text
        .strip_prefix('\'')
        .and_then(|t| t.strip_suffix('\''))
        .ok_or_else(|| format!("{text} is not a string literal"))?;
    unescape(inner, '\'')
}

fn unescape(inner: &str, quote: char) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) if e == quote || e == '\\' => out.push(e),
                other => return Err(format!("bad escape \\{other:?} in {inner}")),
            },
            c if c == quote => return Err(format!("an unescaped {quote} in {inner}")),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// `1780000000000ms` (the form the history uses) as ms.
fn epoch_ms(text: &str) -> Result<i64, String> {
    text.strip_suffix("ms")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("time bound {text} is not an integer of ms"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_statement_is_taken_apart() {
        let q = "SELECT mean(\"celsius\") AS \"mean\", max(\"celsius_max\") AS \"max_peak\" \
                 FROM \"temperature\" WHERE \"node\" = 'pi \\'a\\' AND b' AND time >= 1000ms \
                 AND time <= 2000ms GROUP BY time(288s), \"sensor\" fill(none)";
        let s = parse_select(q).unwrap();
        assert_eq!(s.measurement, "temperature");
        assert_eq!(s.node.as_deref(), Some("pi 'a' AND b"));
        assert_eq!((s.from_ms, s.to_ms), (Some(1000), Some(2000)));
        assert_eq!((s.step_seconds, s.tag.as_deref()), (288, Some("sensor")));
        let rp = parse_select(
            "SELECT mean(x) FROM \"db\".\"rp\".\"cpu\" WHERE time >= 1ms GROUP BY time(10s) fill(none)",
        )
        .unwrap();
        assert_eq!((rp.measurement.as_str(), rp.tag), ("cpu", None));
        assert_eq!(rp.database.as_deref(), Some("db"));
        for bad in [
            "SELECT mean(x) FROM cpu WHERE time >= 1ms GROUP BY time(10s) fill(none); SELECT 1",
            "SELECT mean(x) FROM cpu WHERE time >= 1ms GROUP BY time(10s)",
            "SELECT mean(x) FROM cpu WHERE time >= now() - 1h GROUP BY time(10s) fill(none)",
            "SELECT mean(x) FROM cpu WHERE host = 'a' GROUP BY time(10s) fill(none)",
            "SHOW DATABASES",
        ] {
            assert!(parse_select(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn basic_credentials_give_their_password() {
        // "any:secret-token" in base64.
        assert_eq!(
            basic_password("Basic YW55OnNlY3JldC10b2tlbg==").as_deref(),
            Some("secret-token")
        );
        assert_eq!(basic_password("Bearer x"), None);
    }

    #[test]
    fn times_follow_the_epoch() {
        assert_eq!(epoch_time(1500, Some("ms")), json!(1500));
        assert_eq!(epoch_time(1500, Some("ns")), json!(1_500_000_000i64));
        assert_eq!(epoch_time(1500, Some("s")), json!(1));
        assert_eq!(epoch_time(1500, None), json!("1970-01-01T00:00:01.500Z"));
    }
}
