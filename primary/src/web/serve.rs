//! The HTTP/1.1 server loop, for plain TCP and for TLS alike: hyper with a time limit on
//! reading each request's head (`PIVITALS_LIMITS__HEADER_TIMEOUT`), which `axum::serve` does
//! not offer, so a client that trickles its headers, or never sends them, is closed.
//!
//! Between requests a kept-alive connection is *parked*: once hyper has answered every request
//! it read and flushed the answer, the connection's hyper state (its read and write buffers,
//! timers and service) is dropped and only the socket is kept, waiting until the client sends
//! again; then a new hyper connection serves the next request. An agent pushing every 10 s
//! keeps its connection open between pushes, and a parked connection costs a socket and a small
//! task instead of hyper's buffers (about 20 KiB each): this is what keeps 10,000 nodes within
//! the primary's memory goal. What the client sees does not change: answers keep
//! `keep-alive`, pipelined bytes hyper had already read are handed to the next hyper
//! connection first, and an answer is never cut short: parking begins only once every answer's
//! body was handed to hyper (so its head went out with keep-alive) and everything hyper wrote
//! was flushed. A connection that a request or an answer closes (`Connection: close`,
//! HTTP/1.0) is never parked: it ends through hyper's own shutdown, which flushes first.
//!
//! Time limits: a parked connection counts as idle, and is closed when it stays idle for the
//! header timeout, as hyper closes an idle kept-alive connection; a request's head must arrive
//! within the header timeout counted from the moment the connection was accepted or parked.
//!
//! On shutdown the loop stops accepting, every connection finishes the request it is serving
//! and closes, and [`serve`] returns once all of them have.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::serve::Listener;
use bytes::{Buf, Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::header::CONNECTION;
use hyper::server::conn::http1;
use hyper::{HeaderMap, Request, Response, Version};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::{TowerToHyperService, TowerToHyperServiceFuture};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::futures::Notified;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;

use crate::metrics::Metrics;
use crate::shutdown::{Shutdown, stopped};

/// A connection's transport that can say, while parked, that the client sent something.
pub trait Park: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Ready when bytes (or the end of the stream) may be waiting to be read.
    fn poll_arrival(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl Park for TcpStream {
    fn poll_arrival(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_read_ready(cx)
    }
}

impl Park for TlsStream<TcpStream> {
    fn poll_arrival(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (tcp, session) = self.get_ref();
        // Plaintext rustls already decrypted is waiting even when the socket is quiet.
        if !session.wants_read() {
            return Poll::Ready(Ok(()));
        }
        tcp.poll_read_ready(cx)
    }
}

/// Serves `router` on `listener` until `shutdown`, then drains the open connections;
/// `metrics` counts the connections parked and serving.
pub async fn serve<L>(
    mut listener: L,
    router: Router,
    header_timeout: Duration,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
) where
    L: Listener,
    L::Io: Park,
{
    // Every connection task holds a receiver; all are gone when `closed()` completes.
    let (open_tx, open_rx) = watch::channel(());
    let mut stop = shutdown;
    let shared = Arc::new(Shared {
        router,
        header_timeout,
        metrics,
        stopping: Stopping::default(),
    });
    loop {
        let (io, _peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut stop) => break,
        };
        let connection = Connection {
            shared: Arc::clone(&shared),
            _open: open_rx.clone(),
        };
        tokio::spawn(connection.run(io));
    }
    drop(listener);
    shared.stopping.begin();
    drop(open_rx);
    open_tx.closed().await;
}

/// Tells connections, parked or served, that shutdown began. A parked connection waits on this
/// `Notify` (64 bytes) rather than on the shutdown channel (160): thousands are parked at once.
#[derive(Default)]
struct Stopping {
    begun: AtomicBool,
    notify: Notify,
}

impl Stopping {
    fn begin(&self) {
        self.begun.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// A future that completes when shutdown begins, or None when it has begun already.
    fn notified(&self) -> Option<Notified<'_>> {
        // Made before the flag is read, so a `begin` between the two still wakes it.
        let notified = self.notify.notified();
        (!self.begun.load(Ordering::SeqCst)).then_some(notified)
    }
}

/// What every connection of one [`serve`] shares: one pointer in each connection's task.
struct Shared {
    router: Router,
    header_timeout: Duration,
    metrics: Arc<Metrics>,
    stopping: Stopping,
}

/// One accepted connection: parked, or served by hyper until it is idle again.
struct Connection {
    shared: Arc<Shared>,
    /// Held while the connection lives: [`serve`] waits until every one is dropped.
    _open: watch::Receiver<()>,
}

/// How a hyper connection ended.
enum Served<I> {
    /// Idle with every answer flushed: the transport and any bytes already read back.
    Idle(I, Bytes),
    /// Closed: by the client, an error, a time limit or the shutdown.
    Closed,
}

impl Connection {
    /// Not an `async fn`: its arguments would be stored twice in the future (once as
    /// arguments, once moved into locals), and a parked connection's task is this future.
    #[allow(clippy::manual_async_fn)]
    fn run<I: Park>(self, mut io: I) -> impl Future<Output = ()> + Send {
        async move {
            let shared = &*self.shared;
            let mut unread = Bytes::new();
            loop {
                let head_deadline;
                if unread.is_empty() {
                    // Moved out while parked, so the task holds no room for it then.
                    drop(unread);
                    let _parked = Gauge::up(&shared.metrics.connections_parked);
                    let Some(stop) = shared.stopping.notified() else {
                        return;
                    };
                    // The deadline is read back from the timer, not kept beside it.
                    let mut idle = pin!(tokio::time::sleep(shared.header_timeout));
                    let arrived = tokio::select! {
                        arrived = poll_fn(|cx| io.poll_arrival(cx)) => arrived.is_ok(),
                        () = &mut idle => false,
                        () = stop => false,
                    };
                    if !arrived {
                        return;
                    }
                    head_deadline = idle.deadline();
                    unread = Bytes::new();
                } else {
                    head_deadline = Instant::now() + shared.header_timeout;
                }
                let _serving = Gauge::up(&shared.metrics.connections_serving);
                // Boxed, so that a parked connection's task holds no room for hyper's state.
                let serving = serve_until_idle(shared, io, unread, head_deadline);
                match Box::pin(serving).await {
                    Served::Idle(back, rest) => (io, unread) = (back, rest),
                    Served::Closed => return,
                }
            }
        }
    }
}

/// Runs one hyper connection until it is idle with nothing left to flush.
async fn serve_until_idle<I: Park>(
    shared: &Shared,
    io: I,
    unread: Bytes,
    head_deadline: Instant,
) -> Served<I> {
    let tracker = Arc::new(Tracker::default());
    let service = TrackedService {
        inner: TowerToHyperService::new(shared.router.clone()),
        tracker: Arc::clone(&tracker),
    };
    let transport = Unread {
        io,
        unread,
        tracker: Arc::clone(&tracker),
    };
    let head_timeout = head_deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout);
    let mut connection = builder.serve_connection(TokioIo::new(transport), service);

    let mut stop = pin!(shared.stopping.notified());
    let (mut stopping, mut parking) = (false, false);
    let result = poll_fn(|cx| {
        loop {
            // None: shutdown had begun before this connection was served.
            if !stopping
                && stop
                    .as_mut()
                    .as_pin_mut()
                    .is_none_or(|begun| begun.poll(cx).is_ready())
            {
                stopping = true;
                Pin::new(&mut connection).graceful_shutdown();
            }
            // Only a connection being parked ends without hyper's shutdown, which is where
            // hyper flushes a connection it closes itself (`Connection: close`, errors).
            let polled = if parking {
                connection.poll_without_shutdown(cx)
            } else {
                Pin::new(&mut connection).poll(cx)
            };
            match polled {
                Poll::Ready(result) => return Poll::Ready(result),
                Poll::Pending if !parking && !stopping && tracker.idle() => {
                    // Idle: closing the hyper state now ends it at once, socket kept.
                    parking = true;
                    Pin::new(&mut connection).graceful_shutdown();
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await;
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
        return Served::Closed;
    }
    if !parking || stopping {
        return Served::Closed;
    }
    let parts = connection.into_parts();
    let transport = parts.io.into_inner();
    // What hyper read but did not use comes before what it never read; copied, because
    // `read_buf` is a view of hyper's whole read buffer and would keep it alive.
    let rest = if parts.read_buf.is_empty() && transport.unread.is_empty() {
        Bytes::new()
    } else {
        let mut both = BytesMut::with_capacity(parts.read_buf.len() + transport.unread.len());
        both.extend_from_slice(&parts.read_buf);
        both.extend_from_slice(&transport.unread);
        both.freeze()
    };
    Served::Idle(transport.io, rest)
}

/// One count of a gauge, held while the guard lives.
struct Gauge<'a>(&'a AtomicU64);

impl<'a> Gauge<'a> {
    fn up(gauge: &'a AtomicU64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Self(gauge)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What one hyper connection's service reports to the loop driving it.
#[derive(Default)]
struct Tracker {
    /// Requests whose answer has not been handed over in full yet.
    in_flight: AtomicUsize,
    /// Requests answered in full.
    answered: AtomicUsize,
    /// Request bodies not read to their end: hyper cannot keep such a connection alive.
    bodies_open: AtomicUsize,
    /// Bytes were written since the transport was last flushed.
    unflushed: AtomicBool,
    /// A request or an answer said `Connection: close` (or the request was HTTP/1.0 without
    /// keep-alive): hyper closes the connection after that answer, and so must the loop.
    closing: AtomicBool,
}

impl Tracker {
    /// At least one request answered, none pending (no answer's head is still to come) and
    /// every request's body read to its end (what follows on the socket is a new request).
    fn idle(&self) -> bool {
        self.answered.load(Ordering::Relaxed) > 0
            && self.in_flight.load(Ordering::Relaxed) == 0
            && self.bodies_open.load(Ordering::Relaxed) == 0
            && !self.closing.load(Ordering::Relaxed)
            && !self.unflushed.load(Ordering::Relaxed)
    }
}

/// Whether `headers` carry `option` (`close`, `keep-alive`) in their `Connection` header.
fn has_connection_option(headers: &HeaderMap, option: &str) -> bool {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|found| found.trim().eq_ignore_ascii_case(option))
}

/// Whether a request ends its connection: `Connection: close`, or HTTP/1.0 without
/// `Connection: keep-alive`.
fn request_closes(request: &Request<Incoming>) -> bool {
    if request.version() == Version::HTTP_10 {
        return !has_connection_option(request.headers(), "keep-alive");
    }
    has_connection_option(request.headers(), "close")
}

/// Counts a request as in flight until dropped with its answer's body (or with the request).
struct InFlight(Arc<Tracker>);

impl InFlight {
    fn new(tracker: &Arc<Tracker>) -> Self {
        tracker.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(tracker))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.answered.fetch_add(1, Ordering::Relaxed);
    }
}

/// The router as a hyper service whose answers' bodies carry their request's [`InFlight`],
/// and whose requests' bodies say when they were read to their end.
struct TrackedService {
    inner: TowerToHyperService<Router>,
    tracker: Arc<Tracker>,
}

impl hyper::service::Service<Request<Incoming>> for TrackedService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = TrackedFuture;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        if request_closes(&request) {
            self.tracker.closing.store(true, Ordering::Relaxed);
        }
        let guard = InFlight::new(&self.tracker);
        let request = request.map(|body| Body::new(TrackedIncoming::new(body, &self.tracker)));
        TrackedFuture {
            guard: Some(guard),
            inner: self.inner.call(request),
        }
    }
}

type RouterFuture = TowerToHyperServiceFuture<Router, Request<Body>>;

struct TrackedFuture {
    inner: RouterFuture,
    guard: Option<InFlight>,
}

impl Future for TrackedFuture {
    type Output = Result<Response<TrackedBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = ready!(Pin::new(&mut self.inner).poll(cx));
        let guard = self.guard.take();
        if let (Ok(response), Some(InFlight(tracker))) = (&response, &guard)
            && has_connection_option(response.headers(), "close")
        {
            tracker.closing.store(true, Ordering::Relaxed);
        }
        Poll::Ready(response.map(|response| {
            response.map(|body| TrackedBody {
                body,
                _guard: guard,
            })
        }))
    }
}

/// A request's body, counted in [`Tracker::bodies_open`] until read to its end.
struct TrackedIncoming {
    body: Incoming,
    open: Option<Arc<Tracker>>,
}

impl TrackedIncoming {
    fn new(body: Incoming, tracker: &Arc<Tracker>) -> Self {
        let open = (!http_body::Body::is_end_stream(&body)).then(|| {
            tracker.bodies_open.fetch_add(1, Ordering::Relaxed);
            Arc::clone(tracker)
        });
        Self { body, open }
    }
}

impl http_body::Body for TrackedIncoming {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        if (frame.is_none() || self.body.is_end_stream())
            && let Some(tracker) = self.open.take()
        {
            tracker.bodies_open.fetch_sub(1, Ordering::Relaxed);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// An answer's body; hyper drops it once the last of it is queued for writing.
struct TrackedBody {
    body: Body,
    _guard: Option<InFlight>,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The transport under hyper: serves bytes read before parking first, and notes whether
/// everything hyper wrote has been flushed (a connection is parked only then).
struct Unread<I> {
    io: I,
    unread: Bytes,
    tracker: Arc<Tracker>,
}

impl<I: Park> AsyncRead for Unread<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.unread.is_empty() {
            let n = self.unread.len().min(buf.remaining());
            buf.put_slice(&self.unread[..n]);
            self.unread.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: Park> AsyncWrite for Unread<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.tracker.unflushed.store(true, Ordering::Relaxed);
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.tracker.unflushed.store(true, Ordering::Relaxed);
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = ready!(Pin::new(&mut self.io).poll_flush(cx));
        if flushed.is_ok() {
            self.tracker.unflushed.store(false, Ordering::Relaxed);
        }
        Poll::Ready(flushed)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    /// In memory there is no readiness to wait for: always "maybe", which the loop allows.
    impl Park for DuplexStream {
        fn poll_arrival(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    const BIG: usize = 1 << 20;

    /// A connection over an in-memory pipe of 16 KiB, serving a route with a 1 MiB answer.
    fn connection() -> DuplexStream {
        let router = Router::new().route("/big", get(|| async { vec![7u8; BIG] }));
        let connection = Connection {
            shared: Arc::new(Shared {
                router,
                header_timeout: Duration::from_secs(30),
                metrics: Arc::new(Metrics::default()),
                stopping: Stopping::default(),
            }),
            _open: watch::channel(()).1,
        };
        let (client, server) = tokio::io::duplex(16 * 1024);
        tokio::spawn(connection.run(server));
        client
    }

    /// Reads one answer's head and its `Content-Length` body.
    async fn answer(client: &mut DuplexStream) -> (String, Vec<u8>) {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(client.read_u8().await.unwrap());
        }
        let head = String::from_utf8(head).unwrap();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        let mut body = vec![0; length];
        client.read_exact(&mut body).await.unwrap();
        (head, body)
    }

    #[tokio::test]
    async fn an_answer_the_client_has_not_read_yet_is_not_cut_short_by_parking() {
        let mut client = connection();
        for _ in 0..3 {
            client
                .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            // Nothing read yet: most of the answer waits in hyper's buffer, unflushed.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (head, body) = tokio::time::timeout(Duration::from_secs(10), answer(&mut client))
                .await
                .expect("the whole answer arrives");
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert_eq!(body.len(), BIG);
            assert!(body.iter().all(|&b| b == 7));
        }
    }

    /// Shutdown reaches a parked connection through [`Stopping`], not the shutdown channel:
    /// it closes at once, and [`serve`] returns.
    #[tokio::test]
    async fn shutdown_closes_a_parked_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = Router::new().route("/x", get(|| async { "x" }));
        let metrics = Arc::new(Metrics::default());
        let (stop, shutdown) = watch::channel(false);
        let serving = tokio::spawn(serve(
            listener,
            router,
            Duration::from_secs(30),
            Arc::clone(&metrics),
            shutdown,
        ));
        let mut client = TcpStream::connect(address).await.unwrap();
        client
            .write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0u8; 1024];
        let n = client.read(&mut answer).await.unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
        while metrics.connections_parked.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), serving)
            .await
            .expect("serve returns")
            .unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut answer))
            .await
            .expect("the connection closes")
            .unwrap();
        assert_eq!(n, 0);
    }

    /// A parked connection is this future and little else (its task adds tokio's header, and
    /// is rounded up to 128 bytes): 10,000 parked connections hold 10,000 of them.
    #[tokio::test]
    async fn a_parked_connection_holds_a_small_future() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let socket = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let connection = Connection {
            shared: Arc::new(Shared {
                router: Router::new(),
                header_timeout: Duration::from_secs(30),
                metrics: Arc::new(Metrics::default()),
                stopping: Stopping::default(),
            }),
            _open: watch::channel(()).1,
        };
        let future = connection.run(socket);
        let size = std::mem::size_of_val(&future);
        assert!(size <= 384, "a connection's future is {size} bytes");
    }
}
