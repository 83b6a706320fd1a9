//! Headless Chromium through chromedriver's WebDriver API, for tests that drive the dashboard
//! in a real browser: [`Driver`] starts a chromedriver on a free port, [`Session`] opens one
//! browser and clicks, types, runs scripts and takes screenshots in it.
//!
//! chromedriver keeps connections open despite `Connection: close`, so the WebDriver calls use
//! a small client here that reads `Content-Length` bytes instead of [`crate::http`]'s
//! read-to-the-end one. Chromium and chromedriver come from the Debian packages `chromium` and
//! `chromium-driver`; without them a test fails saying so.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::free_port;
use crate::harness::eventually;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium's switches for a quiet, isolated, offline-friendly headless run.
pub fn chromium_switches(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--window-size=1280,900",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

/// `name` from `/usr/bin` or `PATH`; a missing one fails the test with what to install.
pub fn required(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::iter::once(PathBuf::from("/usr/bin"))
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is missing: install the Debian packages chromium and chromium-driver \
                 (apt-get install -y chromium chromium-driver; scripts/test.sh does it)"
            )
        })
}

/// A chromedriver on a free port; killed on drop.
pub struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    pub fn start(dir: &Path) -> Driver {
        let port = free_port();
        let log = std::fs::File::create(dir.join("chromedriver.log")).unwrap();
        let child = Command::new(required("chromedriver"))
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn chromedriver");
        // Built first, so a driver that never gets ready is still killed on drop.
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        eventually("chromedriver ready", Duration::from_secs(20), || {
            let (_, body) = request("GET", &format!("{}/status", driver.url), b"").ok()?;
            let body: Value = serde_json::from_slice(&body).ok()?;
            (body["value"]["ready"] == true).then_some(())
        });
        driver
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session; closed on drop.
pub struct Session {
    base: String,
}

impl Session {
    pub fn new(driver: &Driver, profile: &Path) -> Session {
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": required("chromium"),
                "args": chromium_switches(profile),
            },
        }}});
        let value = call("POST", &format!("{}/session", driver.url), &capabilities);
        let id = value["sessionId"].as_str().expect("session id").to_owned();
        Session {
            base: format!("{}/session/{id}", driver.url),
        }
    }

    pub fn send(&self, method: &str, path: &str, body: &Value) -> Value {
        call(method, &format!("{}{path}", self.base), body)
    }

    pub fn go(&self, url: &str) {
        self.send("POST", "/url", &json!({ "url": url }));
    }

    /// Runs `script` (a function body) in the page and answers its return value.
    pub fn eval(&self, script: &str) -> Value {
        self.send(
            "POST",
            "/execute/sync",
            &json!({"script": script, "args": []}),
        )
    }

    pub fn element(&self, css: &str) -> String {
        let value = self.send(
            "POST",
            "/element",
            &json!({"using": "css selector", "value": css}),
        );
        value[ELEMENT].as_str().expect("element id").to_owned()
    }

    /// A real click (the driver moves the pointer and presses), on what `css` selects.
    pub fn click(&self, css: &str) {
        let id = self.element(css);
        self.send("POST", &format!("/element/{id}/click"), &json!({}));
    }

    /// Clears a field and types `text` into it, key by key.
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.send("POST", &format!("/element/{id}/clear"), &json!({}));
        self.send(
            "POST",
            &format!("/element/{id}/value"),
            &json!({ "text": text }),
        );
    }

    /// Runs a Chrome DevTools Protocol command through chromedriver (`goog/cdp/execute`).
    pub fn cdp(&self, command: &str, params: Value) -> Value {
        self.send(
            "POST",
            "/goog/cdp/execute",
            &json!({ "cmd": command, "params": params }),
        )
    }

    /// Lays the page out `width` × `height` CSS pixels wide (as a phone's when `mobile`);
    /// screenshots then have that size.
    pub fn viewport(&self, width: u32, height: u32, mobile: bool) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        );
    }

    /// Answers `prefers-color-scheme` with `scheme` (`light` or `dark`), as a system setting would.
    pub fn color_scheme(&self, scheme: &str) {
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
        );
    }

    pub fn screenshot(&self) -> Vec<u8> {
        let value = call("GET", &format!("{}/screenshot", self.base), &Value::Null);
        base64_decode(value.as_str().expect("base64 PNG"))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = request("DELETE", &self.base, b"");
    }
}

/// One WebDriver call; answers `value`, panics with the driver's error.
pub fn call(method: &str, url: &str, body: &Value) -> Value {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(body).unwrap()
    };
    let (status, body) =
        request(method, url, &bytes).unwrap_or_else(|e| panic!("WebDriver {method} {url}: {e}"));
    let answer: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "WebDriver {method} {url}: {e}: {}",
            String::from_utf8_lossy(&body)
        )
    });
    assert_eq!(
        status, 200,
        "WebDriver {method} {url} answered {status}: {answer}"
    );
    answer["value"].clone()
}

/// One HTTP/1.1 request with a JSON body; reads the answer's `Content-Length` bytes.
pub fn request(method: &str, url: &str, body: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let rest = url.strip_prefix("http://").ok_or("http:// only")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = TcpStream::connect(authority).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut message = head.into_bytes();
    message.extend_from_slice(body);
    stream.write_all(&message).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let mut length = None;
    loop {
        line.clear();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse::<usize>().ok();
        }
    }
    let mut body = Vec::new();
    match length {
        Some(n) => {
            body.resize(n, 0);
            reader.read_exact(&mut body).map_err(|e| e.to_string())?;
        }
        None => {
            reader.read_to_end(&mut body).map_err(|e| e.to_string())?;
        }
    }
    Ok((status, body))
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// `target/` of this build (the test runs from `target/<profile>/deps/`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).expect("target directory").to_owned()
}

/// Saves a screenshot in the test's directory and copies it under `target/`.
pub fn save_screenshot(png: &[u8], dir: &Path, name: &str) -> PathBuf {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let saved = dir.join(name);
    std::fs::write(&saved, png).unwrap();
    let copy = target_dir().join(name);
    std::fs::copy(&saved, &copy).unwrap();
    copy
}
