//! Writes line-protocol files for the benchmark's direct-write baseline (`bench/run.sh`): the
//! lines the primary would write for `--nodes` nodes (`sim-00000`, … labelled `role=sim`,
//! `stack=<i % 16>`, like `pivitals-simulate`) each sending `--samples` samples one second
//! apart, encoded with the primary's own encoder from one real sample of this host, varied per
//! node and sample. Samples go tick by tick (every node's first sample, then every node's
//! second, …), as the primary's batches hold them, `--lines-per-file` lines a file.
//!
//! ```text
//! cargo run -p pivitals-primary --example bench_lines -- --nodes 2000 --samples 30 --out DIR
//! ```
//!
//! Prints `lines=N files=M lines_per_sample=K`.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use pivitals_collect::Collector;
use pivitals_common::line_protocol::encode_sample;
use pivitals_common::{Labels, TemperatureVitals};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 2000)]
    nodes: usize,
    #[arg(long, default_value_t = 30)]
    samples: usize,
    #[arg(long, default_value_t = 5000)]
    lines_per_file: usize,
    /// Where the files `lines-00000.lp`, … go (created if missing).
    #[arg(long)]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}", args.out.display()))?;
    let mut collector = Collector::new("/");
    std::thread::sleep(Duration::from_millis(250));
    let mut base = collector.sample();
    if base.temperatures.is_empty() {
        base.temperatures.push(TemperatureVitals {
            sensor: "cpu-thermal".to_owned(),
            celsius: 45.0,
            ..Default::default()
        });
    }
    let labels: Vec<Labels> = (0..args.nodes)
        .map(|i| {
            Labels::from([
                ("role".to_owned(), "sim".to_owned()),
                ("stack".to_owned(), (i % 16).to_string()),
            ])
        })
        .collect();
    let names: Vec<String> = (0..args.nodes).map(|i| format!("sim-{i:05}")).collect();
    // An hour ago, so that the points never collide with a simulation run into the same server.
    let start_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64 - 3_600_000;
    let mut rng = fastrand::Rng::with_seed(7);

    let (mut lines, mut files, mut in_file) = (0usize, 0usize, 0usize);
    let mut buffer = Vec::with_capacity(args.lines_per_file * 400);
    let mut lines_per_sample = 0;
    let flush = |buffer: &mut Vec<u8>, files: &mut usize| -> anyhow::Result<()> {
        let path = args.out.join(format!("lines-{:05}.lp", *files));
        std::fs::File::create(&path)
            .and_then(|mut file| file.write_all(buffer))
            .with_context(|| format!("{}", path.display()))?;
        buffer.clear();
        *files += 1;
        Ok(())
    };
    let mut sample = base.clone();
    for tick in 0..args.samples {
        for node in 0..args.nodes {
            sample.timestamp_ms = start_ms + tick as i64 * 1000 + node as i64 % 1000;
            if let Some(cpu) = &mut sample.cpu {
                cpu.usage_percent = (rng.f64() * 10_000.0).round() / 100.0;
            }
            if let Some(memory) = &mut sample.memory {
                memory.used_bytes = (memory.total_bytes as f64 * rng.f64()) as u64;
                memory.available_bytes = memory.total_bytes - memory.used_bytes;
            }
            for sensor in &mut sample.temperatures {
                sensor.celsius = (40_000.0 + rng.f64() * 20_000.0).round() / 1000.0;
            }
            for net in &mut sample.networks {
                net.rx_bytes += rng.u64(0..200_000);
                net.tx_bytes += rng.u64(0..50_000);
            }
            let points = encode_sample(&names[node], &labels[node], &sample, &mut buffer)
                .context("encode")?;
            lines_per_sample = points;
            lines += points;
            in_file += points;
            if in_file >= args.lines_per_file {
                flush(&mut buffer, &mut files)?;
                in_file = 0;
            }
        }
    }
    if !buffer.is_empty() {
        flush(&mut buffer, &mut files)?;
    }
    println!("lines={lines} files={files} lines_per_sample={lines_per_sample}");
    Ok(())
}
