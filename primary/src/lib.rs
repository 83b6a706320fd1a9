//! The pivitals primary: registers agents, knows which nodes are up, late, down or stopped,
//! batches their points by node and writes them to InfluxDB (or, with no InfluxDB configured,
//! to daily line-protocol files).
//!
//! Layout: [`routes`] is the HTTP API; [`ingest`] turns accepted samples into line protocol
//! for the [`pipeline`] (batcher, sink, archive); [`influx`] is the only code that talks to
//! InfluxDB; [`registry`] keeps nodes across restarts; [`state`] holds the live node table;
//! [`liveness`] judges status; [`self_monitor`] samples the primary's own host.
//! [`run`] takes a bound listener and a shutdown future, so tests bind port 0.

pub mod auth;
pub mod config;
pub mod enroll;
pub mod error;
pub mod influx;
pub mod ingest;
pub mod liveness;
pub mod metrics;
pub mod pipeline;
pub mod registry;
pub mod routes;
pub mod self_monitor;
pub mod shutdown;
pub mod state;

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::PrimaryConfig;
use crate::influx::InfluxWriter;
use crate::metrics::Metrics;
use crate::pipeline::PipelineHandle;
use crate::pipeline::archive::Archive;
use crate::pipeline::batcher::{Batcher, SHUTDOWN_GRACE};
use crate::pipeline::sink::Sink;
use crate::registry::Registry;
use crate::state::{AppState, Nodes, Shared};

pub use routes::app;

/// Submissions that may wait for the batcher before pushes are answered 503.
const PIPELINE_CAPACITY: usize = 4096;

/// Installs the TLS crypto provider reqwest is built to expect; harmless when already done.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runs the primary on `listener` until `shutdown` completes, then drains: the HTTP server
/// stops taking requests, and the batcher writes what it holds (for up to
/// [`SHUTDOWN_GRACE`]).
pub async fn run(
    listener: TcpListener,
    config: PrimaryConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    install_crypto_provider();
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let (enroll_token, _) =
        enroll::load_or_create(config.enroll_token.as_deref(), &config.data_dir)
            .context("enrollment token")?;
    let registry = Registry::open(&config.data_dir.join("registry.redb"))
        .context("opening the registry")?;
    let nodes = Nodes::from_records(registry.load_all().context("reading the registry")?);
    tracing::info!(nodes = nodes.len(), "registry loaded");

    let sink = build_sink(&config).await?;
    let metrics = Arc::new(Metrics::default());
    let (pipeline, pipeline_rx) = PipelineHandle::new(PIPELINE_CAPACITY);
    let (stop_tx, stop_rx) = watch::channel(false);

    let state: AppState = Arc::new(Shared {
        enroll_token,
        registry,
        nodes: RwLock::new(nodes),
        pipeline,
        metrics: Arc::clone(&metrics),
        started: Instant::now(),
        config,
    });

    let batcher = Batcher::new(
        sink,
        state.config.batch.clone(),
        Arc::clone(&metrics),
        stop_rx.clone(),
    );
    let batcher_task = tokio::spawn(batcher.run(pipeline_rx));
    tokio::spawn(liveness::watch(Arc::clone(&state), stop_rx.clone()));
    if state.config.self_monitor {
        tokio::spawn(self_monitor::run(
            Arc::clone(&state),
            state.config.self_interval,
            stop_rx.clone(),
        ));
    }

    let local = listener.local_addr().context("listener address")?;
    tracing::info!(%local, "primary listening");
    let mut server_stop = stop_rx.clone();
    let server = axum::serve(listener, app(Arc::clone(&state)))
        .with_graceful_shutdown(async move {
            crate::shutdown::stopped(&mut server_stop).await;
        });
    let trigger = tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let served = server.await.context("HTTP server");
    trigger.abort();
    // The pipeline's sender lives in the state; the batcher drains on the stop signal.
    match tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(5), batcher_task).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "batcher task failed"),
        Err(_) => tracing::error!("batcher did not stop in time"),
    }
    served
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
