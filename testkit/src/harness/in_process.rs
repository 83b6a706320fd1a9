//! The primary inside the test's runtime: `pivitals_primary::run` on a bound `127.0.0.1:0`
//! listener with the embedded archive as storage, and the state router tests use without a
//! socket.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use pivitals_common::{RegisterReply, RegisterRequest, VitalsPayload};
use pivitals_primary::actions::Actions;
use pivitals_primary::alerts::runtime::AlertRuntime;
use pivitals_primary::alerts::webhook::Alerts;
use pivitals_primary::config::PrimaryConfig;
use pivitals_primary::metrics::Metrics;
use pivitals_primary::nodes::registry::Registry;
use pivitals_primary::nodes::table::Nodes;
use pivitals_primary::state::{AppState, Shared};
use pivitals_primary::storage::spool::Spool;
use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{ADMIN, ENROLL};
use crate::samples::{push_body, register_request};

/// A primary running in-process until [`InProcessPrimary::stop`]; its data in a temporary
/// directory it owns.
pub struct InProcessPrimary {
    /// `http://127.0.0.1:PORT`, or `https://` when a certificate is configured.
    pub url: String,
    pub data_dir: PathBuf,
    /// A plain client (it does not trust test certificates).
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), String>>,
    dir: TempDir,
}

impl InProcessPrimary {
    /// A primary with the harness tokens, self-monitoring off and a 100 ms flush interval.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// [`InProcessPrimary::start`] with `extra` settings, which win; an empty value leaves
    /// the variable unset.
    pub async fn start_with(extra: &[(&str, &str)]) -> Self {
        Self::start_in(tempfile::tempdir().expect("temporary directory"), extra).await
    }

    /// [`InProcessPrimary::start_with`] with `settings` as the primary's TOML settings file
    /// (for what variables cannot say, like `[[alert.rules]]`).
    pub async fn start_with_settings(settings: &str, extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let file = dir.path().join("primary.toml");
        std::fs::write(&file, settings).expect("writing the settings file");
        Self::start_from(dir, Some(&file), extra).await
    }

    /// Starts on the data in `dir` (from [`InProcessPrimary::stop`], to test a restart).
    pub async fn start_in(dir: TempDir, extra: &[(&str, &str)]) -> Self {
        Self::start_from(dir, None, extra).await
    }

    async fn start_from(dir: TempDir, settings: Option<&Path>, extra: &[(&str, &str)]) -> Self {
        pivitals_primary::install_crypto_provider();
        let data_dir = dir.path().to_owned();
        let data = data_dir.to_str().expect("a UTF-8 temporary directory");
        let env: std::collections::BTreeMap<String, String> = [
            ("PIVITALS_DATA_DIR", data),
            ("PIVITALS_ENROLL_TOKEN", ENROLL),
            ("PIVITALS_ADMIN_TOKEN", ADMIN),
            ("PIVITALS_SELF_MONITOR", "false"),
            ("PIVITALS_BATCH__FLUSH_INTERVAL", "100ms"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let env = env.into_iter().filter(|(_, v)| !v.is_empty());
        let config = PrimaryConfig::load(settings, env).unwrap_or_else(|e| panic!("config: {e}"));
        let scheme = if config.tls.cert.is_some() {
            "https"
        } else {
            "http"
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("{scheme}://{}", listener.local_addr().expect("address"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            pivitals_primary::run(listener, config, shutdown)
                .await
                .map_err(|e| format!("{e:#}"))
        });
        Self {
            url,
            data_dir,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task,
            dir,
        }
    }

    /// Shuts the primary down, asserts it drained without an error, and hands back its data.
    pub async fn stop(mut self) -> TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = (&mut self.task).await.expect("the primary task panicked");
        if let Err(e) = result {
            panic!("the primary failed: {e}");
        }
        self.dir
    }

    /// Registers [`register_request`]`(name)` with the enrollment token; its node token.
    pub async fn register(&self, name: &str) -> String {
        self.register_as(&register_request(name)).await
    }

    /// Registers `request` with the enrollment token, asserts 200; its node token.
    pub async fn register_as(&self, request: &RegisterRequest) -> String {
        let response = self
            .http
            .post(format!("{}/api/v1/register", self.url))
            .bearer_auth(ENROLL)
            .json(request)
            .send()
            .await
            .expect("POST /api/v1/register");
        assert_eq!(response.status(), StatusCode::OK);
        let reply: RegisterReply = response.json().await.expect("a registration reply");
        assert_eq!(reply.node_name, request.node_name);
        reply.node_token
    }

    /// Registers [`register_request`]`(name)` with `enroll` as the token; whatever answers.
    pub async fn register_with(&self, enroll: &str, name: &str) -> (StatusCode, Value) {
        let request = self
            .http
            .post(format!("{}/api/v1/register", self.url))
            .bearer_auth(enroll)
            .json(&register_request(name));
        self.call(request).await
    }

    /// `POST /api/v1/vitals` with `body` as node `token`.
    pub async fn push(&self, token: &str, body: &Value) -> (StatusCode, Value) {
        let request = self
            .http
            .post(format!("{}/api/v1/vitals", self.url))
            .bearer_auth(token)
            .json(body);
        self.call(request).await
    }

    /// Pushes `samples` as node `token` and asserts 200; the answer.
    pub async fn push_ok(&self, token: &str, samples: Vec<VitalsPayload>) -> Value {
        let (status, body) = self.push(token, &push_body(samples)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// `GET path` (e.g. `/api/v1/nodes`).
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(self.http.get(format!("{}{path}", self.url)))
            .await
    }

    /// Sends `request`; the status and the JSON body (`Null` when empty; other text fails).
    pub async fn call(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.expect("a request to the primary");
        let status = response.status();
        let text = response.text().await.expect("an answer body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"))
        };
        (status, body)
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// Every vitals line in the archive files (the `node_status` points liveness writes on
    /// its own schedule, and the `alert` points of the alert rules, are left out).
    pub fn archived_vitals(&self) -> Vec<String> {
        archive_lines(&self.data_dir, |l| {
            !l.starts_with("node_status,") && !l.starts_with("alert,")
        })
    }

    /// The archived lines of one measurement.
    pub fn archived(&self, measurement: &str) -> Vec<String> {
        let prefix = format!("{measurement},");
        archive_lines(&self.data_dir, |l| l.starts_with(&prefix))
    }

    /// Waits up to 5 s for at least `at_least` archived vitals lines; what is there then.
    pub async fn wait_for_vitals(&self, at_least: usize) -> Vec<String> {
        for _ in 0..100 {
            let lines = self.archived_vitals();
            if lines.len() >= at_least {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.archived_vitals()
    }

    /// Waits up to 15 s for an archived `measurement` line containing `what`; all of that
    /// measurement's lines then.
    pub async fn wait_for(&self, measurement: &str, what: &str) -> Vec<String> {
        self.wait_for_lines(measurement, |lines| lines.iter().any(|l| l.contains(what)))
            .await
            .unwrap_or_else(|lines| panic!("no {measurement} line with {what}: {lines:#?}"))
    }

    /// Waits up to 15 s until `ready` holds for the archived `measurement` lines; the lines
    /// then, or as an error the lines at the deadline.
    pub async fn wait_for_lines(
        &self,
        measurement: &str,
        ready: impl Fn(&[String]) -> bool,
    ) -> Result<Vec<String>, Vec<String>> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let lines = self.archived(measurement);
            if ready(&lines) {
                return Ok(lines);
            }
            if Instant::now() >= deadline {
                return Err(lines);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn archive_lines(data_dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let mut lines = Vec::new();
    if let Ok(entries) = std::fs::read_dir(data_dir.join("archive")) {
        for entry in entries {
            let path = entry.expect("an archive entry").path();
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            lines.extend(text.lines().filter(|l| keep(l)).map(str::to_owned));
        }
    }
    lines
}

/// The state of a primary that never ran, for router tests (`pivitals_primary::app(state)`
/// with `oneshot`, no socket): an empty registry and a 1 MiB spool in `dir`, the harness's
/// enrollment token, and `env` as the configuration.
pub fn router_state(dir: &Path, env: &[(&str, &str)]) -> AppState {
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    let config = PrimaryConfig::load(None, env).unwrap_or_else(|e| panic!("config: {e}"));
    let metrics = Arc::new(Metrics::default());
    Arc::new(Shared {
        enroll_token: ENROLL.into(),
        registry: Registry::open(&dir.join("registry.redb")).expect("a registry"),
        nodes: RwLock::new(Nodes::default()),
        spool: Spool::open(&dir.join("spool.redb"), 1 << 20).expect("a spool"),
        alerting: AlertRuntime::disabled(Arc::clone(&metrics)),
        metrics,
        started: std::time::Instant::now(),
        alerts: Alerts::disabled(),
        actions: Actions::new(config.actions.expire_after),
        rollouts: Default::default(),
        sessions: Default::default(),
        history: pivitals_primary::state::HistorySource::Off,
        agent_binaries: config.agent_binaries.as_deref().map(|dir| {
            Arc::new(pivitals_primary::install::AgentBinaries::scan(dir).expect("agent binaries"))
        }),
        config,
    })
}
