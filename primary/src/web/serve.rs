//! The HTTP/1.1 server loop, for plain TCP and for TLS alike: hyper with a time limit on
//! reading each request's head (`PIVITALS_LIMITS__HEADER_TIMEOUT`), which `axum::serve` does
//! not offer, so a client that trickles its headers, or never sends them, is closed.
//!
//! On shutdown the loop stops accepting, every connection finishes the request it is serving
//! and closes, and [`serve`] returns once all of them have.

use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::serve::Listener;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;

use crate::shutdown::{Shutdown, stopped};

/// Serves `router` on `listener` until `shutdown`, then drains the open connections.
pub async fn serve<L: Listener>(
    mut listener: L,
    router: Router,
    header_timeout: Duration,
    mut shutdown: Shutdown,
) {
    // Every connection task holds a receiver; all are gone when `closed()` completes.
    let (open_tx, open_rx) = watch::channel(());
    loop {
        let (io, _peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut shutdown) => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let mut shutdown = shutdown.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let mut connection = pin!(builder.serve_connection(TokioIo::new(io), service));
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                () = stopped(&mut shutdown) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(open);
        });
    }
    drop(listener);
    drop(open_rx);
    open_tx.closed().await;
}
