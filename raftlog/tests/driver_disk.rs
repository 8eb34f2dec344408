//! The per-core driver on real disk: many groups' writes of a turn cost one store batch (one
//! write, durable on completion); a 3-node cluster restarted from its segment files finds every
//! acknowledged (committed) entry on a majority, each node's hard state as it last answered, and
//! goes on; a torn batch that was never acknowledged is cut and no torn entry is shown; a node
//! shutting down hands its groups over without an election timeout; a driver loop that always
//! finds work still lets the core's other tasks run.

use std::cell::Cell;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use engine::arena::{ArenaConfig, ClassConfig};
use engine::store::{Store, StoreConfig};
use engine::{LinuxEnv, RuntimeConfig, SECTOR_SIZE};
use raftlog::{Config, Driver, DurableStorage, HardState, LocalBus, Message, NodeId, Role, Storage, Transport};

const BATCH_BYTES: usize = 1 << 20;
const NODES: u64 = 3;
const GROUPS: u64 = 4;
/// Proposals per group in the cluster test.
const PROPOSALS: u64 = 30;
/// Rounds (one tick each) the cluster test may take to elect and commit.
const ROUNDS_MAX: u64 = 2000;

fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("raft-driver").join(name);
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

fn store_config(dir: &Path) -> StoreConfig {
    StoreConfig { dir: dir.to_path_buf(), segment_bytes: 64 << 20, batch_bytes: BATCH_BYTES }
}

/// Runs `f` on one core; ends without closing anything, as a crash would (every write the
/// driver awaited is durable: RWF_DSYNC).
fn on_core<T: Send + 'static>(f: impl AsyncFnOnce(LinuxEnv) -> T + Send + Sync + Clone + 'static) -> T {
    let out = engine::run(runtime(), move |core: engine::Core<()>| {
        let f = f.clone();
        async move { f(core.env.clone()).await }
    })
    .expect("runtime");
    out.into_iter().next().expect("one core")
}

async fn open_store(env: &LinuxEnv, dir: &Path) -> Store<LinuxEnv> {
    Store::open(env.clone(), store_config(dir)).await.expect("open store").0
}

type Node = Driver<LinuxEnv, Rc<LocalBus>>;

async fn open_node(env: &LinuxEnv, root: &Path, id: u64, voters: &[u64], groups: u64, bus: &Rc<LocalBus>) -> Node {
    let store = open_store(env, &root.join(format!("node-{id}"))).await;
    let mut driver = Driver::new(id, store, bus.clone());
    for group in 1..=groups {
        driver.add_group(Config::new(id, group, voters.to_vec(), id * 1000 + group)).await.expect("add group");
    }
    driver
}

/// Nodes 1..=NODES, each a voter of `groups` groups.
async fn open_nodes(env: &LinuxEnv, root: &Path, groups: u64, bus: &Rc<LocalBus>) -> Vec<Node> {
    let voters: Vec<u64> = (1..=NODES).collect();
    let mut nodes = Vec::new();
    for id in 1..=NODES {
        nodes.push(open_node(env, root, id, &voters, groups, bus).await);
    }
    nodes
}

/// One round: a tick for every node, then turns until the network is quiet.
async fn round(nodes: &mut [Node]) {
    for node in nodes.iter_mut() {
        node.tick();
    }
    turns(nodes, 8).await;
}

/// Turns of every node (no tick) until the network is quiet, at most `max` each.
async fn turns(nodes: &mut [Node], max: usize) {
    for _ in 0..max {
        let mut busy = false;
        for node in nodes.iter_mut() {
            busy |= node.turn().await.expect("turn");
        }
        if !busy {
            break;
        }
    }
}

fn leader(nodes: &mut [Node], group: u64) -> Option<usize> {
    nodes.iter().position(|n| n.group(group).expect("group").role() == Role::Leader)
}

#[test]
fn many_groups_in_one_turn_cost_one_write() {
    const MANY: u64 = 100;
    let d = dir("one-write");
    on_core(async move |env: LinuxEnv| {
        let bus = LocalBus::new();
        let mut node = open_node(&env, &d, 1, &[1], MANY, &bus).await;
        for _ in 0..40 {
            round(std::slice::from_mut(&mut node)).await;
        }
        for group in 1..=MANY {
            assert_eq!(node.group(group).expect("group").role(), Role::Leader, "group {group}");
        }
        let (store_before, driver_before) = (node.store().stats(), node.stats());
        for group in 1..=MANY {
            node.group_mut(group).expect("group").propose(vec![format!("g{group}").into_bytes().into()]).expect("propose");
        }
        let started = engine::time::now();
        node.turn().await.expect("turn");
        let turn_us = engine::time::now().saturating_duration_since(started).as_micros();
        let (store_after, driver_after) = (node.store().stats(), node.stats());
        eprintln!(
            "{MANY} groups, one entry each: one turn {turn_us} µs, {} bytes in {} write(s)",
            store_after.bytes_written - store_before.bytes_written,
            driver_after.writes - driver_before.writes
        );
        assert_eq!(driver_after.writes - driver_before.writes, 1, "one write for {MANY} groups");
        assert_eq!(store_after.syncs - store_before.syncs, 1, "one sync for {MANY} groups");
        assert_eq!(store_after.records - store_before.records, MANY, "one entry record per group");
        node.turn().await.expect("apply turn");
        for group in 1..=MANY {
            let applied = node.take_applied(group);
            assert!(applied.iter().any(|e| *e.payload == *format!("g{group}").as_bytes()), "group {group} applied its entry");
        }
    });
}

/// A proposal made in `run`'s `each` is written and committed at once, not when the next tick
/// or message happens to wake the loop: with a tick period far longer than the deadline, a
/// single-node group must still commit it (the loop used to sleep until the tick).
#[test]
fn a_proposal_from_each_commits_without_waiting_for_a_tick() {
    const SLOW_TICK: Duration = Duration::from_secs(30);
    const DEADLINE: Duration = Duration::from_secs(5);
    let d = dir("each-proposal");
    on_core(async move |env: LinuxEnv| {
        let bus = LocalBus::new();
        let mut node = open_node(&env, &d, 1, &[1], 1, &bus).await;
        for _ in 0..40 {
            round(std::slice::from_mut(&mut node)).await;
        }
        assert_eq!(node.group(1).expect("group").role(), Role::Leader);
        node.take_applied(1);
        let started = engine::time::now();
        let deadline = started.saturating_add(DEADLINE);
        let (mut proposed, mut committed) = (false, false);
        node.run(SLOW_TICK, |n| {
            committed |= n.take_applied(1).iter().any(|e| &e.payload[..] == b"now");
            if !proposed {
                n.group_mut(1).expect("group").propose(vec![b"now".to_vec().into()]).expect("the leader accepts");
                proposed = true;
            }
            !committed && engine::time::now() < deadline
        })
        .await
        .expect("run");
        let waited = engine::time::now().saturating_duration_since(started);
        assert!(committed, "the proposal did not commit within {DEADLINE:?} (tick period {SLOW_TICK:?})");
        assert!(waited < DEADLINE, "took {waited:?}");
    });
}

/// What the first run acknowledged: (group, index, payload) of every entry a leader applied,
/// and each node's hard state per group when it stopped.
type Acked = (Vec<(u64, u64, Vec<u8>)>, Vec<(u64, u64, HardState)>);

async fn first_run(env: LinuxEnv, root: PathBuf) -> Acked {
    let bus = LocalBus::new();
    let mut nodes = open_nodes(&env, &root, GROUPS, &bus).await;
    let mut proposed = vec![0u64; GROUPS as usize + 1];
    let mut acked = std::collections::BTreeSet::new();
    let mut cut = None;
    for r in 0..ROUNDS_MAX {
        round(&mut nodes).await;
        for group in 1..=GROUPS {
            if let Some(l) = leader(&mut nodes, group) {
                for entry in nodes[l].take_applied(group) {
                    if !entry.payload.is_empty() {
                        acked.insert((group, entry.index, entry.payload.to_vec()));
                    }
                }
                let k = proposed[group as usize];
                let done = acked.iter().filter(|(g, ..)| *g == group).count() as u64 >= PROPOSALS;
                if !done && r % 3 == 0 {
                    let payload = format!("g{group}-{k}").into_bytes();
                    if nodes[l].group_mut(group).expect("group").propose(vec![payload.into()]).is_ok() {
                        proposed[group as usize] += 1;
                    }
                }
            }
            // Followers' applied entries are not acknowledgements; drop them.
            for node in nodes.iter_mut() {
                if leader_is(node, group) {
                    continue;
                }
                node.take_applied(group);
            }
        }
        // Midway, group 1's leader is cut off for a while: it keeps taking proposals it cannot
        // commit until check-quorum deposes it, a new leader overwrites them, and on return it
        // drops that conflicting suffix.
        if r == 30 {
            cut = leader(&mut nodes, 1).map(|l| l as u64 + 1);
            bus.set_down(cut.expect("group 1 has a leader by now"), true);
        }
        if r == 130 {
            bus.set_down(cut.expect("cut at round 30"), false);
        }
        if r > 300 && acked.len() as u64 >= GROUPS * PROPOSALS {
            break;
        }
    }
    assert!(acked.len() as u64 >= GROUPS * PROPOSALS, "enough proposals committed in time: {}", acked.len());
    let truncations: u64 = nodes.iter().flat_map(|n| (1..=GROUPS).map(|g| n.group(g).expect("group").storage().truncations())).sum();
    eprintln!("first run: {} entries acknowledged, {truncations} conflicting suffixes truncated", acked.len());
    assert!(truncations > 0, "the partition made some follower drop a conflicting suffix");
    let mut hard = Vec::new();
    for node in &nodes {
        for group in 1..=GROUPS {
            hard.push((node.group(group).expect("group").id(), group, node.group(group).expect("group").hard_state()));
        }
    }
    (acked.into_iter().collect(), hard)
}

fn leader_is(node: &Node, group: u64) -> bool {
    node.group(group).expect("group").role() == Role::Leader
}

#[test]
fn restart_finds_every_acknowledged_entry_and_hard_state() {
    let root = dir("restart");
    let r = root.clone();
    let (acked, hard) = on_core(async move |env: LinuxEnv| first_run(env, r).await);
    let r = root.clone();
    on_core(async move |env: LinuxEnv| {
        let bus = LocalBus::new();
        let mut nodes = open_nodes(&env, &r, GROUPS, &bus).await;
        // Each node's durable hard state is the one it last answered with.
        for (id, group, state) in &hard {
            let node = &nodes[*id as usize - 1];
            assert_eq!(node.group(*group).expect("group").storage().hard_state(), *state, "node {id} group {group}");
        }
        // Every acknowledged entry is durable on a majority, with its payload.
        for (group, index, payload) in &acked {
            let mut holders = 0;
            for node in &nodes {
                // From the store: the storage keeps only a tail in memory after open.
                let read = node.store().read_raft_entry(*group, *index).await.expect("read back");
                if read.is_some_and(|(_, object)| object.data() == &payload[..]) {
                    holders += 1;
                }
            }
            assert!(holders * 2 > NODES, "group {group} entry {index}: on {holders} of {NODES} nodes");
        }
        // The restarted cluster elects leaders and applies every acknowledged entry again.
        let mut applied: Vec<Vec<(u64, Vec<u8>)>> = vec![Vec::new(); GROUPS as usize + 1];
        for _ in 0..ROUNDS_MAX {
            round(&mut nodes).await;
            for group in 1..=GROUPS {
                if let Some(l) = leader(&mut nodes, group) {
                    for e in nodes[l].take_applied(group) {
                        applied[group as usize].push((e.index, e.payload.to_vec()));
                    }
                }
            }
            let done = acked.iter().all(|(g, i, p)| applied[*g as usize].iter().any(|(ai, ap)| ai == i && ap == p));
            if done {
                return;
            }
        }
        panic!("the restarted cluster did not apply every acknowledged entry");
    });
}

#[test]
fn torn_unacknowledged_batch_is_cut_and_never_shown() {
    let d = dir("torn");
    let r = d.clone();
    let (acked, tail) = on_core(async move |env: LinuxEnv| {
        let bus = LocalBus::new();
        let mut node = open_node(&env, &r, 1, &[1], 1, &bus).await;
        let mut acked = Vec::new();
        for k in 0..200u64 {
            round(std::slice::from_mut(&mut node)).await;
            if leader_is(&node, 1) && k % 3 == 0 {
                let _ = node.group_mut(1).expect("group").propose(vec![format!("e{k}").into_bytes().into()]);
            }
            acked.extend(node.take_applied(1).into_iter().filter(|e| !e.payload.is_empty()).map(|e| (e.index, e.payload.to_vec())));
        }
        assert!(acked.len() > 20);
        let tail = node.store().stats().bytes_written;
        // The next turn's batch: three entries staged and written, as the driver does; then
        // (below) torn as if power failed mid-write, so nothing of it was acknowledged.
        node.group_mut(1)
            .expect("group")
            .propose(vec![b"x1".to_vec().into(), b"x2".to_vec().into(), b"x3".to_vec().into()])
            .expect("propose");
        node.turn().await.expect("turn");
        (acked, tail)
    });
    let f = std::fs::OpenOptions::new().read(true).write(true).open(d.join("node-1").join("seg-00000001.log")).expect("segment");
    // The batch's second frame (frames are packed: it starts where the first one's length,
    // bytes 36..40 of its header, says), one byte of its key field, covered by its checksum.
    let mut frame_len = [0u8; 4];
    f.read_exact_at(&mut frame_len, tail + 36).expect("read");
    let at = tail + u32::from_le_bytes(frame_len) as u64 + 90;
    let mut byte = [0u8; 1];
    f.read_exact_at(&mut byte, at).expect("read");
    byte[0] ^= 0xFF;
    f.write_all_at(&byte, at).expect("tear");
    f.sync_all().expect("sync");
    let r = d.clone();
    on_core(async move |env: LinuxEnv| {
        let store = open_store(&env, &r.join("node-1")).await;
        let storage = DurableStorage::open(&store, 1).await.expect("open storage");
        let mut out = Vec::new();
        for index in 1..=storage.last_index() {
            let (term, object) = store.read_raft_entry(1, index).await.expect("read").expect("every index up to the last is live");
            assert_eq!(storage.term(index), Ok(term));
            out.push(object.data().to_vec());
        }
        assert!(out.iter().all(|p| !p.starts_with(b"x")), "no entry of the torn batch is shown");
        for (index, payload) in &acked {
            assert_eq!(out[*index as usize - 1], *payload, "acknowledged entry {index}");
        }
    });
}

#[test]
fn entries_older_than_the_cached_tail_are_fetched_and_applied_after_restart() {
    const ENTRIES: u64 = raftlog::durable::CACHED_ENTRIES_MAX as u64 + 1500;
    let d = dir("fetch");
    let r = d.clone();
    on_core(async move |env: LinuxEnv| {
        let bus = LocalBus::new();
        let mut node = open_node(&env, &r, 1, &[1], 1, &bus).await;
        while !leader_is(&node, 1) {
            round(std::slice::from_mut(&mut node)).await;
        }
        let mut proposed = 0;
        while proposed < ENTRIES {
            let batch: Vec<raftlog::Payload> =
                (proposed..ENTRIES.min(proposed + 200)).map(|k| format!("e{k}").into_bytes().into()).collect();
            proposed += batch.len() as u64;
            node.group_mut(1).expect("group").propose(batch).expect("propose");
            node.turn().await.expect("turn");
        }
        round(std::slice::from_mut(&mut node)).await;
    });
    let r = d.clone();
    on_core(async move |env: LinuxEnv| {
        let bus = LocalBus::new();
        let mut node = open_node(&env, &r, 1, &[1], 1, &bus).await;
        let storage = node.group(1).expect("group").storage();
        assert_eq!(storage.cached(), raftlog::durable::OPEN_CACHED_ENTRIES, "only the tail is read back at open");
        let mut applied = Vec::new();
        for _ in 0..500 {
            round(std::slice::from_mut(&mut node)).await;
            applied.extend(node.take_applied(1).into_iter().filter(|e| !e.payload.is_empty()).map(|e| e.payload.to_vec()));
            if applied.len() as u64 >= ENTRIES {
                break;
            }
        }
        let expected: Vec<Vec<u8>> = (0..ENTRIES).map(|k| format!("e{k}").into_bytes()).collect();
        assert_eq!(applied.len(), expected.len(), "every entry applied again after restart");
        assert!(applied == expected, "applied in order with the right payloads");
        assert!(node.stats().fetches > 0, "the entries before the cached tail came from the store");
    });
}

#[test]
fn a_follower_behind_the_leaders_cached_tail_catches_up_from_the_store() {
    const ENTRIES: u64 = raftlog::durable::CACHED_ENTRIES_MAX as u64 + 1000;
    let d = dir("catch-up");
    on_core(async move |env: LinuxEnv| {
        let bus = LocalBus::new();
        let mut nodes = open_nodes(&env, &d, 1, &bus).await;
        let l = loop {
            round(&mut nodes).await;
            if let Some(l) = leader(&mut nodes, 1) {
                break l;
            }
        };
        let behind = (l + 1) % nodes.len();
        bus.set_down(behind as u64 + 1, true);
        let mut proposed = 0;
        while proposed < ENTRIES {
            let batch: Vec<raftlog::Payload> =
                (proposed..ENTRIES.min(proposed + 200)).map(|k| format!("e{k}").into_bytes().into()).collect();
            if nodes[l].group_mut(1).expect("group").propose(batch.clone()).is_ok() {
                proposed += batch.len() as u64;
            }
            round(&mut nodes).await;
        }
        for _ in 0..20 {
            round(&mut nodes).await;
        }
        let leader_last = nodes[l].group(1).expect("group").last_index();
        assert!(nodes[behind].group(1).expect("group").last_index() < 10, "the follower was cut off");
        bus.set_down(behind as u64 + 1, false);
        let fetches_before = nodes[l].stats().fetches;
        for _ in 0..2000 {
            round(&mut nodes).await;
            if nodes[behind].group(1).expect("group").storage().last_index() >= leader_last {
                break;
            }
        }
        let storage = nodes[behind].group(1).expect("group").storage();
        assert!(storage.last_index() >= leader_last, "the follower caught up: {} of {leader_last}", storage.last_index());
        assert!(nodes[l].stats().fetches > fetches_before, "the leader read the old entries back from its store");
        // Spot-check the follower's copy: the first entries came from the leader's store.
        let mut out = Vec::new();
        storage.entries(storage.last_index() - 10, storage.last_index() + 1, &mut out).expect("tail in memory");
        assert!(out.iter().all(|e| e.payload.is_empty() || e.payload.starts_with(b"e")));
        // And the oldest ones, as both stores hold them.
        for index in [1, 2, 100, 3000] {
            let theirs = nodes[behind].store().read_raft_entry(1, index).await.expect("read").expect("live");
            let ours = nodes[l].store().read_raft_entry(1, index).await.expect("read").expect("live");
            assert_eq!((theirs.0, theirs.1.data()), (ours.0, ours.1.data()), "entry {index}");
        }
    });
}

/// After a restart the configuration in force is the last configuration entry's, also when that
/// entry lies before the entries read back at open (the scan for it used to stop at the cached
/// tail and fall back to the initial voters).
#[test]
fn membership_after_restart_comes_from_a_configuration_entry_older_than_the_cached_tail() {
    const LATER_ENTRIES: u64 = raftlog::durable::OPEN_CACHED_ENTRIES as u64 + 100;
    let d = dir("conf-restart");
    let r = d.clone();
    let before = on_core(async move |env: LinuxEnv| {
        let bus = LocalBus::new();
        let mut node = open_node(&env, &r, 1, &[1], 1, &bus).await;
        while !leader_is(&node, 1) {
            round(std::slice::from_mut(&mut node)).await;
        }
        let conf = node.group_mut(1).expect("group").propose_conf_change(raftlog::ConfChange::AddLearner(2)).expect("conf change");
        for k in 0..LATER_ENTRIES {
            node.group_mut(1).expect("group").propose(vec![format!("e{k}").into_bytes().into()]).expect("propose");
            round(std::slice::from_mut(&mut node)).await;
        }
        let group = node.group(1).expect("group");
        assert!(group.commit_index() >= conf + LATER_ENTRIES, "everything committed");
        assert!(group.membership().is_member(2), "the learner is in the configuration");
        group.membership().clone()
    });
    let r = d.clone();
    let after = on_core(async move |env: LinuxEnv| {
        let bus = LocalBus::new();
        let node = open_node(&env, &r, 1, &[1], 1, &bus).await;
        node.group(1).expect("group").membership().clone()
    });
    assert_eq!(after, before, "the configuration in force after the restart");
}

/// Graceful shutdown: a node hands every group it leads to its most caught-up voter, and the
/// groups get their new leaders through message turns alone, with no tick (so no election
/// timeout: the transferee campaigns on TimeoutNow at once). Every entry committed before stays,
/// and the new leaders commit new proposals.
#[test]
fn hand_over_moves_every_led_group_without_an_election_timeout() {
    let d = dir("hand-over");
    on_core(async move |env: LinuxEnv| {
        let bus = LocalBus::new();
        let mut nodes = open_nodes(&env, &d, GROUPS, &bus).await;
        let mut rounds = 0;
        while (1..=GROUPS).any(|g| leader(&mut nodes, g).is_none()) {
            round(&mut nodes).await;
            rounds += 1;
            assert!(rounds < ROUNDS_MAX, "no leader for every group");
        }
        let stopping = leader(&mut nodes, 1).expect("group 1 has a leader");
        let led: Vec<u64> = (1..=GROUPS).filter(|&g| leader(&mut nodes, g) == Some(stopping)).collect();
        let terms: Vec<u64> = led.iter().map(|&g| nodes[stopping].group(g).expect("group").term()).collect();
        for &g in &led {
            nodes[stopping].group_mut(g).expect("group").propose(vec![format!("before {g}").into_bytes().into()]).expect("leader");
        }
        let handed = nodes[stopping].hand_over();
        assert_eq!(handed.iter().map(|(g, _)| *g).collect::<Vec<_>>(), led, "every group it led is handed over");
        turns(&mut nodes, 64).await;
        assert!(!nodes[stopping].leads_any(), "node {} still leads after the hand-over", stopping + 1);
        for ((g, to), term) in handed.iter().zip(&terms) {
            let new = leader(&mut nodes, *g).expect("a new leader");
            assert_eq!(new as u64 + 1, *to, "group {g}: the transferee leads");
            assert_eq!(nodes[new].group(*g).expect("group").term(), term + 1, "group {g}: one election");
            let before = format!("before {g}");
            assert!(nodes[new].take_applied(*g).iter().any(|e| *e.payload == *before.as_bytes()), "group {g}: the entry before it stays");
            nodes[new].group_mut(*g).expect("group").propose(vec![format!("after {g}").into_bytes().into()]).expect("new leader");
        }
        turns(&mut nodes, 64).await;
        for (g, to) in &handed {
            let after = format!("after {g}");
            let applied = nodes[*to as usize - 1].take_applied(*g);
            assert!(applied.iter().any(|e| *e.payload == *after.as_bytes()), "group {g}: the new leader commits");
        }
    });
}

/// A bus that reports mail on every poll, as one with a flag stuck set would (the bench's node
/// had one: a stop flag set after the loop had seen the stop).
#[derive(Clone)]
struct AlwaysMail(Rc<LocalBus>);

impl Transport for AlwaysMail {
    fn send(&self, message: Message) {
        self.0.send(message);
    }

    fn take(&self, node: NodeId) -> Vec<Message> {
        self.0.take(node)
    }

    fn has_mail(&self, _: NodeId) -> bool {
        true
    }

    fn register(&self, node: NodeId, waker: &std::task::Waker) {
        self.0.register(node, waker);
    }
}

/// `run` keeps turning while there is work, but gives the core up once per wake-up: a task
/// spawned on the same core (here: one that marks it ran; in a node, the sockets' readers and
/// the store's completions) runs within a few turns, even when the bus always reports mail.
/// Without the yield this loop would spin for ever, and the messages it waits for would never
/// be read.
#[test]
fn a_loop_that_always_finds_work_still_lets_other_tasks_run() {
    /// `each` calls before the task is spawned (the group has elected itself and is idle), and
    /// the calls it may take to run.
    const SETTLE_CALLS: u64 = 1000;
    const RUN_CALLS_MAX: u64 = 100_000;
    let d = dir("always-mail");
    let calls = on_core(async move |env: LinuxEnv| {
        let store = open_store(&env, &d).await;
        let mut driver = Driver::new(1, store, AlwaysMail(LocalBus::new()));
        driver.add_group(Config::new(1, 1, vec![1], 7)).await.expect("add group");
        let ran = Rc::new(Cell::new(false));
        let mut calls = 0u64;
        driver
            .run(Duration::from_millis(10), |_| {
                calls += 1;
                if calls == SETTLE_CALLS {
                    let ran = ran.clone();
                    engine::spawn(async move { ran.set(true) });
                }
                !ran.get() && calls < SETTLE_CALLS + RUN_CALLS_MAX
            })
            .await
            .expect("run");
        assert!(ran.get(), "a task spawned beside the driver never ran in {RUN_CALLS_MAX} calls of `each`");
        calls
    });
    assert!(calls > SETTLE_CALLS);
}
