//! [`VictoriaMetrics`]: a throw-away single-node VictoriaMetrics (Debian `victoria-metrics`).
//!
//! VictoriaMetrics accepts InfluxDB line protocol on `/write` and `/api/v2/write`; a line
//! `measurement,tag=v field=1` becomes the metric `measurement_field` with the label `tag="v"`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::http::{self, url_encode};
use crate::process::{Server, find_binary, lost_port_race};

const NOT_INSTALLED: &str = "VictoriaMetrics is not installed: apt-get install victoria-metrics";

/// A running `victoria-metrics` with its storage in a temporary directory.
///
/// Dropping it kills the server and removes the directory.
pub struct VictoriaMetrics {
    // Field order matters: the server dies before its directory is removed.
    server: Server,
    port: u16,
    _dir: tempfile::TempDir,
}

impl VictoriaMetrics {
    /// Starts a server that keeps data for 100 years and shows fresh samples at once.
    pub fn start() -> Result<VictoriaMetrics, String> {
        let binary = find_binary("victoria-metrics").ok_or(NOT_INSTALLED)?;
        let mut last_error = String::new();
        for _ in 0..3 {
            match Self::try_start(&binary) {
                Ok(vm) => return Ok(vm),
                Err(error) if lost_port_race(&error) => last_error = error,
                Err(error) => return Err(error),
            }
        }
        Err(last_error)
    }

    fn try_start(binary: &std::path::Path) -> Result<VictoriaMetrics, String> {
        let dir = tempfile::Builder::new()
            .prefix("pivitals-vm-")
            .tempdir()
            .map_err(|e| format!("create temporary directory: {e}"))?;
        let port = crate::free_port();
        let args = vec![
            format!("-httpListenAddr=127.0.0.1:{port}"),
            format!("-storageDataPath={}", dir.path().join("data").display()),
            "-retentionPeriod=100y".to_owned(),
            "-search.disableCache".to_owned(),
            "-search.latencyOffset=0s".to_owned(),
            "-loggerLevel=WARN".to_owned(),
        ];
        let mut server = Server::spawn(binary, &args, &dir.path().join("victoria-metrics.log"))?;
        let health = format!("http://127.0.0.1:{port}/health");
        server.wait_until("victoria-metrics", || {
            http::get(&health).is_ok_and(|answer| answer.status == 200)
        })?;
        Ok(VictoriaMetrics {
            server,
            port,
            _dir: dir,
        })
    }

    /// The HTTP base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Makes recently written samples searchable (`GET /internal/force_flush`).
    pub fn force_flush(&self) -> Result<(), String> {
        let answer = http::get(&format!("{}/internal/force_flush", self.url()))?;
        match answer.status {
            200 | 204 => Ok(()),
            status => Err(format!("force_flush answered {status}: {}", answer.text())),
        }
    }

    /// Exports all samples of the series matching `match_selector` (after a flush):
    /// one JSON object per series, `{"metric":{..},"values":[..],"timestamps":[..]}`.
    pub fn export(&self, match_selector: &str) -> Result<Vec<Value>, String> {
        self.force_flush()?;
        let url = format!(
            "{}/api/v1/export?match[]={}",
            self.url(),
            url_encode(match_selector)
        );
        let answer = http::get(&url)?;
        if answer.status != 200 {
            return Err(format!(
                "export {match_selector} answered {}: {}",
                answer.status,
                answer.text()
            ));
        }
        answer
            .text()
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line)
                    .map_err(|e| format!("export line is not JSON ({e}): {line}"))
            })
            .collect()
    }

    /// How many series match `selector` right now.
    pub fn series_count(&self, selector: &str) -> Result<usize, String> {
        self.export(selector).map(|series| series.len())
    }

    /// Polls [`VictoriaMetrics::export`] every 100 ms until at least `min_series` series
    /// match, for up to 10 s, and returns them.
    ///
    /// VictoriaMetrics 1.79 makes a new series searchable about a second after it was
    /// written, even after `force_flush`, so tests wait here instead of sleeping.
    pub fn export_eventually(
        &self,
        selector: &str,
        min_series: usize,
    ) -> Result<Vec<Value>, String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let series = self.export(selector)?;
            if series.len() >= min_series || Instant::now() > deadline {
                return Ok(series);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of the server's log, for assertion messages.
    pub fn log_tail(&self) -> String {
        self.server.log_tail()
    }
}
