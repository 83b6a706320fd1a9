//! The primary samples its own host as a node, with the same collector as the agent, straight into the
//! ingest path (no HTTP, no token).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pivitals_collect::Collector;
use pivitals_common::{Labels, validate};
use tokio::sync::watch;

use super::ingest;
use crate::nodes::packed::Packed;
use crate::nodes::registry::NodeRecord;
use crate::state::AppState;

/// The node name of the primary's own host: its hostname when that is a valid node name.
pub fn node_name(hostname: &str) -> String {
    let short = hostname.split('.').next().unwrap_or_default();
    if validate::node_name(short).is_ok() {
        short.to_owned()
    } else {
        "primary".to_owned()
    }
}

/// Registers the primary's host and samples it every `interval` until shutdown.
pub async fn run(state: AppState, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    let collector = Arc::new(Mutex::new(Collector::new("/")));
    let info = {
        let collector = Arc::clone(&collector);
        match tokio::task::spawn_blocking(move || {
            collector
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .node_info()
        })
        .await
        {
            Ok(info) => info,
            Err(e) => {
                tracing::error!(error = %e, "self-monitoring could not read the host; it is off");
                return;
            }
        }
    };
    let mut known_info = info.clone();
    let name = node_name(&info.hostname);
    let labels = Labels::from([("role".to_owned(), "primary".to_owned())]);
    let info = match Packed::pack(&info) {
        Ok(info) => info,
        Err(e) => {
            tracing::error!(error = %e, "self-monitoring could not keep the host's info; it is off");
            return;
        }
    };
    let record = NodeRecord {
        name: name.clone(),
        info,
        labels: labels.clone().into(),
        interval_seconds: interval.as_secs().max(1),
        token_hash: None,
        registered_at_ms: crate::clock::now_ms(),
        hardware: None,
    };
    let stored = record.clone();
    if let Err(e) = state
        .registry
        .blocking(move |registry| registry.put(&stored))
        .await
    {
        tracing::warn!(error = %e, "could not store the primary's own node");
    }
    state.nodes_mut().insert(record);
    tracing::info!(node = %name, ?interval, "self-monitoring started");

    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut info_read = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = crate::shutdown::stopped(&mut shutdown) => return,
        }
        // The host's facts are read again once a minute, as the agent does (an address that
        // DHCP renewed, a kernel upgrade).
        let read_info = info_read.elapsed() >= INFO_EVERY;
        if read_info {
            info_read = std::time::Instant::now();
        }
        let collector = Arc::clone(&collector);
        let (sample, info) = match tokio::task::spawn_blocking(move || {
            let mut collector = collector.lock().unwrap_or_else(|e| e.into_inner());
            let info = read_info.then(|| collector.node_info());
            (collector.sample(), info)
        })
        .await
        {
            Ok(read) => read,
            Err(e) => {
                tracing::warn!(error = %e, "self-sample failed");
                continue;
            }
        };
        if let Some(info) = info.filter(|info| *info != known_info) {
            update_info(&state, &name, &info).await;
            known_info = info;
        }
        let samples = std::slice::from_ref(&sample);
        match ingest(&state, &name, &labels, samples).await {
            Ok(_) => {
                state
                    .alerting
                    .observe(&name, &labels, samples, crate::clock::now_ms());
                state.record_push(&name, samples);
            }
            Err(e) => tracing::warn!(error = %e, "self-sample not accepted"),
        }
    }
}

/// How often the primary reads its host's facts again.
const INFO_EVERY: Duration = Duration::from_secs(60);

/// Stores the primary's new facts in the registry and the live table.
async fn update_info(state: &AppState, name: &str, info: &pivitals_common::NodeInfo) {
    match state.update_info(name, None, info.clone()).await {
        Ok(_) => tracing::info!(node = %name, "the primary's own node info updated"),
        Err(e) => tracing::warn!(error = %e, "could not store the primary's own node info"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_name_from_hostname() {
        assert_eq!(node_name("pi-01.lan"), "pi-01");
        assert_eq!(node_name("rack"), "rack");
        assert_eq!(node_name("bad host"), "primary");
        assert_eq!(node_name(""), "primary");
    }
}
