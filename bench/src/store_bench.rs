//! `corestore-bench store`: the per-core store (`engine::store`) against fio on the same
//! filesystem, in one run:
//! - durable 4 KiB puts with 1, 16 and 256 writers per core vs fio's O_DIRECT write + fdatasync
//!   at QD1: the group-commit gain, with the records each fdatasync made durable;
//! - 4 KiB gets at QD64 and 1 MiB gets at QD8 vs fio reading the store's own segment file;
//! - resident memory per object of the index, and the start-up (recovery) time of that store.
//! - durable 4 KiB puts with 16 writers on one core, with and without the background compactor,
//!   on a store whose log is about half dead: the put p99 compaction costs, and the space it
//!   reclaims (no fio reference).
//!
//! Each core runs its own store in its own directory (one store is one core's shard) and fio runs
//! one job per core, pinned to the same cpu, on the same files. Store and fio runs alternate in
//! rounds and each column reports its median round (shared virtual disks drift between runs).

use std::cell::RefCell;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Barrier;
use std::time::Duration;

use engine::arena::{ArenaConfig, ClassConfig};
use engine::store::{
    BATCH_BYTES_DEFAULT, BATCH_RECORDS_MAX, CompactReport, CompactionPolicy, RaftHardState, RaftRecord, SEGMENT_BYTES_DEFAULT, Space, Store, StoreConfig,
    StoreStats, record,
};
use engine::{Env, LinuxEnv, RuntimeConfig, SECTOR_SIZE};
use hdrhistogram::Histogram;
use serde_json::json;

use crate::fio::{self, FileIo, FileJob, FileRun, IoMem};
use crate::machine;
use crate::workload::Measured;

const BUCKET: &[u8] = b"bench";
/// Every key is 16 ASCII bytes: 4 hex digits naming a writer (0 for preloaded objects), 12 of a
/// sequence number.
const KEY_BYTES: usize = 16;
const SMALL_OBJECT_BYTES: usize = 4 << 10;
const LARGE_OBJECT_BYTES: usize = 1 << 20;
const PUT_WRITERS: [usize; 3] = [1, 16, 256];
const SMALL_GET_QUEUE_DEPTH: usize = 64;
const LARGE_GET_QUEUE_DEPTH: usize = 8;
/// Concurrent puts that preload objects: more than one batch holds, so every batch is full.
const PRELOAD_WRITERS: usize = 256;
/// The index fill's batches: room for the most records a batch may hold even at a sector each
/// (packed empty objects take 128 bytes, so the record count is what fills a batch).
const INDEX_BATCH_BYTES: usize = BATCH_RECORDS_MAX * SECTOR_SIZE;
/// A 1 MiB object's frame is 1 MiB plus a header sector: it needs a batch (and a read buffer)
/// larger than 1 MiB.
const LARGE_BATCH_BYTES: usize = 2 << 20;
/// The fdatasync reference's file: fallocated fresh each round, like a store's new segment, and
/// larger than QD1 durable writes fill in a run, so fio never wraps around into written blocks.
const FDATASYNC_FILE_BYTES: u64 = 1 << 30;
/// Objects put before the index memory is measured (see `index_fill`).
const INDEX_WARM_UP_OBJECTS: u64 = 2 * BATCH_RECORDS_MAX as u64;
/// The index fill also writes one Raft group's log beside the objects, as a placement group's
/// replica holds both: this many 1 KiB entries, a hard state, and a compaction point halfway,
/// so start-up after close has Raft state to take from the checkpoint.
const INDEX_RAFT_GROUP: u64 = 1;
const INDEX_RAFT_ENTRIES: u64 = 2048;
const INDEX_RAFT_ENTRIES_PER_CALL: u64 = 256;
/// The start-up figure is extrapolated to this many objects.
const RECOVERY_OBJECTS_TARGET: f64 = 10e6;
/// Goals (store issue).
const PUT_GAIN_GOAL_256: f64 = 20.0;
const SMALL_GET_GOAL: f64 = 0.85;
const LARGE_GET_GOAL: f64 = 0.90;
const INDEX_BYTES_PER_OBJECT_GOAL: f64 = 32.0;
/// Buffers of `batch_bytes` a store takes from the arena: one batch filling, one per write in
/// flight, and one for recovery's reads or the index checkpoint written at close.
const BATCH_BUFFERS: usize = engine::store::BATCH_BUFFERS + 1;
const _: () = assert!(LARGE_BATCH_BYTES.is_multiple_of(SECTOR_SIZE) && LARGE_BATCH_BYTES > LARGE_OBJECT_BYTES);

#[derive(clap::Args)]
pub struct StoreArgs {
    /// Data directory, removed and recreated at start. Must be on a filesystem with O_DIRECT
    /// (ext4, xfs), not tmpfs.
    #[arg(long, default_value = "target/corestore-bench-store")]
    dir: PathBuf,
    /// Cores, each with its own store in its own directory (one store is one core's shard).
    #[arg(long, default_value_t = 1)]
    cores: usize,
    /// Seconds per timed run [default: 2; 0.5 with --quick].
    #[arg(long)]
    seconds: Option<f64>,
    /// Rounds: fio and the store alternate this many times per workload and each reports its
    /// median round; more, shorter rounds ride out a shared disk's bursts [default: 5; 1 with --quick].
    #[arg(long)]
    rounds: Option<usize>,
    /// 4 KiB objects per core preloaded for the 4 KiB gets [default: 100000; 10000 with --quick].
    #[arg(long)]
    small_objects: Option<u64>,
    /// 1 MiB objects per core preloaded for the 1 MiB gets [default: 512; 64 with --quick].
    #[arg(long)]
    large_objects: Option<u64>,
    /// Empty objects per core for the index memory and start-up figures (each a 128-byte frame,
    /// packed: 10 million write about 1.2 GiB of log; the disk needed is checked before the run)
    /// [default: 10000000; 100000 with --quick].
    #[arg(long)]
    index_objects: Option<u64>,
    /// 4 KiB objects preloaded (then half of them overwritten) for the puts beside compaction
    /// [default: 65536; 16384 with --quick].
    #[arg(long)]
    compact_objects: Option<u64>,
    /// Batch writes each store keeps in flight, 1 or 2 (`Store::set_writes_in_flight`): 1 is
    /// how the store wrote before it kept two, for comparing the two.
    #[arg(long, default_value_t = engine::store::WRITES_IN_FLIGHT_MAX)]
    writes_in_flight: usize,
    /// Short run for CI smoke use (explicit sizes above still apply).
    #[arg(long)]
    quick: bool,
    /// Run only the parts with a workload whose name contains this (`put`, `4k-get`, `1m-get`,
    /// `index`, `startup`, `compact`).
    #[arg(long)]
    only: Option<String>,
}

/// What a run does, once defaults are applied.
struct Plan {
    dir: PathBuf,
    cores: usize,
    cpus: Vec<usize>,
    duration: Duration,
    rounds: usize,
    small_objects: u64,
    large_objects: u64,
    index_objects: u64,
    compact_objects: u64,
    only: Option<String>,
    writes_in_flight: usize,
}

impl Plan {
    fn new(args: &StoreArgs) -> Result<Plan, String> {
        let q = args.quick;
        let cpus = RuntimeConfig::cores(args.cores).map_err(|e| e.to_string())?.cpus;
        let seconds = args.seconds.unwrap_or(if q { 0.5 } else { 2.0 });
        let plan = Plan {
            dir: args.dir.clone(),
            cores: args.cores,
            cpus,
            duration: Duration::try_from_secs_f64(seconds).map_err(|e| format!("--seconds {seconds}: {e}"))?,
            rounds: args.rounds.unwrap_or(if q { 1 } else { 5 }).max(1),
            small_objects: args.small_objects.unwrap_or(if q { 10_000 } else { 100_000 }),
            large_objects: args.large_objects.unwrap_or(if q { 64 } else { 512 }),
            index_objects: args.index_objects.unwrap_or(if q { 100_000 } else { 10_000_000 }),
            compact_objects: args.compact_objects.unwrap_or(if q { 16_384 } else { 65_536 }),
            only: args.only.clone(),
            writes_in_flight: args.writes_in_flight,
        };
        if !(1..=engine::store::WRITES_IN_FLIGHT_MAX).contains(&plan.writes_in_flight) {
            return Err(format!("--writes-in-flight must be 1 to {}", engine::store::WRITES_IN_FLIGHT_MAX));
        }
        if plan.small_objects == 0 || plan.large_objects == 0 || plan.index_objects == 0 || plan.compact_objects < 2 {
            return Err("object counts must be positive (--compact-objects at least 2)".into());
        }
        if plan.index_objects.max(plan.small_objects).max(plan.compact_objects) >= 1 << 48 {
            return Err("object counts must be below 2^48 (12 hex digits of key)".into());
        }
        Ok(plan)
    }

    /// Whether a part with these workloads runs.
    fn runs<S: AsRef<str>>(&self, workloads: &[S]) -> bool {
        self.only.as_ref().is_none_or(|o| workloads.iter().any(|w| w.as_ref().contains(o.as_str())))
    }

    /// `<dir>/<phase>/core-<c>` for each core.
    fn core_dirs(&self, phase: &str) -> Vec<PathBuf> {
        (0..self.cores).map(|c| self.dir.join(phase).join(format!("core-{c}"))).collect()
    }

    fn runtime(&self, arena: Option<ArenaConfig>) -> Result<RuntimeConfig, String> {
        let mut config = RuntimeConfig::cores(self.cores).map_err(|e| e.to_string())?;
        if let Some(a) = arena {
            config.arena = a;
        }
        Ok(config)
    }
}

pub fn bench_store(args: StoreArgs) -> Result<(), String> {
    let fio_version = fio::version()?;
    engine::runtime::probe().map_err(|e| e.to_string())?;
    let plan = Plan::new(&args)?;
    reset_dir(&plan.dir)?;
    let (cores, seconds, rounds) = (plan.cores, plan.duration.as_secs_f64(), plan.rounds);
    println!("# store vs {fio_version}, {cores} cores (one store each), {seconds} s per run, median of {rounds} interleaved rounds");
    println!("# machine: {}", machine::describe(&plan.dir.join("x")));
    let largest = (read_bytes(LARGE_OBJECT_BYTES) * LARGE_GET_QUEUE_DEPTH).max(read_bytes(SMALL_OBJECT_BYTES) * SMALL_GET_QUEUE_DEPTH);
    let (iomem, iomem_line) = fio::prepare_iomem((largest * cores) as u64);
    println!("# {iomem_line}");
    println!(
        "# puts: 4 KiB objects, empty metadata, 16-byte keys, batch {} KiB; fio reference: write 4k psync O_DIRECT fdatasync=1 (QD1) on a fresh fallocated file in the data directory",
        BATCH_BYTES_DEFAULT >> 10
    );
    println!(
        "# gets: fio reads the written part of each core's store segment file (io_uring, O_DIRECT, fixed buffers); \"at frame size\": fio randread of whole frames, the store's own I/O"
    );
    if plan.runs(&[COMPACT_NAME]) {
        println!(
            "# {COMPACT_NAME}: one core, {} objects of 4 KiB then a random half overwritten, segments {} MiB, batch {} MiB; {COMPACT_WRITERS} writers overwrite random objects without, then with, spawn_compactor(max live {COMPACTOR_MAX_LIVE_RATIO}, floor {} MiB/s, relocations {COMPACTOR_RELOCATE_SHARE} of the foreground's bytes, x{COMPACTOR_CATCH_UP} past space amplification {COMPACTOR_SPACE_AMP_MAX}) (alternating rounds on one store)",
            plan.compact_objects,
            COMPACT_SEGMENT_BYTES >> 20,
            COMPACT_BATCH_BYTES >> 20,
            COMPACTOR_BYTES_PER_S >> 20
        );
    }
    let mut rows = Vec::new();
    if plan.runs(&PUT_WRITERS.map(put_name)) {
        rows = put_rows(&plan)?;
        for r in &rows {
            r.print_json();
        }
    }
    for shape in [GetShape::small(&plan), GetShape::large(&plan)].into_iter().filter(|s| plan.runs(&[s.name])) {
        let r = get_row(&plan, &shape, iomem)?;
        r.print_json();
        rows.push(r);
    }
    let index = if plan.runs(&["index-memory", StartUp::AfterCrash.name(), StartUp::AfterClose.name()]) {
        let (index, start_ups) = index_and_recovery(&plan)?;
        index.print_json();
        for s in &start_ups {
            s.print_json();
        }
        Some((index, start_ups))
    } else {
        None
    };
    // No fio reference: printed apart from `rows`, and left out of the min ratio.
    let compact = if plan.runs(&[COMPACT_NAME]) {
        let figures = compact_figures(&plan)?;
        figures.print_json();
        Some(figures)
    } else {
        None
    };
    if !rows.is_empty() {
        print_table(&rows);
        println!();
    }
    if let Some(figures) = &compact {
        figures.print_table();
        println!();
    }
    if let Some((index, start_ups)) = index {
        index.print_line();
        for s in &start_ups {
            s.print_line();
        }
    }
    match rows.iter().map(Row::ratio).reduce(f64::min) {
        Some(min) => println!("min ratio store/fio: {min:.3}"),
        None => println!("min ratio store/fio: none (no workload with a fio reference ran)"),
    }
    Ok(())
}

fn put_name(writers: usize) -> String {
    format!("4k-put-w{writers}")
}

/// Removes and recreates the data directory, refusing tmpfs (it would measure memcpy).
fn reset_dir(dir: &Path) -> Result<(), String> {
    remove_dirs(&[dir.to_path_buf()])?;
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let fs = machine::filesystem(&dir.join("x"));
    if fs.starts_with("tmpfs") || fs.starts_with("ramfs") {
        return Err(format!("{} is on {fs}: O_DIRECT there measures memory, not storage; pass --dir on ext4 or xfs", dir.display()));
    }
    Ok(())
}

/// Removes a run's directories and waits until the filesystem has committed that: freeing
/// gigabytes makes ext4 issue discards at its next journal commit (with `-o discard`), and that
/// work must not land inside the next timed run.
fn remove_dirs(dirs: &[PathBuf]) -> Result<(), String> {
    for d in dirs {
        match std::fs::remove_dir_all(d) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(format!("removing {}: {e}", d.display())),
            _ => {}
        }
    }
    if let Some(parent) = dirs.first().and_then(|d| d.ancestors().skip(1).find(|a| a.is_dir())) {
        let dir = std::fs::File::open(parent).map_err(|e| format!("opening {}: {e}", parent.display()))?;
        // SAFETY: syncfs on a descriptor we own.
        if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir)) } != 0 {
            return Err(format!("syncfs {}: {}", parent.display(), std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// `key(tag, n)`: 16 ASCII hex digits, no allocation.
fn key(tag: u16, n: u64) -> [u8; KEY_BYTES] {
    assert!(n < 1 << 48, "sequence number {n} exceeds 12 hex digits");
    let v = (tag as u64) << 48 | n;
    let mut k = [0u8; KEY_BYTES];
    for (i, byte) in k.iter_mut().enumerate() {
        *byte = b"0123456789abcdef"[(v >> (4 * (KEY_BYTES - 1 - i)) & 0xF) as usize];
    }
    k
}

/// Bytes of the log frame of one object of the benchmark: the record's key field is
/// `u16 bucket length | bucket | key` (engine/docs/format.md). Frames are packed, so the log
/// holds this plus a little padding per object (checked after each preload).
fn frame_bytes(object_bytes: usize) -> usize {
    record::frame_len(2 + BUCKET.len() + KEY_BYTES + object_bytes)
}

/// Bytes one get of such an object reads: the sectors its frame spans, which the writer keeps
/// to the least its length needs (`record::place`).
fn read_bytes(object_bytes: usize) -> usize {
    frame_bytes(object_bytes).next_multiple_of(SECTOR_SIZE)
}

/// Fixed bounds (1 ns to 60 s), as in the engine benchmark: an auto-resizing histogram would
/// allocate under load.
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant histogram bounds are valid")
}

/// Puts an open loop keeps in flight at most; past it the pacer waits, and the wait counts in
/// the latency of the puts it delays (measured from their scheduled time).
const OPEN_IN_FLIGHT_MAX: usize = 4096;

/// One core's share of a timed run.
struct CoreRun {
    timed: Timed,
    commits: Commits,
}

/// Runs `tasks` tasks on this core, each calling `op(task, iteration)` back to back until
/// `duration` has passed; elapsed time runs until the last task finished its last operation.
async fn timed<F, Fut>(tasks: usize, duration: Duration, op: F) -> Result<Timed, String>
where
    F: Fn(usize, u64) -> Fut + 'static,
    Fut: Future<Output = Result<(), String>> + 'static,
{
    let op = Rc::new(op);
    let histogram = Rc::new(RefCell::new(latency_histogram()));
    let anon_huge_kib = anon_huge_kib();
    let cpu_start = ThreadCpu::now();
    let start = engine::time::now();
    let deadline = start.saturating_add(duration);
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let (op, histogram) = (op.clone(), histogram.clone());
            engine::spawn(async move {
                let mut n = 0u64;
                loop {
                    let t0 = engine::time::now();
                    if t0 >= deadline {
                        return Ok::<u64, String>(n);
                    }
                    op(task, n).await?;
                    histogram.borrow_mut().record(engine::time::now().ns - t0.ns).map_err(|e| format!("latency histogram: {e}"))?;
                    n += 1;
                }
            })
        })
        .collect();
    let mut ops = 0;
    for h in handles {
        ops += h.await?;
    }
    let elapsed_ns = engine::time::now().ns - start.ns;
    let cpu = ThreadCpu::now().since(cpu_start);
    let latency_ns = Rc::try_unwrap(histogram).map_err(|_| "latency histogram still shared")?.into_inner();
    Ok(Timed { ops, elapsed_ns, cpu, latency_ns, anon_huge_kib })
}

/// Runs `op(n)` at `rate_per_s` on this core for `duration`, an open loop: op n is scheduled at
/// `n / rate_per_s` and its latency runs from then, so a stall that delays it is counted (no
/// coordinated omission).
async fn paced<F, Fut>(rate_per_s: f64, duration: Duration, op: F) -> Result<Timed, String>
where
    F: Fn(u64) -> Fut + 'static,
    Fut: Future<Output = Result<(), String>> + 'static,
{
    assert!(rate_per_s > 0.0);
    let op = Rc::new(op);
    let histogram = Rc::new(RefCell::new(latency_histogram()));
    let in_flight = Rc::new(std::cell::Cell::new(0usize));
    let anon_huge_kib = anon_huge_kib();
    let cpu_start = ThreadCpu::now();
    let start = engine::time::now();
    let total = (duration.as_secs_f64() * rate_per_s) as u64;
    let mut handles = Vec::with_capacity(total as usize);
    for n in 0..total {
        let scheduled = start.saturating_add(Duration::from_secs_f64(n as f64 / rate_per_s));
        engine::sleep_until(scheduled).await;
        while in_flight.get() >= OPEN_IN_FLIGHT_MAX {
            engine::sleep(Duration::from_micros(50)).await;
        }
        in_flight.set(in_flight.get() + 1);
        let (op, histogram, in_flight) = (op.clone(), histogram.clone(), in_flight.clone());
        handles.push(engine::spawn(async move {
            let result = op(n).await;
            in_flight.set(in_flight.get() - 1);
            result?;
            histogram.borrow_mut().record(engine::time::now().ns - scheduled.ns).map_err(|e| format!("latency histogram: {e}"))
        }));
    }
    for h in handles {
        h.await?;
    }
    let elapsed_ns = engine::time::now().ns - start.ns;
    let cpu = ThreadCpu::now().since(cpu_start);
    let latency_ns = Rc::try_unwrap(histogram).map_err(|_| "latency histogram still shared")?.into_inner();
    Ok(Timed { ops: total, elapsed_ns, cpu, latency_ns, anon_huge_kib })
}

struct Timed {
    ops: u64,
    elapsed_ns: u64,
    /// The core thread's CPU time (user + system) and preemptions during the run.
    cpu: ThreadCpu,
    latency_ns: Histogram<u64>,
    /// The process's transparent huge pages when the run started: the arena's buffers are
    /// physically contiguous only on them (kernel-notes.md), which large I/O depends on.
    anon_huge_kib: u64,
}

/// `AnonHugePages` of this process (the arena is the only memory advised as huge pages).
fn anon_huge_kib() -> u64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("AnonHugePages:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// What the calling thread got of its cpu: a core busy for the whole run is the bottleneck
/// itself; involuntary switches say something else ran on its cpu (a shared machine).
#[derive(Clone, Copy, Debug, Default)]
struct ThreadCpu {
    cpu_ns: u64,
    involuntary_switches: u64,
}

impl ThreadCpu {
    fn now() -> ThreadCpu {
        // SAFETY: getrusage fills the zeroed struct we own.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
        assert_eq!(r, 0, "getrusage(RUSAGE_THREAD)");
        let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
        ThreadCpu { cpu_ns: ns(usage.ru_utime) + ns(usage.ru_stime), involuntary_switches: usage.ru_nivcsw as u64 }
    }

    fn since(self, start: ThreadCpu) -> ThreadCpu {
        ThreadCpu { cpu_ns: self.cpu_ns - start.cpu_ns, involuntary_switches: self.involuntary_switches - start.involuntary_switches }
    }
}

/// What the store's writer did during a run.
#[derive(Clone, Copy, Debug, Default)]
struct Commits {
    records: u64,
    syncs: u64,
}

fn commits(before: StoreStats, after: StoreStats) -> Commits {
    Commits { records: after.records - before.records, syncs: after.syncs - before.syncs }
}

/// The cores' runs as one measurement: operations summed, time the slowest core's.
struct StoreRun {
    measured: Measured,
    records_per_sync: f64,
    /// The busiest core's CPU time over its elapsed time.
    core_busy: f64,
    /// The most involuntary context switches per second of any core's thread.
    preempted_per_s: f64,
    /// The fewest huge pages any core saw (all cores see the whole process).
    anon_huge_kib: u64,
}

fn merge(results: Vec<Result<CoreRun, String>>, object_bytes: usize) -> Result<StoreRun, String> {
    let mut latency_ns = latency_histogram();
    let (mut ops, mut elapsed_ns, mut records, mut syncs) = (0u64, 0u64, 0u64, 0u64);
    let (mut core_busy, mut preempted_per_s): (f64, f64) = (0.0, 0.0);
    let mut anon_huge_kib = u64::MAX;
    for r in results {
        let CoreRun { timed: r, commits } = r?;
        anon_huge_kib = anon_huge_kib.min(r.anon_huge_kib);
        core_busy = core_busy.max(r.cpu.cpu_ns as f64 / r.elapsed_ns.max(1) as f64);
        preempted_per_s = preempted_per_s.max(r.cpu.involuntary_switches as f64 / (r.elapsed_ns.max(1) as f64 / 1e9));
        ops += r.ops;
        elapsed_ns = elapsed_ns.max(r.elapsed_ns);
        records += commits.records;
        syncs += commits.syncs;
        latency_ns.add(&r.latency_ns).map_err(|e| format!("merging histograms: {e}"))?;
    }
    let secs = elapsed_ns.max(1) as f64 / 1e9;
    let measured = Measured {
        ops_per_s: ops as f64 / secs,
        bytes_per_s: (ops * object_bytes as u64) as f64 / secs,
        latency_ns_p50: latency_ns.value_at_quantile(0.50),
        latency_ns_p99: latency_ns.value_at_quantile(0.99),
    };
    Ok(StoreRun { measured, records_per_sync: records as f64 / syncs.max(1) as f64, core_busy, preempted_per_s, anon_huge_kib })
}

/// Puts objects `0..count` (`key(tag, i)`, data starting with `i`) with `writers` concurrent tasks.
async fn fill(store: &Store<LinuxEnv>, tag: u16, count: u64, object_bytes: usize, writers: usize) -> Result<(), String> {
    let handles: Vec<_> = (0..writers as u64)
        .map(|first| {
            let store = store.clone();
            engine::spawn(async move {
                let mut data = vec![0x5Au8; object_bytes];
                let mut i = first;
                while i < count {
                    if object_bytes >= 8 {
                        data[..8].copy_from_slice(&i.to_le_bytes());
                    }
                    store.put(BUCKET, &key(tag, i), &[], &data).await.map_err(|e| format!("preload put {i}: {e}"))?;
                    i += writers as u64;
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    for h in handles {
        h.await?;
    }
    Ok(())
}

/// A get of preloaded object `i`, checked to be that object.
async fn get_checked(store: &Store<LinuxEnv>, i: u64, object_bytes: usize) -> Result<(), String> {
    let object = store.get(BUCKET, &key(0, i)).await.map_err(|e| format!("get {i}: {e}"))?.ok_or_else(|| format!("get {i}: missing"))?;
    if object.data().len() != object_bytes || object.data()[..8] != i.to_le_bytes() {
        return Err(format!("get {i}: returned {} bytes of another object", object.data().len()));
    }
    Ok(())
}

/// Closes a store: finishes its batches and writes its index checkpoint.
async fn close(store: &Store<LinuxEnv>) -> Result<(), String> {
    store.close().await.map_err(|e| format!("closing the store: {e}"))
}

// ---- Durable puts vs write + fdatasync ----

fn put_rows(plan: &Plan) -> Result<Vec<Row>, String> {
    let mut fios = Vec::new();
    let mut stores: Vec<Vec<StoreRun>> = PUT_WRITERS.iter().map(|_| Vec::new()).collect();
    // The same writers with one batch write in flight, as the store wrote before it kept two:
    // what the second write in flight gains, measured in the same rounds. (One writer never has
    // a second batch to write.)
    let compare = plan.writes_in_flight > 1;
    let mut ones: Vec<Vec<StoreRun>> = PUT_WRITERS.iter().map(|_| Vec::new()).collect();
    for _ in 0..plan.rounds {
        fios.push(fdatasync_reference(plan)?);
        for ((runs, one), &writers) in stores.iter_mut().zip(&mut ones).zip(&PUT_WRITERS) {
            runs.push(put_run(plan, PutLoad::Writers(writers), plan.writes_in_flight)?);
            if compare && writers > 1 {
                one.push(put_run(plan, PutLoad::Writers(writers), 1)?);
            }
        }
    }
    let fio_rounds = rounds(&fios, |m| m.ops_per_s);
    let fio = median(fios, |m| m.ops_per_s);
    // Where a second write in flight should show: puts arriving on their own schedule, at half
    // the 256 writers' median rate, alternating two writes in flight and one.
    let open = match stores.last().filter(|_| compare) {
        Some(w256) => {
            let rate = median(rounds(w256, |r| r.measured.ops_per_s), |x| *x) / 2.0;
            let load = PutLoad::RatePerCore(rate / plan.cores as f64);
            let (mut twos, mut ones) = (Vec::new(), Vec::new());
            for _ in 0..plan.rounds {
                twos.push(put_run(plan, load, plan.writes_in_flight)?);
                ones.push(put_run(plan, load, 1)?);
            }
            let p99 = |r: &StoreRun| r.measured.latency_ns_p99 as f64;
            let (two, one) = (median(twos, p99).measured, median(ones, p99).measured);
            println!(
                "# 4k-put open loop at {rate:.0}/s (half the 256 writers' rate): {} writes in flight p50 {} / p99 {} µs vs one p50 {} / p99 {} µs",
                plan.writes_in_flight,
                two.latency_ns_p50 / 1000,
                two.latency_ns_p99 / 1000,
                one.latency_ns_p50 / 1000,
                one.latency_ns_p99 / 1000
            );
            Some(json!({
                "offered_ops_per_s": rate,
                "latency_ns_p50": two.latency_ns_p50,
                "latency_ns_p99": two.latency_ns_p99,
                "one_write_in_flight_latency_ns_p50": one.latency_ns_p50,
                "one_write_in_flight_latency_ns_p99": one.latency_ns_p99,
            }))
        }
        None => None,
    };
    let rows = stores
        .into_iter()
        .zip(ones)
        .zip(PUT_WRITERS)
        .map(|((runs, one), writers)| {
            let store_rounds = rounds(&runs, |r| r.measured.ops_per_s);
            let run = median(runs, |r| r.measured.ops_per_s);
            let one = (!one.is_empty()).then(|| {
                let one_rounds = rounds(&one, |r| r.measured.ops_per_s);
                let one = median(one, |r| r.measured.ops_per_s).measured;
                println!(
                    "# {}: {} writes in flight {:.0} puts/s (p99 {} µs) vs one {:.0} puts/s (p99 {} µs): {:.2}x",
                    put_name(writers),
                    plan.writes_in_flight,
                    run.measured.ops_per_s,
                    run.measured.latency_ns_p99 / 1000,
                    one.ops_per_s,
                    one.latency_ns_p99 / 1000,
                    run.measured.ops_per_s / one.ops_per_s
                );
                json!({
                    "ops_per_s": one.ops_per_s,
                    "latency_ns_p99": one.latency_ns_p99,
                    "rounds": one_rounds,
                    "gain": run.measured.ops_per_s / one.ops_per_s,
                })
            });
            Row {
                name: put_name(writers),
                bytes_metric: false,
                store: run.measured,
                fio: fio.clone(),
                fio_frame: None,
                fio_latency_comparable: false,
                goal: (writers == 256).then_some(PUT_GAIN_GOAL_256),
                records_per_sync: Some(run.records_per_sync),
                core_busy: run.core_busy,
                extra: json!({
                    "writers_per_core": writers,
                    "writes_in_flight": plan.writes_in_flight,
                    "one_write_in_flight": one,
                    "open_loop_half": if writers == 256 { open.clone() } else { None },
                    "object_bytes": SMALL_OBJECT_BYTES,
                    "frame_bytes": frame_bytes(SMALL_OBJECT_BYTES),
                    "batch_bytes": BATCH_BYTES_DEFAULT,
                    "fio_reference": "write 4k psync direct fdatasync=1 qd1",
                    "store_rounds": store_rounds,
                    "fio_rounds": fio_rounds,
                    "anon_huge_kib": run.anon_huge_kib,
                    "arena_bytes": ArenaConfig::default_per_core().total_bytes() * plan.cores,
                    "store_core_preempted_per_s": run.preempted_per_s,
                }),
            }
        })
        .collect();
    Ok(rows)
}

/// fio's durable 4 KiB writes at QD1, one job per core, each on a fresh file.
fn fdatasync_reference(plan: &Plan) -> Result<Measured, String> {
    let dir = plan.dir.join("fio");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let jobs: Vec<FileJob> = plan
        .cpus
        .iter()
        .enumerate()
        .map(|(c, &cpu)| FileJob { file: dir.join(format!("fdatasync-core-{c}.dat")), size_bytes: FDATASYNC_FILE_BYTES, cpu })
        .collect();
    let run = FileRun {
        jobs: &jobs,
        rw: "write",
        block_bytes: SMALL_OBJECT_BYTES,
        queue_depth: 1,
        duration: plan.duration,
        io: FileIo::PsyncFdatasync,
    };
    let measured = fio::run_files(&run);
    remove_dirs(&[dir])?;
    measured
}

/// How a put run loads the store.
#[derive(Clone, Copy)]
enum PutLoad {
    /// Closed loop: this many writers per core, each putting back to back.
    Writers(usize),
    /// Open loop: puts scheduled at this rate per core (`paced`).
    RatePerCore(f64),
}

/// Each core opens a fresh store with `in_flight` batch writes allowed and puts 4 KiB objects
/// under `load`.
fn put_run(plan: &Plan, load: PutLoad, in_flight: usize) -> Result<StoreRun, String> {
    let dirs = plan.core_dirs(&match load {
        PutLoad::Writers(writers) => format!("put-w{writers}"),
        PutLoad::RatePerCore(_) => "put-open".to_string(),
    });
    remove_dirs(&dirs)?;
    // The default arena: the store as shipped (its 1 MiB batch buffers; puts read nothing).
    let config = plan.runtime(None)?;
    let duration = plan.duration;
    let results = engine::run(config, |core: engine::Core<()>| put_core(dirs[core.env.core()].clone(), load, duration, in_flight, core))
        .map_err(|e| e.to_string())?;
    remove_dirs(&dirs)?;
    merge(results, SMALL_OBJECT_BYTES)
}

async fn put_core(dir: PathBuf, load: PutLoad, duration: Duration, in_flight: usize, core: engine::Core<()>) -> Result<CoreRun, String> {
    let (store, _) = Store::open(core.env.clone(), StoreConfig::new(dir)).await.map_err(|e| e.to_string())?;
    store.set_writes_in_flight(in_flight);
    let data: Rc<[u8]> = vec![0x5Au8; SMALL_OBJECT_BYTES].into();
    let before = store.stats();
    let s = store.clone();
    let put = move |writer: usize, n: u64| {
        let (s, data) = (s.clone(), data.clone());
        async move { s.put(BUCKET, &key(writer as u16, n), &[], &data).await.map(drop).map_err(|e| format!("put: {e}")) }
    };
    let timed = match load {
        PutLoad::Writers(writers) => timed(writers, duration, put).await?,
        // Keys as 4096 writers would name them, so the index grows the same way.
        PutLoad::RatePerCore(rate) => paced(rate, duration, move |n| put((n % 4096) as usize, n / 4096)).await?,
    };
    let commits = commits(before, store.stats());
    close(&store).await?;
    Ok(CoreRun { timed, commits })
}

// ---- Gets vs fio reads of the segment file ----

/// A get workload: what is preloaded, how the store and its arena are shaped, and fio's side.
struct GetShape {
    name: &'static str,
    phase: &'static str,
    object_bytes: usize,
    objects: u64,
    queue_depth: usize,
    batch_bytes: usize,
    preload_writers: usize,
    fio_rw: &'static str,
    goal: f64,
}

impl GetShape {
    fn small(plan: &Plan) -> GetShape {
        GetShape {
            name: "4k-get-qd64",
            phase: "get-4k",
            object_bytes: SMALL_OBJECT_BYTES,
            objects: plan.small_objects,
            queue_depth: SMALL_GET_QUEUE_DEPTH,
            batch_bytes: BATCH_BYTES_DEFAULT,
            preload_writers: PRELOAD_WRITERS,
            fio_rw: "randread",
            goal: SMALL_GET_GOAL,
        }
    }

    fn large(plan: &Plan) -> GetShape {
        GetShape {
            name: "1m-get-qd8",
            phase: "get-1m",
            object_bytes: LARGE_OBJECT_BYTES,
            objects: plan.large_objects,
            queue_depth: LARGE_GET_QUEUE_DEPTH,
            batch_bytes: LARGE_BATCH_BYTES,
            // One 1 MiB frame fills a 2 MiB batch: a few writers keep the pipeline full.
            preload_writers: 4,
            fio_rw: "read",
            goal: LARGE_GET_GOAL,
        }
    }

    fn frame_bytes(&self) -> usize {
        frame_bytes(self.object_bytes)
    }

    fn read_bytes(&self) -> usize {
        read_bytes(self.object_bytes)
    }

    /// Every object in one segment, so fio's one file per core is the whole of what gets read.
    fn store_config(&self, dir: &Path) -> StoreConfig {
        let log = self.objects * self.read_bytes() as u64;
        let segment_bytes = (log.next_multiple_of(self.batch_bytes as u64) + self.batch_bytes as u64).max(SEGMENT_BYTES_DEFAULT);
        StoreConfig { dir: dir.to_path_buf(), segment_bytes, batch_bytes: self.batch_bytes }
    }

    /// Exactly what the store needs: batch buffers (and recovery's) of `batch_bytes`, and one
    /// read buffer of a frame's sectors per get in flight.
    fn arena(&self) -> ArenaConfig {
        let read = ClassConfig { size_bytes: self.read_bytes(), count: self.queue_depth };
        let batch = ClassConfig { size_bytes: self.batch_bytes, count: BATCH_BUFFERS };
        if read.size_bytes < batch.size_bytes {
            ArenaConfig { classes: vec![read, batch] }
        } else {
            // Reads come from the batch class: keep classes strictly ascending.
            ArenaConfig { classes: vec![ClassConfig { size_bytes: read.size_bytes, count: read.count + BATCH_BUFFERS }] }
        }
    }
}

fn get_row(plan: &Plan, shape: &GetShape, iomem: IoMem) -> Result<Row, String> {
    let dirs = plan.core_dirs(shape.phase);
    let segments = preload(plan, shape, &dirs)?;
    let jobs: Vec<FileJob> =
        segments.iter().zip(&plan.cpus).map(|((file, written), &cpu)| FileJob { file: file.clone(), size_bytes: *written, cpu }).collect();
    let fio_run = |rw, block_bytes| FileRun {
        jobs: &jobs,
        rw,
        block_bytes,
        queue_depth: shape.queue_depth,
        duration: plan.duration,
        io: FileIo::IoUring(iomem),
    };
    let (mut fios, mut frame_ios, mut stores) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..plan.rounds {
        fios.push(fio::run_files(&fio_run(shape.fio_rw, shape.object_bytes))?);
        // The very reads the store issues (the sectors of a random object's frame): what the
        // store's read path costs beyond its on-disk format and access pattern.
        frame_ios.push(fio::run_files(&fio_run("randread", shape.read_bytes()))?);
        stores.push(get_run(plan, shape, &dirs)?);
    }
    remove_dirs(&dirs)?;
    let bytes_metric = shape.object_bytes >= 1 << 20;
    let by = if bytes_metric { |m: &Measured| m.bytes_per_s } else { |m: &Measured| m.ops_per_s };
    let (store_rounds, fio_rounds) = (rounds(&stores, |r| by(&r.measured)), rounds(&fios, by));
    let fio_frame_rounds = rounds(&frame_ios, |m| m.ops_per_s);
    let run = median(stores, |r: &StoreRun| by(&r.measured));
    Ok(Row {
        name: shape.name.to_string(),
        bytes_metric,
        store: run.measured,
        fio: median(fios, by),
        fio_frame: Some(median(frame_ios, |m| m.ops_per_s)),
        fio_latency_comparable: true,
        goal: Some(shape.goal),
        records_per_sync: None,
        core_busy: run.core_busy,
        extra: json!({
            "queue_depth_per_core": shape.queue_depth,
            "objects_per_core": shape.objects,
            "object_bytes": shape.object_bytes,
            "frame_bytes": shape.frame_bytes(),
            "read_bytes": shape.read_bytes(),
            "batch_bytes": shape.batch_bytes,
            "fio_reference": format!("{} {}k io_uring direct fixedbufs qd{} on the store's segment file", shape.fio_rw, shape.object_bytes >> 10, shape.queue_depth),
            "fio_frame_reference": format!("randread {} B (one frame's sectors) io_uring direct fixedbufs qd{} on the store's segment file", shape.read_bytes(), shape.queue_depth),
            "store_rounds": store_rounds,
            "fio_rounds": fio_rounds,
            "fio_frame_ops_per_s_rounds": fio_frame_rounds,
            "anon_huge_kib": run.anon_huge_kib,
            "arena_bytes": shape.arena().total_bytes() * plan.cores,
            "store_core_preempted_per_s": run.preempted_per_s,
        }),
    })
}

/// Fills each core's store; returns each core's segment file and the bytes written to it.
fn preload(plan: &Plan, shape: &GetShape, dirs: &[PathBuf]) -> Result<Vec<(PathBuf, u64)>, String> {
    remove_dirs(dirs)?;
    let config = plan.runtime(Some(shape.arena()))?;
    let results = engine::run(config, |core: engine::Core<()>| {
        let store_config = shape.store_config(&dirs[core.env.core()]);
        async move {
            let (store, _) = Store::open(core.env.clone(), store_config).await.map_err(|e| e.to_string())?;
            fill(&store, 0, shape.objects, shape.object_bytes, shape.preload_writers).await?;
            close(&store).await?;
            Ok::<u64, String>(store.stats().bytes_written)
        }
    })
    .map_err(|e| e.to_string())?;
    let mut segments = Vec::with_capacity(dirs.len());
    for (dir, written) in dirs.iter().zip(results) {
        let written = written?;
        // Packed frames, padded only where one would cross a sector it need not and at each
        // batch's end.
        let (least, most) = (shape.objects * shape.frame_bytes() as u64, shape.objects * shape.read_bytes() as u64);
        if !(least..=most).contains(&written) {
            return Err(format!(
                "{}: the store wrote {written} bytes for {} objects, not between {least} and {most}: frame size changed?",
                shape.name, shape.objects
            ));
        }
        let files = segment_files(dir)?;
        let [file] = files.as_slice() else { return Err(format!("{}: expected one segment file, found {files:?}", dir.display())) };
        segments.push((file.clone(), written));
    }
    Ok(segments)
}

fn segment_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("listing {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("seg-") && n.ends_with(".log")))
        .collect();
    files.sort();
    Ok(files)
}

/// Each core reopens its store and runs `queue_depth` tasks getting random preloaded objects.
fn get_run(plan: &Plan, shape: &GetShape, dirs: &[PathBuf]) -> Result<StoreRun, String> {
    let config = plan.runtime(Some(shape.arena()))?;
    let results = engine::run(config, |core: engine::Core<()>| {
        let store_config = shape.store_config(&dirs[core.env.core()]);
        let (objects, object_bytes, queue_depth, duration) = (shape.objects, shape.object_bytes, shape.queue_depth, plan.duration);
        async move {
            let (store, _) = Store::open(core.env.clone(), store_config).await.map_err(|e| e.to_string())?;
            if store.objects() != objects {
                return Err(format!("reopened store holds {} objects, not {objects}", store.objects()));
            }
            let seed = core.env.core() as u64;
            let s = store.clone();
            let get = move |task: usize, n: u64| {
                let s = s.clone();
                let (v, _) = engine::rng::splitmix64(seed << 56 ^ (task as u64) << 40 ^ n);
                let i = ((v as u128 * objects as u128) >> 64) as u64;
                async move { get_checked(&s, i, object_bytes).await }
            };
            let before = store.stats();
            let timed = timed(queue_depth, duration, get).await?;
            let commits = commits(before, store.stats());
            close(&store).await?;
            Ok(CoreRun { timed, commits })
        }
    })
    .map_err(|e| e.to_string())?;
    merge(results, shape.object_bytes)
}

// ---- Durable puts beside the background compactor ----

/// The compaction workload's name: 16 writers of 4 KiB puts, with the compactor running.
const COMPACT_NAME: &str = "4k-put-w16-compacting";
const COMPACT_WRITERS: usize = 16;
/// Small segments, so that a run of a few seconds compacts many of them.
const COMPACT_SEGMENT_BYTES: u64 = 8 << 20;
const COMPACT_BATCH_BYTES: usize = 1 << 20;
/// The compactor's floor rate (segment bytes read, and bytes relocated, a second).
const COMPACTOR_BYTES_PER_S: u64 = 16 << 20;
/// Relocations write at most this share of the foreground's write rate (catch-up doubles it).
const COMPACTOR_RELOCATE_SHARE: f64 = 0.25;
/// The compactor takes the oldest segment once at most this much of it is live.
const COMPACTOR_MAX_LIVE_RATIO: f64 = 0.5;
const COMPACTOR_IDLE: Duration = Duration::from_millis(1);
/// The compactor catches up (takes fuller segments, reads faster) past this log / live ratio.
const COMPACTOR_SPACE_AMP_MAX: f64 = 2.0;
/// While catching up it reads this many times the log's growth rate.
const COMPACTOR_CATCH_UP: f64 = 2.0;
/// Goal (store issue): put p99 with the compactor running at most this times the p99 without.
const COMPACT_P99_RATIO_GOAL: f64 = 1.5;
const _: () = assert!(COMPACT_SEGMENT_BYTES.is_multiple_of(COMPACT_BATCH_BYTES as u64));
const _: () = assert!(COMPACT_BATCH_BYTES.is_multiple_of(SECTOR_SIZE));

/// One round of the compaction workload on one core.
struct CompactRun {
    run: StoreRun,
    space_start: Space,
    space_end: Space,
    reports: Vec<CompactReport>,
    relocations_voided: u64,
}

fn compact_store_config(dir: &Path) -> StoreConfig {
    StoreConfig { dir: dir.to_path_buf(), segment_bytes: COMPACT_SEGMENT_BYTES, batch_bytes: COMPACT_BATCH_BYTES }
}

/// On one core (one store is one core's shard; compaction runs on the core that owns it).
fn compact_runtime() -> Result<RuntimeConfig, String> {
    RuntimeConfig::cores(1).map_err(|e| e.to_string())
}

fn space_amplification(s: &Space) -> f64 {
    s.disk_bytes as f64 / s.live_bytes.max(1) as f64
}

/// Preloads the objects, then overwrites a random half of them (each exactly once), so about
/// half of every preloaded segment is dead. Returns the space the store then holds.
fn compact_setup(plan: &Plan, dir: &Path) -> Result<Space, String> {
    remove_dirs(&[dir.to_path_buf()])?;
    let objects = plan.compact_objects;
    let results = engine::run(compact_runtime()?, |core: engine::Core<()>| {
        let config = compact_store_config(dir);
        async move {
            let (store, _) = Store::open(core.env.clone(), config).await.map_err(|e| e.to_string())?;
            fill(&store, 0, objects, SMALL_OBJECT_BYTES, PRELOAD_WRITERS).await?;
            // A seeded Fisher-Yates shuffle: the first half of it is overwritten.
            let mut order: Vec<u64> = (0..objects).collect();
            let mut state = 0xC0_4AC7;
            for i in (1..order.len()).rev() {
                let (v, next) = engine::rng::splitmix64(state);
                state = next;
                order.swap(i, ((v as u128 * (i as u128 + 1)) >> 64) as usize);
            }
            order.truncate(order.len() / 2);
            overwrite(&store, order.into(), PRELOAD_WRITERS).await?;
            let space = store.space();
            close(&store).await?;
            Ok::<Space, String>(space)
        }
    })
    .map_err(|e| e.to_string())?;
    results.into_iter().next().ok_or("no core ran the preload")?
}

/// Puts preloaded objects `keys` again with `writers` concurrent tasks.
async fn overwrite(store: &Store<LinuxEnv>, keys: Rc<[u64]>, writers: usize) -> Result<(), String> {
    let handles: Vec<_> = (0..writers)
        .map(|first| {
            let (store, keys) = (store.clone(), keys.clone());
            engine::spawn(async move {
                let data = vec![0x5Au8; SMALL_OBJECT_BYTES];
                for &i in keys.iter().skip(first).step_by(writers) {
                    store.put(BUCKET, &key(0, i), &[], &data).await.map_err(|e| format!("overwrite {i}: {e}"))?;
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    for h in handles {
        h.await?;
    }
    Ok(())
}

/// Reopens the store and runs the writers, each overwriting random preloaded objects, with or
/// without the compactor. The compactor stops when the store closes at the end of the round
/// (a pass cut short there leaves its segment, and is not in the reports).
fn compact_round(plan: &Plan, dir: &Path, round: usize, compacting: bool) -> Result<CompactRun, String> {
    let (objects, duration) = (plan.compact_objects, plan.duration);
    let results = engine::run(compact_runtime()?, |core: engine::Core<()>| {
        let config = compact_store_config(dir);
        async move {
            let (store, _) = Store::open(core.env.clone(), config).await.map_err(|e| e.to_string())?;
            let space_start = store.space();
            let before = store.stats();
            let compactor = compacting.then(|| store.spawn_compactor(CompactionPolicy {
                    max_live_ratio: COMPACTOR_MAX_LIVE_RATIO,
                    bytes_per_s: COMPACTOR_BYTES_PER_S,
                    relocate_share: COMPACTOR_RELOCATE_SHARE,
                    space_amp_max: COMPACTOR_SPACE_AMP_MAX,
                    catch_up: COMPACTOR_CATCH_UP,
                    idle: COMPACTOR_IDLE,
                    ..CompactionPolicy::default()
                }));
            let data: Rc<[u8]> = vec![0x5Au8; SMALL_OBJECT_BYTES].into();
            let s = store.clone();
            let seed = (round as u64) << 1 | compacting as u64;
            let put = move |writer: usize, n: u64| {
                let (s, data) = (s.clone(), data.clone());
                let (v, _) = engine::rng::splitmix64(seed << 56 ^ (writer as u64) << 40 ^ n);
                let i = ((v as u128 * objects as u128) >> 64) as u64;
                async move { s.put(BUCKET, &key(0, i), &[], &data).await.map(drop).map_err(|e| format!("put {i}: {e}")) }
            };
            let timed = timed(COMPACT_WRITERS, duration, put).await?;
            let after = store.stats();
            let space_end = store.space();
            close(&store).await?;
            let reports = match compactor {
                Some(h) => h.await,
                None => Vec::new(),
            };
            let run = CompactRun {
                run: merge(vec![Ok(CoreRun { timed, commits: commits(before, after) })], SMALL_OBJECT_BYTES)?,
                space_start,
                space_end,
                reports,
                relocations_voided: after.relocations_voided - before.relocations_voided,
            };
            Ok::<CompactRun, String>(run)
        }
    })
    .map_err(|e| e.to_string())?;
    results.into_iter().next().ok_or("no core ran the round")?
}

/// Baseline and compacting rounds alternate on the same store (each round adds to its log, so
/// the two see the same drift).
fn compact_figures(plan: &Plan) -> Result<CompactFigures, String> {
    let dir = plan.dir.join("compact").join("core-0");
    let space_setup = compact_setup(plan, &dir)?;
    let (mut baselines, mut compactings) = (Vec::new(), Vec::new());
    for round in 0..plan.rounds {
        baselines.push(compact_round(plan, &dir, round, false)?);
        compactings.push(compact_round(plan, &dir, round, true)?);
    }
    remove_dirs(&[dir])?;
    let space_end = compactings.last().expect("at least one round").space_end;
    let reports: Vec<CompactReport> = compactings.iter().flat_map(|r| r.reports.iter().copied()).collect();
    let p99 = |r: &CompactRun| r.run.measured.latency_ns_p99 as f64;
    let ops = |r: &CompactRun| r.run.measured.ops_per_s;
    Ok(CompactFigures {
        objects: plan.compact_objects,
        p99_rounds: [rounds(&baselines, p99), rounds(&compactings, p99)],
        ops_rounds: [rounds(&baselines, ops), rounds(&compactings, ops)],
        space_amp_rounds: compactings.iter().map(|r| [space_amplification(&r.space_start), space_amplification(&r.space_end)]).collect(),
        relocations_voided: compactings.iter().map(|r| r.relocations_voided).sum(),
        // The goal is on p99: each side reports its median-p99 round.
        baseline: median(baselines, p99),
        compacting: median(compactings, p99),
        duration: plan.duration,
        space_setup,
        space_end,
        reports,
    })
}

struct CompactFigures {
    objects: u64,
    baseline: CompactRun,
    compacting: CompactRun,
    duration: Duration,
    /// [baseline, compacting], in run order.
    p99_rounds: [Vec<f64>; 2],
    ops_rounds: [Vec<f64>; 2],
    /// Each compacting round's space amplification at its start and end.
    space_amp_rounds: Vec<[f64; 2]>,
    /// After the preload and the overwrite of half of it, before any compaction.
    space_setup: Space,
    /// At the end of the last compacting round.
    space_end: Space,
    /// Every finished compaction of every compacting round.
    reports: Vec<CompactReport>,
    relocations_voided: u64,
}

impl CompactFigures {
    /// How fast a round's segments grew: the writers' log minus what compaction freed.
    fn disk_growth_bytes_per_s(&self, r: &CompactRun) -> f64 {
        (r.space_end.disk_bytes as f64 - r.space_start.disk_bytes as f64) / self.duration.as_secs_f64()
    }

    fn p99_ratio(&self) -> f64 {
        self.compacting.run.measured.latency_ns_p99 as f64 / self.baseline.run.measured.latency_ns_p99.max(1) as f64
    }

    fn ops_ratio(&self) -> f64 {
        self.compacting.run.measured.ops_per_s / self.baseline.run.measured.ops_per_s
    }

    fn bytes_relocated(&self) -> u64 {
        self.reports.iter().map(|r| r.bytes_relocated).sum()
    }

    fn bytes_reclaimed(&self) -> u64 {
        self.reports.iter().map(|r| r.bytes_reclaimed).sum()
    }

    /// Bytes compaction rewrote per byte it freed; none when nothing was compacted.
    fn write_amplification(&self) -> Option<f64> {
        (self.bytes_reclaimed() > 0).then(|| self.bytes_relocated() as f64 / self.bytes_reclaimed() as f64)
    }

    fn print_json(&self) {
        let (b, c) = (&self.baseline.run.measured, &self.compacting.run.measured);
        let mut line = json!({
            "workload": COMPACT_NAME,
            "metric": "p99_ratio",
            "store": self.p99_ratio(),
            "fio": null,
            "ratio": null,
            "goal_max": COMPACT_P99_RATIO_GOAL,
            "meets_goal": self.p99_ratio() <= COMPACT_P99_RATIO_GOAL,
            "p99_ratio": self.p99_ratio(),
            "ops_ratio": self.ops_ratio(),
            "baseline_ops_per_s": b.ops_per_s,
            "compacting_ops_per_s": c.ops_per_s,
            "baseline_latency_ns_p50": b.latency_ns_p50,
            "baseline_latency_ns_p99": b.latency_ns_p99,
            "compacting_latency_ns_p50": c.latency_ns_p50,
            "compacting_latency_ns_p99": c.latency_ns_p99,
            "baseline_records_per_sync": self.baseline.run.records_per_sync,
            "compacting_records_per_sync": self.compacting.run.records_per_sync,
            "baseline_disk_growth_bytes_per_s": self.disk_growth_bytes_per_s(&self.baseline),
            "compacting_disk_growth_bytes_per_s": self.disk_growth_bytes_per_s(&self.compacting),
        });
        // Two literals: one would pass serde_json's macro recursion limit.
        let space = json!({
            "space_amp_before": space_amplification(&self.space_setup),
            "space_amp_after": space_amplification(&self.space_end),
            "disk_bytes_before": self.space_setup.disk_bytes,
            "live_bytes_before": self.space_setup.live_bytes,
            "disk_bytes_after": self.space_end.disk_bytes,
            "live_bytes_after": self.space_end.live_bytes,
            "space_amp_rounds": self.space_amp_rounds,
            "compactions": self.reports.len(),
            "bytes_relocated": self.bytes_relocated(),
            "bytes_reclaimed": self.bytes_reclaimed(),
            "compaction_write_amp": self.write_amplification(),
            "relocations_voided": self.relocations_voided,
            "baseline_p99_rounds": self.p99_rounds[0],
            "compacting_p99_rounds": self.p99_rounds[1],
            "baseline_ops_rounds": self.ops_rounds[0],
            "compacting_ops_rounds": self.ops_rounds[1],
            "writers_per_core": COMPACT_WRITERS,
            "cores": 1,
            "objects": self.objects,
            "object_bytes": SMALL_OBJECT_BYTES,
            "segment_bytes": COMPACT_SEGMENT_BYTES,
            "batch_bytes": COMPACT_BATCH_BYTES,
            "compactor_bytes_per_s": COMPACTOR_BYTES_PER_S,
            "compactor_max_live_ratio": COMPACTOR_MAX_LIVE_RATIO,
        });
        if let (Some(line), Some(space)) = (line.as_object_mut(), space.as_object()) {
            line.extend(space.clone());
        }
        println!("{line}");
    }

    fn print_table(&self) {
        let (b, c) = (&self.baseline.run.measured, &self.compacting.run.measured);
        let us = |ns: u64| ns as f64 / 1e3;
        let (relocated_mib, reclaimed_mib) = (self.bytes_relocated() >> 20, self.bytes_reclaimed() >> 20);
        let write_amp = self.write_amplification().map_or("-".into(), |w| format!("{w:.3} ({relocated_mib} / {reclaimed_mib} MiB)"));
        println!();
        println!(
            "| workload | ops/s baseline | ops/s compacting | ops ratio | p99 µs baseline | p99 µs compacting | p99 ratio | goal | space amp before → after | compactions | write amp (relocated/reclaimed) | relocations voided |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        println!(
            "| {COMPACT_NAME} | {:.0} | {:.0} | {:.3} | {:.1} | {:.1} | {:.3} | ≤ {COMPACT_P99_RATIO_GOAL} | {:.2} → {:.2} | {} | {} | {} |",
            b.ops_per_s,
            c.ops_per_s,
            self.ops_ratio(),
            us(b.latency_ns_p99),
            us(c.latency_ns_p99),
            self.p99_ratio(),
            space_amplification(&self.space_setup),
            space_amplification(&self.space_end),
            self.reports.len(),
            write_amp,
            self.relocations_voided,
        );
    }
}

// ---- Index memory and start-up ----

struct IndexFigures {
    objects: u64,
    rss_kib_before: u64,
    rss_kib_after: u64,
    /// malloc's view at the same two points: what the process holds live, and free in its heap.
    heap_before: machine::Heap,
    heap_after: machine::Heap,
    /// The slowest core's fill of its `objects` (durable puts of empty objects, full batches).
    fill_ns: u64,
}

impl IndexFigures {
    fn fill_objects_per_s(&self) -> f64 {
        self.objects as f64 / (self.fill_ns.max(1) as f64 / 1e9)
    }

    fn resident_bytes_per_object(&self) -> f64 {
        (self.rss_kib_after.saturating_sub(self.rss_kib_before) * 1024) as f64 / self.objects as f64
    }

    fn beyond_key(&self) -> f64 {
        self.resident_bytes_per_object() - KEY_BYTES as f64
    }

    fn print_json(&self) {
        let line = json!({
            "workload": "index-memory",
            "metric": "bytes_per_object_beyond_key",
            "store": self.beyond_key(),
            "fio": null,
            "ratio": null,
            "goal_max": INDEX_BYTES_PER_OBJECT_GOAL,
            "meets_goal": self.beyond_key() <= INDEX_BYTES_PER_OBJECT_GOAL,
            "resident_bytes_per_object": self.resident_bytes_per_object(),
            "key_bytes": KEY_BYTES,
            "objects": self.objects,
            "rss_kib_before": self.rss_kib_before,
            "rss_kib_after": self.rss_kib_after,
            "heap_live_bytes_per_object": self.heap_after.live_bytes.saturating_sub(self.heap_before.live_bytes) as f64 / self.objects as f64,
            "heap_free_bytes_per_object": self.heap_after.free_bytes.saturating_sub(self.heap_before.free_bytes) as f64 / self.objects as f64,
            "fill_objects_per_s": self.fill_objects_per_s(),
        });
        println!("{line}");
    }

    fn print_line(&self) {
        let verdict = if self.beyond_key() <= INDEX_BYTES_PER_OBJECT_GOAL { "met" } else { "not met" };
        println!(
            "index memory: {:.1} bytes/object beyond the {KEY_BYTES}-byte key ({:.1} resident bytes/object over {} objects, of which malloc holds {:.1} live and {:.1} as free fragments; goal <= {INDEX_BYTES_PER_OBJECT_GOAL}: {verdict})",
            self.beyond_key(),
            self.resident_bytes_per_object(),
            self.objects,
            self.heap_after.live_bytes.saturating_sub(self.heap_before.live_bytes) as f64 / self.objects as f64,
            self.heap_after.free_bytes.saturating_sub(self.heap_before.free_bytes) as f64 / self.objects as f64,
        );
    }
}

/// How a start-up found the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StartUp {
    /// The process ended without `Store::close`: the whole log is replayed.
    AfterCrash,
    /// After `Store::close` (which writes an index checkpoint, if the store has them).
    AfterClose,
}

impl StartUp {
    fn name(self) -> &'static str {
        match self {
            StartUp::AfterCrash => "startup-after-crash",
            StartUp::AfterClose => "startup-after-close",
        }
    }
}

struct RecoveryFigures {
    kind: StartUp,
    objects: u64,
    /// The slowest core's `Store::open`.
    open_ns: u64,
    log_bytes: u64,
    /// Core 0's recovery report, as the store prints it.
    report: String,
}

impl RecoveryFigures {
    fn objects_per_s(&self) -> f64 {
        self.objects as f64 / (self.open_ns.max(1) as f64 / 1e9)
    }

    fn seconds_for_target(&self) -> f64 {
        RECOVERY_OBJECTS_TARGET / self.objects_per_s()
    }

    fn print_json(&self) {
        let line = json!({
            "workload": self.kind.name(),
            "metric": "objects_per_s",
            "store": self.objects_per_s(),
            "fio": null,
            "ratio": null,
            "objects": self.objects,
            "open_ns": self.open_ns,
            "seconds_for_10m_objects": self.seconds_for_target(),
            "log_bytes": self.log_bytes,
            "batch_bytes": INDEX_BATCH_BYTES,
            "recovery_report": self.report,
        });
        println!("{line}");
    }

    fn print_line(&self) {
        let how = match self.kind {
            StartUp::AfterCrash => "after a crash (no close)",
            StartUp::AfterClose => "after close",
        };
        println!(
            "start-up {how}: Store::open recovered {} objects ({} MiB of log) in {:.3} s: {:.0} objects/s, ~{:.1} s for 10 million",
            self.objects,
            self.log_bytes >> 20,
            self.open_ns as f64 / 1e9,
            self.objects_per_s(),
            self.seconds_for_target()
        );
    }
}

fn index_store_config(dir: &Path) -> StoreConfig {
    StoreConfig { dir: dir.to_path_buf(), segment_bytes: SEGMENT_BYTES_DEFAULT, batch_bytes: INDEX_BATCH_BYTES }
}

fn index_arena() -> ArenaConfig {
    ArenaConfig { classes: vec![ClassConfig { size_bytes: INDEX_BATCH_BYTES, count: BATCH_BUFFERS }] }
}

/// Fills a store per core with empty objects, measuring resident memory before and after, and
/// ends without closing it (a crash: every put was acknowledged, so all of it is durable). Then
/// times `Store::open` twice: replaying that log, and again after a clean close.
/// Refuses to start a fill the filesystem cannot hold, naming the flag that makes it smaller
/// (a fill that ran into ENOSPC would measure nothing after many seconds of writing).
fn check_room_for_index_log(plan: &Plan) -> Result<(), String> {
    let needed = index_log_bytes(plan.index_objects, plan.cores);
    let free = machine::free_bytes(&plan.dir)?;
    if free < needed {
        return Err(format!(
            "index: {} objects per core need about {} GiB in {}, which has {} GiB free: pass a smaller --index-objects",
            plan.index_objects,
            needed >> 30,
            plan.dir.display(),
            free >> 30
        ));
    }
    Ok(())
}

/// Disk the index figures of `objects` empty objects per core need (`--only index`).
pub fn index_log_bytes(objects: u64, cores: usize) -> u64 {
    let frames = (objects + INDEX_WARM_UP_OBJECTS) * cores as u64;
    // Each empty object is one frame, packed (twice that covers the padding at batch ends);
    // segments are preallocated whole, so allow one more each.
    let raft = INDEX_RAFT_ENTRIES * frame_bytes(1024) as u64 * cores as u64;
    2 * frames * frame_bytes(0) as u64 + raft + (cores as u64 + 1) * SEGMENT_BYTES_DEFAULT
}

fn index_and_recovery(plan: &Plan) -> Result<(IndexFigures, [RecoveryFigures; 2]), String> {
    let dirs = plan.core_dirs("index");
    remove_dirs(&dirs)?;
    check_room_for_index_log(plan)?;
    let (index, log_bytes) = index_fill(plan, &dirs)?;
    let after_crash = index_reopen(plan, &dirs, log_bytes, StartUp::AfterCrash)?;
    let after_close = index_reopen(plan, &dirs, log_bytes, StartUp::AfterClose)?;
    remove_dirs(&dirs)?;
    Ok((index, [after_crash, after_close]))
}

fn index_fill(plan: &Plan, dirs: &[PathBuf]) -> Result<(IndexFigures, u64), String> {
    let barrier = Barrier::new(plan.cores);
    let objects = plan.index_objects;
    let results = engine::run(plan.runtime(Some(index_arena()))?, |core: engine::Core<()>| {
        let (barrier, config, first) = (&barrier, index_store_config(&dirs[core.env.core()]), core.env.core() == 0);
        // Every core blocks its thread at the barrier only while its store is idle (nothing in
        // flight), so that core 0 reads the process's memory with every core at the same point.
        let rss_at_barrier = move || {
            barrier.wait();
            let rss = if first { (machine::rss_kib(), machine::heap()) } else { Default::default() };
            barrier.wait();
            rss
        };
        async move {
            let (store, _) = Store::open(core.env.clone(), config).await.map_err(|e| e.to_string())?;
            // A warm-up with the same concurrency leaves the memory of its tasks, batches and
            // wakers free in the allocator, so the measured growth is the index's alone.
            fill(&store, 1, INDEX_WARM_UP_OBJECTS, 0, BATCH_RECORDS_MAX).await?;
            let before = rss_at_barrier();
            let fill_start = engine::time::now();
            fill(&store, 0, objects, 0, BATCH_RECORDS_MAX).await?;
            let fill_ns = engine::time::now().ns - fill_start.ns;
            let after = rss_at_barrier();
            raft_log(&store).await?;
            // No close: the runtime ends with the store open, as a crash would.
            Ok::<_, String>((before, after, store.stats().bytes_written, fill_ns))
        }
    })
    .map_err(|e| e.to_string())?;
    let mut figures = IndexFigures {
        objects: objects * plan.cores as u64,
        rss_kib_before: 0,
        rss_kib_after: 0,
        heap_before: Default::default(),
        heap_after: Default::default(),
        fill_ns: 0,
    };
    let mut log_bytes = 0;
    for (core, r) in results.into_iter().enumerate() {
        let (before, after, written, fill_ns) = r?;
        figures.fill_ns = figures.fill_ns.max(fill_ns);
        if core == 0 {
            ((figures.rss_kib_before, figures.heap_before), (figures.rss_kib_after, figures.heap_after)) = (before, after);
        }
        log_bytes += written;
    }
    Ok((figures, log_bytes))
}

/// `INDEX_RAFT_ENTRIES` entries of group `INDEX_RAFT_GROUP`, a hard state, and a compaction of
/// the first half (after the memory was measured: the figures are the object index's).
async fn raft_log(store: &Store<LinuxEnv>) -> Result<(), String> {
    let payload = vec![0x5Au8; 1024];
    for first in (1..=INDEX_RAFT_ENTRIES).step_by(INDEX_RAFT_ENTRIES_PER_CALL as usize) {
        let records: Vec<RaftRecord<'_>> = (first..first + INDEX_RAFT_ENTRIES_PER_CALL)
            .map(|index| RaftRecord::Entry { group: INDEX_RAFT_GROUP, term: 1, index, meta: b"n", data: &payload })
            .collect();
        store.append_raft(&records).await.map_err(|e| format!("raft entries: {e}"))?;
    }
    let state = RaftHardState { term: 1, vote: 1, commit: INDEX_RAFT_ENTRIES };
    let half = INDEX_RAFT_ENTRIES / 2;
    let compact = RaftRecord::Compact { group: INDEX_RAFT_GROUP, index: half, term: 1, meta: b"", data: b"" };
    store.append_raft(&[RaftRecord::HardState { group: INDEX_RAFT_GROUP, state }, compact]).await.map_err(|e| format!("raft: {e}"))?;
    Ok(())
}

/// Times `Store::open` on every core, checks every object and Raft entry came back, then
/// closes the store.
fn index_reopen(plan: &Plan, dirs: &[PathBuf], log_bytes: u64, kind: StartUp) -> Result<RecoveryFigures, String> {
    let expected = plan.index_objects + INDEX_WARM_UP_OBJECTS;
    let results = engine::run(plan.runtime(Some(index_arena()))?, |core: engine::Core<()>| {
        let config = index_store_config(&dirs[core.env.core()]);
        async move {
            let start = engine::time::now();
            let (store, report) = Store::open(core.env.clone(), config).await.map_err(|e| e.to_string())?;
            let open_ns = engine::time::now().ns - start.ns;
            if store.objects() != expected {
                return Err(format!("recovered {} objects, not {expected} ({report:?})", store.objects()));
            }
            let entries = store.raft_group(INDEX_RAFT_GROUP).map_or(0, |g| g.entries.len() as u64);
            if entries != INDEX_RAFT_ENTRIES / 2 {
                return Err(format!("recovered {entries} Raft entries, not {} ({report:?})", INDEX_RAFT_ENTRIES / 2));
            }
            if kind == StartUp::AfterClose && report.checkpoint_raft_groups != Some(1) {
                return Err(format!("start-up after close did not take the Raft state from the checkpoint ({report:?})"));
            }
            close(&store).await?;
            Ok::<_, String>((open_ns, format!("{report:?}")))
        }
    })
    .map_err(|e| e.to_string())?;
    let mut figures = RecoveryFigures { kind, objects: expected * plan.cores as u64, open_ns: 0, log_bytes, report: String::new() };
    for (core, r) in results.into_iter().enumerate() {
        let (open_ns, report) = r?;
        figures.open_ns = figures.open_ns.max(open_ns);
        if core == 0 {
            figures.report = report;
        }
    }
    Ok(figures)
}

// ---- Report ----

struct Row {
    name: String,
    /// MiB/s (1 MiB gets) rather than operations per second.
    bytes_metric: bool,
    store: Measured,
    fio: Measured,
    /// fio reading whole frames, as the store does (gets only).
    fio_frame: Option<Measured>,
    /// False for the fdatasync reference: fio's write latency leaves out the fdatasync that a
    /// put's latency includes.
    fio_latency_comparable: bool,
    /// The ratio store/fio the store issue asks for.
    goal: Option<f64>,
    records_per_sync: Option<f64>,
    /// The busiest core's CPU time over the run's time: near 1, the store's core is the limit.
    core_busy: f64,
    extra: serde_json::Value,
}

impl Row {
    fn metric(&self, m: &Measured) -> f64 {
        if self.bytes_metric { m.bytes_per_s } else { m.ops_per_s }
    }

    fn ratio(&self) -> f64 {
        self.metric(&self.store) / self.metric(&self.fio)
    }

    /// Objects per second over fio's frame-sized reads per second.
    fn ratio_vs_frame_io(&self) -> Option<f64> {
        self.fio_frame.as_ref().map(|f| self.store.ops_per_s / f.ops_per_s)
    }

    fn show(&self, m: &Measured) -> String {
        if self.bytes_metric { format!("{:.0}", m.bytes_per_s / (1 << 20) as f64) } else { format!("{:.0}", m.ops_per_s) }
    }

    fn print_json(&self) {
        let fio_latency = |ns: u64| self.fio_latency_comparable.then_some(ns);
        let mut line = json!({
            "workload": self.name,
            "metric": if self.bytes_metric { "bytes_per_s" } else { "ops_per_s" },
            "store": self.metric(&self.store),
            "fio": self.metric(&self.fio),
            "ratio": self.ratio(),
            "goal_ratio": self.goal,
            "meets_goal": self.goal.map(|g| self.ratio() >= g),
            "store_latency_ns_p50": self.store.latency_ns_p50,
            "store_latency_ns_p99": self.store.latency_ns_p99,
            "fio_latency_ns_p50": fio_latency(self.fio.latency_ns_p50),
            "fio_latency_ns_p99": fio_latency(self.fio.latency_ns_p99),
            "records_per_sync": self.records_per_sync,
            "store_core_busy": self.core_busy,
            "fio_frame_ops_per_s": self.fio_frame.as_ref().map(|f| f.ops_per_s),
            "ratio_vs_frame_io": self.ratio_vs_frame_io(),
        });
        if let (Some(line), Some(extra)) = (line.as_object_mut(), self.extra.as_object()) {
            line.extend(extra.clone());
        }
        println!("{line}");
    }
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "| workload | unit | store | fio | store/fio | goal | store/fio at frame size | p50 µs store | p99 µs store | p99 µs fio | records/fdatasync | store core busy |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let fio_p99 = if r.fio_latency_comparable { format!("{:.1}", r.fio.latency_ns_p99 as f64 / 1e3) } else { "-".into() };
        println!(
            "| {} | {} | {} | {} | {:.3} | {} | {} | {:.1} | {:.1} | {} | {} | {:.2} |",
            r.name,
            if r.bytes_metric { "MiB/s" } else { "ops/s" },
            r.show(&r.store),
            r.show(&r.fio),
            r.ratio(),
            r.goal.map_or("-".into(), |g| format!("≥ {g}")),
            r.ratio_vs_frame_io().map_or("-".into(), |x| format!("{x:.3}")),
            r.store.latency_ns_p50 as f64 / 1e3,
            r.store.latency_ns_p99 as f64 / 1e3,
            fio_p99,
            r.records_per_sync.map_or("-".into(), |n| format!("{n:.1}")),
            r.core_busy,
        );
    }
}

/// Each round's headline metric, in run order: how much the machine drifted.
fn rounds<T>(runs: &[T], metric: impl Fn(&T) -> f64) -> Vec<f64> {
    runs.iter().map(metric).collect()
}

/// The run whose headline metric is the median (the upper one of an even count).
fn median<T>(mut runs: Vec<T>, metric: impl Fn(&T) -> f64) -> T {
    assert!(!runs.is_empty());
    runs.sort_by(|a, b| metric(a).total_cmp(&metric(b)));
    runs.swap_remove(runs.len() / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sixteen_hex_digits_in_order() {
        let check = |tag: u16, n: u64, expected: &str| assert_eq!(&key(tag, n), expected.as_bytes(), "key({tag}, {n})");
        check(0, 0, "0000000000000000");
        check(0, 255, "00000000000000ff");
        check(0x00ff, 1, "00ff000000000001");
        check(0xffff, (1 << 48) - 1, "ffffffffffffffff");
        assert!(key(0, 9) < key(0, 10), "keys sort as their numbers");
    }

    #[test]
    fn arena_holds_the_store_buffers_and_one_read_per_get() {
        let plan = Plan::new(&StoreArgs {
            dir: "x".into(),
            cores: 1,
            seconds: None,
            rounds: None,
            small_objects: None,
            large_objects: None,
            index_objects: None,
            compact_objects: None,
            quick: true,
            only: None,
            writes_in_flight: 2,
        })
        .expect("plan");
        // Batch buffers: one filling, two in flight, one for recovery or the checkpoint at close.
        let small = GetShape::small(&plan).arena();
        assert_eq!(small.classes, [ClassConfig { size_bytes: 8 << 10, count: 64 }, ClassConfig { size_bytes: 1 << 20, count: 4 }]);
        let large = GetShape::large(&plan).arena();
        assert_eq!(large.classes, [ClassConfig { size_bytes: (1 << 20) + 4096, count: 8 }, ClassConfig { size_bytes: 2 << 20, count: 4 }]);
        assert!(small.validate().is_ok() && large.validate().is_ok());
    }
}
