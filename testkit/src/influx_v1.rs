//! [`InfluxV1`]: a throw-away InfluxDB 1.x server (`influxd` from the Debian `influxdb` package).

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::http::{self, url_encode};
use crate::process::{STOP_TIMEOUT, Server, find_binary, log_tail, lost_port_race};

const NOT_INSTALLED: &str = "InfluxDB 1.x is not installed: apt-get install influxdb";

/// An `influxd` with its meta, data and WAL in a temporary directory.
///
/// It can be stopped ([`InfluxV1::stop`], [`InfluxV1::kill`]) and started again
/// ([`InfluxV1::restart`]) on the same ports with the same data, to test clients against an
/// outage. Dropping it kills the server (if running) and removes the directory.
pub struct InfluxV1 {
    // Field order matters: the server dies before its directory is removed.
    /// `None` while stopped.
    server: Option<Server>,
    binary: PathBuf,
    config_path: PathBuf,
    log_path: PathBuf,
    port: u16,
    rpc_port: u16,
    admin: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

impl InfluxV1 {
    /// Starts a server without authentication.
    pub fn start() -> Result<InfluxV1, String> {
        Self::start_inner(None)
    }

    /// Starts a server with `auth-enabled = true` and one admin user with these credentials;
    /// the helper's own queries authenticate as that user.
    pub fn start_with_auth(username: &str, password: &str) -> Result<InfluxV1, String> {
        Self::start_inner(Some((username.to_owned(), password.to_owned())))
    }

    fn start_inner(admin: Option<(String, String)>) -> Result<InfluxV1, String> {
        let binary = find_binary("influxd").ok_or(NOT_INSTALLED)?;
        let mut last_error = String::new();
        for _ in 0..3 {
            match Self::try_start(&binary, admin.clone()) {
                Ok(influx) => return Ok(influx),
                Err(error) if lost_port_race(&error) => last_error = error,
                Err(error) => return Err(error),
            }
        }
        Err(last_error)
    }

    fn try_start(binary: &Path, admin: Option<(String, String)>) -> Result<InfluxV1, String> {
        let dir = tempfile::Builder::new()
            .prefix("pivitals-influxd-")
            .tempdir()
            .map_err(|e| format!("create temporary directory: {e}"))?;
        let port = crate::free_port();
        let rpc_port = crate::free_port();
        let config = config_text(dir.path(), port, rpc_port, admin.is_some());
        let config_path = dir.path().join("influxdb.conf");
        std::fs::write(&config_path, config)
            .map_err(|e| format!("write {}: {e}", config_path.display()))?;

        let log_path = dir.path().join("influxd.log");
        let mut influx = InfluxV1 {
            server: None,
            binary: binary.to_owned(),
            config_path,
            log_path,
            port,
            rpc_port,
            admin,
            _dir: dir,
        };
        influx.spawn()?;
        if let Some((user, password)) = &influx.admin {
            // With no user yet, InfluxDB 1.x lets anyone create the first admin.
            let statement =
                format!("CREATE USER \"{user}\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES");
            influx.post_query("", &statement)?;
        }
        Ok(influx)
    }

    /// Spawns `influxd -config <config>` and waits until `/ping` answers 204.
    fn spawn(&mut self) -> Result<(), String> {
        let args = vec!["-config".to_owned(), self.config_path.display().to_string()];
        let mut server = Server::spawn(&self.binary, &args, &self.log_path)?;
        let ping = format!("{}/ping", self.url());
        // On failure `server` is dropped here, which kills and reaps the process.
        server.wait_until("influxd", || {
            http::get(&ping).is_ok_and(|answer| answer.status == 204)
        })?;
        self.server = Some(server);
        Ok(())
    }

    /// Stops the server gracefully: SIGTERM, then waits for it to exit (SIGKILL after 30 s).
    ///
    /// The temporary directory (meta, data, WAL, config, log) and both ports are kept, so
    /// [`InfluxV1::restart`] brings back the same server at the same [`InfluxV1::url`]. While
    /// stopped, connections to the URL are refused. Does nothing when already stopped.
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            // An error here means the process could not be signalled or waited for; dropping
            // `server` still kills and reaps it.
            let _ = server.terminate(STOP_TIMEOUT);
        }
    }

    /// Stops the server abruptly with SIGKILL, like a crash or power cut, and waits for it to
    /// exit. Keeps the directory and ports like [`InfluxV1::stop`]; writes answered with 204
    /// before the kill survive (InfluxDB 1.x syncs its WAL before answering).
    pub fn kill(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
        }
    }

    /// True while the server process is running (between start or restart and stop or kill).
    pub fn is_running(&self) -> bool {
        self.server.is_some()
    }

    /// Starts `influxd` again with the same config file, so the same ports and data, and
    /// waits until `/ping` answers 204. Stops it first (like [`InfluxV1::stop`]) if running.
    ///
    /// If another process took the HTTP (or RPC) port while the server was stopped, this
    /// returns an error saying so and leaves the server stopped; it never moves to another
    /// port, since clients under test are pointed at the old URL.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        for (what, port) in [("HTTP", self.port), ("RPC", self.rpc_port)] {
            if let Err(e) = TcpListener::bind(("127.0.0.1", port)) {
                return Err(format!(
                    "cannot restart influxd: its {what} port 127.0.0.1:{port} was taken while it \
                     was stopped ({e})"
                ));
            }
        }
        self.spawn().map_err(|e| {
            if lost_port_race(&e) {
                format!(
                    "cannot restart influxd: its port {} or {} was taken while it was stopped: {e}",
                    self.port, self.rpc_port
                )
            } else {
                format!("cannot restart influxd: {e}")
            }
        })
    }

    /// The HTTP base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The admin credentials when started with [`InfluxV1::start_with_auth`].
    pub fn admin(&self) -> Option<(&str, &str)> {
        self.admin
            .as_ref()
            .map(|(user, password)| (user.as_str(), password.as_str()))
    }

    /// Runs a read query (`GET /query?db=&q=`) and returns the parsed JSON answer.
    ///
    /// An `"error"` inside the answer (per statement or overall) is returned as `Err`.
    pub fn query(&self, db: &str, influxql: &str) -> Result<Value, String> {
        self.get_query(db, influxql, "")
    }

    /// Runs a read query with `epoch=ms` and returns the first column (`time`, in Unix
    /// milliseconds) of every row of every series of every statement, sorted ascending.
    ///
    /// For example `SELECT usage_percent FROM cpu WHERE node = 'a'` gives the timestamps of
    /// node `a`'s points. No series at all gives an empty list.
    pub fn timestamps_ms(&self, db: &str, influxql: &str) -> Result<Vec<i64>, String> {
        let answer = self.get_query(db, influxql, "&epoch=ms")?;
        let mut times = Vec::new();
        let results = answer["results"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for result in results {
            if let Some(error) = result.get("error") {
                return Err(format!("{influxql}: {error}"));
            }
            let series = result["series"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            for one in series {
                let rows = one["values"].as_array().map(Vec::as_slice).unwrap_or(&[]);
                for row in rows {
                    let time = row.get(0).and_then(Value::as_i64).ok_or_else(|| {
                        format!("{influxql}: row {row} has no integer time first")
                    })?;
                    times.push(time);
                }
            }
        }
        times.sort_unstable();
        Ok(times)
    }

    /// `GET /query?db=&q=` plus `extra` (`&name=value` pairs), parsed.
    fn get_query(&self, db: &str, influxql: &str, extra: &str) -> Result<Value, String> {
        let url = format!(
            "{}/query?db={}&q={}{extra}{}",
            self.url(),
            url_encode(db),
            url_encode(influxql),
            self.auth_params()
        );
        let answer = http::get(&url)?;
        parse_query_answer(answer.status, &answer.text(), influxql)
    }

    /// Runs a statement that changes something (`POST /query`), such as `CREATE DATABASE`.
    pub fn post_query(&self, db: &str, influxql: &str) -> Result<Value, String> {
        let url = format!(
            "{}/query{}",
            self.url(),
            self.auth_params().replacen('&', "?", 1)
        );
        let body = format!("db={}&q={}", url_encode(db), url_encode(influxql));
        let answer = http::request(
            "POST",
            &url,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )?;
        parse_query_answer(answer.status, &answer.text(), influxql)
    }

    /// Runs `SELECT count(..) ...` and returns the first count, or 0 when there is no series.
    pub fn count(&self, db: &str, influxql: &str) -> Result<u64, String> {
        let answer = self.query(db, influxql)?;
        let Some(value) = answer.pointer("/results/0/series/0/values/0/1") else {
            return Ok(0);
        };
        value
            .as_u64()
            .ok_or_else(|| format!("count is not a number in {answer} for {influxql}"))
    }

    /// `CREATE DATABASE "name"` (idempotent in InfluxDB 1.x).
    pub fn create_database(&self, name: &str) -> Result<(), String> {
        self.post_query("", &format!("CREATE DATABASE \"{name}\""))
            .map(drop)
    }

    /// The last lines of the server's log (all runs, also while stopped), for assertion
    /// messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path)
    }

    fn auth_params(&self) -> String {
        match &self.admin {
            Some((user, password)) => format!("&u={}&p={}", url_encode(user), url_encode(password)),
            None => String::new(),
        }
    }
}

fn parse_query_answer(status: u16, text: &str, influxql: &str) -> Result<Value, String> {
    let json: Value = serde_json::from_str(text)
        .map_err(|e| format!("{influxql}: answer {status} is not JSON ({e}): {text}"))?;
    if let Some(error) = json.get("error") {
        return Err(format!("{influxql}: {status} {error}"));
    }
    if let Some(error) = json.pointer("/results/0/error") {
        return Err(format!("{influxql}: {error}"));
    }
    if status != 200 {
        return Err(format!("{influxql}: status {status}: {text}"));
    }
    Ok(json)
}

fn config_text(dir: &Path, http_port: u16, rpc_port: u16, auth: bool) -> String {
    let dir = dir.display();
    format!(
        r#"reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{dir}/meta"
  logging-enabled = false

[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
  query-log-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false
  log-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = {auth}
  log-enabled = false
  pprof-enabled = false

[logging]
  level = "warn"
  suppress-logo = true
"#
    )
}
