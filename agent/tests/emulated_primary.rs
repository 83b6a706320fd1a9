//! The agent against an emulated primary: a small axum server inside the test that speaks the
//! primary's API (register, vitals, goodbye) and can be told to misbehave. The end-to-end test
//! against the real primary lives with the primary.
//!
//! Time is paused (`start_paused`): the agent's timers, its backoff and the emulator's clock
//! advance only when every task waits, so minutes of retries take milliseconds and timings can
//! be asserted exactly. The agent's samples are stamped with that clock (milliseconds since the
//! test started), so a sample's timestamp tells when it was taken, not when it was pushed.

use std::collections::{HashSet, VecDeque};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use pivitals_agent::{AgentError, Config, Sampler, Secret, run_with};
use pivitals_common::validate;
use pivitals_common::{
    CpuVitals, Goodbye, LoadAverage, NodeInfo, RegisterReply, RegisterRequest, VitalsPayload,
    VitalsPush,
};
use pivitals_testkit::harness::{Proc, log_fields};
use reqwest::Url;
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const ENROLL: &str = "enroll-secret";
const INTERVAL: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// The emulated primary.

/// A canned answer, given instead of the normal one.
#[derive(Clone, Debug)]
struct Canned {
    status: StatusCode,
    retry_after: Option<u64>,
    error: &'static str,
}

fn canned(status: u16, retry_after: Option<u64>, error: &'static str) -> Canned {
    Canned {
        status: StatusCode::from_u16(status).unwrap(),
        retry_after,
        error,
    }
}

#[derive(Debug)]
struct PushRecord {
    at: Duration,
    token: String,
    timestamps: Vec<i64>,
    status: u16,
    info: Option<NodeInfo>,
}

#[derive(Debug)]
struct RegisterRecord {
    at: Duration,
    authorization: String,
    request: RegisterRequest,
    status: u16,
}

#[derive(Debug)]
struct Primary {
    url: Url,
    started: Instant,
    enroll_token: String,
    tokens: HashSet<String>,
    issued: usize,
    registrations: Vec<RegisterRecord>,
    pushes: Vec<PushRecord>,
    goodbyes: Vec<(String, Goodbye)>,
    /// Timestamps of every accepted sample, in the order they arrived.
    received: Vec<i64>,
    /// Every accepted sample, in the order it arrived.
    received_samples: Vec<VitalsPayload>,
    register_script: VecDeque<Canned>,
    vitals_script: VecDeque<Canned>,
    /// Answer every push with this while set.
    down: Option<Canned>,
    /// Answer 413 to pushes with more samples than this.
    max_batch: Option<usize>,
    /// Answer 422 to a push that carries the node's facts, as a primary whose caps they pass.
    refuse_info: bool,
}

type Shared = Arc<Mutex<Primary>>;

fn lock(primary: &Shared) -> MutexGuard<'_, Primary> {
    primary.lock().unwrap()
}

fn bearer(headers: &HeaderMap) -> String {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned()
}

fn answer(canned: &Canned) -> Response {
    let body = Json(json!({ "error": canned.error }));
    match canned.retry_after {
        Some(secs) => (
            canned.status,
            [(header::RETRY_AFTER, secs.to_string())],
            body,
        )
            .into_response(),
        None => (canned.status, body).into_response(),
    }
}

async fn register(
    State(primary): State<Shared>,
    headers: HeaderMap,
    Json(request): Json<RegisterRequest>,
) -> Response {
    let mut p = lock(&primary);
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let at = p.started.elapsed();
    let response = if bearer(&headers) != p.enroll_token {
        answer(&canned(401, None, "wrong enrollment token"))
    } else if let Some(canned) = p.register_script.pop_front() {
        answer(&canned)
    } else if let Err(e) = validate::node_name(&request.node_name) {
        answer(&Canned {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            retry_after: None,
            error: Box::leak(e.to_string().into_boxed_str()),
        })
    } else {
        p.issued += 1;
        let node_token = format!("node-token-{}", p.issued);
        p.tokens.insert(node_token.clone());
        Json(RegisterReply {
            node_name: request.node_name.clone(),
            node_token,
        })
        .into_response()
    };
    p.registrations.push(RegisterRecord {
        at,
        authorization,
        request,
        status: response.status().as_u16(),
    });
    response
}

async fn vitals(
    State(primary): State<Shared>,
    headers: HeaderMap,
    Json(push): Json<VitalsPush>,
) -> Response {
    let mut p = lock(&primary);
    let token = bearer(&headers);
    let count = push.samples.len();
    let response = if !p.tokens.contains(&token) {
        answer(&canned(401, None, "unknown node token"))
    } else if let Some(canned) = p.vitals_script.pop_front() {
        answer(&canned)
    } else if let Some(down) = p.down.clone() {
        answer(&down)
    } else if p.refuse_info && push.info.is_some() {
        answer(&canned(
            422,
            None,
            "info.interfaces: at most 64 per sample, got 65",
        ))
    } else if p.max_batch.is_some_and(|max| count > max) {
        answer(&canned(413, None, "too many samples"))
    } else {
        let timestamps = push.samples.iter().map(|s| s.timestamp_ms);
        p.received.extend(timestamps);
        p.received_samples.extend(push.samples.iter().cloned());
        Json(json!({ "accepted": count })).into_response()
    };
    let record = PushRecord {
        at: p.started.elapsed(),
        token,
        timestamps: push.samples.iter().map(|s| s.timestamp_ms).collect(),
        status: response.status().as_u16(),
        info: push.info,
    };
    p.pushes.push(record);
    response
}

async fn goodbye(
    State(primary): State<Shared>,
    headers: HeaderMap,
    Json(goodbye): Json<Goodbye>,
) -> Response {
    let mut p = lock(&primary);
    let token = bearer(&headers);
    if !p.tokens.contains(&token) {
        return answer(&canned(401, None, "unknown node token"));
    }
    p.goodbyes.push((token, goodbye));
    StatusCode::NO_CONTENT.into_response()
}

/// Starts the emulated primary on a free loopback port.
async fn start_primary() -> (Url, Shared) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    let primary = Arc::new(Mutex::new(Primary {
        url: url.clone(),
        started: Instant::now(),
        enroll_token: ENROLL.into(),
        tokens: HashSet::new(),
        issued: 0,
        registrations: Vec::new(),
        pushes: Vec::new(),
        goodbyes: Vec::new(),
        received: Vec::new(),
        received_samples: Vec::new(),
        register_script: VecDeque::new(),
        vitals_script: VecDeque::new(),
        down: None,
        max_batch: None,
        refuse_info: false,
    }));
    let app = Router::new()
        .route("/api/v1/register", post(register))
        .route("/api/v1/vitals", post(vitals))
        .route("/api/v1/goodbye", post(goodbye))
        .with_state(primary.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, primary)
}

// ---------------------------------------------------------------------------------------------
// The agent under test.

/// Stamps each sample with the paused clock: milliseconds since `started` (the start of the
/// agent, or of the test for agents that run one after the other). Other fields make every
/// sample's content distinct, and every sample taken is kept for comparing.
/// Samples stamped with the paused clock. Its CPU "busy share" is the number of fast ticks
/// since the sample before, and its host is renamed when the test says so.
struct ClockSampler {
    started: Instant,
    taken: Arc<AtomicUsize>,
    samples: Arc<Mutex<Vec<VitalsPayload>>>,
    ticks: u64,
    renamed: Arc<AtomicBool>,
}

impl Sampler for ClockSampler {
    fn node_info(&mut self) -> NodeInfo {
        let hostname = if self.renamed.load(Ordering::SeqCst) {
            "test-host-renamed"
        } else {
            "test-host"
        };
        NodeInfo {
            hostname: hostname.into(),
            agent_version: "test".into(),
            ..Default::default()
        }
    }

    fn tick(&mut self) {
        self.ticks += 1;
    }

    fn sample(&mut self) -> VitalsPayload {
        let n = self.taken.fetch_add(1, Ordering::SeqCst) as u64;
        let elapsed = self.started.elapsed();
        let ticks = std::mem::take(&mut self.ticks);
        let sample = VitalsPayload {
            timestamp_ms: elapsed.as_millis() as i64,
            cpu: Some(CpuVitals {
                usage_percent: ticks as f64,
                cores: 1,
                ..Default::default()
            }),
            uptime_seconds: Some(elapsed.as_secs()),
            process_count: Some(n),
            load: Some(LoadAverage {
                one: n as f64 / 3.0,
                five: 0.1 + n as f64,
                fifteen: std::f64::consts::PI * n as f64,
                ..Default::default()
            }),
            ..Default::default()
        };
        self.samples.lock().unwrap().push(sample.clone());
        sample
    }
}

fn config(primary: &Url, state_dir: &Path) -> Config {
    let mut cfg = Config::new(primary.clone(), "pi-test", state_dir);
    cfg.enroll_token = Some(Secret::new(ENROLL));
    cfg.interval = INTERVAL;
    cfg.labels = validate::parse_labels("stack=2,role=worker").unwrap();
    cfg.start_jitter = false;
    cfg
}

struct Agent {
    task: JoinHandle<Result<(), AgentError>>,
    stop: oneshot::Sender<()>,
    taken: Arc<AtomicUsize>,
    samples: Arc<Mutex<Vec<VitalsPayload>>>,
    renamed: Arc<AtomicBool>,
}

fn start_agent(cfg: Config) -> Agent {
    start_agent_since(cfg, Instant::now())
}

/// Starts an agent whose samples are stamped with the time since `started`.
fn start_agent_since(cfg: Config, started: Instant) -> Agent {
    let taken = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let renamed = Arc::new(AtomicBool::new(false));
    let sampler = ClockSampler {
        started,
        taken: taken.clone(),
        samples: samples.clone(),
        ticks: 0,
        renamed: renamed.clone(),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let task = tokio::spawn(run_with(cfg, sampler, shutdown));
    Agent {
        task,
        stop,
        taken,
        samples,
        renamed,
    }
}

impl Agent {
    fn taken(&self) -> usize {
        self.taken.load(Ordering::SeqCst)
    }

    /// Stops the agent as SIGTERM would and returns what `run` returned.
    async fn stop(self) -> Result<(), AgentError> {
        let _ = self.stop.send(());
        self.task.await.unwrap()
    }
}

/// Waits (in paused time) until `ready` holds, at most `limit`.
async fn wait_until(primary: &Shared, limit: Duration, ready: impl Fn(&Primary) -> bool) {
    let deadline = Instant::now() + limit;
    while !ready(&lock(primary)) {
        assert!(
            Instant::now() < deadline,
            "condition not met within {limit:?}: {:#?}",
            lock(primary)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Timestamps of samples taken every INTERVAL from 0: 0, 10_000, 20_000, …
fn every_interval(range: std::ops::Range<usize>) -> Vec<i64> {
    range
        .map(|k| k as i64 * INTERVAL.as_millis() as i64)
        .collect()
}

/// Ends the test process if a test is still running after two minutes of real time. Paused
/// time stands still while the agent busy-loops on the emulator (each request keeps the runtime
/// busy), so a regression of that kind would otherwise hang the run instead of failing it.
struct Watchdog(Arc<std::sync::atomic::AtomicBool>);

fn watchdog(test: &'static str) -> Watchdog {
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = done.clone();
    std::thread::spawn(move || {
        for _ in 0..1200 {
            std::thread::sleep(Duration::from_millis(100));
            if seen.load(Ordering::SeqCst) {
                return;
            }
        }
        eprintln!("{test}: still running after 120 s of real time; the agent is probably spinning");
        std::process::exit(101);
    });
    Watchdog(done)
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[tokio::test(start_paused = true)]
async fn emulated_primary_registration_pushes_and_goodbye() {
    let _watchdog = watchdog("emulated_primary_registration_pushes_and_goodbye");
    let (url, primary) = start_primary().await;
    let state = tempfile::tempdir().unwrap();
    let agent = start_agent(config(&url, state.path()));

    wait_until(&primary, Duration::from_secs(60), |p| p.received.len() >= 3).await;
    agent.stop().await.unwrap();

    let p = lock(&primary);
    assert_eq!(p.registrations.len(), 1);
    let registration = &p.registrations[0];
    assert_eq!(registration.authorization, format!("Bearer {ENROLL}"));
    assert_eq!(registration.request.node_name, "pi-test");
    assert_eq!(registration.request.interval_seconds, 10);
    assert_eq!(registration.request.info.hostname, "test-host");
    assert_eq!(
        registration.request.labels.get("stack").map(String::as_str),
        Some("2")
    );
    assert_eq!(
        registration.request.labels.get("role").map(String::as_str),
        Some("worker")
    );

    assert!(
        p.pushes
            .iter()
            .all(|push| push.token == "node-token-1" && push.status == 200)
    );
    // One sample per interval from the start, plus the last one taken at shutdown, pushed
    // before goodbye.
    let taken = p.received.len();
    assert!(taken >= 4, "{:?}", p.received);
    assert_eq!(&p.received[..taken - 1], &every_interval(0..taken - 1)[..]);
    assert_eq!(p.goodbyes.len(), 1);
    assert_eq!(p.goodbyes[0].0, "node-token-1");
    assert_eq!(p.goodbyes[0].1.reason.as_deref(), Some("shutdown"));
}

#[tokio::test(start_paused = true)]
async fn fast_ticks_run_every_second_between_samples_and_not_when_sample_every_is_the_interval() {
    let _watchdog = watchdog("fast_ticks");
    for (sample_every, expected) in [(Duration::from_secs(1), 10.0), (INTERVAL, 0.0)] {
        let (url, primary) = start_primary().await;
        let state = tempfile::tempdir().unwrap();
        let mut cfg = config(&url, state.path());
        cfg.sample_every = sample_every;
        let agent = start_agent(cfg);
        wait_until(&primary, Duration::from_secs(60), |p| p.received.len() >= 4).await;
        agent.stop().await.unwrap();
        let p = lock(&primary);
        // The first sample comes before any tick; the one taken at shutdown after a few.
        let ticks: Vec<f64> = p.received_samples[1..4]
            .iter()
            .map(|s| s.cpu.as_ref().unwrap().usage_percent)
            .collect();
        assert_eq!(ticks, [expected; 3], "sample_every {sample_every:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn changed_node_facts_travel_once_with_the_next_push() {
    let _watchdog = watchdog("changed_node_facts_travel_once_with_the_next_push");
    let (url, primary) = start_primary().await;
    let state = tempfile::tempdir().unwrap();
    let agent = start_agent(config(&url, state.path()));
    wait_until(&primary, Duration::from_secs(60), |p| p.pushes.len() >= 2).await;
    agent.renamed.store(true, Ordering::SeqCst);
    wait_until(&primary, Duration::from_secs(120), |p| {
        p.pushes.iter().any(|push| push.info.is_some())
    })
    .await;
    let pushes_then = lock(&primary).pushes.len();
    wait_until(&primary, Duration::from_secs(60), |p| {
        p.pushes.len() >= pushes_then + 3
    })
    .await;
    agent.stop().await.unwrap();
    let p = lock(&primary);
    assert_eq!(
        p.registrations[0].request.info.hostname, "test-host",
        "registered with the first facts"
    );
    let carrying: Vec<&PushRecord> = p.pushes.iter().filter(|push| push.info.is_some()).collect();
    assert_eq!(carrying.len(), 1, "{:#?}", p.pushes);
    assert_eq!(
        carrying[0].info.as_ref().unwrap().hostname,
        "test-host-renamed"
    );
    assert!(
        carrying[0].at <= Duration::from_secs(20) + Duration::from_secs(60) + INTERVAL * 2,
        "read again within a minute and sent with the next push: {:?}",
        carrying[0].at
    );
}

#[tokio::test(start_paused = true)]
async fn facts_over_the_primarys_caps_are_dropped_and_the_samples_still_land() {
    let _watchdog = watchdog("facts_over_the_primarys_caps_are_dropped");
    let (url, primary) = start_primary().await;
    lock(&primary).refuse_info = true;
    let state = tempfile::tempdir().unwrap();
    let agent = start_agent(config(&url, state.path()));
    wait_until(&primary, Duration::from_secs(60), |p| p.pushes.len() >= 2).await;
    agent.renamed.store(true, Ordering::SeqCst);
    wait_until(&primary, Duration::from_secs(120), |p| {
        p.pushes.iter().any(|push| push.status == 422)
    })
    .await;
    let refused_at = lock(&primary).pushes.len();
    wait_until(&primary, Duration::from_secs(60), |p| {
        p.pushes.len() >= refused_at + 3
    })
    .await;
    let taken = agent.taken();
    agent.stop().await.unwrap();
    let p = lock(&primary);
    let refused: Vec<&PushRecord> = p.pushes.iter().filter(|push| push.status == 422).collect();
    assert_eq!(
        refused.len(),
        1,
        "the facts are not sent again: {:#?}",
        p.pushes
    );
    assert!(
        p.pushes[refused_at..]
            .iter()
            .all(|push| push.info.is_none() && push.status == 200),
        "{:#?}",
        p.pushes
    );
    // Every sample taken landed, the refused push's included.
    let mut received = p.received.clone();
    received.sort_unstable();
    received.dedup();
    assert_eq!(
        received.len(),
        taken + 1,
        "the last sample is taken at stop"
    );
}

#[tokio::test(start_paused = true)]
async fn emulated_primary_credential_is_stored_0600_and_reused() {
    let _watchdog = watchdog("emulated_primary_credential_is_stored_0600_and_reused");
    let (url, primary) = start_primary().await;
    let state = tempfile::tempdir().unwrap();

    let agent = start_agent(config(&url, state.path()));
    wait_until(&primary, Duration::from_secs(60), |p| {
        !p.received.is_empty()
    })
    .await;
    agent.stop().await.unwrap();

    let file = state.path().join("credential.json");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(
        stored,
        json!({ "node_name": "pi-test", "node_token": "node-token-1" })
    );

    // A restart reuses it: no new registration, pushes with the stored token.
    let pushes_before = lock(&primary).pushes.len();
    let agent = start_agent(config(&url, state.path()));
    wait_until(&primary, Duration::from_secs(60), |p| {
        p.pushes.len() > pushes_before
    })
    .await;
    agent.stop().await.unwrap();
    {
        let p = lock(&primary);
        assert_eq!(p.registrations.len(), 1);
        assert!(
            p.pushes
                .iter()
                .all(|push| push.token == "node-token-1" && push.status == 200)
        );
    }

    // Another node name in the same state directory registers for itself.
    let mut cfg = config(&url, state.path());
    cfg.node_name = "pi-other".into();
    let agent = start_agent(cfg);
    wait_until(&primary, Duration::from_secs(60), |p| {
        p.registrations.len() == 2
    })
    .await;
    agent.stop().await.unwrap();
    assert_eq!(
        lock(&primary).registrations[1].request.node_name,
        "pi-other"
    );
}

#[tokio::test(start_paused = true)]
async fn emulated_primary_that_forgets_the_token_gets_a_new_registration_and_the_samples() {
    let _watchdog =
        watchdog("emulated_primary_that_forgets_the_token_gets_a_new_registration_and_the_samples");
    let (url, primary) = start_primary().await;
    let state = tempfile::tempdir().unwrap();
    let agent = start_agent(config(&url, state.path()));
    wait_until(&primary, Duration::from_secs(60), |p| p.received.len() == 2).await;

    lock(&primary).tokens.clear();
    wait_until(&primary, Duration::from_secs(60), |p| p.received.len() == 4).await;
    let taken = agent.taken();
    agent.stop().await.unwrap();

    let p = lock(&primary);
    assert_eq!(p.registrations.len(), 2);
    assert!(
        p.pushes
            .iter()
            .any(|push| push.status == 401 && push.token == "node-token-1")
    );
    let after: Vec<_> = p
        .pushes
        .iter()
        .skip_while(|push| push.status != 401)
        .skip(1)
        .collect();
    assert!(
        after.iter().all(|push| push.token == "node-token-2"),
        "{after:#?}"
    );
    // Nothing lost, nothing twice: the refused sample went out again after registering.
    let (_at_shutdown, regular) = p.received.split_last().unwrap();
    assert_eq!(regular, every_interval(0..taken));
    let stored = std::fs::read_to_string(state.path().join("credential.json")).unwrap();
    assert!(stored.contains("node-token-2"), "{stored}");
}

#[tokio::test(start_paused = true)]
async fn emulated_primary_busy_with_retry_after_gets_every_sample_in_order_later() {
    let _watchdog =
        watchdog("emulated_primary_busy_with_retry_after_gets_every_sample_in_order_later");
    let (url, primary) = start_primary().await;
    {
        let mut p = lock(&primary);
        p.vitals_script
            .push_back(canned(503, Some(30), "spool full"));
        p.vitals_script
            .push_back(canned(429, Some(30), "slow down"));
    }
    let state = tempfile::tempdir().unwrap();
    let agent = start_agent(config(&url, state.path()));
    wait_until(&primary, Duration::from_secs(300), |p| {
        p.received.len() >= 6
    })
    .await;
    agent.stop().await.unwrap();

    let p = lock(&primary);
    let statuses: Vec<u16> = p.pushes.iter().map(|push| push.status).collect();
    assert_eq!(&statuses[..3], [503, 429, 200]);
    // Retry-After is honoured: no push comes back sooner.
    assert!(
        p.pushes[1].at - p.pushes[0].at >= Duration::from_secs(30),
        "{:#?}",
        p.pushes
    );
    assert!(
        p.pushes[2].at - p.pushes[1].at >= Duration::from_secs(30),
        "{:#?}",
        p.pushes
    );
    // The first accepted push carries everything sampled meanwhile, oldest first, with the
    // times the samples were taken (every 10 s from 0), not the time of the push.
    let first_ok = &p.pushes[2];
    assert!(first_ok.timestamps.len() >= 6, "{first_ok:#?}");
    assert_eq!(
        first_ok.timestamps,
        every_interval(0..first_ok.timestamps.len())
    );
    assert!(first_ok.at >= Duration::from_secs(60));
    let last = p.received.len() - 1;
    assert_eq!(&p.received[..last], &every_interval(0..last)[..]);
}

#[tokio::test(start_paused = true)]
async fn emulated_primary_413_halves_the_batch_until_it_fits() {
    let _watchdog = watchdog("emulated_primary_413_halves_the_batch_until_it_fits");
    let (url, primary) = start_primary().await;
    {
        let mut p = lock(&primary);
        p.max_batch = Some(2);
        p.down = Some(canned(503, None, "down"));
    }
    let state = tempfile::tempdir().unwrap();
    let agent = start_agent(config(&url, state.path()));
    // Ten samples pile up while the primary is down.
    tokio::time::sleep(Duration::from_secs(95)).await;
    lock(&primary).down = None;
    wait_until(&primary, Duration::from_secs(300), |p| {
        p.received.len() >= 12
    })
    .await;
    agent.stop().await.unwrap();

    let p = lock(&primary);
    let tried: Vec<(usize, u16)> = p
        .pushes
        .iter()
        .filter(|push| push.status != 503)
        .map(|push| (push.timestamps.len(), push.status))
        .collect();
    // 10 or more samples waiting: 413, then half, and so on, until a batch fits; it stays small.
    let first_ok = tried.iter().position(|(_, status)| *status == 200).unwrap();
    assert!(first_ok >= 2, "{tried:?}");
    for pair in tried[..=first_ok].windows(2) {
        assert_eq!(pair[0].1, 413, "{tried:?}");
        assert_eq!(pair[1].0, pair[0].0 / 2, "{tried:?}");
    }
    assert!(
        tried[first_ok..]
            .iter()
            .all(|(n, status)| *status == 200 && *n <= 2),
        "{tried:?}"
    );
    let last = p.received.len() - 1;
    assert_eq!(&p.received[..last], &every_interval(0..last)[..]);
}

#[tokio::test(start_paused = true)]
async fn emulated_primary_422_on_registration_stops_the_agent_with_its_message() {
    let _watchdog =
        watchdog("emulated_primary_422_on_registration_stops_the_agent_with_its_message");
    let (url, primary) = start_primary().await;
    lock(&primary)
        .register_script
        .push_back(canned(422, None, "node name pi-test is taken"));
    let state = tempfile::tempdir().unwrap();
    let agent = start_agent(config(&url, state.path()));
    let result = tokio::time::timeout(Duration::from_secs(30), agent.task)
        .await
        .unwrap()
        .unwrap();
    match result {
        Err(e @ AgentError::Refused { .. }) => {
            assert!(e.is_configuration());
            assert_eq!(
                e.to_string(),
                "the primary refused to register node \"pi-test\": node name pi-test is taken"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!state.path().join("credential.json").exists());
}

#[tokio::test(start_paused = true)]
async fn emulated_primary_422_on_a_push_drops_that_batch_and_goes_on() {
    let _watchdog = watchdog("emulated_primary_422_on_a_push_drops_that_batch_and_goes_on");
    let (url, primary) = start_primary().await;
    lock(&primary)
        .vitals_script
        .push_back(canned(422, None, "timestamp in the future"));
    let state = tempfile::tempdir().unwrap();
    let agent = start_agent(config(&url, state.path()));
    wait_until(&primary, Duration::from_secs(120), |p| {
        p.received.len() >= 3
    })
    .await;
    agent.stop().await.unwrap();

    let p = lock(&primary);
    assert_eq!(p.pushes[0].status, 422);
    assert_eq!(p.pushes[0].timestamps, [0]);
    // Sample 0 is gone for good; the ones after it arrive.
    let last = p.received.len() - 1;
    assert_eq!(&p.received[..last], &every_interval(1..last + 1)[..]);
    assert!(p.pushes[1..].iter().all(|push| push.status == 200));
}

#[tokio::test(start_paused = true)]
async fn emulated_primary_refusing_the_enroll_token_is_retried_with_backoff() {
    let _watchdog = watchdog("emulated_primary_refusing_the_enroll_token_is_retried_with_backoff");
    let (url, primary) = start_primary().await;
    lock(&primary).enroll_token = "the-real-token".into();
    let state = tempfile::tempdir().unwrap();
    let agent = start_agent(config(&url, state.path()));

    tokio::time::sleep(Duration::from_secs(600)).await;
    {
        let p = lock(&primary);
        let attempts: Vec<Duration> = p.registrations.iter().map(|r| r.at).collect();
        assert!(p.registrations.iter().all(|r| r.status == 401));
        // Capped backoff: retrying, but neither hammering nor giving up (a 60 s cap with full
        // jitter averages one try per 30 s once it is reached).
        assert!((8..=80).contains(&attempts.len()), "{attempts:?}");
        let gaps = attempts.windows(2).map(|w| w[1] - w[0]);
        assert!(
            gaps.clone().all(|gap| gap <= Duration::from_secs(61)),
            "{attempts:?}"
        );
        assert!(
            !agent.task.is_finished(),
            "a refused enroll token is not fatal"
        );
    }

    // The operator fixes the token on the primary: the node registers and the backlog arrives.
    lock(&primary).enroll_token = ENROLL.into();
    wait_until(&primary, Duration::from_secs(120), |p| {
        !p.received.is_empty()
    })
    .await;
    agent.stop().await.unwrap();
    let p = lock(&primary);
    assert_eq!(p.registrations.last().unwrap().status, 200);
    let last = p.received.len() - 1;
    assert!(last >= 60, "ten minutes of samples: {}", p.received.len());
    assert_eq!(&p.received[..last], &every_interval(0..last)[..]);
}

#[tokio::test(start_paused = true)]
async fn emulated_primary_down_long_enough_loses_only_the_oldest_beyond_backlog_max() {
    let _watchdog =
        watchdog("emulated_primary_down_long_enough_loses_only_the_oldest_beyond_backlog_max");
    let (url, primary) = start_primary().await;
    lock(&primary).down = Some(canned(500, None, "influx unreachable"));
    let state = tempfile::tempdir().unwrap();
    let mut cfg = config(&url, state.path());
    cfg.backlog_max = 5;
    let agent = start_agent(cfg);

    tokio::time::sleep(Duration::from_secs(125)).await;
    let taken = agent.taken();
    assert_eq!(taken, 13, "sampling goes on while the primary is down");
    lock(&primary).down = None;
    wait_until(&primary, Duration::from_secs(120), |p| {
        p.received.len() >= 5
    })
    .await;
    agent.stop().await.unwrap();

    let p = lock(&primary);
    // Only the five newest samples were kept when the primary came back (samples taken after
    // t = 125 s pushed out more of the old ones); from there on nothing is missing.
    let first = (p.received[0] / 10_000) as usize;
    assert!(first >= taken - 5, "{:?}", p.received);
    assert!(
        p.pushes
            .iter()
            .find(|push| push.status == 200)
            .unwrap()
            .timestamps
            .len()
            == 5
    );
    let last = p.received.len() - 1;
    assert_eq!(
        &p.received[..last],
        &every_interval(first..first + last)[..]
    );
}

#[tokio::test(start_paused = true)]
async fn unreachable_primary_keeps_the_agent_sampling_and_it_stops_cleanly() {
    let _watchdog = watchdog("unreachable_primary_keeps_the_agent_sampling_and_it_stops_cleanly");
    // A port nobody listens on: every connection is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = Url::parse(&format!("http://{}/", closed.local_addr().unwrap())).unwrap();
    drop(closed);
    let state = tempfile::tempdir().unwrap();
    let agent = start_agent(config(&url, state.path()));

    tokio::time::sleep(Duration::from_secs(295)).await;
    assert!(!agent.task.is_finished());
    assert_eq!(agent.taken(), 30);
    let stopping = Instant::now();
    agent.stop().await.unwrap();
    assert!(
        stopping.elapsed() <= pivitals_agent::FINAL_PUSH_TIMEOUT + pivitals_agent::GOODBYE_TIMEOUT
    );
    assert!(!state.path().join("credential.json").exists());
}

#[tokio::test(start_paused = true)]
async fn without_enroll_token_or_credential_the_agent_refuses_to_start() {
    let _watchdog = watchdog("without_enroll_token_or_credential_the_agent_refuses_to_start");
    let (url, primary) = start_primary().await;
    let state = tempfile::tempdir().unwrap();
    let mut cfg = config(&url, state.path());
    cfg.enroll_token = None;
    let result = start_agent(cfg).task.await.unwrap();
    assert!(
        matches!(&result, Err(e @ AgentError::NoEnrollToken(_)) if e.is_configuration()),
        "{result:?}"
    );
    assert!(lock(&primary).registrations.is_empty());
}

#[tokio::test(start_paused = true)]
async fn start_jitter_takes_the_first_sample_within_ten_seconds() {
    let _watchdog = watchdog("start_jitter_takes_the_first_sample_within_ten_seconds");
    let (url, primary) = start_primary().await;
    let state = tempfile::tempdir().unwrap();
    let mut cfg = config(&url, state.path());
    cfg.start_jitter = true;
    let agent = start_agent(cfg);
    // The first sample comes within the start jitter (under 10 s).
    wait_until(&primary, pivitals_agent::MAX_START_JITTER, |p| {
        !p.received.is_empty()
    })
    .await;
    agent.stop().await.unwrap();
    let p = lock(&primary);
    assert!(p.received[0] < 10_000, "{:?}", p.received);
    assert_eq!(p.goodbyes.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// The backlog across a restart.

/// Runs a first agent (against `first_url`) while its pushes fail, stops it, and runs a second
/// one with the same state directory against the emulated primary, which now takes samples.
/// Every sample of the first run must arrive, exactly once, oldest first, unchanged (content and
/// the timestamp it was taken with), before those of the second run.
async fn restart_delivers_the_samples_of_the_first_run(first_url: &Url, primary: &Shared) {
    let state = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let url = lock(primary).url.clone();

    let first = start_agent_since(config(first_url, state.path()), started);
    tokio::time::sleep(Duration::from_secs(95)).await;
    let first_samples = first.samples.clone();
    first.stop().await.unwrap();
    let first_run = first_samples.lock().unwrap().clone();
    assert_eq!(
        first_run.len(),
        11,
        "every 10 s from 0 to 90 s, and one at the stop"
    );
    assert!(lock(primary).received.is_empty());
    let backlog = state.path().join(pivitals_agent::BACKLOG_DIR);
    assert!(
        std::fs::read_dir(&backlog).unwrap().count() >= 1,
        "the samples wait in {}",
        backlog.display()
    );

    // The agent stays stopped for a while; meanwhile the primary recovers.
    tokio::time::sleep(Duration::from_secs(30)).await;
    lock(primary).down = None;
    let second = start_agent_since(config(&url, state.path()), started);
    wait_until(primary, Duration::from_secs(60), |p| {
        p.received.len() >= first_run.len() + 2
    })
    .await;
    let second_samples = second.samples.clone();
    second.stop().await.unwrap();
    let second_run = second_samples.lock().unwrap().clone();

    let p = lock(primary);
    let expected: Vec<VitalsPayload> = first_run.iter().chain(&second_run).cloned().collect();
    assert_eq!(p.received_samples.len(), expected.len(), "{:?}", p.received);
    assert_eq!(p.received_samples, expected);
    // The first run's samples kept the times they were taken: every 10 s from 0, then the stop.
    assert_eq!(&p.received[..10], &every_interval(0..10)[..]);
    assert_eq!(p.received[10], 95_000);
    assert!(p.received[11] >= 125_000, "{:?}", p.received);
    let first_ok = p.pushes.iter().find(|push| push.status == 200).unwrap();
    assert_eq!(first_ok.timestamps[0], 0, "oldest first");
}

#[tokio::test(start_paused = true)]
async fn emulated_primary_busy_when_the_agent_stops_gets_the_backlog_after_a_restart() {
    let _watchdog =
        watchdog("emulated_primary_busy_when_the_agent_stops_gets_the_backlog_after_a_restart");
    let (url, primary) = start_primary().await;
    lock(&primary).down = Some(canned(503, Some(30), "spool full"));
    restart_delivers_the_samples_of_the_first_run(&url, &primary).await;
    let p = lock(&primary);
    assert_eq!(
        p.registrations.len(),
        1,
        "the second run reuses the credential"
    );
    assert!(p.pushes.iter().any(|push| push.status == 503));
}

#[tokio::test(start_paused = true)]
async fn emulated_primary_unreachable_when_the_agent_stops_gets_the_backlog_after_a_restart() {
    let _watchdog = watchdog(
        "emulated_primary_unreachable_when_the_agent_stops_gets_the_backlog_after_a_restart",
    );
    let (_url, primary) = start_primary().await;
    // A port nobody listens on: the first run cannot even register.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nobody = Url::parse(&format!("http://{}/", closed.local_addr().unwrap())).unwrap();
    drop(closed);
    restart_delivers_the_samples_of_the_first_run(&nobody, &primary).await;
    assert_eq!(lock(&primary).registrations.len(), 1);
}

/// The agent binary against the emulated primary (started by testkit's harness), logging to
/// `<log_dir>/<name>.log`.
fn spawn_agent_binary(primary: &Url, state_dir: &Path, log_dir: &Path, name: &str) -> Proc {
    let env = [
        ("PIVITALS_PRIMARY_URL", primary.to_string()),
        ("PIVITALS_ENROLL_TOKEN", ENROLL.to_owned()),
        ("PIVITALS_NODE_NAME", "pi-crash".to_owned()),
        ("PIVITALS_INTERVAL", "1s".to_owned()),
        ("PIVITALS_START_JITTER", "false".to_owned()),
        ("PIVITALS_STATE_DIR", state_dir.display().to_string()),
    ];
    let binary = Path::new(env!("CARGO_BIN_EXE_pivitals-agent"));
    Proc::spawn(name, binary, &env, log_dir)
}

/// Waits (in real time) until `ready` holds, at most `limit`.
async fn wait_real(primary: &Shared, limit: Duration, ready: impl Fn(&Primary) -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !ready(&lock(primary)) {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met within {limit:?}: {:#?}",
            lock(primary).pushes
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (in real time, without blocking the runtime the emulated primary runs on) until
/// `agent` exits, at most `limit`.
async fn wait_exit(agent: &mut Proc, limit: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = agent.exit_status() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent did not exit within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The real binary, killed with SIGKILL (no last push, no sync at exit) while the primary
/// refuses its pushes, then started again: its backlog arrives, exactly as it was on disk.
/// Real time: the binary's clock cannot be paused.
#[tokio::test]
async fn emulated_primary_gets_the_backlog_of_an_agent_binary_killed_with_sigkill() {
    let _watchdog =
        watchdog("emulated_primary_gets_the_backlog_of_an_agent_binary_killed_with_sigkill");
    let (url, primary) = start_primary().await;
    lock(&primary).down = Some(canned(503, None, "spool full"));
    let state = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();

    let mut first = spawn_agent_binary(&url, state.path(), logs.path(), "first");
    wait_real(&primary, Duration::from_secs(30), |p| !p.pushes.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    first.kill_hard();
    let log = first.log();
    assert!(!log.contains("pivitals-agent stopped"), "{log}");

    // What the killed agent left on disk, read from a copy so the second run finds it as left.
    let backlog = state.path().join(pivitals_agent::BACKLOG_DIR);
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&backlog).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
    }
    let mut left = pivitals_agent::backlog::Backlog::open(copy.path(), usize::MAX).unwrap();
    let kept = left.peek_batch(usize::MAX).samples;
    drop(left);
    assert!(
        kept.len() >= 3,
        "{} samples in 3.5 s at 1 s:\n{log}",
        kept.len()
    );
    assert!(lock(&primary).received.is_empty());

    lock(&primary).down = None;
    let mut second = spawn_agent_binary(&url, state.path(), logs.path(), "second");
    wait_real(&primary, Duration::from_secs(30), |p| {
        p.received_samples.len() > kept.len()
    })
    .await;
    second.sigterm();
    let status = wait_exit(&mut second, Duration::from_secs(30)).await;
    let log = second.log();
    assert!(status.success(), "exit {status}:\n{log}");

    let p = lock(&primary);
    assert_eq!(p.registrations.len(), 1, "the credential survived the kill");
    assert_eq!(
        &p.received_samples[..kept.len()],
        &kept[..],
        "oldest first, unchanged"
    );
    assert!(
        p.received.windows(2).all(|w| w[0] < w[1]),
        "each sample once, in order: {:?}",
        p.received
    );
    assert!(log.contains(&format!(
        "{} samples kept from before this start are sent first",
        kept.len()
    )));
    let stopped = log_fields(&log, "pivitals-agent stopped");
    assert_eq!(stopped["backlog"], "0", "{log}");
    assert_eq!(stopped["dropped"], "0", "{log}");
    let sampled: usize = stopped["sampled"].parse().unwrap();
    let sent: usize = stopped["sent"].parse().unwrap();
    assert_eq!(sent, kept.len() + sampled, "{log}");
    assert_eq!(p.received.len(), sent);
}
