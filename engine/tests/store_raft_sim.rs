//! Raft records in the store, in the simulator: several groups append entries, truncate
//! conflicting suffixes, store hard states and compact their logs into snapshots, beside object
//! writes, store compaction (which copies live entries forward) and index checkpoints taken
//! while all of it runs; power fails at a random moment (unsynced writes lost or torn,
//! sometimes after injected EIO).
//!
//! After restart each group's log (entries with their terms and payloads, compaction point,
//! hard state) must be the one its acknowledged records made, or that plus the one record call
//! in flight at the crash. And start-up from the checkpoint must rebuild exactly what a replay
//! of the whole log does: the checkpoint is removed and the store opened again to compare.
//!
//! Rerun one seed: `CORESTORE_SIM_SEED=<seed> CORESTORE_SIM_SEEDS=1 cargo test -p engine --test store_raft_sim`

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use engine::arena::{ArenaConfig, ClassConfig};
use engine::rng::Prng;
use engine::sim::{FaultConfig, SimEnv, SimWorld, each_seed, seed_from_env, seeds_from_env};
use engine::store::{CompactionPolicy, RaftHardState, RaftRecord, RecoveryReport, Store, StoreConfig};
use engine::{Env, Executor, SECTOR_SIZE, Storage};

const GROUPS: u64 = 3;
const OBJECT_KEYS: u64 = 8;
const SEEDS_DEFAULT: u64 = 300;

fn arena() -> ArenaConfig {
    ArenaConfig { classes: vec![ClassConfig { size_bytes: SECTOR_SIZE, count: 64 }, ClassConfig { size_bytes: 32 << 10, count: 32 }] }
}

fn config() -> StoreConfig {
    StoreConfig { dir: PathBuf::from("/store"), segment_bytes: 128 << 10, batch_bytes: 32 << 10 }
}

/// An entry's payload follows from where it was written, so a read can be checked on its own.
fn payload(group: u64, index: u64, term: u64, len: usize) -> Vec<u8> {
    let mut p = Prng::new(group << 48 ^ index << 16 ^ term);
    (0..len).map(|_| p.next_u64() as u8).collect()
}

/// One group's log as its acknowledged records made it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct GroupLog {
    /// index -> (term, payload)
    entries: BTreeMap<u64, (u64, Vec<u8>)>,
    /// (index, term)
    compacted: Option<(u64, u64)>,
    hard_state: Option<RaftHardState>,
}

impl GroupLog {
    fn last(&self) -> Option<u64> {
        self.entries.keys().next_back().copied().or(self.compacted.map(|c| c.0))
    }
}

/// One call's records, as the model applies them.
#[derive(Clone, Debug)]
enum Op {
    Append { group: u64, term: u64, from: u64, lens: Vec<usize> },
    Truncate { group: u64, from: u64, term: u64, lens: Vec<usize> },
    HardState { group: u64, state: RaftHardState },
    Compact { group: u64, index: u64, term: u64 },
}

type Model = BTreeMap<u64, GroupLog>;

fn apply(model: &mut Model, op: &Op) {
    match op {
        Op::Append { group, term, from, lens } => {
            let g = model.entry(*group).or_default();
            for (i, len) in lens.iter().enumerate() {
                let index = from + i as u64;
                g.entries.insert(index, (*term, payload(*group, index, *term, *len)));
            }
        }
        Op::Truncate { group, from, term, lens } => {
            let g = model.entry(*group).or_default();
            g.entries.retain(|i, _| i < from);
            for (i, len) in lens.iter().enumerate() {
                let index = from + i as u64;
                g.entries.insert(index, (*term, payload(*group, index, *term, *len)));
            }
        }
        Op::HardState { group, state } => model.entry(*group).or_default().hard_state = Some(*state),
        Op::Compact { group, index, term } => {
            let g = model.entry(*group).or_default();
            g.entries.retain(|i, _| i > index);
            g.compacted = Some((*index, *term));
        }
    }
}

/// The next op for `group`, valid against its log.
fn next_op(rng: &mut Prng, group: u64, log: &GroupLog, term: &mut u64) -> Op {
    let lens = |rng: &mut Prng| (0..rng.range(1, 4)).map(|_| rng.range(16, 3000) as usize).collect::<Vec<_>>();
    let first = log.entries.keys().next().copied();
    let roll = rng.below(100);
    match (roll, first, log.last()) {
        (0..=14, Some(first), Some(last)) => {
            *term += 1;
            // Now and then a suffix goes with nothing after it (the store allows it; Raft appends
            // the leader's entries with it): then no later entry replaces what it dropped.
            let lens = if rng.chance(300_000) { Vec::new() } else { lens(rng) };
            Op::Truncate { group, from: rng.range(first, last), term: *term, lens }
        }
        (15..=29, Some(first), Some(last)) => {
            let index = rng.range(first, last);
            Op::Compact { group, index, term: log.entries[&index].0 }
        }
        (30..=44, _, _) => {
            Op::HardState { group, state: RaftHardState { term: *term, vote: rng.range(0, 3), commit: log.last().unwrap_or(0) } }
        }
        _ => Op::Append { group, term: *term, from: log.last().map_or(1, |l| l + 1), lens: lens(rng) },
    }
}

/// The records of `op` (payloads held by `data`).
fn records<'a>(op: &Op, data: &'a [Vec<u8>]) -> Vec<RaftRecord<'a>> {
    let entries = |group: u64, term: u64, from: u64| {
        data.iter().enumerate().map(move |(i, d)| RaftRecord::Entry { group, term, index: from + i as u64, meta: b"n", data: d })
    };
    match *op {
        Op::Append { group, term, from, .. } => entries(group, term, from).collect(),
        Op::Truncate { group, from, term, .. } => {
            std::iter::once(RaftRecord::Truncate { group, from_index: from }).chain(entries(group, term, from)).collect()
        }
        Op::HardState { group, state } => vec![RaftRecord::HardState { group, state }],
        Op::Compact { group, index, term } => vec![RaftRecord::Compact { group, index, term, meta: b"snap", data: b"image" }],
    }
}

fn op_data(op: &Op) -> Vec<Vec<u8>> {
    match op {
        Op::Append { group, term, from, lens } | Op::Truncate { group, from, term, lens } => {
            lens.iter().enumerate().map(|(i, len)| payload(*group, from + i as u64, *term, *len)).collect()
        }
        _ => Vec::new(),
    }
}

#[derive(Default)]
struct History {
    acked: Vec<Op>,
    /// The call in flight when power failed (or that failed): it may or may not be durable.
    maybe: Option<Op>,
}

async fn raft_writer(store: Store<SimEnv>, history: Rc<RefCell<History>>, seed: u64) {
    let mut rng = Prng::new(seed);
    let mut model = Model::new();
    let mut terms: BTreeMap<u64, u64> = (1..=GROUPS).map(|g| (g, 1)).collect();
    loop {
        let group = rng.range(1, GROUPS);
        let log = model.get(&group).cloned().unwrap_or_default();
        let op = next_op(&mut rng, group, &log, terms.get_mut(&group).expect("group"));
        let data = op_data(&op);
        history.borrow_mut().maybe = Some(op.clone());
        if store.append_raft(&records(&op, &data)).await.is_err() {
            return; // the store failed (injected EIO): its outcome stays unknown
        }
        apply(&mut model, &op);
        let mut h = history.borrow_mut();
        h.maybe = None;
        h.acked.push(op);
    }
}

/// Object writes beside the Raft records, so segments mix both and compaction relocates objects
/// out of segments whose entries the groups compacted away.
async fn object_writer(store: Store<SimEnv>, seed: u64) {
    let mut rng = Prng::new(seed ^ 0x0B1E);
    loop {
        let key = format!("k{}", rng.below(OBJECT_KEYS));
        let data = vec![rng.next_u64() as u8; rng.range(100, 6000) as usize];
        let written = if rng.chance(200_000) { store.delete(b"b", key.as_bytes()).await } else { store.put(b"b", key.as_bytes(), b"", &data).await };
        if written.is_err() {
            return;
        }
    }
}

/// Each group's log as the store holds it, payloads read back and verified.
async fn store_logs(store: &Store<SimEnv>) -> Result<Model, String> {
    let mut out = Model::new();
    for group in store.raft_group_ids() {
        let g = store.raft_group(group).expect("listed");
        let mut log = GroupLog { compacted: g.compacted.map(|c| (c.index, c.term)), hard_state: g.hard_state, ..Default::default() };
        for (index, e) in &g.entries {
            let (term, object) = store
                .read_raft_entry(group, index)
                .await
                .map_err(|e| format!("group {group} entry {index}: {e}"))?
                .ok_or_else(|| format!("group {group} entry {index}: listed but not read"))?;
            if term != e.term {
                return Err(format!("group {group} entry {index}: term {term}, listed as {}", e.term));
            }
            log.entries.insert(index, (term, object.data().to_vec()));
        }
        if g.compacted.is_some() {
            store.read_raft_compacted(group).await.map_err(|e| format!("group {group} compaction record: {e}"))?;
        }
        out.insert(group, log);
    }
    Ok(without_empty(out))
}

/// The objects as the store lists them: key -> lsn.
fn objects(store: &Store<SimEnv>) -> Vec<(Vec<u8>, u64)> {
    store.list(b"b", b"", None, usize::MAX).into_iter().map(|l| (l.key.to_vec(), l.lsn)).collect()
}

/// Groups with nothing in them (never written, or truncated to nothing) are left out of
/// comparisons: the store may still list one it has seen.
fn without_empty(model: Model) -> Model {
    model.into_iter().filter(|(_, g)| *g != GroupLog::default()).collect()
}

#[derive(Default)]
struct Outcome {
    acked: usize,
    from_checkpoint: bool,
    raft_entries_gone: u64,
    compactions: u64,
    raft_entries_moved: u64,
    failed: bool,
}

fn run_seed(seed: u64) -> Result<Outcome, String> {
    let mut rng = Prng::new(seed);
    let torn = FaultConfig { torn_unit_bytes: [512, 4096][rng.below(2) as usize], ..FaultConfig::none() };
    // A quarter of the seeds also get read, write and sync EIO while running (no bit flips:
    // recovery refuses damage to synced Raft records by design; no ENOSPC: it only stops writes).
    let faults = if rng.chance(250_000) {
        FaultConfig { bitflip_ppm: 0, capacity_bytes: u64::MAX, torn_unit_bytes: torn.torn_unit_bytes, ..FaultConfig::random(&mut rng) }
    } else {
        torn.clone()
    };
    let world = SimWorld::new(seed, torn.clone());
    let env = SimEnv::new(world.clone(), &arena());
    let history = Rc::new(RefCell::new(History::default()));
    let crash_after = Duration::from_nanos(rng.range(2_000_000, 80_000_000));
    let checkpoint_every = rng.range(8 << 10, 128 << 10);
    let running: Rc<RefCell<Option<Store<SimEnv>>>> = Rc::new(RefCell::new(None));
    let executor = Executor::new(world.clone());
    let (h, r, w) = (history.clone(), running.clone(), world.clone());
    let opened = executor.block_on(async move {
        let (store, _) = Store::open(env_of(&w), config()).await.map_err(|e| e.to_string())?;
        w.set_faults(faults);
        *r.borrow_mut() = Some(store.clone());
        let _raft = engine::spawn(raft_writer(store.clone(), h, seed));
        let _objects = engine::spawn(object_writer(store.clone(), seed));
        let _compactor = store.spawn_compactor(CompactionPolicy {
            max_live_ratio: 0.9,
            bytes_per_s: 50 << 20,
            relocate_share: 0.5,
            idle: Duration::from_micros(300),
            ..CompactionPolicy::default()
        });
        let _checkpointer = store.spawn_checkpointer(checkpoint_every, Duration::from_micros(500));
        engine::sleep(crash_after).await;
        Ok::<(), String>(())
    });
    let stats = running.borrow_mut().take().map(|s| s.stats());
    drop(executor);
    opened?;
    world.crash();
    world.set_faults(torn);
    let history = Rc::try_unwrap(history).map_err(|_| "history still shared")?.into_inner();
    let mut acked = Model::new();
    for op in &history.acked {
        apply(&mut acked, op);
    }
    let mut with_maybe = acked.clone();
    if let Some(op) = &history.maybe {
        apply(&mut with_maybe, op);
    }
    let (acked, with_maybe) = (without_empty(acked), without_empty(with_maybe));
    let mut out = Outcome {
        acked: history.acked.len(),
        compactions: stats.map_or(0, |s| s.compactions),
        raft_entries_moved: stats.map_or(0, |s| s.raft_entries_moved),
        failed: world.stats().eio > 0,
        ..Default::default()
    };
    drop(env);
    let executor = Executor::new(world.clone());
    let w = world.clone();
    let (from_checkpoint, raft_entries_gone) = executor.block_on(async move {
        let env = env_of(&w);
        let (store, report) = Store::open(env.clone(), config()).await.map_err(|e| format!("reopen after the crash: {e}"))?;
        check_report(&report)?;
        let logs = store_logs(&store).await?;
        if logs != acked && logs != with_maybe {
            return Err(format!(
                "after the crash the Raft logs are not the acknowledged ones{}:\n got {}\n acked {}",
                if history.maybe.is_some() { " (nor those plus the call in flight)" } else { "" },
                describe(&logs),
                describe(&acked)
            ));
        }
        let objects_then = objects(&store);
        // Not closed (a close writes a checkpoint): as a crash would leave it.
        drop(store);
        match env.storage().remove(&config().dir.join("index.ckpt")) {
            Ok(()) => {}
            Err(e) if e.source.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(format!("remove the checkpoint: {e}")),
        }
        let (store, _) = Store::open(env.clone(), config()).await.map_err(|e| format!("open without the checkpoint: {e}"))?;
        let replayed = store_logs(&store).await?;
        if replayed != logs {
            return Err(format!(
                "start-up from the checkpoint and a replay of the whole log disagree:\n from the checkpoint {}\n replayed {}",
                describe(&logs),
                describe(&replayed)
            ));
        }
        if objects(&store) != objects_then {
            return Err("start-up from the checkpoint and a replay of the whole log list different objects".into());
        }
        Ok::<_, String>((report.checkpoint_raft_groups.is_some_and(|g| g > 0), report.checkpoint_raft_entries_gone))
    })?;
    out.from_checkpoint = from_checkpoint;
    out.raft_entries_gone = raft_entries_gone;
    Ok(out)
}

fn env_of(world: &Rc<SimWorld>) -> SimEnv {
    SimEnv::new(world.clone(), &arena())
}

/// A checkpoint that went unused for a reason other than its segments being gone is a bug here:
/// nothing in this test damages it.
fn check_report(report: &RecoveryReport) -> Result<(), String> {
    match &report.checkpoint_unused {
        Some(why) if !why.starts_with("no segment from its tail") => Err(format!("the checkpoint went unused: {why}")),
        _ => Ok(()),
    }
}

fn describe(model: &Model) -> String {
    let groups: Vec<String> = model
        .iter()
        .map(|(id, g)| {
            let entries: Vec<String> = g.entries.iter().map(|(i, (t, p))| format!("{i}@{t}:{}B", p.len())).collect();
            format!("group {id}: compacted {:?}, hard state {:?}, entries [{}]", g.compacted, g.hard_state, entries.join(" "))
        })
        .collect();
    groups.join("; ")
}

#[test]
fn raft_logs_survive_crashes_and_checkpoints_rebuild_them() {
    let first = seed_from_env(0x4AF7_C000);
    let n = seeds_from_env("CORESTORE_SIM_SEEDS", SEEDS_DEFAULT);
    let mut total = Outcome::default();
    let (mut from_checkpoint, mut with_gone, mut failed) = (0u64, 0u64, 0u64);
    let rerun = |seed| format!("CORESTORE_SIM_SEED={seed} CORESTORE_SIM_SEEDS=1 cargo test -p engine --release --test store_raft_sim");
    each_seed(first, n, rerun, |seed| {
        let o = run_seed(seed)?;
        total.acked += o.acked;
        total.compactions += o.compactions;
        total.raft_entries_moved += o.raft_entries_moved;
        total.raft_entries_gone += o.raft_entries_gone;
        from_checkpoint += o.from_checkpoint as u64;
        with_gone += (o.raft_entries_gone > 0) as u64;
        failed += o.failed as u64;
        Ok(())
    });
    eprintln!(
        "{n} seeds: {} record calls acknowledged, {} store compactions moving {} live entries, {from_checkpoint} start-ups took Raft state from a checkpoint, {with_gone} of them forgot {} entries of segments removed since, {failed} seeds with injected EIO",
        total.acked, total.compactions, total.raft_entries_moved, total.raft_entries_gone
    );
    if n >= 100 {
        assert!(total.acked > 0, "nothing was acknowledged: the test proves nothing");
        assert!(total.compactions > 0, "no store compaction: segments that held entries are never removed");
        assert!(total.raft_entries_moved > 0, "no live entry was copied forward: that path is not exercised");
        assert!(from_checkpoint > 0, "no start-up used a checkpoint with Raft state");
        assert!(with_gone > 0, "no start-up forgot entries of a removed segment: that path is not exercised");
    }
}
