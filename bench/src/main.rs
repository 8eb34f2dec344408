//! corestore-bench: benchmarks that measure corestore against the physical limit and its peers
//! in one run, on the same machine, and print ratios.
//!
//! `corestore-bench engine`: fio, our engine and glommio on the same preallocated file.
//! `corestore-bench send`: send, send_zc, sendfile and splice onto a TCP socket.
//! `corestore-bench store`: the per-core store's puts, gets, index memory and start-up vs fio.
//! `corestore-bench s3`: `corestore serve` vs nginx on the same objects, through the load
//! generator (`loadgen`), and the server's memory per idle connection.
//! `corestore-bench raft`: three Raft replicas as processes on loopback vs write+fdatasync and
//! a 3-member etcd cluster: committed entries/s, commit latency, elections after a leader kill.
//! `corestore-bench loadgen <mode>`: the warp-compatible load generator (`corestore loadgen`).
//! `corestore-bench all`: all of the above and the S3 peers, scaling and criterion, in one run,
//! written up as `bench/results/<date>/report.md`.

#![allow(clippy::disallowed_methods)] // a benchmark measures wall time on purpose

mod all;
mod engine_run;
mod fio;
mod glommio_peer;
mod loadgen;
mod machine;
mod raft;
mod s3_bench;
mod send;
mod store_bench;
mod workload;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::json;

use workload::{Measured, Setup, Workload};

#[derive(Parser)]
#[command(name = "corestore-bench", about = "corestore benchmarks, each against a reference measured in the same run")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The engine's DMA file I/O vs fio (io_uring, O_DIRECT, fixed buffers) and glommio's DmaFile.
    Engine(EngineArgs),
    /// IORING_OP_SEND vs SEND_ZC (fixed buffer) vs sendfile(2) vs IORING_OP_SPLICE from one
    /// core to a TCP receiver on another: GiB/s and CPU per GiB.
    Send(send::SendArgs),
    /// The per-core store: durable puts (group commit) vs write+fdatasync, 4 KiB and 1 MiB gets
    /// vs fio on the store's segment file, index memory per object, start-up time.
    Store(store_bench::StoreArgs),
    /// `corestore serve` vs nginx on loopback, same load generator: 4 KiB and 1 MiB GET, 4 KiB
    /// PUT (requests/s, GB/s, p99), and resident memory per idle keep-alive connection.
    S3(s3_bench::S3Args),
    /// Three Raft replicas (raftlog on the engine, one process each) on loopback: committed 1 KiB
    /// entries/s and p50/p99 commit latency at 1, 64 and 1024 proposers vs write+fdatasync and a
    /// 3-member etcd cluster, p99 at half the peak rate, elections after a leader kill.
    Raft(raft::RaftArgs),
    /// One Raft replica for `raft` and the process tests (not for direct use).
    #[command(hide = true)]
    RaftNode(raft::node::NodeArgs),
    /// A warp-compatible S3 load generator on corestore's runtime (`loadgen get --help`).
    #[command(subcommand)]
    Loadgen(loadgen::cli::LoadgenCommand),
    /// Every benchmark in one run (engine, store, S3 vs nginx, raft, S3 peers on warp's
    /// workloads, scaling, criterion), written as bench/results/<date>/report.md with its JSON
    /// and SVG plots. `--quick`: a CI smoke run of under 3 minutes.
    All(all::AllArgs),
}

#[derive(clap::Args)]
struct EngineArgs {
    /// Data file, preallocated and fully written once, reused by later runs. Must be on a
    /// filesystem with O_DIRECT (ext4, xfs), not tmpfs.
    #[arg(long, default_value = "target/corestore-bench.fio-data")]
    file: PathBuf,
    /// Cores (and fio jobs); default: every allowed cpu.
    #[arg(long)]
    cores: Option<usize>,
    /// Size of each core's region of the file.
    #[arg(long, default_value_t = 1024)]
    region_mib: u64,
    /// Seconds per system per workload.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Short run for CI smoke use: 1 s per run, 256 MiB regions.
    #[arg(long)]
    quick: bool,
    /// Leave out the glommio column.
    #[arg(long)]
    no_glommio: bool,
    /// Run the engine's rings with SQPOLL (kernel submission thread, this idle time in ms).
    #[arg(long)]
    sqpoll_idle_ms: Option<u32>,
    /// Rounds per workload: fio, engine and glommio run interleaved this many times and each
    /// column reports its median round (shared virtual disks drift between runs).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Run only the workloads whose name contains this.
    #[arg(long)]
    only: Option<String>,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Engine(args) => bench_engine(args),
        Command::Send(args) => send::bench_send(args),
        Command::Store(args) => store_bench::bench_store(args),
        Command::S3(args) => s3_bench::bench_s3(args),
        Command::Raft(args) => raft::bench_raft(args),
        Command::RaftNode(args) => raft::node::run_node(args),
        Command::Loadgen(command) => loadgen::cli::run(command),
        Command::All(args) => all::bench_all(args),
    };
    if let Err(e) = result {
        eprintln!("corestore-bench: {e}");
        std::process::exit(1);
    }
}

/// Creates the file (or reuses one that is already large enough), written with non-zero data:
/// reading never-written extents would measure the filesystem's zero-fill, not the disk.
fn prepare_file(path: &Path, bytes: u64) -> Result<(), String> {
    if std::fs::metadata(path).map(|m| m.len() >= bytes).unwrap_or(false) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    eprintln!("writing {} MiB to {} ...", bytes >> 20, path.display());
    let mut f = std::fs::File::create(path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    let mut chunk = vec![0u8; 1 << 20];
    let mut state = 1u64;
    for _ in 0..bytes >> 20 {
        for word in chunk.chunks_mut(8) {
            let (v, s) = engine::rng::splitmix64(state);
            state = s;
            word.copy_from_slice(&v.to_le_bytes());
        }
        f.write_all(&chunk).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    f.sync_all().map_err(|e| format!("syncing {}: {e}", path.display()))
}

struct Row {
    w: Workload,
    fio: Measured,
    engine: Measured,
    ring: engine_run::RingFigures,
    glommio: Result<Measured, String>,
    rss_kib: u64,
}

impl Row {
    /// IOPS for 4 KiB workloads, bytes/s for the large sequential ones.
    fn metric(&self, m: &Measured) -> f64 {
        if self.w.pattern.is_random() { m.ops_per_s } else { m.bytes_per_s }
    }
    fn ratio(&self) -> f64 {
        self.metric(&self.engine) / self.metric(&self.fio)
    }
    fn unit(&self) -> &'static str {
        if self.w.pattern.is_random() { "IOPS" } else { "MiB/s" }
    }
    fn show(&self, m: &Measured) -> String {
        if self.w.pattern.is_random() { format!("{:.0}", m.ops_per_s) } else { format!("{:.0}", m.bytes_per_s / (1 << 20) as f64) }
    }
}

fn bench_engine(args: EngineArgs) -> Result<(), String> {
    let fio_version = fio::version()?;
    let cores = args.cores.unwrap_or_else(|| engine::runtime::allowed_cpus().len());
    let (seconds, region_mib, rounds) =
        if args.quick { (1.0, args.region_mib.min(256), 1) } else { (args.seconds, args.region_mib, args.rounds.max(1)) };
    let setup = Setup { file: args.file.clone(), cores, region_bytes: region_mib << 20, duration: Duration::from_secs_f64(seconds) };
    engine::runtime::probe().map_err(|e| e.to_string())?;
    prepare_file(&setup.file, setup.region_bytes * cores as u64)?;
    println!(
        "# engine vs {fio_version} vs glommio 0.9, {cores} cores, {region_mib} MiB per core, {seconds} s per run, median of {rounds} interleaved rounds"
    );
    println!("# machine: {}", machine::describe(&setup.file));
    let largest = workload::workloads().iter().map(|w| w.block_bytes * w.queue_depth).max().unwrap_or(0);
    let (iomem, iomem_line) = fio::prepare_iomem((largest * cores) as u64);
    println!("# {iomem_line}");
    let rss_start = machine::rss_kib();
    let mut rows = Vec::new();
    let sqpoll = args.sqpoll_idle_ms.map_or(String::new(), |ms| format!(", engine rings with SQPOLL (idle {ms} ms)"));
    if !sqpoll.is_empty() {
        println!("# {}", &sqpoll[2..]);
    }
    for w in workload::workloads().into_iter().filter(|w| args.only.as_ref().is_none_or(|o| w.name.contains(o.as_str()))) {
        let (mut fios, mut engines, mut glommios) = (Vec::new(), Vec::new(), Vec::new());
        let mut glommio_error = None;
        let mut ring = engine_run::RingFigures::default();
        for _ in 0..rounds {
            fios.push(fio::run(&setup, &w, iomem)?);
            let (e, r) = engine_run::run(&setup, &w, args.sqpoll_idle_ms)?;
            engines.push(e);
            ring = r;
            if args.no_glommio {
                glommio_error = Some("left out (--no-glommio)".to_string());
            } else {
                match glommio_peer::run(&setup, &w) {
                    Ok(m) => glommios.push(m),
                    Err(e) => glommio_error = Some(e),
                }
            }
        }
        let rss_kib = machine::rss_kib();
        let by = if w.pattern.is_random() { |m: &Measured| m.ops_per_s } else { |m: &Measured| m.bytes_per_s };
        let (fio, engine) = (median(fios, by), median(engines, by));
        let glommio = match glommio_error {
            Some(e) => Err(e),
            None => Ok(median(glommios, by)),
        };
        let row = Row { w, fio, engine, ring, glommio, rss_kib };
        print_json(&row);
        rows.push(row);
    }
    print_table(&rows);
    println!("resident memory: {} KiB at start, {} KiB after the last engine run", rss_start, rows.last().map_or(0, |r| r.rss_kib));
    let growth: Vec<String> = rows.iter().map(|r| format!("{} {:+}", r.w.name, r.ring.rss_kib_end as i64 - r.ring.rss_kib_early as i64)).collect();
    println!("resident memory growth under load, KiB (end of run minus a tenth in): {}", growth.join(", "));
    let min = rows.iter().map(Row::ratio).fold(f64::INFINITY, f64::min);
    println!("min ratio engine/fio: {min:.3}");
    Ok(())
}

/// The run whose headline metric is the median (the upper one of an even count).
fn median(mut runs: Vec<Measured>, metric: fn(&Measured) -> f64) -> Measured {
    assert!(!runs.is_empty());
    runs.sort_by(|a, b| metric(a).total_cmp(&metric(b)));
    runs.swap_remove(runs.len() / 2)
}

fn print_json(r: &Row) {
    let g = r.glommio.as_ref().ok();
    let line = json!({
        "workload": r.w.name,
        "metric": if r.w.pattern.is_random() { "ops_per_s" } else { "bytes_per_s" },
        "engine": r.metric(&r.engine),
        "fio": r.metric(&r.fio),
        "ratio": r.ratio(),
        "glommio": g.map(|m| r.metric(m)),
        "engine_vs_glommio": g.map(|m| r.metric(&r.engine) / r.metric(m)),
        "glommio_skipped": r.glommio.as_ref().err(),
        "engine_latency_ns_p50": r.engine.latency_ns_p50,
        "engine_latency_ns_p99": r.engine.latency_ns_p99,
        "fio_latency_ns_p50": r.fio.latency_ns_p50,
        "fio_latency_ns_p99": r.fio.latency_ns_p99,
        "p99_ratio": r.engine.latency_ns_p99 as f64 / r.fio.latency_ns_p99.max(1) as f64,
        "glommio_latency_ns_p99": g.map(|m| m.latency_ns_p99),
        "engine_sqes_per_enter": r.ring.sqes_per_enter,
        "engine_rss_kib_early": r.ring.rss_kib_early,
        "engine_rss_kib_end": r.ring.rss_kib_end,
        "rss_kib": r.rss_kib,
    });
    println!("{line}");
}

fn print_table(rows: &[Row]) {
    println!();
    println!("| workload | unit | engine | fio | engine/fio | glommio | engine/glommio | p99 µs engine | p99 µs fio | p99 ratio |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let (g, eg) = match &r.glommio {
            Ok(m) => (r.show(m), format!("{:.2}", r.metric(&r.engine) / r.metric(m))),
            Err(e) => (format!("skipped: {e}"), "-".into()),
        };
        println!(
            "| {} | {} | {} | {} | {:.3} | {} | {} | {:.1} | {:.1} | {:.2} |",
            r.w.name,
            r.unit(),
            r.show(&r.engine),
            r.show(&r.fio),
            r.ratio(),
            g,
            eg,
            r.engine.latency_ns_p99 as f64 / 1e3,
            r.fio.latency_ns_p99 as f64 / 1e3,
            r.engine.latency_ns_p99 as f64 / r.fio.latency_ns_p99.max(1) as f64,
        );
    }
}
