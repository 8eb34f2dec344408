//! A workload written once against `Env`, run by the simulator over many seeds and by the real
//! runtime: timers of random lengths, and an append-only file of checksummed blocks with a model
//! of which writes were acknowledged durable. Checkers stand beside it, not inside it.

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use engine::rng::Prng;
use engine::{Env, File, OpenMode, SECTOR_SIZE, Storage};
use xxhash_rust::xxh3::xxh3_64;

pub const BLOCK: usize = SECTOR_SIZE;

/// A block's bytes: header (checksum, block, nonce) then a pattern derived from them.
pub fn block_bytes(block: u64, nonce: u64, out: &mut [u8]) {
    assert_eq!(out.len(), BLOCK);
    let mut p = Prng::new(block ^ nonce.rotate_left(17));
    for chunk in out[24..].chunks_mut(8) {
        let v = p.next_u64().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    out[8..16].copy_from_slice(&block.to_le_bytes());
    out[16..24].copy_from_slice(&nonce.to_le_bytes());
    let sum = xxh3_64(&out[8..]);
    out[..8].copy_from_slice(&sum.to_le_bytes());
}

/// What a read of a block shows.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    Valid { block: u64, nonce: u64 },
    Corrupt,
}

pub fn decode(bytes: &[u8]) -> Seen {
    let sum = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    if bytes.len() != BLOCK || xxh3_64(&bytes[8..]) != sum {
        return Seen::Corrupt;
    }
    let block = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let nonce = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    Seen::Valid { block, nonce }
}

#[derive(Default)]
pub struct Model {
    /// block -> nonce, for writes that completed OK and are not yet known durable.
    pub completed: BTreeMap<u64, (u64, u64)>, // block -> (nonce, completion seq)
    /// block -> nonce: acknowledged durable (a successful sync ran after the write completed).
    pub durable: BTreeMap<u64, u64>,
    pub completion_seq: u64,
    pub lost_to_failed_sync: u64,
    pub write_errors: u64,
    pub read_errors: u64,
    pub corrupt_reads: u64,
    pub sync_errors: u64,
}

/// Counters only: the maps are too large to print in a failure message.
impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Model {{ durable: {}, unsynced: {}, lost_to_failed_sync: {}, write_errors: {}, read_errors: {}, corrupt_reads: {}, sync_errors: {} }}",
            self.durable.len(),
            self.completed.len(),
            self.lost_to_failed_sync,
            self.write_errors,
            self.read_errors,
            self.corrupt_reads,
            self.sync_errors
        )
    }
}

#[derive(Debug, Default)]
pub struct TimerReport {
    pub fired: u64,
    /// Deadlines in the order their sleeps returned.
    pub wake_order: Vec<u64>,
    pub late_ns_max: u64,
}

/// Sleeps random lengths in `tasks` tasks; checks each wakes at or after its deadline.
pub async fn timers<E: Env>(_env: &E, rng: &mut Prng, tasks: usize, sleeps: usize, report: Rc<RefCell<TimerReport>>) {
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let plan: Vec<u64> = (0..sleeps).map(|_| rng.range(0, 3_000_000)).collect();
        let report = report.clone();
        handles.push(engine::spawn(async move {
            for ns in plan {
                let deadline = engine::time::now().saturating_add(Duration::from_nanos(ns));
                engine::sleep_until(deadline).await;
                let now = engine::time::now();
                assert!(now >= deadline, "timer woke {} ns early", deadline.ns - now.ns);
                let mut r = report.borrow_mut();
                r.fired += 1;
                r.wake_order.push(deadline.ns);
                r.late_ns_max = r.late_ns_max.max(now.ns - deadline.ns);
            }
        }));
    }
    for h in handles {
        h.await;
    }
}

/// Appends `blocks` checksummed blocks with `writers` concurrent writers and one syncer, reads
/// back at random, and keeps the model of what is acknowledged durable.
pub async fn append_workload<E: Env>(env: &E, path: &Path, seed: u64, blocks: u64, writers: u64, model: Rc<RefCell<Model>>) {
    let file = Rc::new(env.storage().open(path, OpenMode::Truncate).expect("open"));
    // The file's name survives a crash only once its directory is synced.
    env.storage().sync_dir(path.parent().expect("the file is in a directory")).expect("sync the directory");
    let next_block = Rc::new(std::cell::Cell::new(0u64));
    let done_writers = Rc::new(std::cell::Cell::new(0u64));
    let mut handles = Vec::new();
    for w in 0..writers {
        let (file, model, next_block, done_writers) = (file.clone(), model.clone(), next_block.clone(), done_writers.clone());
        let storage = env.storage().arena().clone();
        let mut rng = Prng::new(seed ^ (w + 1).wrapping_mul(0x9E37));
        handles.push(engine::spawn(async move {
            loop {
                let block = next_block.get();
                if block >= blocks {
                    break;
                }
                next_block.set(block + 1);
                let nonce = rng.next_u64();
                let mut buf = storage.alloc(BLOCK).expect("arena");
                block_bytes(block, nonce, buf.as_mut_slice());
                let (res, buf) = file.write_at(buf, block * BLOCK as u64).await;
                drop(buf);
                let mut m = model.borrow_mut();
                match res {
                    Ok(n) => {
                        assert_eq!(n, BLOCK);
                        m.completion_seq += 1;
                        let seq = m.completion_seq;
                        m.completed.insert(block, (nonce, seq));
                    }
                    Err(e) => {
                        assert!(matches!(e.errno(), Some(libc::EIO) | Some(libc::ENOSPC)), "unexpected write error {e}");
                        assert!(e.to_string().contains("write"), "error without context: {e}");
                        m.write_errors += 1;
                    }
                }
                drop(m);
                // A random read of something written so far.
                if rng.chance(300_000) && block > 0 {
                    let target = rng.below(block);
                    read_check(&*file, &storage, &model, target).await;
                }
            }
            done_writers.set(done_writers.get() + 1);
        }));
    }
    // The syncer: group commit of everything completed so far.
    let syncer = {
        let (file, model, done_writers) = (file.clone(), model.clone(), done_writers.clone());
        engine::spawn(async move {
            loop {
                let finished = done_writers.get() == writers;
                // Writes completed before the sync is issued are covered by it.
                let issued_seq = model.borrow().completion_seq;
                let res = file.sync_data().await;
                let mut m = model.borrow_mut();
                match res {
                    Ok(()) => {
                        let acked: Vec<(u64, u64)> =
                            m.completed.iter().filter(|(_, (_, s))| *s <= issued_seq).map(|(b, (n, _))| (*b, *n)).collect();
                        for (b, nonce) in acked {
                            m.completed.remove(&b);
                            m.durable.insert(b, nonce);
                        }
                    }
                    Err(e) => {
                        assert_eq!(e.errno(), Some(libc::EIO), "unexpected sync error {e}");
                        m.sync_errors += 1;
                        // fsyncgate: whatever completed before this failure may be gone and
                        // will never be retried by a later sync; none of it may be acknowledged.
                        let seq_now = m.completion_seq;
                        let lost: Vec<u64> = m.completed.iter().filter(|(_, (_, s))| *s <= seq_now).map(|(b, _)| *b).collect();
                        for b in lost {
                            m.completed.remove(&b);
                            m.lost_to_failed_sync += 1;
                        }
                    }
                }
                drop(m);
                if finished {
                    break;
                }
                engine::sleep(Duration::from_micros(200)).await;
            }
        })
    };
    for h in handles {
        h.await;
    }
    syncer.await;
}

/// Reads `block` and checks it against the model: valid and matching, or an error, or (only
/// if something flipped bits) detected corruption. Never wrong bytes that pass the checksum.
pub async fn read_check<F: File>(file: &F, arena: &engine::Arena, model: &RefCell<Model>, block: u64) {
    let expect = {
        let m = model.borrow();
        m.durable.get(&block).copied().or_else(|| m.completed.get(&block).map(|(n, _)| *n))
    };
    let buf = arena.alloc(BLOCK).expect("arena");
    let (res, buf) = file.read_at(buf, block * BLOCK as u64, BLOCK).await;
    let mut m = model.borrow_mut();
    match res {
        Err(e) => {
            assert_eq!(e.errno(), Some(libc::EIO), "unexpected read error {e}");
            m.read_errors += 1;
        }
        Ok(n) if n < BLOCK => {
            assert!(expect.is_none(), "short read ({n}) of block {block} that was written");
        }
        Ok(_) => match (decode(buf.as_slice()), expect) {
            (Seen::Valid { block: b, nonce }, Some(want)) => {
                assert_eq!(b, block, "block {block} holds block {b}'s data");
                assert_eq!(nonce, want, "block {block}: stale or foreign data");
            }
            (Seen::Valid { block: b, .. }, None) => assert_eq!(b, block, "block {block} holds block {b}'s data"),
            // Only a completed write must read back whole; one still in flight may show torn bytes.
            (Seen::Corrupt, Some(_)) => m.corrupt_reads += 1,
            (Seen::Corrupt, None) => {}
        },
    }
}
