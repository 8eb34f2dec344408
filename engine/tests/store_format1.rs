//! Logs written in frame format 1 (one checksum over header and payload, before the head got a
//! checksum of its own) still open, read and verify with today's code, and compaction carries
//! their objects forward into format 2.
//!
//! `fixtures/format1/` was written by the format-1 store (commit a0f892f) with the workload in
//! `expected_objects` / `expected_raft`: objects of 0 to 9000 bytes with metadata,
//! overwrites, deletes and a large object in chunks, then a clean close (a format-1 index
//! checkpoint) and more puts and a delete after it (replayed from the log); and, in a second
//! store, 30 Raft entries of group 5, a truncation from index 28 and a hard state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use engine::arena::{ArenaConfig, ClassConfig};
use engine::store::{RaftHardState, Store, StoreConfig};
use engine::{RuntimeConfig, SECTOR_SIZE};

fn runtime() -> RuntimeConfig {
    let mut c = RuntimeConfig::cores(1).expect("one core");
    c.arena =
        ArenaConfig { classes: vec![ClassConfig { size_bytes: SECTOR_SIZE, count: 256 }, ClassConfig { size_bytes: 64 << 10, count: 16 }] };
    c
}

/// A copy of fixture `name` to work on (the store writes to its directory).
fn fixture(name: &str) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format1").join(name);
    let to = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("store-format1").join(name);
    let _ = std::fs::remove_dir_all(&to);
    std::fs::create_dir_all(&to).expect("fixture copy");
    for entry in std::fs::read_dir(&from).expect("fixture present") {
        let entry = entry.expect("fixture entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy fixture file");
    }
    to
}

fn config(dir: &Path) -> StoreConfig {
    StoreConfig { dir: dir.to_path_buf(), segment_bytes: 128 << 10, batch_bytes: 32 << 10 }
}

fn data(i: u32, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as usize * 31 + j * 7) as u8).collect()
}

/// Key -> (metadata, data) after the fixture's workload.
fn expected_objects() -> BTreeMap<Vec<u8>, (Vec<u8>, Vec<u8>)> {
    let mut m = BTreeMap::new();
    let sizes = [0usize, 100, 4096, 4097, 9000];
    let key = |i: u32| format!("k{i:03}").into_bytes();
    for i in 0..40u32 {
        m.insert(key(i), (format!("meta-{i}").into_bytes(), data(i, sizes[i as usize % sizes.len()])));
    }
    for i in (0..40u32).step_by(4) {
        m.insert(key(i), (b"over".to_vec(), data(i + 1000, 3000)));
    }
    for i in (1..40u32).step_by(5) {
        m.remove(&key(i));
    }
    m.insert(b"large".to_vec(), (b"meta-large".to_vec(), data(7, 100_000)));
    for i in 40..50u32 {
        m.insert(key(i), (format!("meta-{i}").into_bytes(), data(i, 5000)));
    }
    m.remove(&key(42));
    m
}

/// Every expected object reads back whole and by head, and nothing else is listed.
async fn check_objects(store: &Store<engine::LinuxEnv>, want: &BTreeMap<Vec<u8>, (Vec<u8>, Vec<u8>)>) {
    let listed: Vec<Vec<u8>> = store.list(b"bkt", b"", None, usize::MAX).into_iter().map(|l| l.key.to_vec()).collect();
    assert_eq!(listed, want.keys().cloned().collect::<Vec<_>>());
    for (k, (meta, data)) in want {
        let name = String::from_utf8_lossy(k);
        let got = store.read_all(b"bkt", k).await.expect("read").unwrap_or_else(|| panic!("{name} missing"));
        assert!(got.0 == *meta && got.1 == *data, "{name} reads back wrong");
        let head = store.head(b"bkt", k).await.expect("head").unwrap_or_else(|| panic!("{name} has no head"));
        assert_eq!((head.meta(), head.size), (&meta[..], data.len() as u64), "{name}'s head");
    }
    for gone in [&b"k001"[..], b"k006", b"k042", b"never"] {
        assert!(store.head(b"bkt", gone).await.expect("head").is_none());
    }
}

#[test]
fn a_format1_log_and_checkpoint_read_back_and_compact_into_format2() {
    let dir = fixture("objects");
    let want = expected_objects();
    engine::run(runtime(), |core: engine::Core<()>| {
        let dir = dir.clone();
        let want = want.clone();
        async move {
            let (store, report) = Store::open(core.env.clone(), config(&dir)).await.expect("open a format-1 store");
            assert_eq!(report.cut_at, None, "the fixture ends cleanly");
            assert!(report.checkpoint_unused.is_none(), "the format-1 checkpoint is used: {:?}", report.checkpoint_unused);
            assert!(report.checkpoint_objects.is_some(), "the format-1 checkpoint is used");
            check_objects(&store, &want).await;
            // New writes beside the old frames, then every full segment compacted: the old
            // frames' live objects move forward as format-2 frames.
            store.put(b"bkt", b"new", b"meta-new", &data(99, 6000)).await.expect("put");
            let mut want = want;
            want.insert(b"new".to_vec(), (b"meta-new".to_vec(), data(99, 6000)));
            let first = store.segment_ids();
            for id in &first[..first.len() - 1] {
                store.compact_segment(*id, u64::MAX).await.expect("compact");
            }
            let left = store.segment_ids();
            assert!(left.iter().all(|id| !first[..first.len() - 1].contains(id)), "every old segment compacted: {first:?} -> {left:?}");
            check_objects(&store, &want).await;
            store.close().await.expect("close");
            let (store, _) = Store::open(core.env.clone(), config(&dir)).await.expect("reopen");
            check_objects(&store, &want).await;
        }
    })
    .expect("runtime");
}

#[test]
fn format1_raft_records_replay_and_read_back() {
    let dir = fixture("raft");
    engine::run(runtime(), |core: engine::Core<()>| {
        let dir = dir.clone();
        async move {
            let (store, _) = Store::open(core.env.clone(), config(&dir)).await.expect("open a format-1 raft log");
            let group = store.raft_group(5).expect("group 5");
            assert_eq!(group.entries.keys().copied().collect::<Vec<_>>(), (1..=27).collect::<Vec<u64>>(), "entries 28.. truncated");
            assert_eq!(group.hard_state, Some(RaftHardState { term: 4, vote: 2, commit: 25 }));
            for index in 1..=27u64 {
                let (term, entry) = store.read_raft_entry(5, index).await.expect("read entry").expect("live entry");
                assert_eq!((term, entry.meta(), entry.data()), (1 + index / 10, &[1u8][..], &data(index as u32, 1000)[..]));
            }
        }
    })
    .expect("runtime");
}
