//! Snapshots on the durable path, on real disk: nodes compact their logs into snapshots of a
//! state machine, the store reclaims the segments the compacted entries filled, a follower cut
//! off meanwhile catches up through InstallSnapshot (its state machine equal to the leader's),
//! and after a restart every node starts from its snapshot plus the entries after it.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use engine::arena::{ArenaConfig, ClassConfig};
use engine::store::{Store, StoreConfig};
use engine::{LinuxEnv, RuntimeConfig, SECTOR_SIZE};
use raftlog::{Config, Driver, LocalBus, Role, Storage};

const BATCH_BYTES: usize = 1 << 20;
/// Small segments, so the compacted entries fill several that the store can reclaim.
const SEGMENT_BYTES: u64 = 4 << 20;
const NODES: u64 = 3;
const ENTRIES: u64 = 3000;
/// A node compacts once this many entries were applied since its snapshot.
const COMPACT_EVERY: u64 = 500;
const ROUNDS_MAX: usize = 5000;

type Node = Driver<LinuxEnv, Rc<LocalBus>>;

fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("raft-snapshot").join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn runtime() -> RuntimeConfig {
    let mut c = RuntimeConfig::cores(1).expect("one core");
    c.arena = ArenaConfig {
        classes: vec![ClassConfig { size_bytes: SECTOR_SIZE, count: 512 }, ClassConfig { size_bytes: BATCH_BYTES, count: 12 }],
    };
    c
}

fn on_core<T: Send + 'static>(f: impl AsyncFnOnce(LinuxEnv) -> T + Send + Sync + Clone + 'static) -> T {
    let out = engine::run(runtime(), move |core: engine::Core<()>| {
        let f = f.clone();
        async move { f(core.env.clone()).await }
    })
    .expect("runtime");
    out.into_iter().next().expect("one core")
}

/// The state machine: how far it applied, and a digest chained over every entry's payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Sm {
    index: u64,
    digest: u64,
}

impl Sm {
    fn apply(&mut self, index: u64, payload: &[u8]) {
        assert_eq!(index, self.index + 1, "entries applied in order, none skipped");
        self.index = index;
        // FNV-1a over the previous digest and the payload.
        let mut h = self.digest ^ 0xcbf2_9ce4_8422_2325;
        for &b in payload.iter().chain(&index.to_le_bytes()) {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
        self.digest = h;
    }

    fn encode(&self) -> Vec<u8> {
        [self.index.to_le_bytes(), self.digest.to_le_bytes()].concat()
    }

    fn decode(bytes: &[u8]) -> Sm {
        if bytes.is_empty() {
            return Sm::default();
        }
        assert_eq!(bytes.len(), 16, "a snapshot image is an index and a digest");
        let word = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        Sm { index: word(0), digest: word(1) }
    }
}

struct Replica {
    driver: Node,
    sm: Sm,
    installs: u64,
}

impl Replica {
    async fn open(env: &LinuxEnv, root: &Path, id: u64, bus: &Rc<LocalBus>) -> Replica {
        let config = StoreConfig { dir: root.join(format!("node-{id}")), segment_bytes: SEGMENT_BYTES, batch_bytes: BATCH_BYTES };
        let store = Store::open(env.clone(), config).await.expect("open store").0;
        let mut driver = Driver::new(id, store, bus.clone());
        let voters: Vec<u64> = (1..=NODES).collect();
        driver.add_group(Config::new(id, 1, voters, id * 7919)).await.expect("add group");
        // The state machine starts from the snapshot its log starts after.
        let snapshot = driver.group(1).expect("group").storage().snapshot().expect("snapshot");
        let sm = Sm::decode(&snapshot.data);
        assert_eq!(sm.index, snapshot.meta.index, "the image is the state at the snapshot's index");
        Replica { driver, sm, installs: 0 }
    }

    /// Takes what the driver handed out: an installed snapshot first, then entries.
    fn apply(&mut self) {
        if let Some(snapshot) = self.driver.take_installed(1) {
            self.sm = Sm::decode(&snapshot.data);
            assert_eq!(self.sm.index, snapshot.meta.index);
            self.installs += 1;
        }
        for entry in self.driver.take_applied(1) {
            self.sm.apply(entry.index, &entry.payload);
        }
    }

    fn compact_if_due(&mut self) {
        let snapshot_index = self.driver.group(1).expect("group").snapshot_index();
        if self.sm.index >= snapshot_index + COMPACT_EVERY {
            self.driver.compact(1, self.sm.index, self.sm.encode().into()).expect("compact");
        }
    }

    fn segments(&self) -> usize {
        self.driver.store().segment_ids().len()
    }
}

async fn round(replicas: &mut [Replica], compact: bool) {
    for r in replicas.iter_mut() {
        r.driver.tick();
    }
    for _ in 0..8 {
        let mut busy = false;
        for r in replicas.iter_mut() {
            busy |= r.driver.turn().await.expect("turn");
            r.apply();
            if compact {
                r.compact_if_due();
            }
        }
        if !busy {
            break;
        }
    }
}

fn leader(replicas: &[Replica]) -> Option<usize> {
    replicas.iter().position(|r| r.driver.group(1).expect("group").role() == Role::Leader)
}

async fn elect(replicas: &mut [Replica]) -> usize {
    for _ in 0..ROUNDS_MAX {
        round(replicas, true).await;
        if let Some(l) = leader(replicas) {
            return l;
        }
    }
    panic!("no leader elected");
}

#[test]
fn a_compacted_log_frees_segments_and_a_lagging_follower_installs_the_snapshot() {
    let d = dir("install");
    let root = d.clone();
    let before_restart = on_core(async move |env: LinuxEnv| {
        let bus = LocalBus::new();
        let mut replicas = Vec::new();
        for id in 1..=NODES {
            replicas.push(Replica::open(&env, &root, id, &bus).await);
        }
        let l = elect(&mut replicas).await;
        let behind = (l + 1) % replicas.len();
        bus.set_down(behind as u64 + 1, true);
        let mut proposed = 0;
        while proposed < ENTRIES {
            // Entries of a few KiB each, so the log fills several segments (frames are packed).
            let batch: Vec<raftlog::Payload> =
                (proposed..ENTRIES.min(proposed + 100)).map(|k| format!("e{k:<4000}").into_bytes().into()).collect();
            if replicas[l].driver.group_mut(1).expect("group").propose(batch.clone()).is_ok() {
                proposed += batch.len() as u64;
            }
            round(&mut replicas, true).await;
        }
        for _ in 0..20 {
            round(&mut replicas, true).await;
        }
        let leader_sm = replicas[l].sm;
        assert!(leader_sm.index >= ENTRIES, "the leader applied everything: {leader_sm:?}");
        let snapshot_index = replicas[l].driver.group(1).expect("group").snapshot_index();
        assert!(snapshot_index >= ENTRIES - COMPACT_EVERY, "the leader compacted its log (snapshot at {snapshot_index})");
        // The entries before the snapshot are gone from the store, and so are the segments
        // they filled (the hard states and the snapshot record live in the tail).
        let segments_before = replicas[l].segments();
        while replicas[l].driver.store().compaction_candidate(0.5).is_some() {
            replicas[l].driver.store().compact_next(u64::MAX).await.expect("store compaction");
        }
        let segments_after = replicas[l].segments();
        eprintln!("leader {leader_sm:?}, snapshot at {snapshot_index}, store segments {segments_before} -> {segments_after}");
        assert!(
            segments_after < segments_before && segments_after <= 2,
            "compacted Raft segments are reclaimed: {segments_before} -> {segments_after}"
        );
        // The follower cut off before the first entry is far behind every log's start.
        assert!(replicas[behind].sm.index < 10);
        bus.set_down(behind as u64 + 1, false);
        for _ in 0..ROUNDS_MAX {
            round(&mut replicas, true).await;
            if replicas[behind].sm.index >= leader_sm.index {
                break;
            }
        }
        assert!(replicas[behind].installs >= 1, "the follower caught up through a snapshot");
        assert!(replicas[behind].sm.index >= leader_sm.index, "the follower caught up: {:?} of {leader_sm:?}", replicas[behind].sm);
        // Same entries, same state: compare at the leader's index now.
        for _ in 0..50 {
            round(&mut replicas, false).await;
        }
        let states: Vec<Sm> = replicas.iter().map(|r| r.sm).collect();
        assert!(states.iter().all(|s| *s == states[0]), "every state machine equal: {states:?}");
        states[0]
    });
    // After a restart each node starts from its snapshot and replays what follows.
    let root = d.clone();
    on_core(async move |env: LinuxEnv| {
        let bus = LocalBus::new();
        let mut replicas = Vec::new();
        for id in 1..=NODES {
            let r = Replica::open(&env, &root, id, &bus).await;
            assert!(r.sm.index > 0, "node {id} starts from a snapshot");
            replicas.push(r);
        }
        let l = elect(&mut replicas).await;
        replicas[l].driver.group_mut(1).expect("group").propose(vec![b"after".to_vec().into()]).expect("propose");
        for _ in 0..ROUNDS_MAX {
            round(&mut replicas, false).await;
            if replicas.iter().all(|r| r.sm.index > before_restart.index) {
                break;
            }
        }
        let states: Vec<Sm> = replicas.iter().map(|r| r.sm).collect();
        assert!(states.iter().all(|s| *s == states[0] && s.index > before_restart.index), "{states:?} after {before_restart:?}");
    });
}
