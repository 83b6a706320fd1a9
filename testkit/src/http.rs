//! A tiny blocking HTTP/1.1 client over `std::net::TcpStream`, enough for loopback tests.
//!
//! It sends one request per connection (`Connection: close`), reads the whole answer and
//! decodes `Transfer-Encoding: chunked`. It understands `http://host:port/path?query` only.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One HTTP answer, read to the end.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names are lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `GET url`.
pub fn get(url: &str) -> Result<HttpResponse, String> {
    request("GET", url, &[], &[])
}

/// Sends one request and reads the whole answer; 30 s read and write time-outs.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<HttpResponse, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("only http:// URLs are supported, got {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    let mut stream =
        TcpStream::connect(authority).map_err(|e| format!("connect to {authority}: {e}"))?;
    let timeout = Some(Duration::from_secs(30));
    stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .map_err(|e| format!("set time-outs: {e}"))?;

    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    // One write for head and body: a server that answers early (401) and closes after
    // reading only the head would otherwise get the body on a closed socket and reset the
    // connection, losing its answer.
    let mut message = head.into_bytes();
    message.extend_from_slice(body);
    stream
        .write_all(&message)
        .map_err(|e| format!("send {method} {url}: {e}"))?;

    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read answer to {method} {url}: {e}"))?;
    parse_response(&raw).map_err(|e| format!("answer to {method} {url}: {e}"))
}

/// Reads exactly one answer from a kept-alive connection (sized by `Content-Length`), leaving
/// the connection open for the next request; bytes of a following answer stay unread.
pub async fn read_one_answer<S>(stream: &mut S) -> Result<HttpResponse, String>
where
    S: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte up to the end of the head, so nothing past this answer is consumed.
    while !raw.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(0) => return Err(format!("connection closed after {} bytes", raw.len())),
            Ok(_) => raw.push(byte[0]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let head = parse_response(&raw)?;
    let length: usize = head
        .header("content-length")
        .ok_or("no content-length")?
        .parse()
        .map_err(|_| "bad content-length")?;
    let mut body = vec![0u8; length];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|e| format!("read body of {length} bytes: {e}"))?;
    Ok(HttpResponse { body, ..head })
}

/// Percent-encodes a query-string component (RFC 3986 unreserved characters stay).
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

fn parse_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("empty answer")?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&rest[..eol]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size {
            return Err("truncated chunk".into());
        }
        body.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).ok_or("truncated chunk end")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_chunked_answer() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let response = parse_response(raw).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"abcde");
        assert_eq!(response.header("x-a"), Some("b"));
    }

    #[test]
    fn encodes_query_components() {
        assert_eq!(url_encode("SHOW x=\"a b\""), "SHOW%20x%3D%22a%20b%22");
    }
}
