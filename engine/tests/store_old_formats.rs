//! Logs written in earlier frame formats still open, read and verify with today's code, and
//! compaction carries their objects forward into the format written now:
//! - format 1 (one checksum over header and payload, before the head got a checksum of its own):
//!   `fixtures/format1/`, written by commit a0f892f's store;
//! - format 2 (no `durable_lsn`: a batch proved every batch before it durable):
//!   `fixtures/format2/`, written by commit e466d98's store with `write_fixture`.
//!
//! Both hold the same workload (`write_fixture`, `expected_objects`): objects of 0 to 9000 bytes
//! with metadata, overwrites, deletes and a large object in chunks, then a clean close (an index
//! checkpoint) and more puts and a delete after it (replayed from the log); and, in a second
//! store, 30 Raft entries of group 5, a truncation from index 28 and a hard state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use engine::arena::{ArenaConfig, ClassConfig};
use engine::store::{RaftHardState, RaftRecord, Store, StoreConfig};
use engine::{RuntimeConfig, SECTOR_SIZE};

fn runtime() -> RuntimeConfig {
    let mut c = RuntimeConfig::cores(1).expect("one core");
    c.arena =
        ArenaConfig { classes: vec![ClassConfig { size_bytes: SECTOR_SIZE, count: 256 }, ClassConfig { size_bytes: 64 << 10, count: 16 }] };
    c
}

/// A copy of fixture `name` of `format` to work on (the store writes to its directory).
fn fixture(format: &str, name: &str) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(format).join(name);
    let to = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("store-old-formats").join(format).join(name);
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
fn a_format1_log_and_checkpoint_read_back_and_compact_into_todays_format() {
    old_objects_read_back_and_compact("format1");
}

#[test]
fn a_format2_log_and_checkpoint_read_back_and_compact_into_todays_format() {
    old_objects_read_back_and_compact("format2");
}

#[test]
fn format1_raft_records_replay_and_read_back() {
    old_raft_records_replay("format1");
}

#[test]
fn format2_raft_records_replay_and_read_back() {
    old_raft_records_replay("format2");
}

fn old_objects_read_back_and_compact(format: &str) {
    let dir = fixture(format, "objects");
    let want = expected_objects();
    engine::run(runtime(), |core: engine::Core<()>| {
        let dir = dir.clone();
        let want = want.clone();
        async move {
            let (store, report) = Store::open(core.env.clone(), config(&dir)).await.expect("open an old-format store");
            assert_eq!(report.cut_at, None, "the fixture ends cleanly");
            assert!(report.checkpoint_unused.is_none(), "the old checkpoint is used: {:?}", report.checkpoint_unused);
            assert!(report.checkpoint_objects.is_some(), "the old checkpoint is used");
            check_objects(&store, &want).await;
            // New writes beside the old frames, then every full segment compacted: the old
            // frames' live objects move forward in today's format.
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

fn old_raft_records_replay(format: &str) {
    let dir = fixture(format, "raft");
    engine::run(runtime(), |core: engine::Core<()>| {
        let dir = dir.clone();
        async move {
            let (store, _) = Store::open(core.env.clone(), config(&dir)).await.expect("open an old-format raft log");
            let group = store.raft_group(5).expect("group 5");
            assert_eq!(group.entries.keys().collect::<Vec<_>>(), (1..=27).collect::<Vec<u64>>(), "entries 28.. truncated");
            assert_eq!(group.hard_state, Some(RaftHardState { term: 4, vote: 2, commit: 25 }));
            for index in 1..=27u64 {
                let (term, entry) = store.read_raft_entry(5, index).await.expect("read entry").expect("live entry");
                assert_eq!((term, entry.meta(), entry.data()), (1 + index / 10, &[1u8][..], &data(index as u32, 1000)[..]));
            }
        }
    })
    .expect("runtime");
}

/// Writes the fixtures' workload with the store as built into `$FIXTURE_DIR/{objects,raft}`:
/// how `fixtures/format2` was made (`FIXTURE_DIR=... cargo test -p engine --test
/// store_old_formats -- --ignored write_fixture`), and how the next format's will be.
#[test]
#[ignore]
fn write_fixture() {
    let root = PathBuf::from(std::env::var("FIXTURE_DIR").expect("FIXTURE_DIR names where to write"));
    let (objects, raft) = (root.join("objects"), root.join("raft"));
    for d in [&objects, &raft] {
        std::fs::create_dir_all(d).expect("fixture directory");
        assert!(std::fs::read_dir(d).expect("list").next().is_none(), "{} must be empty", d.display());
    }
    engine::run(runtime(), |core: engine::Core<()>| {
        let (objects, raft) = (objects.clone(), raft.clone());
        async move {
            let (store, _) = Store::open(core.env.clone(), config(&objects)).await.expect("open");
            let sizes = [0usize, 100, 4096, 4097, 9000];
            let key = |i: u32| format!("k{i:03}").into_bytes();
            for i in 0..40u32 {
                store.put(b"bkt", &key(i), format!("meta-{i}").as_bytes(), &data(i, sizes[i as usize % sizes.len()])).await.expect("put");
            }
            for i in (0..40u32).step_by(4) {
                store.put(b"bkt", &key(i), b"over", &data(i + 1000, 3000)).await.expect("overwrite");
            }
            for i in (1..40u32).step_by(5) {
                store.delete(b"bkt", &key(i)).await.expect("delete");
            }
            let mut w = store.chunk_writer();
            w.write(&data(7, 100_000)).await.expect("chunks");
            let extent = w.finish().await.expect("extent");
            store.put_chunked(b"bkt", b"large", b"meta-large", vec![extent], &[], &[]).await.expect("large");
            store.close().await.expect("close writes the checkpoint");
            // After the checkpoint, left in the log alone (no close).
            let (store, _) = Store::open(core.env.clone(), config(&objects)).await.expect("reopen");
            for i in 40..50u32 {
                store.put(b"bkt", &key(i), format!("meta-{i}").as_bytes(), &data(i, 5000)).await.expect("put");
            }
            store.delete(b"bkt", &key(42)).await.expect("delete");
            check_objects(&store, &expected_objects()).await;

            let (store, _) = Store::open(core.env.clone(), config(&raft)).await.expect("open raft");
            for index in 1..=30u64 {
                let entry = data(index as u32, 1000);
                let rec = RaftRecord::Entry { group: 5, term: 1 + index / 10, index, meta: &[1u8], data: &entry };
                store.append_raft(&[rec]).await.expect("entry");
            }
            let truncate = RaftRecord::Truncate { group: 5, from_index: 28 };
            let hard = RaftRecord::HardState { group: 5, state: RaftHardState { term: 4, vote: 2, commit: 25 } };
            store.append_raft(&[truncate, hard]).await.expect("truncate and hard state");
        }
    })
    .expect("runtime");
}
