//! The pivitals primary: registers agents, knows which nodes are up, late, down or stopped,
//! batches their points by node and writes them to InfluxDB (or, with no InfluxDB configured,
//! to daily line-protocol files).
//!
//! Layout, lowest first (a module uses only those above it or beside it in its own folder;
//! `tests/tidy` in the testkit checks that no two modules use each other in a circle):
//! - leaves: [`clock`], [`shutdown`], [`metrics`] (the counters), [`limits`] (abuse limits);
//! - [`nodes`]: registry, enrollment and tokens, the live table, status rules, history;
//! - [`placement`]: which node should run a job, ranked by headroom over a window;
//! - [`history`]: the rollups on disk behind the ranged history (1 h to 30 d);
//! - [`storage`]: spool, flusher, sink, InfluxDB writer ([`storage::influx`], the only code
//!   that talks to InfluxDB) and the archive;
//! - [`actions`]: what an admin asked nodes to run, their queues and results (in memory);
//! - [`alerts`]: the webhook for status changes, the alert rules, their engine and runtime,
//!   and the notification channels;
//! - [`config`]: the settings file and `PIVITALS_*` variables, assembled from each part's
//!   section;
//! - [`state`]: what every request and task shares;
//! - [`ingest`]: accepted samples into the spool, and [`ingest::self_monitor`], the primary's
//!   own host as a node; [`liveness`]: the watcher that records status changes;
//!   [`last_known`]: what was last seen of each node, kept across restarts for display;
//! - [`web`]: everything HTTP (routes, extractors, [`web::error::ApiError`], server, TLS, the
//!   embedded dashboard).
//!
//! [`run`] takes a bound listener and a shutdown future, so tests bind port 0.

pub mod actions;
pub mod alerts;
pub mod clock;
pub mod config;
pub mod history;
pub mod ingest;
pub mod install;
pub mod last_known;
pub mod limits;
pub mod liveness;
pub mod metrics;
pub mod nodes;
pub mod placement;
mod redb_error;
mod serde_duration;
pub mod sessions;
pub mod shutdown;
pub mod state;
pub mod storage;
pub mod web;

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::actions::Actions;
use crate::alerts::runtime::AlertRuntime;
use crate::alerts::webhook::{Alerts, RetryPolicy};
use crate::config::PrimaryConfig;
use crate::history::Rollups;
use crate::ingest::self_monitor;
use crate::metrics::Metrics;
use crate::nodes::enroll;
use crate::nodes::registry::Registry;
use crate::nodes::table::Nodes;
use crate::state::{AppState, HistorySource, Shared};
use crate::storage::archive::Archive;
use crate::storage::flusher::{Flusher, SHUTDOWN_GRACE};
use crate::storage::influx::{InfluxReader, InfluxWriter};
use crate::storage::sink::Sink;
use crate::storage::spool::Spool;
use crate::web::{serve, tls};

pub use web::app;

/// Installs the TLS crypto provider reqwest is built to expect; harmless when already done.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runs the primary on `listener` until `shutdown` completes, then drains: the HTTP server
/// stops taking requests, and the flusher writes what is spooled (for up to
/// [`SHUTDOWN_GRACE`]; the rest waits in the spool for the next start).
pub async fn run(
    listener: TcpListener,
    config: PrimaryConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    install_crypto_provider();
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let (enroll_token, origin) =
        enroll::load_or_create(config.enroll_token.as_deref(), &config.data_dir)
            .context("enrollment token")?;
    let registry =
        Registry::open(&config.data_dir.join("registry.redb")).context("opening the registry")?;
    let mut nodes = Nodes::from_records(registry.load_all().context("reading the registry")?);
    nodes.restore_last_known(
        registry
            .load_last_known()
            .context("reading the nodes' last known state")?,
    );
    tracing::info!(nodes = nodes.len(), "registry loaded");

    let sink = build_sink(&config).await?;
    let metrics = Arc::new(Metrics::default());
    let spool = Spool::open(&config.data_dir.join("spool.redb"), config.spool.max_bytes)
        .context("opening the spool")?;
    let held = spool.stats();
    if held.points > 0 {
        tracing::info!(
            points = held.points,
            "spool holds points from before the restart; writing them first"
        );
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let alerts = match config.alert.url()? {
        Some(url) => {
            let http = reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .timeout(config.alert.timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .context("building the webhook client")?;
            tracing::info!(
                host = url.host_str().unwrap_or_default(),
                "webhook alerts on"
            );
            Alerts::start(url, http, RetryPolicy::default(), stop_rx.clone()).0
        }
        None => Alerts::disabled(),
    };

    let alerting = {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(config.alert.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the notification client")?;
        let rules = config.alert.checked_rules()?;
        let channels = config.alert.channel_list()?;
        tracing::info!(
            rules = rules.as_slice().len(),
            channels = channels.len(),
            "alert rules on"
        );
        AlertRuntime::start(
            rules,
            channels,
            http,
            spool.clone(),
            Arc::clone(&metrics),
            stop_rx.clone(),
        )
    };

    let (actions, finished_actions) = Actions::stored(config.actions.expire_after);
    tokio::spawn(crate::actions::storage::spool_finished(
        finished_actions,
        spool.clone(),
        Arc::clone(&metrics),
        stop_rx.clone(),
    ));
    let agent_binaries = match &config.agent_binaries {
        Some(dir) => {
            let binaries = install::AgentBinaries::scan(dir)?;
            let arches: Vec<&str> = binaries.arches().map(install::Arch::name).collect();
            tracing::info!(
                dir = %dir.display(),
                ?arches,
                "serving the agent installer at /install.sh"
            );
            Some(Arc::new(binaries))
        }
        None => None,
    };
    let history = open_history(&config)?;
    let rollups_task = match &history {
        HistorySource::Rollups(rollups) => Some(tokio::spawn(
            rollups.clone().run(stop_rx.clone(), clock::now_ms),
        )),
        _ => None,
    };
    let state: AppState = Arc::new(Shared {
        history,
        agent_binaries,
        enroll_token: enroll::EnrollToken::new(enroll_token, origin),
        registry,
        nodes: RwLock::new(nodes),
        spool: spool.clone(),
        metrics: Arc::clone(&metrics),
        started: Instant::now(),
        alerts,
        alerting,
        actions,
        rollouts: Default::default(),
        sessions: Default::default(),
        config,
    });

    let expiring = Arc::clone(&state);
    let expiry_stop = stop_rx.clone();
    tokio::spawn(async move { expiring.actions.expire_on_time(expiry_stop).await });

    let flusher = Flusher::new(
        sink,
        spool.clone(),
        state.config.batch.clone(),
        Arc::clone(&metrics),
        stop_rx.clone(),
    );
    let flusher_task = tokio::spawn(flusher.run());
    tokio::spawn(liveness::watch(Arc::clone(&state), stop_rx.clone()));
    tokio::spawn(last_known::keep(Arc::clone(&state), stop_rx.clone()));
    if state.config.self_monitor {
        tokio::spawn(self_monitor::run(
            Arc::clone(&state),
            state.config.self_interval,
            stop_rx.clone(),
        ));
    }

    let local = listener.local_addr().context("listener address")?;
    let header_timeout = state.config.limits.header_timeout;
    let router = app(Arc::clone(&state));
    let server: std::pin::Pin<Box<dyn Future<Output = ()> + Send>> =
        match (&state.config.tls.cert, &state.config.tls.key) {
            (Some(cert), Some(key)) => {
                let acceptor = tls::acceptor(cert, key)?;
                let listener =
                    tls::TlsListener::new(listener, acceptor).context("listener address")?;
                tracing::info!(%local, "primary listening (HTTPS)");
                Box::pin(serve::serve(
                    listener,
                    router,
                    header_timeout,
                    Arc::clone(&state.metrics),
                    stop_rx.clone(),
                ))
            }
            _ => {
                tracing::info!(%local, "primary listening");
                Box::pin(serve::serve(
                    listener,
                    router,
                    header_timeout,
                    Arc::clone(&state.metrics),
                    stop_rx.clone(),
                ))
            }
        };
    let closing = Arc::clone(&state);
    let trigger = tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
        // Agents' action polls end now instead of holding the drain for up to their wait.
        closing.actions.close();
    });
    server.await;
    last_known::save(&state).await;
    trigger.abort();
    // The flusher writes what it can within its grace; the rest stays spooled.
    match tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(5), flusher_task).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "flusher task failed"),
        Err(_) => tracing::error!("flusher did not stop in time"),
    }
    // The rollups' last minute is written at the stop signal; wait for it (a few ms).
    if let Some(task) = rollups_task
        && tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .is_err()
    {
        tracing::warn!("rollups writer did not stop in time");
    }
    // Close the spool file once every task holding the state has finished.
    drop(state);
    if tokio::time::timeout(Duration::from_secs(5), spool.close())
        .await
        .is_err()
    {
        tracing::warn!("spool still in use at exit");
    }
    Ok(())
}

/// The ranged history's source: InfluxDB when configured (no rollups are kept then), else
/// the rollups in `DATA_DIR/rollups.redb`.
fn open_history(config: &PrimaryConfig) -> anyhow::Result<HistorySource> {
    if config.influx.api.is_some() {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("building the HTTP client")?;
        let reader = InfluxReader::new(&config.influx, http).context("InfluxDB settings")?;
        Ok(HistorySource::Influx(Box::new(reader)))
    } else {
        let path = config.data_dir.join("rollups.redb");
        let rollups = Rollups::open(&path)
            .with_context(|| format!("opening the rollups {}", path.display()))?;
        Ok(HistorySource::Rollups(rollups))
    }
}

async fn build_sink(config: &PrimaryConfig) -> anyhow::Result<Sink> {
    if config.influx.api.is_some() {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("building the HTTP client")?;
        let writer = InfluxWriter::new(&config.influx, http).context("InfluxDB settings")?;
        let outcome = writer.ensure_retention().await;
        tracing::info!(target = %writer.describe(), ?outcome, "InfluxDB retention checked");
        Ok(Sink::Influx(writer))
    } else {
        let dir = config.data_dir.join("archive");
        let archive = Archive::open(&dir, config.archive_retention_days)
            .with_context(|| format!("opening the archive {}", dir.display()))?;
        tracing::info!(dir = %dir.display(), "no InfluxDB configured: writing line protocol to daily archive files");
        Ok(Sink::Archive(Arc::new(archive)))
    }
}
