//! Micro-benchmarks of the engine's hot pieces: the checksum, routing a key to its core, and one
//! no-op round trip through a core's ring, alone and with many in flight.
//!
//! Run: `cargo bench -p bench --bench micro` (add `-- --quick` for a fast look).

// Benchmarks measure wall time on purpose; the engine's "time through the Env" rule is for code
// the simulator must drive, which this is not.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use engine::executor::Executor;
use engine::uring::{Ring, RingConfig};
use xxhash_rust::xxh3::xxh3_64;

/// A 4 KiB block (one sector) and a 1 MiB object part: the sizes the store checksums most.
const CHECKSUM_SIZES_BYTES: [usize; 2] = [4 << 10, 1 << 20];
/// A typical "bucket/object-key" length.
const ROUTE_KEY_BYTES: usize = 40;
const ROUTE_CORES: usize = 16;
/// Ops in flight in the concurrent no-op benchmark: enough for one io_uring_enter to carry many
/// SQEs, well under the ring's default 256 entries.
const NOPS_IN_FLIGHT: u64 = 64;

fn checksum(c: &mut Criterion) {
    let mut group = c.benchmark_group("checksum/xxh3_64");
    for size in CHECKSUM_SIZES_BYTES {
        // Nonzero, non-repeating bytes, so no fast path for uniform input can flatter the hash.
        let data: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, data| b.iter(|| xxh3_64(black_box(data))));
    }
    group.finish();
}

fn routing(c: &mut Criterion) {
    let key = [b'k'; ROUTE_KEY_BYTES];
    c.bench_function("route/40B-key/16-cores", |b| b.iter(|| engine::route(black_box(&key), black_box(ROUTE_CORES))));
}

/// One Nop, submitted and reaped: the floor under every ring operation.
async fn nop(ring: &Rc<Ring>) {
    // SAFETY: a Nop points at no memory.
    let (res, ()) = unsafe { ring.op(engine::uring::io_uring::opcode::Nop::new().build(), ()) }.await;
    assert_eq!(res, 0, "nop completed with {res}");
}

async fn nops_serial(ring: Rc<Ring>, count: u64) {
    for _ in 0..count {
        nop(&ring).await;
    }
}

/// `iters` Nops spread over NOPS_IN_FLIGHT tasks, each awaiting its own serially: every loop
/// turn then submits up to NOPS_IN_FLIGHT SQEs in one io_uring_enter.
async fn nops_concurrent(ring: &Rc<Ring>, iters: u64) {
    let per_task = iters / NOPS_IN_FLIGHT;
    let remainder = iters % NOPS_IN_FLIGHT;
    let handles: Vec<_> =
        (0..NOPS_IN_FLIGHT).map(|task| engine::spawn(nops_serial(ring.clone(), per_task + u64::from(task < remainder)))).collect();
    for handle in handles {
        handle.await;
    }
}

fn submission(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring/nop-round-trip");
    // A fresh ring per variant, so each one's counters show its own batching.
    let ring = new_ring();
    group.bench_function("one-at-a-time", |b| {
        b.iter_custom(|iters| timed(&ring, nops_serial(ring.clone(), iters)));
    });
    report_batching("one-at-a-time", &ring);
    let ring = new_ring();
    group.bench_function(format!("{NOPS_IN_FLIGHT}-in-flight"), |b| {
        b.iter_custom(|iters| timed(&ring, nops_concurrent(&ring, iters)));
    });
    report_batching(&format!("{NOPS_IN_FLIGHT}-in-flight"), &ring);
    group.finish();
}

fn new_ring() -> Rc<Ring> {
    Rc::new(Ring::new(&RingConfig::default()).expect("io_uring ring for the benchmark"))
}

/// How many SQEs each io_uring_enter carried over the whole run: the batching, at a glance.
fn report_batching(variant: &str, ring: &Ring) {
    let stats = ring.stats();
    let per_enter = stats.sqes as f64 / stats.enters.max(1) as f64;
    println!("ring/nop-round-trip/{variant}: {} sqes in {} enters ({per_enter:.1} per enter)", stats.sqes, stats.enters);
}

/// Runs one batch inside one block_on, timed from inside so that building the executor is not.
/// A fresh executor per batch: `Executor::block_on` polls its future only once the main wake
/// flag is set, and that flag starts set but is left cleared by the previous `block_on`, so a
/// second `block_on` on the same executor never polls its future and trips the "executor stuck"
/// assertion. (An engine bug, reported; the ring, the costly part, is shared.)
fn timed(ring: &Rc<Ring>, batch: impl Future<Output = ()>) -> Duration {
    Executor::new(ring.clone()).block_on(async {
        let start = Instant::now();
        batch.await;
        start.elapsed()
    })
}

criterion_group!(benches, checksum, routing, submission);
criterion_main!(benches);
