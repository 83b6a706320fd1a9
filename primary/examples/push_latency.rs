//! Measures push latency against a running primary (the spool's fsync included): registers
//! `--nodes` nodes, then each pushes one realistic sample `--pushes` times back to back, all
//! nodes at once, and prints p50/p99/max latency and pushes per second.
//!
//! ```text
//! cargo run --release -p pivitals-primary --example push_latency -- \
//!     --url http://127.0.0.1:7070 --enroll-token TOKEN --nodes 20 --pushes 50
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use pivitals_collect::Collector;
use pivitals_common::{RegisterReply, RegisterRequest, VitalsPush};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:7070")]
    url: String,
    #[arg(long)]
    enroll_token: String,
    #[arg(long, default_value_t = 10)]
    nodes: usize,
    #[arg(long, default_value_t = 50)]
    pushes: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    pivitals_primary::install_crypto_provider();
    let http = reqwest::Client::new();
    let mut collector = Collector::new("/");
    let info = collector.node_info();
    std::thread::sleep(Duration::from_millis(250));
    let sample = collector.sample();

    let mut tokens = Vec::new();
    for i in 0..args.nodes {
        let request = RegisterRequest {
            node_name: format!("latency-{i:03}"),
            info: info.clone(),
            labels: Default::default(),
            interval_seconds: 60,
            hardware: None,
        };
        let response = http
            .post(format!("{}/api/v1/register", args.url))
            .bearer_auth(&args.enroll_token)
            .json(&request)
            .send()
            .await
            .context("register")?;
        if !response.status().is_success() {
            bail!("register answered {}", response.status());
        }
        tokens.push(response.json::<RegisterReply>().await?.node_token);
    }

    let started = Instant::now();
    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            let http = http.clone();
            let url = format!("{}/api/v1/vitals", args.url);
            let mut sample = sample.clone();
            let pushes = args.pushes;
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(pushes);
                for _ in 0..pushes {
                    sample.timestamp_ms += 1;
                    let body = VitalsPush {
                        samples: vec![sample.clone()],
                        ..Default::default()
                    };
                    let sent = Instant::now();
                    let response = http
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await?;
                    if !response.status().is_success() {
                        bail!("push answered {}", response.status());
                    }
                    latencies.push(sent.elapsed());
                }
                Ok::<_, anyhow::Error>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "pushes={} nodes={} elapsed={:.2}s pushes/s={:.0} p50={:.2}ms p99={:.2}ms max={:.2}ms",
        latencies.len(),
        args.nodes,
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    Ok(())
}
