//! [`Prometheus`]: a throw-away Prometheus server (Debian `prometheus`) that scrapes the
//! targets a test names, and its instant-query API.

use std::path::Path;

use serde_json::Value;

use crate::http::{self, url_encode};
use crate::process::{Server, find_binary, lost_port_race};

const NOT_INSTALLED: &str = "Prometheus is not installed: apt-get install prometheus";

/// One scrape job: a name, `host:port` and the metrics path.
#[derive(Debug, Clone)]
pub struct ScrapeTarget {
    pub job: String,
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// e.g. `/metrics/nodes`.
    pub path: String,
}

/// A running `prometheus` with its configuration and TSDB in a temporary directory, scraping
/// its targets every second.
///
/// Dropping it kills the server and removes the directory.
pub struct Prometheus {
    // Field order matters: the server dies before its directory is removed.
    server: Server,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts a server that scrapes `targets` every second (time-out 1 s) and evaluates
    /// nothing else. Returns once `/-/ready` answers 200.
    pub fn start(targets: &[ScrapeTarget]) -> Result<Prometheus, String> {
        let binary = find_binary("prometheus").ok_or(NOT_INSTALLED)?;
        let mut last_error = String::new();
        for _ in 0..3 {
            match Self::try_start(&binary, targets) {
                Ok(prometheus) => return Ok(prometheus),
                Err(error) if lost_port_race(&error) => last_error = error,
                Err(error) => return Err(error),
            }
        }
        Err(last_error)
    }

    fn try_start(binary: &Path, targets: &[ScrapeTarget]) -> Result<Prometheus, String> {
        let dir = tempfile::Builder::new()
            .prefix("pivitals-prometheus-")
            .tempdir()
            .map_err(|e| format!("create temporary directory: {e}"))?;
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, scrape_config(targets))
            .map_err(|e| format!("write {}: {e}", config.display()))?;
        let port = crate::free_port();
        let args = vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--log.level=warn".to_owned(),
        ];
        let mut server = Server::spawn(binary, &args, &dir.path().join("prometheus.log"))?;
        let ready = format!("http://127.0.0.1:{port}/-/ready");
        server.wait_until("prometheus", || {
            http::get(&ready).is_ok_and(|answer| answer.status == 200)
        })?;
        Ok(Prometheus {
            server,
            port,
            _dir: dir,
        })
    }

    /// The HTTP base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs the instant query `promql` (`GET /api/v1/query`) and returns `data.result`: for a
    /// vector, one `{"metric": {..}, "value": [time, "value"]}` per series.
    pub fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let url = format!("{}/api/v1/query?query={}", self.url(), url_encode(promql));
        let answer = http::get(&url)?;
        let body: Value = serde_json::from_slice(&answer.body).map_err(|e| {
            format!(
                "query {promql}: answer is not JSON ({e}): {}",
                answer.text()
            )
        })?;
        if answer.status != 200 || body["status"] != "success" {
            return Err(format!(
                "query {promql} answered {}: {}",
                answer.status,
                answer.text()
            ));
        }
        match &body["data"]["result"] {
            Value::Array(series) => Ok(series.clone()),
            // A scalar or string result: [time, "value"].
            other => Ok(vec![other.clone()]),
        }
    }

    /// The scrape targets as Prometheus sees them (`GET /api/v1/targets`, `data.activeTargets`):
    /// each with `health` (`up`, `down`, `unknown`) and `lastError`.
    pub fn targets(&self) -> Result<Vec<Value>, String> {
        let answer = http::get(&format!("{}/api/v1/targets", self.url()))?;
        let body: Value = serde_json::from_slice(&answer.body)
            .map_err(|e| format!("targets: answer is not JSON ({e}): {}", answer.text()))?;
        Ok(body["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The last lines of the server's log, for assertion messages.
    pub fn log_tail(&self) -> String {
        self.server.log_tail()
    }
}

/// The configuration file: every target scraped every second. Quoted YAML strings, so paths
/// and names need no further care (tests pass plain ones).
fn scrape_config(targets: &[ScrapeTarget]) -> String {
    let mut yaml = String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n");
    yaml.push_str("scrape_configs:\n");
    for target in targets {
        yaml.push_str(&format!(
            "  - job_name: \"{}\"\n    metrics_path: \"{}\"\n    static_configs:\n      - targets: [\"{}\"]\n",
            target.job, target.path, target.address
        ));
    }
    yaml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrape_config_names_each_target() {
        let yaml = scrape_config(&[ScrapeTarget {
            job: "pivitals-nodes".into(),
            address: "127.0.0.1:7070".into(),
            path: "/metrics/nodes".into(),
        }]);
        assert!(yaml.contains("scrape_interval: 1s"), "{yaml}");
        assert!(
            yaml.contains(
                "  - job_name: \"pivitals-nodes\"\n    metrics_path: \"/metrics/nodes\"\n    static_configs:\n      - targets: [\"127.0.0.1:7070\"]\n"
            ),
            "{yaml}"
        );
    }
}
