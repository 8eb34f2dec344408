//! The workloads every system in the engine benchmark runs, and what is measured of each.
//!
//! Each of `cores` workers (a pinned thread, a fio job) owns the region
//! `[core * region_bytes, (core + 1) * region_bytes)` of one shared, preallocated and fully
//! written file, and keeps `queue_depth` operations in flight in it for `seconds`.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    RandRead,
    RandWrite,
    SeqRead,
    SeqWrite,
}

impl Pattern {
    pub fn is_read(self) -> bool {
        matches!(self, Pattern::RandRead | Pattern::SeqRead)
    }
    pub fn is_random(self) -> bool {
        matches!(self, Pattern::RandRead | Pattern::RandWrite)
    }
    /// fio's `rw=` value.
    pub fn fio_rw(self) -> &'static str {
        match self {
            Pattern::RandRead => "randread",
            Pattern::RandWrite => "randwrite",
            Pattern::SeqRead => "read",
            Pattern::SeqWrite => "write",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Workload {
    pub name: &'static str,
    pub pattern: Pattern,
    pub block_bytes: usize,
    /// Operations in flight per worker.
    pub queue_depth: usize,
}

/// Where and how long every system runs.
#[derive(Clone, Debug)]
pub struct Setup {
    pub file: PathBuf,
    pub cores: usize,
    /// Bytes of the file each worker owns (a multiple of 1 MiB).
    pub region_bytes: u64,
    pub duration: Duration,
}

/// What one system achieved on one workload.
#[derive(Clone, Debug, Default)]
pub struct Measured {
    pub ops_per_s: f64,
    pub bytes_per_s: f64,
    /// Completion latency of one operation, submission to completion, in ns.
    pub latency_ns_p50: u64,
    pub latency_ns_p99: u64,
}

pub fn workloads() -> Vec<Workload> {
    vec![
        Workload { name: "4k-randread-qd1", pattern: Pattern::RandRead, block_bytes: 4096, queue_depth: 1 },
        Workload { name: "4k-randread-qd64", pattern: Pattern::RandRead, block_bytes: 4096, queue_depth: 64 },
        Workload { name: "4k-randwrite-qd64", pattern: Pattern::RandWrite, block_bytes: 4096, queue_depth: 64 },
        Workload { name: "1m-seqread-qd8", pattern: Pattern::SeqRead, block_bytes: 1 << 20, queue_depth: 8 },
        Workload { name: "1m-seqwrite-qd8", pattern: Pattern::SeqWrite, block_bytes: 1 << 20, queue_depth: 8 },
    ]
}

/// A deterministic per-worker offset generator shared by our engine and the glommio peer, so
/// both touch the same kind of addresses (fio uses its own random generator).
pub struct Offsets {
    state: u64,
    region_start: u64,
    blocks: u64,
    block_bytes: u64,
    next_seq: u64,
    random: bool,
}

impl Offsets {
    pub fn new(setup: &Setup, w: &Workload, worker: usize, stream: u64) -> Offsets {
        let blocks = setup.region_bytes / w.block_bytes as u64;
        assert!(blocks > 0);
        Offsets {
            state: 0x9E37_79B9_7F4A_7C15 ^ ((worker as u64) << 32) ^ stream,
            region_start: worker as u64 * setup.region_bytes,
            blocks,
            block_bytes: w.block_bytes as u64,
            // Sequential streams of one worker start spread over its region.
            next_seq: stream * (blocks / 64).max(1) % blocks,
            random: w.pattern.is_random(),
        }
    }

    pub fn next_offset(&mut self) -> u64 {
        let block = if self.random {
            let (v, s) = engine::rng::splitmix64(self.state);
            self.state = s;
            ((v as u128 * self.blocks as u128) >> 64) as u64
        } else {
            let b = self.next_seq;
            self.next_seq = (self.next_seq + 1) % self.blocks;
            b
        };
        self.region_start + block * self.block_bytes
    }
}
