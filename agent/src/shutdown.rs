//! The signals that stop the agent: SIGTERM (what systemd sends) or Ctrl-C (SIGINT).
//!
//! [`signal`] is the future the binary hands to [`crate::run`]; tests hand their own.

use tokio::signal::unix::{SignalKind, signal as unix_signal};
use tracing::{info, warn};

/// Completes at the first SIGTERM or SIGINT.
pub async fn signal() {
    let terminate = async {
        match unix_signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(e) => {
                warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = terminate => info!("SIGTERM received"),
        () = interrupt => info!("SIGINT received"),
    }
}
