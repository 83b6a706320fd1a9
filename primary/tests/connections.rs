//! Kept-alive HTTP connections on a primary running in-process (testkit's harness). Between
//! requests a connection is parked (only its socket kept; counted by
//! `pivitals_http_connections{state="parked"}`), and a client sees no difference: requests
//! after pauses, pipelined requests, answers larger than the socket buffers read slowly (the
//! connection stays with hyper until they are flushed, and all arrive whole), and the idle
//! limit.

use std::time::Duration;

use pivitals_testkit::harness::InProcessPrimary as Primary;
use pivitals_testkit::http::read_one_answer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: pivitals\r\n\r\n")
}

/// Sends `GET path` on `stream` and reads its answer; asserts 200 and keep-alive.
async fn get_ok<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, path: &str) -> Vec<u8> {
    stream.write_all(get(path).as_bytes()).await.unwrap();
    let answer = read_one_answer(stream).await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_ne!(answer.header("connection"), Some("close"));
    answer.body
}

/// The value of `pivitals_http_connections{state=STATE}`, asked on its own connection.
async fn connections(observer: &mut TcpStream, state: &str) -> u64 {
    let text = String::from_utf8(get_ok(observer, "/metrics").await).unwrap();
    let series = format!("pivitals_http_connections{{state=\"{state}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .unwrap_or_else(|| panic!("no {series} in {text}"))
        .parse()
        .unwrap()
}

/// A connection with a 2 KiB receive window, so that large answers wait in the primary.
async fn slow_reader(primary: &Primary) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    socket
        .connect(address(primary).parse().unwrap())
        .await
        .unwrap()
}

fn address(primary: &Primary) -> String {
    primary.url.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn a_kept_alive_connection_is_parked_between_requests_and_serves_pauses_and_pipelines() {
    let primary = Primary::start().await;
    let mut observer = TcpStream::connect(address(&primary)).await.unwrap();
    let parked_before = connections(&mut observer, "parked").await;

    let mut client = TcpStream::connect(address(&primary)).await.unwrap();
    get_ok(&mut client, "/healthz").await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        connections(&mut observer, "parked").await,
        parked_before + 1,
        "the client's connection is parked between requests"
    );
    // After the pause, on the same connection.
    get_ok(&mut client, "/healthz").await;

    // Two requests in one write: both answered, in order, the second from bytes hyper had
    // already read when the connection was parked, or from the socket.
    let pair = format!("{}{}", get("/healthz"), get("/metrics"));
    client.write_all(pair.as_bytes()).await.unwrap();
    let first = read_one_answer(&mut client).await.unwrap();
    let second = read_one_answer(&mut client).await.unwrap();
    assert_eq!((first.status, second.status), (200, 200));
    assert!(first.text().contains("\"status\""), "{}", first.text());
    assert!(second.text().contains("pivitals_pushes_total"));
    tokio::time::sleep(Duration::from_millis(150)).await;
    get_ok(&mut client, "/healthz").await;
    assert_eq!(
        connections(&mut observer, "parked").await,
        parked_before + 1
    );
    drop(client);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(connections(&mut observer, "parked").await, parked_before);
    primary.stop().await;
}

#[tokio::test]
async fn answers_larger_than_the_socket_buffers_read_slowly_arrive_whole_before_parking() {
    let primary = Primary::start().await;
    let expected = primary
        .http
        .get(format!("{}/assets/app.js", primary.url))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(expected.len() > 50_000, "{} bytes", expected.len());
    let mut observer = TcpStream::connect(address(&primary)).await.unwrap();
    let serving_before = connections(&mut observer, "serving").await;

    // Enough pipelined requests that their answers (some 6 MB) overflow what the kernel
    // buffers on both sides, a small receive window, and nothing read for a while: the primary
    // holds answers it could not flush, and must not park the connection meanwhile.
    const REQUESTS: usize = 80;
    let mut slow = slow_reader(&primary).await;
    slow.write_all(get("/assets/app.js").repeat(REQUESTS).as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        connections(&mut observer, "serving").await,
        serving_before + 1,
        "a connection with answers still to flush is not parked"
    );
    for n in 0..REQUESTS {
        let answer = read_one_answer(&mut slow).await.unwrap();
        assert_eq!(answer.status, 200);
        assert!(answer.body == expected.to_vec(), "answer {n} differs");
    }
    // The same connection goes on.
    get_ok(&mut slow, "/healthz").await;
    primary.stop().await;
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_header_timeout() {
    let primary = Primary::start_with(&[("PIVITALS_LIMITS__HEADER_TIMEOUT", "300ms")]).await;
    let mut client = TcpStream::connect(address(&primary)).await.unwrap();
    get_ok(&mut client, "/healthz").await;
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest))
        .await
        .expect("the idle connection stayed open")
        .unwrap();
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(started.elapsed() < Duration::from_secs(3));
    primary.stop().await;
}

#[tokio::test]
async fn a_connection_the_client_closes_ends_after_its_answer_even_when_it_was_slow_to_flush() {
    // An answer larger than the socket buffers on both sides (an 8 MiB agent binary served to
    // the installer), asked for with `Connection: close` and read slowly.
    let dir = tempfile::tempdir().unwrap();
    let binary: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("pivitals-agent-x86_64"), &binary).unwrap();
    let binaries = dir.path().to_str().unwrap();
    let primary = Primary::start_with(&[("PIVITALS_AGENT_BINARIES", binaries)]).await;
    let mut slow = slow_reader(&primary).await;
    slow.write_all(b"GET /agent/x86_64 HTTP/1.1\r\nHost: pivitals\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answer = read_one_answer(&mut slow).await.unwrap();
    assert_eq!(answer.status, 200);
    assert!(answer.body == binary, "the binary arrived whole");
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest))
        .await
        .expect("the connection closed after the answer to `Connection: close`")
        .unwrap();
    assert!(rest.is_empty());
    primary.stop().await;
}
