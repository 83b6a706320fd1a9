//! The shutdown signal fanned out to every task: a `watch` channel that turns `true` once.

use tokio::sync::watch;

pub type Shutdown = watch::Receiver<bool>;

/// Completes when shutdown begins (or when the sender is gone, which means the same).
pub async fn stopped(shutdown: &mut Shutdown) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
