//! glommio 0.9 as a side-by-side peer of the engine: the same file, regions, offsets, block
//! sizes and queue depths, on glommio's own thread-per-core executors and DMA files.
//!
//! Each of `setup.cores` executors is pinned to cpu `core`, opens the shared file with O_DIRECT
//! and runs `queue_depth` tasks, each keeping one operation in flight until a deadline shared by
//! all executors. Only operations that complete by the deadline are counted.

// Benchmarks measure wall time on purpose; the engine's "time through the Env" rule is for code
// the simulator must drive, which this is not.
#![allow(clippy::disallowed_methods)]

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, OnceLock};
use std::time::Instant;

use glommio::io::{DmaBuffer, DmaFile, OpenOptions};
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;

use crate::workload::{Measured, Offsets, Setup, Workload};

/// Latencies above this (ns) are clamped: a minute-long operation is a hang, not a sample.
const LATENCY_NS_MAX: u64 = 60_000_000_000;
const LATENCY_SIGNIFICANT_FIGURES: u8 = 3;
/// glommio's own default; its registered I/O memory is never made smaller than this.
const IO_MEMORY_MIN_BYTES: usize = 10 << 20;
/// Room in glommio's registered I/O memory for twice the buffers in flight, so that reads and
/// writes use fixed buffers rather than falling back to the heap.
const IO_MEMORY_PER_IN_FLIGHT_BUFFER: usize = 2;
/// glommio's default ring depth; raised to the queue depth when that is deeper.
const RING_DEPTH_MIN: usize = 128;
/// Byte written by the write workloads: nonzero so no layer can treat the block as a hole.
const WRITE_FILL_BYTE: u8 = 0xA5;

type Latencies = Rc<RefCell<Histogram<u64>>>;

/// Runs `w` on glommio for `setup.duration` and returns what it achieved. Callable from any
/// plain thread: it starts (and joins) one thread per executor.
pub fn run(setup: &Setup, w: &Workload) -> Result<Measured, String> {
    let started = Barrier::new(setup.cores);
    let failed = AtomicBool::new(false);
    let deadline = OnceLock::new();
    let per_core: Vec<Result<Option<Histogram<u64>>, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..setup.cores)
            .map(|core| {
                let (started, failed, deadline) = (&started, &failed, &deadline);
                std::thread::Builder::new()
                    .name(format!("glommio-{core}"))
                    .spawn_scoped(scope, move || run_core(core, setup, w, started, failed, deadline))
                    .expect("spawning a glommio executor thread")
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a glommio executor panicked".into()))).collect()
    });
    let mut merged = new_histogram();
    for hist in per_core.into_iter().collect::<Result<Vec<_>, String>>()? {
        // None: this executor stood down because another failed, whose error was returned above.
        let hist = hist.ok_or("a glommio executor stood down with no error reported")?;
        merged.add(hist).map_err(|e| format!("merging latency histograms: {e}"))?;
    }
    Ok(measured(&merged, setup, w))
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, LATENCY_SIGNIFICANT_FIGURES).expect("constant histogram bounds are valid")
}

fn measured(hist: &Histogram<u64>, setup: &Setup, w: &Workload) -> Measured {
    let seconds = setup.duration.as_secs_f64();
    let ops_per_s = hist.len() as f64 / seconds;
    Measured {
        ops_per_s,
        bytes_per_s: ops_per_s * w.block_bytes as f64,
        latency_ns_p50: hist.value_at_quantile(0.50),
        latency_ns_p99: hist.value_at_quantile(0.99),
    }
}

/// One executor thread. Every thread reaches the barrier, failed or not, so that no executor
/// waits forever for one that could not start; none starts the clock unless all are ready.
/// Ok(None): another executor failed to start, so this one stood down without measuring.
fn run_core(
    core: usize,
    setup: &Setup,
    w: &Workload,
    started: &Barrier,
    failed: &AtomicBool,
    deadline: &OnceLock<Instant>,
) -> Result<Option<Histogram<u64>>, String> {
    let io_memory = (w.queue_depth * w.block_bytes * IO_MEMORY_PER_IN_FLIGHT_BUFFER).max(IO_MEMORY_MIN_BYTES);
    let made = LocalExecutorBuilder::new(Placement::Fixed(core))
        .name(&format!("glommio-{core}"))
        .io_memory(io_memory)
        .ring_depth(w.queue_depth.max(RING_DEPTH_MIN))
        .make()
        .map_err(|e| format!("glommio executor on cpu {core}: {e}"));
    let executor = match made {
        Ok(executor) => executor,
        Err(e) => {
            failed.store(true, Ordering::SeqCst);
            started.wait();
            return Err(e);
        }
    };
    executor.run(async {
        let file = open(setup, w).await.map_err(|e| format!("glommio core {core}: opening {}: {e}", setup.file.display()));
        if file.is_err() {
            failed.store(true, Ordering::SeqCst);
        }
        // Blocking the executor thread here is fine: no task of it has been spawned yet.
        started.wait();
        let file = Rc::new(file?);
        if failed.load(Ordering::SeqCst) {
            return Ok(None);
        }
        // The first executor past the barrier fixes the deadline for all of them.
        let deadline = *deadline.get_or_init(|| Instant::now() + setup.duration);
        let latencies: Latencies = Rc::new(RefCell::new(new_histogram()));
        let tasks: Vec<_> = (0..w.queue_depth as u64)
            .map(|stream| {
                let offsets = Offsets::new(setup, w, core, stream);
                glommio::spawn_local(stream_loop(file.clone(), offsets, w.clone(), deadline, latencies.clone()))
            })
            .collect();
        for task in tasks {
            task.await?;
        }
        file.close_rc().await.map_err(|e| format!("glommio core {core}: closing: {e}"))?;
        Ok(Some(latencies.replace(new_histogram())))
    })
}

/// Opens the existing, preallocated file: never created or truncated here.
async fn open(setup: &Setup, w: &Workload) -> glommio::Result<DmaFile, ()> {
    if w.pattern.is_read() {
        DmaFile::open(&setup.file).await
    } else {
        OpenOptions::new().read(true).write(true).dma_open(&setup.file).await
    }
}

/// One in-flight stream: issue, await, record, until the deadline.
async fn stream_loop(file: Rc<DmaFile>, mut offsets: Offsets, w: Workload, deadline: Instant, latencies: Latencies) -> Result<(), String> {
    // write_at consumes its buffer, so it would need one allocation per write; write_rc_at takes
    // an Rc instead, which lets one buffer, filled once, serve every write of this stream.
    let block = if w.pattern.is_read() { None } else { Some(Rc::new(filled_buffer(&file, w.block_bytes))) };
    loop {
        let offset = offsets.next_offset();
        let issued = Instant::now();
        if issued >= deadline {
            return Ok(());
        }
        let transferred = match &block {
            None => file.read_at_aligned(offset, w.block_bytes).await.map(|r| r.len()),
            Some(buffer) => file.write_rc_at(buffer.clone(), offset).await,
        }
        .map_err(|e| format!("{} of {} bytes at {offset}: {e}", w.pattern.fio_rw(), w.block_bytes))?;
        let completed = Instant::now();
        if transferred != w.block_bytes {
            return Err(format!("{} at {offset}: transferred {transferred} of {} bytes", w.pattern.fio_rw(), w.block_bytes));
        }
        if completed > deadline {
            return Ok(());
        }
        let latency_ns = u64::try_from((completed - issued).as_nanos()).unwrap_or(u64::MAX);
        latencies.borrow_mut().saturating_record(latency_ns);
    }
}

fn filled_buffer(file: &DmaFile, block_bytes: usize) -> DmaBuffer {
    let mut buffer = file.alloc_dma_buffer(block_bytes);
    buffer.as_bytes_mut().fill(WRITE_FILL_BYTE);
    buffer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Pattern;
    use std::time::Duration;

    /// Under target/, not the system temp dir: /tmp may be tmpfs, which refuses O_DIRECT.
    const TEST_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench-test");
    const FILE_BYTES: usize = 64 << 20;

    #[test]
    fn glommio_randread_reports_ops_and_ordered_latencies() {
        std::fs::create_dir_all(TEST_DIR).expect("creating the test dir");
        let file = std::path::Path::new(TEST_DIR).join("glommio-peer-randread");
        std::fs::write(&file, vec![0x5Au8; FILE_BYTES]).expect("writing the test file");
        let setup = Setup { file: file.clone(), cores: 1, region_bytes: FILE_BYTES as u64, duration: Duration::from_millis(300) };
        let w = Workload { name: "4k-randread-qd4", pattern: Pattern::RandRead, block_bytes: 4096, queue_depth: 4 };
        let m = run(&setup, &w).expect("glommio peer runs");
        std::fs::remove_file(&file).expect("removing the test file");
        assert!(m.ops_per_s > 0.0, "{m:?}");
        assert!(m.latency_ns_p50 <= m.latency_ns_p99, "{m:?}");
    }
}
