//! The store against a BTreeMap model: puts, overwrites, deletes, gets, lists, concurrent
//! bursts (group commit) and restarts, in the simulator without faults, so the model is exact.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;

use engine::arena::{ArenaConfig, ClassConfig};
use engine::sim::{FaultConfig, SimEnv, SimWorld};
use engine::store::{Store, StoreConfig};
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
    List {
        bucket: u8,
        prefix: u8,
        after: Option<u8>,
        limit: usize,
    },
    Burst {
        puts: Vec<(u8, usize)>,
    },
    Restart,
    Crash,
    /// Compact the oldest full segment (live records move to the tail, the segment goes).
    Compact,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..2, 0u8..12, 0usize..9000).prop_map(|(bucket, key, len)| Op::Put { bucket, key, len }),
        2 => (0u8..2, 0u8..12).prop_map(|(bucket, key)| Op::Delete { bucket, key }),
        3 => (0u8..2, 0u8..12).prop_map(|(bucket, key)| Op::Get { bucket, key }),
        1 => (0u8..2, 0u8..3, proptest::option::of(0u8..12), 1usize..6).prop_map(|(bucket, prefix, after, limit)| Op::List { bucket, prefix, after, limit }),
        1 => proptest::collection::vec((0u8..12, 0usize..3000), 1..40).prop_map(|puts| Op::Burst { puts }),
        1 => Just(Op::Restart),
        1 => Just(Op::Crash),
        2 => Just(Op::Compact),
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

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let world = SimWorld::new(7, FaultConfig::none());
    let env = SimEnv::new(world.clone(), &arena());
    let mut model: Model = BTreeMap::new();
    let mut version = 0u64;
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
                    }
                    Err(e) => prop_assert!(matches!(e, engine::store::StoreError::TooLarge { .. }), "put failed: {e}"),
                }
            }
            Op::Delete { bucket: b, key: k } => {
                executor.block_on(store.delete(&bucket(b), &key(k))).map_err(|e| TestCaseError::fail(e.to_string()))?;
                model.remove(&(bucket(b), key(k)));
            }
            Op::Get { bucket: b, key: k } => {
                let got = executor.block_on(store.get(&bucket(b), &key(k))).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let want = model.get(&(bucket(b), key(k)));
                let got = got.map(|o| (o.meta().to_vec(), o.data().to_vec()));
                prop_assert_eq!(got.as_ref(), want);
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
                    model.insert((b"bucket-0".to_vec(), k), (m, d));
                }
            }
            Op::Restart => {
                executor.block_on(store.close()).map_err(|e| TestCaseError::fail(e.to_string()))?;
                drop(store);
                drop(executor);
                executor = Executor::new(world.clone());
                store = executor.block_on(Store::open(env.clone(), config())).map_err(|e| TestCaseError::fail(e.to_string()))?.0;
            }
            Op::Compact => {
                let before = store.space();
                let r = executor.block_on(store.compact_oldest(u64::MAX)).map_err(|e| TestCaseError::fail(e.to_string()))?;
                if let Some(r) = r {
                    prop_assert!(!store.segment_ids().contains(&r.segment), "{:?}", r);
                    prop_assert_eq!(store.space().live_bytes, before.live_bytes, "relocation keeps live bytes");
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
        prop_assert_eq!(store.objects(), model.len() as u64);
    }
    // Everything in the model reads back after a final crash.
    drop(store);
    drop(executor);
    world.crash();
    let executor = Executor::new(world.clone());
    let store = executor.block_on(Store::open(env.clone(), config())).map_err(|e| TestCaseError::fail(e.to_string()))?.0;
    for ((b, k), (m, d)) in &model {
        let got = executor.block_on(store.get(b, k)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(got.map(|o| (o.meta().to_vec(), o.data().to_vec())), Some((m.clone(), d.clone())));
    }
    let _ = Rc::new(());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
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
                .chain([Op::Compact, Op::Compact, Op::Crash, Op::Compact, Op::Get { bucket: 0, key: 1 }, Op::Get { bucket: 0, key: 5 }])
                .collect(),
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
