//! The driver and its durable storage in the engine's simulator: a 3-node cluster of several
//! groups, all on `SimEnv` storage, loses power at a random moment (unsynced writes lost or
//! torn, the write in flight included); in half the seeds each store writes index checkpoints
//! (with its Raft state) as it runs, and in half the seeds each store runs its compactor on small
//! segments, which moves live Raft entries forward (`RaftMove` frames) under the driver's
//! appends, truncations and fetches. After restart every acknowledged (committed and applied
//! by a leader) entry is on a majority with its payload, each node's hard state is at least the
//! one its last completed write made durable, and the cluster applies every acknowledged entry
//! again at the same index.
//!
//! Rerun one seed: `CORESTORE_SIM_SEED=<seed> RAFT_DRIVER_SIM_SEEDS=1 cargo test -p raftlog --release --test driver_sim`

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use engine::arena::{ArenaConfig, ClassConfig};
use engine::rng::Prng;
use engine::sim::{FaultConfig, SimEnv, SimWorld, each_seed, seed_from_env, seeds_from_env};
use engine::store::{CompactionPolicy, Store, StoreConfig};
use engine::{Executor, SECTOR_SIZE};
use raftlog::{Config, Driver, HardState, LocalBus, Role, Storage};

const NODES: u64 = 3;
const GROUPS: u64 = 3;
const BATCH_BYTES: usize = 128 << 10;
/// Rounds the restarted cluster may take to apply every acknowledged entry again.
const ROUNDS_AFTER_MAX: u64 = 20_000;
const SEEDS_DEFAULT: u64 = 100;
const TICK: Duration = Duration::from_micros(500);
/// Log bytes between index checkpoints, in the seeds that take them.
const CHECKPOINT_LOG_BYTES: u64 = 64 << 10;
/// Segment size in the seeds that run the store's compactor: small, so a run seals many and the
/// compactor finds segments whose live entries it must move (the default seeds use 16 MiB,
/// which a run never fills).
const COMPACTED_SEGMENT_BYTES: u64 = 512 << 10;

type Node = Driver<SimEnv, Rc<LocalBus>>;

fn arena() -> ArenaConfig {
    ArenaConfig { classes: vec![ClassConfig { size_bytes: SECTOR_SIZE, count: 512 }, ClassConfig { size_bytes: BATCH_BYTES, count: 16 }] }
}

fn store_config(id: u64, compacting: bool) -> StoreConfig {
    let segment_bytes = if compacting { COMPACTED_SEGMENT_BYTES } else { 16 << 20 };
    StoreConfig { dir: PathBuf::from(format!("/node-{id}")), segment_bytes, batch_bytes: BATCH_BYTES }
}

/// What a seed exercises besides power loss.
#[derive(Clone, Copy)]
struct Options {
    /// Each store writes index checkpoints as it runs (the first run only).
    checkpoints: bool,
    /// Each store runs its compactor (both runs).
    compacting: bool,
}

/// What the run before the crash promised.
#[derive(Default)]
struct Promised {
    /// (group, index, payload) applied by a leader: acknowledged to a client.
    acked: BTreeSet<(u64, u64, Vec<u8>)>,
    /// (node, group) -> hard state after the node's last completed turn (its write durable).
    hard: BTreeMap<(u64, u64), HardState>,
    /// (group, index, payload) applied by any node.
    applied: BTreeSet<(u64, u64, Vec<u8>)>,
    /// Drivers stopped by an injected I/O error.
    drivers_failed: u64,
    /// Per node, turns that wrote beside an earlier turn's write in flight.
    turns_beside: BTreeMap<u64, u64>,
    /// Per node, live Raft entries its store's compactor moved forward.
    moved: BTreeMap<u64, u64>,
}

/// Opens every node's store and driver; returns them and how many stores took their Raft state
/// from an index checkpoint. With `checkpoints`, each store also writes one every
/// `CHECKPOINT_LOG_BYTES` of log while it runs, so a restart after power loss starts from one;
/// with `compacting`, each runs its compactor, eager enough to take segments still mostly live.
async fn open_cluster(env: &SimEnv, bus: &Rc<LocalBus>, seed: u64, options: Options) -> Result<(Vec<Node>, u64), String> {
    let voters: Vec<u64> = (1..=NODES).collect();
    let mut nodes = Vec::new();
    let mut from_checkpoint = 0;
    for id in 1..=NODES {
        let (store, report) =
            Store::open(env.clone(), store_config(id, options.compacting)).await.map_err(|e| format!("open node {id}: {e}"))?;
        if let Some(why) = report.checkpoint_unused.filter(|why| !why.starts_with("no segment from its tail")) {
            return Err(format!("node {id}: the index checkpoint went unused: {why}"));
        }
        from_checkpoint += report.checkpoint_raft_groups.is_some_and(|g| g > 0) as u64;
        if options.checkpoints {
            let _checkpointer = store.spawn_checkpointer(CHECKPOINT_LOG_BYTES, TICK);
        }
        if options.compacting {
            let _compactor = store.spawn_compactor(CompactionPolicy {
                max_live_ratio: 0.95,
                bytes_per_s: 50 << 20,
                relocate_share: 0.5,
                idle: TICK,
                ..CompactionPolicy::default()
            });
        }
        let mut driver = Driver::new(id, store, bus.clone());
        for group in 1..=GROUPS {
            let config = Config::new(id, group, voters.clone(), seed ^ (id * 1000 + group));
            driver.add_group(config).await.map_err(|e| format!("node {id} group {group}: {e}"))?;
        }
        nodes.push(driver);
    }
    Ok((nodes, from_checkpoint))
}

/// Runs every node's driver loop (`Driver::run`) as its own task, so writes and deliveries
/// interleave as on a real core. Each node, in `each`: records its durable hard states (as of
/// the last write), takes applied entries (a leader's count as acknowledged), and proposes
/// now and then if it leads. Runs until `stop` is set.
fn spawn_nodes(
    nodes: Vec<Node>,
    promised: &Rc<RefCell<Promised>>,
    seed: u64,
    stop: &Rc<std::cell::Cell<bool>>,
) -> Vec<engine::JoinHandle<()>> {
    nodes
        .into_iter()
        .map(|mut node| {
            let (promised, stop) = (promised.clone(), stop.clone());
            let mut rng = Prng::new(seed ^ node.group(1).expect("group").id().wrapping_mul(0x9E37_79B9));
            engine::spawn(async move {
                let mut next = 0u64;
                let result = node
                    .run(TICK, |node| {
                        let id = node.group(1).expect("group").id();
                        let mut p = promised.borrow_mut();
                        p.turns_beside.insert(id, node.stats().turns_beside);
                        p.moved.insert(id, node.store().stats().raft_entries_moved);
                        for group in 1..=GROUPS {
                            // Durable as of the last write (inside a turn `each` runs before the
                            // turn's write: the node's own hard state can be ahead of the disk).
                            if let Some(hard) = node.durable_hard_state(group) {
                                p.hard.insert((id, group), hard);
                            }
                            let raw = node.group(group).expect("group");
                            let leads = raw.role() == Role::Leader;
                            for entry in node.take_applied(group) {
                                if !entry.payload.is_empty() {
                                    p.applied.insert((group, entry.index, entry.payload.to_vec()));
                                    if leads {
                                        p.acked.insert((group, entry.index, entry.payload.to_vec()));
                                    }
                                }
                            }
                            if leads && rng.chance(200_000) {
                                next += 1;
                                let payload = format!("n{id}-g{group}-{next}").into_bytes();
                                let _ = node.group_mut(group).expect("group").propose(vec![payload.into()]);
                            }
                        }
                        !stop.get()
                    })
                    .await;
                // An injected EIO stops this node's driver (it must not go on after a failed
                // write); the others carry on, and the crash check still holds.
                if result.is_err() {
                    promised.borrow_mut().drivers_failed += 1;
                }
            })
        })
        .collect()
}

/// Now and then a node is cut off for a while: leaders change, suffixes get truncated.
async fn partitions(bus: Rc<LocalBus>, seed: u64) {
    let mut rng = Prng::new(seed ^ 0x9A47);
    loop {
        engine::sleep(TICK * rng.range(20, 200) as u32).await;
        let cut = rng.range(1, NODES + 1);
        for id in 1..=NODES {
            bus.set_down(id, id == cut && rng.chance(500_000));
        }
    }
}

async fn check_after(nodes: &mut [Node], promised: &Promised) -> Result<(), String> {
    for ((id, group), before) in &promised.hard {
        let now = nodes[*id as usize - 1].group(*group).expect("group").storage().hard_state();
        if now.term < before.term || (now.term == before.term && before.vote.is_some() && now.vote != before.vote) {
            return Err(format!("node {id} group {group}: hard state {now:?} after the crash, {before:?} was durable"));
        }
    }
    for (group, index, payload) in &promised.acked {
        let mut holders = 0u64;
        for node in nodes.iter() {
            // From the store: the storage keeps only a tail in memory after open.
            let read = node.store().read_raft_entry(*group, *index).await.map_err(|e| format!("read back: {e}"))?;
            if read.is_some_and(|(_, object)| object.data() == &payload[..]) {
                holders += 1;
            }
        }
        if holders * 2 <= NODES {
            return Err(format!("group {group} acknowledged entry {index} is on {holders} of {NODES} nodes after the crash"));
        }
    }
    Ok(())
}

/// Runs the restarted cluster until every acknowledged entry was applied again (at the same
/// index, same payload), checking that no index ever gets two different entries.
async fn reapply(nodes: Vec<Node>, promised: &Promised, seed: u64) -> Result<(), String> {
    let after = Rc::new(RefCell::new(Promised::default()));
    let stop = Rc::new(std::cell::Cell::new(false));
    let tasks = spawn_nodes(nodes, &after, seed, &stop);
    let mut result = Err("after restart, some acknowledged entry was never applied again".to_string());
    for _ in 0..ROUNDS_AFTER_MAX {
        engine::sleep(TICK).await;
        let a = after.borrow();
        let mut at: BTreeMap<(u64, u64), &Vec<u8>> = BTreeMap::new();
        for (g, i, p) in &a.applied {
            if at.insert((*g, *i), p).is_some_and(|other| other != p) {
                return Err(format!("group {g} index {i}: two different entries applied"));
            }
        }
        if promised.acked.is_subset(&a.applied) {
            result = Ok(());
            break;
        }
    }
    stop.set(true);
    for t in tasks {
        t.await;
    }
    result
}

/// What one seed did, summed over the seeds.
#[derive(Default)]
struct Totals {
    acked: usize,
    /// Drivers stopped by an injected EIO.
    failed: u64,
    /// Turns written beside another in flight.
    beside: u64,
    /// Stores restarted from a checkpoint with Raft state.
    from_checkpoint: u64,
    /// Live Raft entries the stores' compactors moved before the crash.
    moved: u64,
}

fn run_seed(seed: u64) -> Result<Totals, String> {
    let mut rng = Prng::new(seed);
    let torn = FaultConfig { torn_unit_bytes: [512, 4096][rng.below(2) as usize], ..FaultConfig::none() };
    // Half the seeds also get read, write and sync EIO while running (no bit flips: recovery
    // refuses damage to synced data by design; no ENOSPC: segments are preallocated at open).
    let faults = if rng.chance(500_000) {
        FaultConfig { bitflip_ppm: 0, capacity_bytes: u64::MAX, torn_unit_bytes: torn.torn_unit_bytes, ..FaultConfig::random(&mut rng) }
    } else {
        torn.clone()
    };
    let world = SimWorld::new(seed, torn.clone());
    let env = SimEnv::new(world.clone(), &arena());
    let promised = Rc::new(RefCell::new(Promised::default()));
    let crash_after = Duration::from_nanos(rng.range(5_000_000, 400_000_000));
    let options = Options { checkpoints: rng.chance(500_000), compacting: rng.chance(500_000) };
    let executor = Executor::new(world.clone());
    let p = promised.clone();
    let env2 = env.clone();
    let world_faults = world.clone();
    let started = executor.block_on(async move {
        let bus = LocalBus::new();
        let (nodes, _) = open_cluster(&env, &bus, seed, options).await?;
        world_faults.set_faults(faults);
        let stop = Rc::new(std::cell::Cell::new(false));
        let _tasks = spawn_nodes(nodes, &p, seed, &stop);
        // Power fails at `crash_after`: the tasks are dropped with the executor, mid-write.
        let _ = engine::timeout(crash_after, partitions(bus, seed)).await;
        Ok::<(), String>(())
    });
    drop(executor);
    started?;
    world.crash();
    world.set_faults(torn);
    let env = env2;
    let executor = Executor::new(world.clone());
    let promised = Rc::try_unwrap(promised).map_err(|_| "promised still shared")?.into_inner();
    let mut totals = Totals {
        acked: promised.acked.len(),
        failed: promised.drivers_failed,
        beside: promised.turns_beside.values().sum(),
        from_checkpoint: 0,
        moved: promised.moved.values().sum(),
    };
    totals.from_checkpoint = executor.block_on(async move {
        let bus = LocalBus::new();
        let (mut nodes, from_checkpoint) = open_cluster(&env, &bus, seed ^ 0xA5A5, Options { checkpoints: false, ..options }).await?;
        check_after(&mut nodes, &promised).await?;
        reapply(nodes, &promised, seed).await?;
        Ok::<_, String>(from_checkpoint)
    })?;
    Ok(totals)
}

#[test]
fn cluster_survives_power_loss() {
    let first = seed_from_env(0x2AF7_0000);
    let n = seeds_from_env("RAFT_DRIVER_SIM_SEEDS", SEEDS_DEFAULT);
    let mut t = Totals::default();
    let rerun = |seed| format!("CORESTORE_SIM_SEED={seed} RAFT_DRIVER_SIM_SEEDS=1 cargo test -p raftlog --release --test driver_sim");
    each_seed(first, n, rerun, |seed| {
        let s = run_seed(seed)?;
        t.acked += s.acked;
        t.failed += s.failed;
        t.beside += s.beside;
        t.from_checkpoint += s.from_checkpoint;
        t.moved += s.moved;
        Ok(())
    });
    eprintln!(
        "{n} seeds, {} acknowledged entries checked after power loss, {} drivers stopped by injected EIO, {} turns written beside an earlier one in flight, {} stores restarted with Raft state from an index checkpoint, {} live entries moved by store compaction before the crash",
        t.acked, t.failed, t.beside, t.from_checkpoint, t.moved
    );
    assert!(t.acked > 0, "the workload acknowledged something");
    if n >= 20 {
        assert!(t.beside > 0, "no turn wrote beside another in flight: the driver's pipeline is not exercised");
        assert!(t.from_checkpoint > 0, "no store restarted from a checkpoint with Raft state: that start-up is not exercised");
        assert!(t.moved > 0, "store compaction moved no live Raft entry: moves under the driver are not exercised");
    }
}
