//! [`SmtpServer`]: a throw-away SMTP server, Python's `aiosmtpd` (from PyPI), that files every
//! message it receives into a Maildir, for tests of the e-mail alert channel.
//!
//! It runs `python3 -m aiosmtpd -n -l 127.0.0.1:PORT -c aiosmtpd.handlers.Mailbox DIR`: a
//! real SMTP dialogue (EHLO, MAIL FROM, RCPT TO, DATA) without TLS or authentication.
//! [`SmtpServer::messages`] reads the Maildir back through Python's `email` package, so the
//! test sees the headers and the body decoded as a mail client would.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::process::{Server, lost_port_race};

const NOT_INSTALLED: &str = "Python's aiosmtpd is missing: python3 -m pip install aiosmtpd";

/// A running `aiosmtpd` with its Maildir in a temporary directory.
///
/// Dropping it kills the server and removes the directory.
pub struct SmtpServer {
    // Field order matters: the server dies before its directory is removed.
    _server: Server,
    port: u16,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

/// One received message, as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`).
    pub mail_from: String,
    /// The envelope recipients (`RCPT TO`).
    pub rcpt_to: Vec<String>,
    /// The `From` header.
    pub from: String,
    /// The `To` header.
    pub to: String,
    /// The `Subject` header, decoded.
    pub subject: String,
    /// The text body, decoded (transfer encoding and charset).
    pub body: String,
}

impl SmtpServer {
    /// Starts a server on a free loopback port and waits for its `220` greeting.
    pub fn start() -> Result<SmtpServer, String> {
        let installed = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .output()
            .is_ok_and(|output| output.status.success());
        if !installed {
            return Err(NOT_INSTALLED.to_owned());
        }
        let mut last_error = String::new();
        for _ in 0..3 {
            match Self::try_start() {
                Ok(server) => return Ok(server),
                Err(error) if lost_port_race(&error.to_lowercase()) => last_error = error,
                Err(error) => return Err(error),
            }
        }
        Err(last_error)
    }

    fn try_start() -> Result<SmtpServer, String> {
        let dir = tempfile::Builder::new()
            .prefix("pivitals-smtp-")
            .tempdir()
            .map_err(|e| format!("create temporary directory: {e}"))?;
        let maildir = dir.path().join("maildir");
        let port = crate::free_port();
        let args = vec![
            "-m".to_owned(),
            "aiosmtpd".to_owned(),
            "-n".to_owned(),
            "-l".to_owned(),
            format!("127.0.0.1:{port}"),
            "-c".to_owned(),
            "aiosmtpd.handlers.Mailbox".to_owned(),
            maildir.display().to_string(),
        ];
        let mut server = Server::spawn(
            Path::new("python3"),
            &args,
            &dir.path().join("aiosmtpd.log"),
        )?;
        server.wait_until("aiosmtpd", || greets(port))?;
        Ok(SmtpServer {
            _server: server,
            port,
            maildir,
            _dir: dir,
        })
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Result<Vec<ReceivedMail>, String> {
        const READ: &str = r#"
import email, json, os, sys
from email import policy
new = os.path.join(sys.argv[1], "new")
names = sorted(os.listdir(new), key=lambda n: os.stat(os.path.join(new, n)).st_mtime_ns)
out = []
for name in names:
    with open(os.path.join(new, name), "rb") as f:
        m = email.message_from_binary_file(f, policy=policy.default)
    out.append({
        "mail_from": m.get("X-MailFrom", ""),
        "rcpt_to": [a.strip() for a in m.get("X-RcptTo", "").split(",") if a.strip()],
        "from": str(m.get("From", "")),
        "to": str(m.get("To", "")),
        "subject": str(m.get("Subject", "")),
        "body": m.get_body(("plain",)).get_content(),
    })
print(json.dumps(out))
"#;
        if !self.maildir.join("new").is_dir() {
            return Ok(Vec::new());
        }
        let output = Command::new("python3")
            .args(["-c", READ])
            .arg(&self.maildir)
            .output()
            .map_err(|e| format!("run python3: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "reading the Maildir failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let parsed: Value = serde_json::from_slice(&output.stdout)
            .map_err(|e| format!("JSON from python3: {e}"))?;
        let text = |mail: &Value, key: &str| mail[key].as_str().unwrap_or_default().to_owned();
        Ok(parsed
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|mail| ReceivedMail {
                mail_from: text(mail, "mail_from"),
                rcpt_to: mail["rcpt_to"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|a| a.as_str().map(str::to_owned))
                    .collect(),
                from: text(mail, "from"),
                to: text(mail, "to"),
                subject: text(mail, "subject"),
                body: text(mail, "body"),
            })
            .collect())
    }
}

/// True when something on `port` answers with an SMTP `220` greeting.
fn greets(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut greeting = [0u8; 3];
    stream.read_exact(&mut greeting).is_ok() && &greeting == b"220"
}
