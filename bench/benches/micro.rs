//! Micro-benchmarks of the hot pieces: the checksum, routing a key to its core, one no-op round
//! trip through a core's ring (alone and with many in flight), parsing an S3 request head, and
//! verifying its SigV4 signature (the per-request CPU of a GET before any data moves).
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

/// A GET as aws-sdk-s3 sends it, signed with `UNSIGNED-PAYLOAD` (the head the S3 benchmark's
/// generator sends, plus the SDK's usual extra headers).
fn signed_get_head() -> (Vec<u8>, s3front::sigv4::client::Credentials, i64) {
    let creds = s3front::sigv4::client::Credentials {
        access_key: "AKIDEXAMPLE".into(),
        secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        region: "us-east-1".into(),
    };
    let now_s = 1_764_028_800;
    let unsigned = vec![
        ("host".to_string(), "127.0.0.1:9000".to_string()),
        ("user-agent".to_string(), "aws-sdk-rust/1.3 os/linux lang/rust/1.88".to_string()),
        ("x-amz-user-agent".to_string(), "aws-sdk-rust/1.3 api/s3/1.9".to_string()),
        ("amz-sdk-invocation-id".to_string(), "7b4c1f2e-2f3b-4c8e-9a51-0d6f7a1b2c3d".to_string()),
        ("amz-sdk-request".to_string(), "attempt=1; max=3".to_string()),
    ];
    let signed = s3front::sigv4::client::sign_headers(&creds, "GET", "/bucket/objects/0000001234", "", &unsigned, "UNSIGNED-PAYLOAD", now_s);
    let mut head = b"GET /bucket/objects/0000001234 HTTP/1.1\r\n".to_vec();
    for (n, v) in unsigned.iter().chain(signed.iter()) {
        head.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    (head, creds, now_s)
}

fn s3_request(c: &mut Criterion) {
    let (head, creds, now_s) = signed_get_head();
    let mut group = c.benchmark_group("s3-request");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse-head/get", |b| {
        b.iter(|| s3front::http::parse_head(black_box(&head)).expect("a valid head").expect("a complete head"))
    });
    let (parsed, _) = s3front::http::parse_head(&head).expect("a valid head").expect("a complete head");
    let secret = creds.secret_key.clone();
    let secrets = move |key: &str| (key == "AKIDEXAMPLE").then(|| secret.clone());
    group.bench_function("sigv4-verify/get", |b| {
        b.iter(|| {
            let parts = s3front::sigv4::RequestParts {
                method: parsed.method.as_str(),
                raw_path: parsed.path(),
                raw_query: parsed.query(),
                headers: &parsed,
            };
            let auth = s3front::sigv4::authenticate(black_box(&parts), &secrets, now_s, "us-east-1");
            assert!(auth.is_ok(), "{auth:?}");
        })
    });
    group.finish();
}

criterion_group!(benches, checksum, routing, submission, s3_request);
criterion_main!(benches);
