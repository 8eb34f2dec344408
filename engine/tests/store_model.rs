//! The store against a BTreeMap model: puts, overwrites, deletes, gets, lists, concurrent
//! bursts (group commit) and restarts, in the simulator without faults, so the model is exact.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;

use engine::arena::{ArenaConfig, ClassConfig};
use engine::sim::{FaultConfig, SimEnv, SimWorld};
use engine::store::{Expected, RaftHardState, RaftRecord, Store, StoreConfig};
use engine::{Executor, SECTOR_SIZE};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Put {
        bucket: u8,
        key: u8,
        len: usize,
    },
    Delete {
        bucket: u8,
        key: u8,
    },
    Get {
        bucket: u8,
        key: u8,
    },
    /// New metadata, same data (`rewrite_meta`), against the version just read; with `stale`
    /// against an older one, which must write nothing.
    RewriteMeta {
        bucket: u8,
        key: u8,
        stale: bool,
    },
    /// A delete of the version just read (`delete_if`); with `stale`, of an older one, which
    /// must delete nothing.
    DeleteIf {
        bucket: u8,
        key: u8,
        stale: bool,
    },
    /// A conditional put (`put_if`, or `put_chunked_if` when `chunked`): expecting the key
    /// absent (`absent`), or at the version just read; with `stale`, the expectation is wrong
    /// (the key exists, or an older version is named) and nothing must be written.
    PutIf {
        bucket: u8,
        key: u8,
        len: usize,
        chunked: bool,
        absent: bool,
        stale: bool,
    },
    List {
        bucket: u8,
        prefix: u8,
        after: Option<u8>,
        limit: usize,
    },
    Burst {
        puts: Vec<(u8, usize)>,
    },
    /// A large object: chunks, then a manifest.
    PutLarge {
        bucket: u8,
        key: u8,
        len: usize,
    },
    /// A write of `key` (small, or large in chunks) that deletes `replaces` in the same batch,
    /// dropping the chunks of those that are large (`Store::commit`: a versioned bucket's new
    /// null version superseding the old one).
    Commit {
        bucket: u8,
        key: u8,
        len: usize,
        chunked: bool,
        replaces: Vec<u8>,
    },
    /// Chunks written and never committed (the upload's client went away, or a crash).
    Abandon {
        len: usize,
    },
    /// Chunks written, then aborted.
    Abort {
        len: usize,
    },
    /// Start-up's garbage collection of chunks no manifest owns.
    CollectOrphans,
    Restart,
    Crash,
    /// Compact a full segment (live records and needed tombstones move to the tail, the
    /// segment goes): with 0 the cheapest (`compact_next`), else the n-th segment by age.
    Compact(u8),
    /// Write an index checkpoint (start-up then replays only what follows it; refused while the
    /// store holds Raft state).
    Checkpoint,
    /// Raft group `group` (of 3): `n` entries (at most 2: with a Truncate and a hard state that
    /// is all a 16 KiB batch holds) appended after dropping the last `back` (a
    /// follower's conflicting suffix: a Truncate first), then a hard state, in one batch.
    RaftAppend { group: u8, back: u8, n: u8 },
    /// Raft group `group`'s hard state alone (a vote in a new term).
    RaftVote { group: u8 },
    /// Raft group `group`'s log compacted through `share`/8 of its live entries.
    RaftCompact { group: u8, share: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..2, 0u8..12, 0usize..9000).prop_map(|(bucket, key, len)| Op::Put { bucket, key, len }),
        2 => (0u8..2, 0u8..12).prop_map(|(bucket, key)| Op::Delete { bucket, key }),
        3 => (0u8..2, 0u8..12).prop_map(|(bucket, key)| Op::Get { bucket, key }),
        2 => (0u8..2, 0u8..12, proptest::bool::weighted(0.2)).prop_map(|(bucket, key, stale)| Op::RewriteMeta { bucket, key, stale }),
        1 => (0u8..2, 0u8..12, proptest::bool::weighted(0.3)).prop_map(|(bucket, key, stale)| Op::DeleteIf { bucket, key, stale }),
        2 => (0u8..2, 0u8..12, 0usize..40_000, proptest::bool::ANY, proptest::bool::ANY, proptest::bool::weighted(0.3))
            .prop_map(|(bucket, key, len, chunked, absent, stale)| Op::PutIf { bucket, key, len, chunked, absent, stale }),
        1 => (0u8..2, 0u8..3, proptest::option::of(0u8..12), 1usize..6).prop_map(|(bucket, prefix, after, limit)| Op::List { bucket, prefix, after, limit }),
        1 => proptest::collection::vec((0u8..12, 0usize..3000), 1..40).prop_map(|puts| Op::Burst { puts }),
        3 => (0u8..2, 0u8..12, 0usize..60_000).prop_map(|(bucket, key, len)| Op::PutLarge { bucket, key, len }),
        2 => (0u8..2, 0u8..12, 0usize..40_000, proptest::bool::ANY, proptest::collection::vec(0u8..12, 0..3))
            .prop_map(|(bucket, key, len, chunked, replaces)| Op::Commit { bucket, key, len, chunked, replaces }),
        1 => (0usize..40_000).prop_map(|len| Op::Abandon { len }),
        1 => (0usize..40_000).prop_map(|len| Op::Abort { len }),
        1 => Just(Op::CollectOrphans),
        1 => Just(Op::Restart),
        1 => Just(Op::Crash),
        3 => (0u8..6).prop_map(Op::Compact),
        1 => Just(Op::Checkpoint),
        3 => (0u8..3, prop_oneof![4 => Just(0u8), 1 => 1u8..4], 1u8..3).prop_map(|(group, back, n)| Op::RaftAppend { group, back, n }),
        1 => (0u8..3, 0u8..9).prop_map(|(group, share)| Op::RaftCompact { group, share }),
        1 => (0u8..3).prop_map(|group| Op::RaftVote { group }),
    ]
}

fn bucket(b: u8) -> Vec<u8> {
    format!("bucket-{b}").into_bytes()
}

/// Keys share prefixes ("k0", "k00".. style) so prefix listing is exercised.
fn key(k: u8) -> Vec<u8> {
    format!("k{}/{}", k % 3, k).into_bytes()
}

fn data(version: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (version as usize * 31 + i) as u8).collect()
}

fn arena() -> ArenaConfig {
    ArenaConfig { classes: vec![ClassConfig { size_bytes: SECTOR_SIZE, count: 64 }, ClassConfig { size_bytes: 16 << 10, count: 16 }] }
}

fn config() -> StoreConfig {
    StoreConfig { dir: PathBuf::from("/store"), segment_bytes: 64 << 10, batch_bytes: 16 << 10 }
}

type Model = BTreeMap<(Vec<u8>, Vec<u8>), (Vec<u8>, Vec<u8>)>;

/// Data bytes per chunk with `config()`'s batches.
const CHUNK_BYTES: usize = (16 << 10) - SECTOR_SIZE;

/// Writes `d` as chunks; `None` if the store refused (none expected without faults).
async fn write_chunks(store: &Store<SimEnv>, d: &[u8]) -> (engine::store::ChunkWriter<SimEnv>, Result<(), String>) {
    let mut w = store.chunk_writer();
    // Uneven pieces, as a body arrives from a socket.
    let mut at = 0;
    let mut r = Ok(());
    while at < d.len() && r.is_ok() {
        let n = (d.len() - at).min(1 + (at * 7919) % 20_000);
        r = w.write(&d[at..at + n]).await.map_err(|e| e.to_string());
        at += n;
    }
    (w, r)
}

/// One Raft group as the model knows it.
#[derive(Default)]
struct RaftModel {
    entries: BTreeMap<u64, u64>,
    compacted: Option<(u64, u64)>,
    hard_state: Option<RaftHardState>,
}

impl RaftModel {
    fn next_index(&self) -> u64 {
        self.entries.keys().next_back().copied().or(self.compacted.map(|c| c.0)).unwrap_or(0) + 1
    }
}

fn raft_payload(group: u64, index: u64, term: u64) -> Vec<u8> {
    format!("group {group} entry {index} term {term}").into_bytes()
}

/// The store's Raft groups equal the model's: live entries and terms, hard state, compaction
/// point and its metadata.
fn check_raft(executor: &Executor, store: &Store<SimEnv>, raft: &BTreeMap<u64, RaftModel>) -> Result<(), TestCaseError> {
    prop_assert_eq!(store.raft_group_ids(), raft.keys().copied().collect::<Vec<u64>>());
    for (group, m) in raft {
        let g = store.raft_group(*group).ok_or_else(|| TestCaseError::fail(format!("group {group} missing")))?;
        let entries: BTreeMap<u64, u64> = g.entries.iter().map(|(i, e)| (i, e.term)).collect();
        prop_assert_eq!(&entries, &m.entries, "group {}", group);
        prop_assert_eq!(g.hard_state, m.hard_state, "group {}", group);
        prop_assert_eq!(g.compacted.map(|c| (c.index, c.term)), m.compacted, "group {}", group);
        if let Some((through, _)) = m.compacted {
            let got = executor.block_on(store.read_raft_compacted(*group)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got = got.map(|(_, o)| (o.meta().to_vec(), o.data().to_vec()));
            let expected = (format!("snapshot of {group} through {through}").into_bytes(), format!("image {through}").into_bytes());
            prop_assert_eq!(got, Some(expected));
        }
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let world = SimWorld::new(7, FaultConfig::none());
    let env = SimEnv::new(world.clone(), &arena());
    let mut model: Model = BTreeMap::new();
    let mut version = 0u64;
    // Chunks of large objects in the model, and chunks left by abandoned uploads.
    let mut large: BTreeMap<(Vec<u8>, Vec<u8>), u64> = BTreeMap::new();
    let mut orphan_chunks = 0u64;
    let mut raft: BTreeMap<u64, RaftModel> = BTreeMap::new();
    let mut executor = Executor::new(world.clone());
    let mut store = executor.block_on(Store::open(env.clone(), config())).map_err(|e| TestCaseError::fail(e.to_string()))?.0;
    for op in ops {
        match op {
            Op::Put { bucket: b, key: k, len } => {
                version += 1;
                let (meta, d) = (version.to_le_bytes().to_vec(), data(version, len));
                let r = executor.block_on(store.put(&bucket(b), &key(k), &meta, &d));
                match r {
                    Ok(_) => {
                        model.insert((bucket(b), key(k)), (meta, d));
                        large.remove(&(bucket(b), key(k)));
                    }
                    Err(e) => prop_assert!(matches!(e, engine::store::StoreError::TooLarge { .. }), "put failed: {e}"),
                }
            }
            Op::Delete { bucket: b, key: k } => {
                executor.block_on(store.delete(&bucket(b), &key(k))).map_err(|e| TestCaseError::fail(e.to_string()))?;
                model.remove(&(bucket(b), key(k)));
                large.remove(&(bucket(b), key(k)));
            }
            Op::Get { bucket: b, key: k } => {
                let got = executor.block_on(store.read_all(&bucket(b), &key(k))).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let want = model.get(&(bucket(b), key(k)));
                prop_assert_eq!(got.as_ref(), want);
                let head = executor.block_on(store.head(&bucket(b), &key(k))).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let want_head = want.map(|(m, d)| (&m[..], d.len() as u64));
                prop_assert_eq!(head.as_ref().map(|h| (h.meta(), h.size)), want_head);
            }
            Op::RewriteMeta { bucket: b, key: k, stale } => {
                version += 1;
                let meta = format!("rewritten {version}").into_bytes();
                let Some((lsn, _)) = store.lsn_of(&bucket(b), &key(k)) else {
                    // Nothing stored: nothing to rewrite, whatever version is named.
                    let r = executor.block_on(store.rewrite_meta(&bucket(b), &key(k), 1, &meta));
                    prop_assert!(matches!(r, Ok(None)), "{:?}", r.map_err(|e| e.to_string()));
                    continue;
                };
                let expect = if stale { lsn - 1 } else { lsn };
                let r = executor.block_on(store.rewrite_meta(&bucket(b), &key(k), expect, &meta));
                let r = r.map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(r.is_some(), !stale, "rewrite against lsn {} of {}: {:?}", expect, lsn, r);
                if let Some(new) = r {
                    prop_assert!(new > lsn);
                    model.get_mut(&(bucket(b), key(k))).expect("stored keys are in the model").0 = meta;
                }
            }
            Op::DeleteIf { bucket: b, key: k, stale } => {
                let Some((lsn, _)) = store.lsn_of(&bucket(b), &key(k)) else {
                    let r = executor.block_on(store.delete_if(&bucket(b), &key(k), 1));
                    prop_assert!(matches!(r, Ok(None)), "{:?}", r.map_err(|e| e.to_string()));
                    continue;
                };
                let expect = if stale { lsn - 1 } else { lsn };
                let r = executor.block_on(store.delete_if(&bucket(b), &key(k), expect)).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(r.is_some(), !stale, "delete against lsn {} of {}: {:?}", expect, lsn, r);
                if r.is_some() {
                    model.remove(&(bucket(b), key(k)));
                    large.remove(&(bucket(b), key(k)));
                }
            }
            Op::PutIf { bucket: b, key: k, len, chunked, absent, stale } => {
                let now = store.lsn_of(&bucket(b), &key(k)).map(|(lsn, _)| lsn);
                // What the caller expects, and whether the store must write.
                let (expected, writes) = match (absent, now) {
                    (true, None) => (Expected::Absent, true),
                    (true, Some(_)) => (Expected::Absent, false),
                    (false, None) => (Expected::At(1), false),
                    (false, Some(lsn)) if stale => (Expected::At(lsn - 1), false),
                    (false, Some(lsn)) => (Expected::At(lsn), true),
                };
                version += 1;
                let (meta, d) = (version.to_le_bytes().to_vec(), data(version, len));
                let bucket_name = bucket(b);
                let r = executor.block_on(async {
                    if chunked {
                        let (w, r) = write_chunks(&store, &d).await;
                        r?;
                        let extent = w.finish().await.map_err(|e| e.to_string())?;
                        let id = extent.id;
                        let r = store.put_chunked_if(&bucket_name, &key(k), &meta, vec![extent], &[], &[], Some(expected)).await.map_err(|e| e.to_string())?;
                        if r.is_none() {
                            // Nothing took the chunks over: the caller drops them.
                            store.drop_chunks(&[id]).await.map_err(|e| e.to_string())?;
                        }
                        Ok(r)
                    } else {
                        store.put_if(&bucket_name, &key(k), &meta, &d, Some(expected)).await.map_err(|e| e.to_string())
                    }
                });
                let r = match r {
                    Err(e) if !chunked && writes && e.contains("exceed the largest record") => continue,
                    r => r.map_err(TestCaseError::fail)?,
                };
                prop_assert_eq!(r.is_some(), writes, "put expecting {:?} with the key at {:?}", expected, now);
                if writes {
                    model.insert((bucket(b), key(k)), (meta, d));
                    if chunked {
                        large.insert((bucket(b), key(k)), len.div_ceil(CHUNK_BYTES) as u64);
                    } else {
                        large.remove(&(bucket(b), key(k)));
                    }
                }
            }
            Op::List { bucket: b, prefix, after, limit } => {
                let prefix = format!("k{prefix}").into_bytes();
                let after = after.map(key);
                let got: Vec<Vec<u8>> =
                    store.list(&bucket(b), &prefix, after.as_deref(), limit).into_iter().map(|l| l.key.into()).collect();
                let want: Vec<Vec<u8>> = model
                    .keys()
                    .filter(|(mb, mk)| *mb == bucket(b) && mk.starts_with(&prefix) && after.as_ref().is_none_or(|a| mk > a))
                    .map(|(_, k)| k.clone())
                    .take(limit)
                    .collect();
                prop_assert_eq!(got, want);
            }
            Op::Burst { puts } => {
                // Concurrent puts: they share batches (group commit). All are acknowledged, and
                // for a key written twice the later lsn wins.
                let mut writes = Vec::new();
                for (k, len) in puts {
                    version += 1;
                    writes.push((key(k), version.to_le_bytes().to_vec(), data(version, len)));
                }
                let results = executor.block_on({
                    let store = store.clone();
                    let writes = writes.clone();
                    async move {
                        let handles: Vec<_> = writes
                            .into_iter()
                            .map(|(k, m, d)| {
                                let store = store.clone();
                                engine::spawn(async move { store.put(b"bucket-0", &k, &m, &d).await.map_err(|e| e.to_string()) })
                            })
                            .collect();
                        let mut out = Vec::new();
                        for h in handles {
                            out.push(h.await);
                        }
                        out
                    }
                });
                let mut by_lsn: Vec<(u64, usize)> = Vec::new();
                for (i, r) in results.into_iter().enumerate() {
                    by_lsn.push((r.map_err(TestCaseError::fail)?, i));
                }
                by_lsn.sort();
                for w in by_lsn.windows(2) {
                    prop_assert!(w[0].0 < w[1].0, "two puts got the same lsn");
                }
                for (_, i) in by_lsn {
                    let (k, m, d) = writes[i].clone();
                    large.remove(&(b"bucket-0".to_vec(), k.clone()));
                    model.insert((b"bucket-0".to_vec(), k), (m, d));
                }
            }
            Op::Commit { bucket: b, key: k, len, chunked, replaces } => {
                version += 1;
                let (meta, d) = (version.to_le_bytes().to_vec(), data(version, len));
                let others: Vec<Vec<u8>> = replaces.iter().map(|r| key(*r)).collect();
                let bucket_name = bucket(b);
                let named: Vec<(&[u8], &[u8])> = others.iter().map(|o| (&bucket_name[..], &o[..])).collect();
                let r = executor.block_on(async {
                    let body = if chunked {
                        let (w, r) = write_chunks(&store, &d).await;
                        r?;
                        engine::store::Body::Chunked(vec![w.finish().await.map_err(|e| e.to_string())?])
                    } else {
                        engine::store::Body::Inline(&d)
                    };
                    store.commit(&bucket_name, &key(k), &meta, body, &[], &named).await.map_err(|e| e.to_string())
                });
                match r {
                    Ok(_) => {
                        for o in &others {
                            model.remove(&(bucket(b), o.clone()));
                            large.remove(&(bucket(b), o.clone()));
                        }
                        model.insert((bucket(b), key(k)), (meta, d));
                        if chunked {
                            large.insert((bucket(b), key(k)), len.div_ceil(CHUNK_BYTES) as u64);
                        } else {
                            large.remove(&(bucket(b), key(k)));
                        }
                    }
                    Err(e) => prop_assert!(!chunked && e.contains("exceed the largest record"), "commit failed: {e}"),
                }
            }
            Op::PutLarge { bucket: b, key: k, len } => {
                version += 1;
                let (meta, d) = (version.to_le_bytes().to_vec(), data(version, len));
                let lsn = executor.block_on(async {
                    let (w, r) = write_chunks(&store, &d).await;
                    r?;
                    let extent = w.finish().await.map_err(|e| e.to_string())?;
                    store.put_chunked(&bucket(b), &key(k), &meta, vec![extent], &[], &[]).await.map_err(|e| e.to_string())
                });
                lsn.map_err(TestCaseError::fail)?;
                model.insert((bucket(b), key(k)), (meta, d));
                large.insert((bucket(b), key(k)), len.div_ceil(CHUNK_BYTES) as u64);
            }
            Op::Abandon { len } => {
                let d = data(0, len);
                let r = executor.block_on(async {
                    let (w, r) = write_chunks(&store, &d).await;
                    r?;
                    w.finish().await.map(|_| ()).map_err(|e| e.to_string())
                });
                r.map_err(TestCaseError::fail)?;
                orphan_chunks += len.div_ceil(CHUNK_BYTES) as u64;
            }
            Op::Abort { len } => {
                let d = data(0, len);
                let r = executor.block_on(async {
                    let (w, r) = write_chunks(&store, &d).await;
                    r?;
                    w.abort().await.map_err(|e| e.to_string())
                });
                r.map_err(TestCaseError::fail)?;
            }
            Op::CollectOrphans => {
                let below = store.next_chunk_id();
                let dropped = executor.block_on(store.collect_orphan_chunks(below)).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(dropped.is_empty(), orphan_chunks == 0, "dropped {:?} with {} orphan chunks", dropped, orphan_chunks);
                orphan_chunks = 0;
            }
            Op::Restart => {
                executor.block_on(store.close()).map_err(|e| TestCaseError::fail(e.to_string()))?;
                drop(store);
                drop(executor);
                executor = Executor::new(world.clone());
                store = executor.block_on(Store::open(env.clone(), config())).map_err(|e| TestCaseError::fail(e.to_string()))?.0;
            }
            Op::Checkpoint => {
                // With Raft state too: the next restart takes each group's log from it.
                let r = executor.block_on(store.checkpoint());
                prop_assert!(r.is_ok(), "{:?}", r);
            }
            Op::RaftAppend { group, back, n } => {
                version += 1;
                let group = group as u64;
                let m = raft.entry(group).or_default();
                // Never back into the compacted part (Raft only truncates uncommitted entries).
                let back = (back as u64).min(m.entries.len() as u64);
                let from = m.next_index() - back;
                let term = version;
                let payloads: Vec<Vec<u8>> = (0..n as u64).map(|i| raft_payload(group, from + i, term)).collect();
                let mut records = Vec::new();
                if back > 0 {
                    records.push(RaftRecord::Truncate { group, from_index: from });
                }
                for (i, p) in payloads.iter().enumerate() {
                    records.push(RaftRecord::Entry { group, term, index: from + i as u64, meta: b"e", data: p });
                }
                let state = RaftHardState { term, vote: group + 1, commit: from };
                records.push(RaftRecord::HardState { group, state });
                executor.block_on(store.append_raft(&records)).map_err(|e| TestCaseError::fail(e.to_string()))?;
                m.entries.split_off(&from);
                for i in 0..n as u64 {
                    m.entries.insert(from + i, term);
                }
                m.hard_state = Some(state);
            }
            Op::RaftVote { group } => {
                version += 1;
                let group = group as u64;
                let m = raft.entry(group).or_default();
                let state = RaftHardState { term: version, vote: group + 2, commit: m.hard_state.map_or(0, |s| s.commit) };
                executor.block_on(store.append_raft(&[RaftRecord::HardState { group, state }])).map_err(|e| TestCaseError::fail(e.to_string()))?;
                m.hard_state = Some(state);
            }
            Op::RaftCompact { group, share } => {
                let group = group as u64;
                let Some(m) = raft.get_mut(&group) else { continue };
                let Some(&first) = m.entries.keys().next() else { continue };
                let through = first + (m.entries.len() as u64 * share as u64 / 8).saturating_sub(1);
                let term = m.entries[&through];
                let meta = format!("snapshot of {group} through {through}").into_bytes();
                let image = format!("image {through}").into_bytes();
                let record = RaftRecord::Compact { group, index: through, term, meta: &meta, data: &image };
                executor.block_on(store.append_raft(&[record])).map_err(|e| TestCaseError::fail(e.to_string()))?;
                m.entries = m.entries.split_off(&(through + 1));
                m.compacted = Some((through, term));
            }
            Op::Compact(n) => {
                let before = store.space();
                let ids = store.segment_ids();
                let r = match n {
                    0 => executor.block_on(store.compact_next(u64::MAX)),
                    n => executor.block_on(store.compact_segment(ids[n as usize % ids.len()], u64::MAX)),
                };
                let r = r.map_err(|e| TestCaseError::fail(e.to_string()))?;
                if let Some(r) = r {
                    prop_assert!(!store.segment_ids().contains(&r.segment), "{:?}", r);
                    // A copy's padding may differ from the original's (frames pack where they
                    // land), by less than a sector each; losing a record would change more.
                    let (after, slack) = (store.space().live_bytes, (r.relocated as u64 + 1) * engine::SECTOR_SIZE as u64);
                    prop_assert!(after.abs_diff(before.live_bytes) < slack, "relocation keeps live bytes: {} then {after}", before.live_bytes);
                }
            }
            Op::Crash => {
                drop(store);
                drop(executor);
                world.crash();
                executor = Executor::new(world.clone());
                store = executor.block_on(Store::open(env.clone(), config())).map_err(|e| TestCaseError::fail(e.to_string()))?.0;
            }
        }
        let chunks = large.values().sum::<u64>() + orphan_chunks;
        prop_assert_eq!(store.chunks_stored(), chunks);
        prop_assert_eq!(store.objects(), model.len() as u64 + chunks);
        check_raft(&executor, &store, &raft)?;
    }
    // Everything in the model reads back after a final crash.
    drop(store);
    drop(executor);
    world.crash();
    let executor = Executor::new(world.clone());
    let store = executor.block_on(Store::open(env.clone(), config())).map_err(|e| TestCaseError::fail(e.to_string()))?.0;
    for ((b, k), (m, d)) in &model {
        let got = executor.block_on(store.read_all(b, k)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(got, Some((m.clone(), d.clone())));
    }
    check_raft(&executor, &store, &raft)?;
    // Every live entry reads back, verified, with its payload.
    for (group, m) in &raft {
        for (&index, &term) in &m.entries {
            let got = executor.block_on(store.read_raft_entry(*group, index)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let (t, object) = got.ok_or_else(|| TestCaseError::fail(format!("group {group} entry {index} missing")))?;
            prop_assert_eq!((t, object.data()), (term, &raft_payload(*group, index, term)[..]));
        }
    }
    let _ = Rc::new(());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(64), ..ProptestConfig::default() })]
    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}

/// Named sequences, each a regression guard.
#[test]
fn named_sequences() {
    let cases: Vec<(&str, Vec<Op>)> = vec![
        ("put then get", vec![Op::Put { bucket: 0, key: 1, len: 10 }, Op::Get { bucket: 0, key: 1 }]),
        ("clean restart", vec![Op::Put { bucket: 0, key: 1, len: 10 }, Op::Restart, Op::Get { bucket: 0, key: 1 }]),
        ("crash keeps acknowledged", vec![Op::Put { bucket: 0, key: 1, len: 10 }, Op::Crash, Op::Get { bucket: 0, key: 1 }]),
        ("group commit burst", vec![Op::Burst { puts: (0..30).map(|i| (i as u8 % 12, 2000)).collect() }]),
        ("segment rollover", (0..40).map(|i| Op::Put { bucket: 0, key: i as u8 % 12, len: 8000 }).collect()),
        // A crash used to leak the store's batch buffers (writer task parked in an Rc cycle);
        // after a few crashes reads waited forever for a buffer.
        (
            "compact after overwrites and deletes, then crash",
            (0..40)
                .map(|i| Op::Put { bucket: 0, key: i as u8 % 6, len: 7000 })
                .chain((0..3).map(|k| Op::Delete { bucket: 0, key: k }))
                .chain([Op::Compact(0), Op::Compact(0), Op::Crash, Op::Compact(0), Op::Get { bucket: 0, key: 1 }, Op::Get { bucket: 0, key: 5 }])
                .collect(),
        ),
        (
            "large objects overwritten by small, deleted, compacted, crashed",
            vec![
                Op::PutLarge { bucket: 0, key: 1, len: 50_000 },
                Op::Get { bucket: 0, key: 1 },
                Op::PutLarge { bucket: 0, key: 1, len: 30_000 },
                Op::Put { bucket: 0, key: 1, len: 10 },
                Op::PutLarge { bucket: 0, key: 2, len: 40_000 },
                Op::Compact(0),
                Op::Compact(0),
                Op::Crash,
                Op::Delete { bucket: 0, key: 2 },
                Op::Compact(0),
                Op::Get { bucket: 0, key: 1 },
            ],
        ),
        (
            "orphans collected after a crash, committed chunks kept",
            vec![
                Op::PutLarge { bucket: 1, key: 3, len: 30_000 },
                Op::Abandon { len: 30_000 },
                Op::Abort { len: 20_000 },
                Op::Crash,
                Op::CollectOrphans,
                Op::Get { bucket: 1, key: 3 },
            ],
        ),
        // A metadata rewrite keeps a large object's chunks (the new manifest names them) through
        // compaction of the old manifest's segment and a crash; a stale rewrite writes nothing.
        (
            "metadata rewritten, compacted, crashed",
            vec![
                Op::PutLarge { bucket: 0, key: 1, len: 40_000 },
                Op::Put { bucket: 0, key: 2, len: 5000 },
                Op::RewriteMeta { bucket: 0, key: 1, stale: false },
                Op::RewriteMeta { bucket: 0, key: 2, stale: false },
                Op::RewriteMeta { bucket: 0, key: 2, stale: true },
                Op::RewriteMeta { bucket: 0, key: 3, stale: false },
                Op::Compact(1),
                Op::Compact(0),
                Op::Crash,
                Op::Get { bucket: 0, key: 1 },
                Op::Get { bucket: 0, key: 2 },
            ],
        ),
        (
            "many crashes",
            (0..30)
                .flat_map(|i| [Op::Put { bucket: 1, key: i as u8 % 12, len: 9000 }, Op::Crash, Op::Get { bucket: 1, key: i as u8 % 12 }])
                .collect(),
        ),
    ];
    for (name, ops) in cases {
        if let Err(e) = run(ops) {
            panic!("{name}: {e}");
        }
    }
}

/// A large object deleted while compaction relocates its chunks: whatever the interleaving (the
/// delete's `DropChunks` before, among or after the relocations, in the same batch or not), no
/// chunk outlives the delete and the other object's chunks all stay.
#[test]
fn delete_racing_chunk_relocation_leaves_no_chunk() {
    for delay in 0..400u64 {
        let world = SimWorld::new(delay, FaultConfig::none());
        let env = SimEnv::new(world.clone(), &arena());
        let executor = Executor::new(world.clone());
        let (store, _) = executor.block_on(Store::open(env.clone(), config())).expect("open");
        // A short chunk: a full one fills a batch alone, a short one can share it with a drop.
        let big = data(1, 100);
        let kept = data(2, 3 * CHUNK_BYTES);
        executor.block_on(async {
            // The kept object first: relocating its full chunks keeps the writer busy while the
            // doomed chunk's relocation and the delete gather in the next batch.
            for (k, d) in [(b"kept".as_slice(), &kept), (b"doomed".as_slice(), &big)] {
                let mut w = store.chunk_writer();
                w.write(d).await.expect("write chunks");
                let extent = w.finish().await.expect("finish");
                store.put_chunked(b"b", k, b"", vec![extent], &[], &[]).await.expect("commit");
            }
            // Fill past the first segments so the chunks' segment is compactable.
            for i in 0..12u32 {
                store.put(b"b", format!("filler-{}", i % 3).as_bytes(), b"", &data(3, 9000)).await.expect("filler");
            }
        });
        let oldest = store.segment_ids()[0];
        executor.block_on(async {
            let compactor = {
                let store = store.clone();
                engine::spawn(async move { store.compact_segment(oldest, u64::MAX).await })
            };
            engine::sleep(std::time::Duration::from_nanos(delay * 250)).await;
            store.delete(b"b", b"doomed").await.expect("delete");
            compactor.await.expect("compact");
        });
        assert!(!store.segment_ids().contains(&oldest), "delay {delay}: segment {oldest} was not compacted");
        assert_eq!(store.chunks_stored(), 3, "delay {delay}: only the kept object's 3 chunks remain");
        let got = executor.block_on(store.read_all(b"b", b"kept")).expect("read kept");
        assert_eq!(got, Some((Vec::new(), kept)), "delay {delay}");
        // And the same after a crash (replay must reach the same index).
        drop(store);
        drop(executor);
        world.crash();
        let executor = Executor::new(world.clone());
        let (store, _) = executor.block_on(Store::open(env.clone(), config())).expect("reopen");
        assert_eq!(store.chunks_stored(), 3, "delay {delay}: after the crash");
    }
}
