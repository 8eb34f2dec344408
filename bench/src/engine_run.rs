//! Our engine on a workload: one pinned core per worker, `queue_depth` tasks per core, each
//! reusing one registered buffer with ReadFixed/WriteFixed on a registered O_DIRECT file.

use std::cell::RefCell;
use std::rc::Rc;

use engine::arena::{ArenaConfig, ClassConfig};
use engine::{Env, File, OpenMode, RuntimeConfig, Storage};
use hdrhistogram::Histogram;

use crate::workload::{Measured, Offsets, Setup, Workload};

/// What the engine's rings did during a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct RingFigures {
    /// Submissions per io_uring_enter: how much the loop batches.
    pub sqes_per_enter: f64,
    /// Resident memory of the process a tenth into the timed loop and at its end: all pools
    /// are allocated at start, so under sustained load the two must be equal.
    pub rss_kib_early: u64,
    pub rss_kib_end: u64,
}

struct CoreResult {
    rss_kib: (u64, u64),
    enters: u64,
    sqes: u64,
    ops: u64,
    elapsed_ns: u64,
    latency_ns: Histogram<u64>,
}

/// Fixed bounds (1 ns to 60 s): an auto-resizing histogram would allocate under load.
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds")
}

pub fn run(setup: &Setup, w: &Workload, sqpoll_idle_ms: Option<u32>) -> Result<(Measured, RingFigures), String> {
    let mut config = RuntimeConfig::cores(setup.cores).map_err(|e| e.to_string())?;
    config.ring.sqpoll_idle_ms = sqpoll_idle_ms;
    // Exactly the buffers the workload needs: one per in-flight operation.
    config.arena = ArenaConfig { classes: vec![ClassConfig { size_bytes: w.block_bytes, count: w.queue_depth }] };
    let results = engine::run(config, |core: engine::Core<()>| run_core(setup, w, core)).map_err(|e| e.to_string())?;
    let mut latency_ns = latency_histogram();
    let (mut ops, mut elapsed_ns, mut enters, mut sqes) = (0u64, 0u64, 0u64, 0u64);
    let mut rss_kib = (0, 0);
    for r in results {
        let r = r?;
        rss_kib = (rss_kib.0.max(r.rss_kib.0), rss_kib.1.max(r.rss_kib.1));
        ops += r.ops;
        enters += r.enters;
        sqes += r.sqes;
        elapsed_ns = elapsed_ns.max(r.elapsed_ns);
        latency_ns.add(&r.latency_ns).expect("merge histograms");
    }
    let secs = elapsed_ns as f64 / 1e9;
    let measured = Measured {
        ops_per_s: ops as f64 / secs,
        bytes_per_s: (ops * w.block_bytes as u64) as f64 / secs,
        latency_ns_p50: latency_ns.value_at_quantile(0.50),
        latency_ns_p99: latency_ns.value_at_quantile(0.99),
    };
    let figures = RingFigures { sqes_per_enter: sqes as f64 / enters.max(1) as f64, rss_kib_early: rss_kib.0, rss_kib_end: rss_kib.1 };
    Ok((measured, figures))
}

async fn run_core(setup: &Setup, w: &Workload, core: engine::Core<()>) -> Result<CoreResult, String> {
    let file = Rc::new(core.env.storage().open(&setup.file, OpenMode::Existing).map_err(|e| e.to_string())?);
    let ring_before = core.env.ring().stats();
    let histogram = Rc::new(RefCell::new(latency_histogram()));
    let start = engine::time::now();
    let deadline = start.saturating_add(setup.duration);
    let mut tasks = Vec::with_capacity(w.queue_depth);
    for stream in 0..w.queue_depth {
        let mut offsets = Offsets::new(setup, w, core.env.core(), stream as u64);
        let mut buf = core.env.storage().alloc(w.block_bytes).map_err(|e| e.to_string())?;
        buf.as_mut_capacity().fill(0x5A);
        let (file, histogram, w) = (file.clone(), histogram.clone(), w.clone());
        tasks.push(engine::spawn(async move {
            let mut ops = 0u64;
            loop {
                let t0 = engine::time::now();
                if t0 >= deadline {
                    break;
                }
                let offset = offsets.next_offset();
                let (res, b) =
                    if w.pattern.is_read() { file.read_at(buf, offset, w.block_bytes).await } else { file.write_at(buf, offset).await };
                buf = b;
                let n = res.map_err(|e| e.to_string())?;
                assert_eq!(n, w.block_bytes, "short transfer");
                let t1 = engine::time::now();
                histogram.borrow_mut().record(t1.ns - t0.ns).expect("record");
                ops += 1;
            }
            Ok::<u64, String>(ops)
        }));
    }
    // Core 0 samples the process's resident memory at a tenth and at nine tenths of the run,
    // while every core is under load.
    let (rss_early, rss_end) = if core.env.core() == 0 {
        engine::sleep(setup.duration / 10).await;
        let early = crate::machine::rss_kib();
        engine::sleep(setup.duration * 8 / 10).await;
        (early, crate::machine::rss_kib())
    } else {
        (0, 0)
    };
    let mut ops = 0;
    for t in tasks {
        ops += t.await?;
    }
    let elapsed_ns = engine::time::now().ns - start.ns;
    let ring = core.env.ring().stats();
    let latency_ns = Rc::try_unwrap(histogram).map_err(|_| "histogram still shared")?.into_inner();
    Ok(CoreResult { rss_kib: (rss_early, rss_end), enters: ring.enters - ring_before.enters, sqes: ring.sqes - ring_before.sqes, ops, elapsed_ns, latency_ns })
}
