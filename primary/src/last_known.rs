//! Keeps what was last seen of each node across restarts: every [`EVERY`] and once more at a
//! clean stop, the time of each node's last push and its newest sample are written to the
//! registry's `last_known` table ([`Registry::save_last_known`]), and read back at start
//! ([`Nodes::restore_last_known`]). Display data only: the dashboard, the API and
//! `/metrics/nodes` show a node's last known values and "last seen" after a restart instead of
//! blanks; liveness still judges every node from the primary's start. A crash loses at most
//! [`EVERY`] of it; a failed write is logged and tried again next time.
//!
//! [`Registry::save_last_known`]: crate::nodes::registry::Registry::save_last_known
//! [`Nodes::restore_last_known`]: crate::nodes::table::Nodes::restore_last_known

use std::sync::Arc;
use std::time::Duration;

use crate::nodes::registry::LastKnown;
use crate::shutdown::{Shutdown, stopped};
use crate::state::AppState;

/// How often the last known state is written.
pub const EVERY: Duration = Duration::from_secs(5 * 60);

/// Writes the last known state every [`EVERY`] until `shutdown`; the final write is [`save`]'s,
/// called by the primary after its server has stopped.
pub async fn keep(state: AppState, mut shutdown: Shutdown) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(EVERY) => save(&state).await,
            () = stopped(&mut shutdown) => return,
        }
    }
}

/// Nodes copied out of the table at a time while the state is written.
const PAGE: usize = 256;

/// Writes what is known now (one registry transaction off the async threads). The nodes are
/// copied out of the table 256 (`PAGE`) at a time as the transaction takes them, each page under
/// a short read lock, so the write never holds a second copy of every node's newest sample.
pub async fn save(state: &AppState) {
    let pages = Arc::clone(state);
    let written = state
        .registry
        .blocking(move |registry| {
            let mut count = 0;
            let mut after: Option<String> = None;
            let mut page = Vec::<(String, LastKnown)>::new().into_iter();
            let known = std::iter::from_fn(|| {
                loop {
                    if let Some(entry) = page.next() {
                        after = Some(entry.0.clone());
                        count += 1;
                        return Some(entry);
                    }
                    let next = pages.nodes().last_known_page(after.as_deref(), PAGE);
                    if next.is_empty() {
                        return None;
                    }
                    page = next.into_iter();
                }
            });
            registry.save_last_known(known)?;
            Ok(count)
        })
        .await;
    match written {
        Ok(count) => tracing::debug!(nodes = count, "last known state written"),
        Err(e) => tracing::warn!(error = %e, "last known state not written; trying again later"),
    }
}
