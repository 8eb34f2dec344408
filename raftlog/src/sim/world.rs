//! The simulated cluster: nodes running `RawNode` over `SimStorage`, a lossy network, clients,
//! a nemesis, all in virtual time from one seed. The checkers watch from beside it.

use crate::config::Config;
use crate::error::ProposeError;
use crate::membership::{ConfChange, Membership};
use crate::node::{RawNode, Ready};
use crate::sim::checker::{SafetyChecker, Violation, check_log_matching};
use crate::sim::disk::SimStorage;
use crate::sim::kv::{Command, Key, Kv, KvOp, KvResult};
use crate::sim::linearizability::{self, HistoryOp};
use crate::sim::options::{Micros, SimOptions, TICK_US};
use crate::storage::{Snapshot, Storage};
use crate::types::{EntryKind, Index, Message, NodeId, Role};
use engine::rng::Prng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

/// Every this many events the logs of all nodes are compared (log matching).
const LOG_CHECK_EVENTS: u64 = 500;
/// Group id of the simulated group.
const GROUP: u64 = 1;
/// A node compacts its log once this many applied entries follow its snapshot (small, so that
/// snapshots and their streaming happen often).
const SNAPSHOT_ENTRIES: u64 = 40;
/// Snapshot chunk size in the simulator: a few chunks per snapshot.
const SNAPSHOT_CHUNK_BYTES: usize = 16;

#[derive(Clone, Debug)]
enum Reply {
    Ok(KvResult),
    /// Not the leader; try the hinted node (or any, without a hint).
    Redirect(Option<NodeId>),
    /// Busy or not ready: try the same node again shortly.
    Retry,
}

#[derive(Debug)]
enum Event {
    Deliver(Message),
    Tick { node: usize, epoch: u64 },
    SyncDone { node: usize, epoch: u64, seq: u64 },
    Request { node: usize, client: usize, op_id: u64, op: KvOp },
    Reply { client: usize, op_id: u64, reply: Reply },
    ClientNext { client: usize },
    ClientTimeout { client: usize, op_id: u64 },
    ClientResend { client: usize, op_id: u64 },
    Nemesis,
    Restart { node: usize },
    Heal,
}

struct Scheduled {
    at: Micros,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct SimNode {
    id: NodeId,
    /// Started once (initial voters at once, spares when first added).
    started: bool,
    raft: Option<RawNode<SimStorage>>,
    /// The disk of a crashed node, until it restarts.
    down_disk: Option<SimStorage>,
    /// Bumped on every crash so that events of the dead incarnation are dropped.
    epoch: u64,
    tick_us: Micros,
    sync_us: Option<Micros>,
    sync_in_flight: bool,
    /// Messages that may leave once the write with this sequence number is durable.
    held: Vec<(u64, Vec<Message>)>,
    kv: Kv,
    proposals: BTreeSet<(usize, u64)>,
    reads: BTreeMap<u64, (usize, u64, Key)>,
    reads_ready: Vec<(Index, u64)>,
    read_ctx_next: u64,
    /// Chunks of the snapshot being received (the driver's file).
    snapshot_file: Vec<u8>,
    /// The process is stalled until then.
    paused_until: Micros,
    last_tick_at: Micros,
}

struct Pending {
    op_id: u64,
    op: KvOp,
    history: usize,
    target: usize,
}

struct Client {
    auto: bool,
    pending: Option<Pending>,
    op_id_next: u64,
    leader_hint: usize,
    /// Last value this client saw per key, for compare-and-set operands.
    seen: BTreeMap<Key, u64>,
}

/// Counts for the report.
#[derive(Clone, Debug, Default)]
pub struct RunStats {
    pub events: u64,
    pub ops_ok: u64,
    pub ops_maybe: u64,
    pub ops_after_heal: u64,
    pub committed: usize,
    pub checks: u64,
    pub history_ops: usize,
    pub crashes: u64,
    pub snapshots_installed: u64,
    pub conf_changes: u64,
    pub elections: usize,
}

pub struct World {
    options: SimOptions,
    prng: Prng,
    now: Micros,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    nodes: Vec<SimNode>,
    clients: Vec<Client>,
    /// Directed links that drop everything.
    blocked: BTreeSet<(NodeId, NodeId)>,
    faults_on: bool,
    history: Vec<HistoryOp>,
    /// History entries some node accepted into its log (`propose` succeeded).
    proposed: BTreeSet<usize>,
    history_of: BTreeMap<(usize, u64), usize>,
    /// Logical time of the history: bumped at every invocation and return.
    history_clock: u64,
    checker: SafetyChecker,
    pub stats: RunStats,
}

impl World {
    pub fn new(seed: u64, options: SimOptions) -> World {
        let mut prng = Prng::new(seed);
        let drift = options.drift_ppm as u64;
        let nodes = (0..options.nodes + options.spares)
            .map(|i| {
                let tick_us = TICK_US * (1_000_000 - drift + prng.below(2 * drift + 1)) / 1_000_000;
                SimNode {
                    id: i as NodeId + 1,
                    started: false,
                    raft: None,
                    down_disk: Some(SimStorage::new()),
                    epoch: 0,
                    tick_us,
                    sync_us: None,
                    sync_in_flight: false,
                    held: Vec::new(),
                    kv: Kv::default(),
                    proposals: BTreeSet::new(),
                    reads: BTreeMap::new(),
                    reads_ready: Vec::new(),
                    read_ctx_next: 1,
                    snapshot_file: Vec::new(),
                    paused_until: 0,
                    last_tick_at: 0,
                }
            })
            .collect();
        let mut world = World {
            options,
            prng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            clients: Vec::new(),
            blocked: BTreeSet::new(),
            faults_on: false,
            history: Vec::new(),
            proposed: BTreeSet::new(),
            history_of: BTreeMap::new(),
            history_clock: 0,
            checker: SafetyChecker::default(),
            stats: RunStats::default(),
        };
        for node in 0..world.options.nodes {
            world.start_node(node);
        }
        for _ in 0..world.options.clients {
            let client = world.add_client(true);
            world.schedule(0, Event::ClientNext { client });
        }
        if world.options.partitions || world.options.crashes {
            world.faults_on = true;
            let delay = world.random_in(world.options.nemesis_us);
            world.schedule(delay, Event::Nemesis);
        }
        if world.options.fault_us > 0 {
            world.schedule(world.options.fault_us, Event::Heal);
        }
        world
    }

    /// The whole run: faults, healing, then every check. Returns the counts.
    pub fn run(mut self) -> Result<RunStats, Violation> {
        let end = self.options.fault_us + self.options.heal_us;
        self.run_until(end)?;
        if self.options.clients > 0 && self.stats.ops_after_heal == 0 {
            if std::env::var("RAFT_SIM_TRACE").is_ok() {
                self.trace_nodes();
            }
            return Err(Violation::NoProgress);
        }
        self.finish()
    }

    /// Final checks: log matching and linearizability of the whole history.
    pub fn finish(mut self) -> Result<RunStats, Violation> {
        self.check_logs()?;
        for client in 0..self.clients.len() {
            if let Some(pending) = self.clients[client].pending.take() {
                self.stats.ops_maybe += 1;
                assert!(self.history[pending.history].ret.is_none());
            }
        }
        // A timed-out write that no node ever accepted into its log cannot take effect: it is
        // left out, rather than searched as "maybe" (each maybe doubles the search).
        let history: Vec<HistoryOp> = self
            .history
            .iter()
            .enumerate()
            .filter(|(i, op)| op.ret.is_some() || self.proposed.contains(i))
            .map(|(_, op)| op.clone())
            .collect();
        if let Err(bad) = linearizability::check(&history) {
            if std::env::var("RAFT_SIM_TRACE").is_ok() {
                // The shortest prefix (by invocation) that fails, to read by hand.
                let failing = (1..=bad.ops.len()).find(|&n| linearizability::check(&bad.ops[..n]).is_err());
                eprintln!("shortest failing prefix: {failing:?} of {}", bad.ops.len());
                for op in &bad.ops[..failing.unwrap_or(bad.ops.len())] {
                    eprintln!("{op:?}");
                }
            }
            if bad.gave_up {
                return Err(Violation::LinearizabilityUndecided { key: bad.key, ops: bad.ops.len() });
            }
            return Err(Violation::Linearizability { key: bad.key, ops: bad.ops.len() });
        }
        self.stats.committed = self.checker.committed_count();
        self.stats.checks = self.checker.checks;
        self.stats.history_ops = self.history.len();
        Ok(self.stats)
    }

    pub fn run_until(&mut self, end: Micros) -> Result<(), Violation> {
        while let Some(Reverse(next)) = self.queue.peek() {
            if next.at > end {
                break;
            }
            let Some(Reverse(scheduled)) = self.queue.pop() else { break };
            self.now = scheduled.at;
            self.stats.events += 1;
            self.handle(scheduled.event)?;
            if self.stats.events.is_multiple_of(LOG_CHECK_EVENTS) {
                self.check_logs()?;
            }
        }
        self.now = self.now.max(end);
        Ok(())
    }

    pub fn run_for(&mut self, duration: Micros) -> Result<(), Violation> {
        self.run_until(self.now + duration)
    }

    pub fn now(&self) -> Micros {
        self.now
    }

    fn schedule(&mut self, delay: Micros, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled { at: self.now + delay, seq: self.seq, event }));
    }

    fn random_in(&mut self, (lo, hi): (Micros, Micros)) -> Micros {
        self.prng.range(lo, hi)
    }

    /// The node an event runs on, if any (a paused node runs nothing).
    fn event_node(event: &Event) -> Option<usize> {
        match *event {
            Event::Deliver(ref message) => Some((message.to - 1) as usize),
            Event::Tick { node, .. } | Event::SyncDone { node, .. } | Event::Request { node, .. } => Some(node),
            _ => None,
        }
    }

    fn handle(&mut self, event: Event) -> Result<(), Violation> {
        // A paused process (a stall: GC, swapping, a long syscall) does its work when it wakes.
        if let Some(node) = Self::event_node(&event)
            && let Some(paused_until) = self.nodes.get(node).map(|n| n.paused_until)
            && paused_until > self.now
        {
            self.schedule(paused_until - self.now, event);
            return Ok(());
        }
        match event {
            Event::Deliver(message) => self.deliver(message),
            Event::Tick { node, epoch } => self.on_tick(node, epoch),
            Event::SyncDone { node, epoch, seq } => self.on_sync_done(node, epoch, seq),
            Event::Request { node, client, op_id, op } => self.on_request(node, client, op_id, op),
            Event::Reply { client, op_id, reply } => {
                self.on_reply(client, op_id, reply);
                Ok(())
            }
            Event::ClientNext { client } => {
                self.client_next(client);
                Ok(())
            }
            Event::ClientTimeout { client, op_id } => {
                self.on_client_timeout(client, op_id);
                Ok(())
            }
            Event::ClientResend { client, op_id } => {
                self.client_send(client, op_id);
                Ok(())
            }
            Event::Nemesis => self.nemesis(),
            Event::Restart { node } => self.restart(node),
            Event::Heal => self.heal(),
        }
    }

    // ---- nodes ----

    /// The membership a node starts with if its disk holds none: the initial voters, or for a
    /// spare being added, the current leader's membership (which lists it as a learner).
    fn bootstrap_membership(&self, id: NodeId) -> Membership {
        let initial = Membership::new((1..=self.options.nodes as NodeId).collect(), Vec::new());
        let mut membership = self.leader().and_then(|l| self.nodes[l].raft.as_ref()).map_or(initial, |raft| raft.membership().clone());
        if !membership.is_member(id) {
            membership.learners.push(id);
            membership.learners.sort_unstable();
        }
        membership
    }

    fn node_config(&mut self, node: usize) -> Config {
        let id = self.nodes[node].id;
        let membership = self.bootstrap_membership(id);
        let mut config = Config::new(id, GROUP, membership.voters, self.prng.next_u64());
        config.learners = membership.learners;
        config.pre_vote = self.options.pre_vote;
        config.check_quorum = self.options.check_quorum;
        config.lease_read = self.options.lease_read;
        config.bugs = self.options.bugs;
        config.snapshot_chunk_bytes = SNAPSHOT_CHUNK_BYTES;
        config
    }

    fn start_node(&mut self, node: usize) {
        let config = self.node_config(node);
        let Some(disk) = self.nodes[node].down_disk.take() else { panic!("node {node} is already up") };
        // The state machine restarts from the snapshot; the log replays the rest.
        let snapshot = disk.snapshot().unwrap_or_default();
        let Some(kv) = Kv::decode(&snapshot.data) else { panic!("node {node}: undecodable snapshot") };
        self.nodes[node].kv = kv;
        self.nodes[node].snapshot_file.clear();
        self.nodes[node].raft = Some(RawNode::new(config, disk));
        self.nodes[node].started = true;
        let epoch = self.nodes[node].epoch;
        let tick = self.nodes[node].tick_us;
        // First ticks are spread so nodes do not start in lockstep.
        let first = self.prng.below(tick) + 1;
        self.nodes[node].last_tick_at = (self.now + first).saturating_sub(tick);
        self.schedule(first, Event::Tick { node, epoch });
    }

    pub fn crash(&mut self, node: usize) {
        self.crash_keeping(node, None);
    }

    /// Scripted tests: a crash that loses every unsynced write.
    pub fn crash_losing_unsynced(&mut self, node: usize) {
        self.crash_keeping(node, Some(0));
    }

    fn crash_keeping(&mut self, node: usize, survived: Option<usize>) {
        let Some(raft) = self.nodes[node].raft.take() else { return };
        let disk = match survived {
            Some(survived) => raft.storage().crash_keeping(survived, false, &mut self.prng),
            None => raft.storage().crash(&mut self.prng),
        };
        let n = &mut self.nodes[node];
        n.down_disk = Some(disk);
        n.epoch += 1;
        n.sync_in_flight = false;
        n.held.clear();
        n.kv = Kv::default();
        n.proposals.clear();
        n.reads.clear();
        n.reads_ready.clear();
        self.checker.on_restart(n.id);
        self.stats.crashes += 1;
    }

    pub fn restart(&mut self, node: usize) -> Result<(), Violation> {
        if self.nodes[node].raft.is_none() && self.nodes[node].started {
            self.start_node(node);
        }
        Ok(())
    }

    fn on_tick(&mut self, node: usize, epoch: u64) -> Result<(), Violation> {
        if self.nodes[node].epoch != epoch {
            return Ok(());
        }
        // The driver ticks once per period its clock says elapsed: after a stall it catches up
        // before anything else, or a lease would outlive its real time.
        let n = &mut self.nodes[node];
        let tick = n.tick_us;
        let due = if self.options.tick_catch_up { ((self.now - n.last_tick_at) / tick).max(1) } else { 1 };
        n.last_tick_at = self.now;
        let Some(raft) = n.raft.as_mut() else { return Ok(()) };
        for _ in 0..due {
            raft.tick();
        }
        self.schedule(tick, Event::Tick { node, epoch });
        self.drain(node)
    }

    /// Scripted tests and the nemesis: the node's process stalls for `us`.
    pub fn pause(&mut self, node: usize, us: Micros) {
        self.nodes[node].paused_until = self.now + us;
    }

    fn deliver(&mut self, message: Message) -> Result<(), Violation> {
        if self.blocked.contains(&(message.from, message.to)) {
            return Ok(());
        }
        let node = (message.to - 1) as usize;
        let Some(raft) = self.nodes.get_mut(node).and_then(|n| n.raft.as_mut()) else { return Ok(()) };
        // Refused messages change nothing; the network is the only source of them here.
        let _ = raft.step(message);
        self.drain(node)
    }

    fn send(&mut self, message: Message) {
        let options = &self.options;
        let (loss, duplicate, long, long_us) =
            (options.loss_ppm, options.duplicate_ppm, options.delay_long_ppm, options.delay_long_us);
        if self.prng.chance(loss) {
            return;
        }
        let copies = if self.prng.chance(duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            let mut delay = self.random_in(self.options.delay_us);
            if self.prng.chance(long) {
                delay += self.prng.below(long_us);
            }
            self.schedule(delay, Event::Deliver(message.clone()));
        }
    }

    /// Does everything the node's `Ready`s ask, until it has none.
    fn drain(&mut self, node: usize) -> Result<(), Violation> {
        loop {
            let Some(raft) = self.nodes[node].raft.as_mut() else { return Ok(()) };
            if !raft.has_ready() {
                return Ok(());
            }
            let ready = raft.take_ready();
            self.handle_ready(node, ready)?;
            let Some(raft) = self.nodes[node].raft.as_ref() else { return Ok(()) };
            self.checker.observe(raft)?;
            if raft.role() == Role::Leader {
                self.stats.elections = self.stats.elections.max(raft.term() as usize);
            }
        }
    }

    fn handle_ready(&mut self, node: usize, ready: Ready) -> Result<(), Violation> {
        self.receive_snapshot(node, &ready)?;
        let n = &mut self.nodes[node];
        let Some(raft) = n.raft.as_mut() else { return Ok(()) };
        let wrote = raft.storage_mut().write(ready.hard_state, &ready.entries).is_some();
        let (written, durable) = (raft.storage().seq_written, raft.storage().seq_durable);
        if wrote && !n.sync_in_flight {
            self.start_sync(node);
        }
        for message in ready.messages {
            self.send(message);
        }
        if written <= durable {
            for message in ready.messages_after_persist {
                self.send(message);
            }
        } else if !ready.messages_after_persist.is_empty() {
            self.nodes[node].held.push((written, ready.messages_after_persist));
        }
        for entry in &ready.committed_entries {
            self.apply(node, entry)?;
        }
        for read in ready.read_states {
            if self.nodes[node].reads.contains_key(&read.ctx) {
                self.nodes[node].reads_ready.push((read.index, read.ctx));
            }
        }
        for ctx in ready.reads_dropped {
            if let Some((client, op_id, _)) = self.nodes[node].reads.remove(&ctx) {
                let hint = self.nodes[node].raft.as_ref().and_then(|raft| raft.leader());
                self.reply(client, op_id, Reply::Redirect(hint));
            }
        }
        self.serve_reads(node);
        self.maybe_compact(node);
        Ok(())
    }

    fn receive_snapshot(&mut self, node: usize, ready: &Ready) -> Result<(), Violation> {
        let n = &mut self.nodes[node];
        for chunk in &ready.snapshot_chunks {
            if chunk.offset == 0 {
                n.snapshot_file.clear();
            }
            assert!(chunk.offset == n.snapshot_file.len() as u64);
            n.snapshot_file.extend_from_slice(&chunk.data);
        }
        let Some((meta, membership)) = ready.snapshot.clone() else { return Ok(()) };
        let data = std::mem::take(&mut n.snapshot_file);
        let Some(kv) = Kv::decode(&data) else {
            return Err(Violation::Panic(format!("node {node}: undecodable snapshot at {}", meta.index)));
        };
        n.kv = kv;
        let Some(raft) = n.raft.as_mut() else { return Ok(()) };
        raft.storage_mut().install(Snapshot { meta, membership, data: data.clone().into() });
        self.stats.snapshots_installed += 1;
        self.checker.on_state(n.id, meta.index, data)
    }

    fn maybe_compact(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        let Some(raft) = n.raft.as_mut() else { return };
        let applied = raft.applied_index();
        if applied >= raft.snapshot_index() + SNAPSHOT_ENTRIES {
            let image = n.kv.encode();
            let membership = raft.membership_at(applied);
            raft.storage_mut().compact(applied, membership, image.into());
        }
    }

    fn start_sync(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        let Some(raft) = n.raft.as_ref() else { return };
        let seq = raft.storage().seq_written;
        n.sync_in_flight = true;
        let (epoch, latency) = (n.epoch, n.sync_us);
        let delay = match latency {
            Some(us) => us,
            None => self.random_in(self.options.sync_us),
        };
        self.schedule(delay, Event::SyncDone { node, epoch, seq });
    }

    fn on_sync_done(&mut self, node: usize, epoch: u64, seq: u64) -> Result<(), Violation> {
        if self.nodes[node].epoch != epoch {
            return Ok(());
        }
        let n = &mut self.nodes[node];
        let Some(raft) = n.raft.as_mut() else { return Ok(()) };
        n.sync_in_flight = false;
        if let Some((index, term)) = raft.storage_mut().sync(seq) {
            raft.on_persisted(index, term);
        }
        let more = raft.storage().seq_written > seq;
        let (release, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut n.held).into_iter().partition(|(needs, _)| *needs <= seq);
        n.held = keep;
        for (_, messages) in release {
            for message in messages {
                self.send(message);
            }
        }
        if more {
            self.start_sync(node);
        }
        self.drain(node)
    }

    fn apply(&mut self, node: usize, entry: &crate::types::Entry) -> Result<(), Violation> {
        let n = &mut self.nodes[node];
        self.checker.on_apply(n.id, entry)?;
        if entry.kind != EntryKind::Normal {
            return self.checker.on_state(n.id, entry.index, n.kv.encode());
        }
        let Some(command) = Command::decode(&entry.payload) else {
            return Err(Violation::Panic(format!("undecodable payload at index {}", entry.index)));
        };
        let result = n.kv.apply(command.op);
        self.checker.on_state(n.id, entry.index, n.kv.encode())?;
        let key = (command.client as usize, command.op_id);
        if n.proposals.remove(&key) {
            self.reply(key.0, key.1, Reply::Ok(result));
        }
        Ok(())
    }

    fn serve_reads(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        let Some(raft) = n.raft.as_ref() else { return };
        let applied = raft.applied_index();
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut n.reads_ready).into_iter().partition(|(index, _)| *index <= applied);
        n.reads_ready = later;
        for (_, ctx) in now {
            if let Some((client, op_id, key)) = self.nodes[node].reads.remove(&ctx) {
                let value = self.nodes[node].kv.get(key);
                self.reply(client, op_id, Reply::Ok(KvResult::Value(value)));
            }
        }
    }

    fn on_request(&mut self, node: usize, client: usize, op_id: u64, op: KvOp) -> Result<(), Violation> {
        let n = &mut self.nodes[node];
        let Some(raft) = n.raft.as_mut() else {
            // Connection refused: the client tries elsewhere.
            self.reply(client, op_id, Reply::Redirect(None));
            return Ok(());
        };
        let outcome = match op {
            KvOp::Get { key } => {
                let ctx = n.read_ctx_next;
                n.read_ctx_next += 1;
                let outcome = raft.read_index(ctx);
                if outcome.is_ok() {
                    n.reads.insert(ctx, (client, op_id, key));
                }
                outcome
            }
            KvOp::Put { .. } | KvOp::Cas { .. } => {
                let command = Command { client: client as u32, op_id, op };
                let outcome = raft.propose(vec![command.encode().into()]).map(|_| ());
                if outcome.is_ok() {
                    n.proposals.insert((client, op_id));
                    // Even if the client gave up on it meanwhile: it is in a log now.
                    if let Some(&history) = self.history_of.get(&(client, op_id)) {
                        self.proposed.insert(history);
                    }
                }
                outcome
            }
        };
        match outcome {
            Ok(()) => {}
            Err(ProposeError::NotLeader { leader_hint }) => self.reply(client, op_id, Reply::Redirect(leader_hint)),
            Err(_) => self.reply(client, op_id, Reply::Retry),
        }
        self.drain(node)
    }

    fn reply(&mut self, client: usize, op_id: u64, reply: Reply) {
        let delay = self.random_in(self.options.delay_us);
        self.schedule(delay, Event::Reply { client, op_id, reply });
    }

    // ---- clients ----

    fn add_client(&mut self, auto: bool) -> usize {
        let leader_hint = self.prng.below(self.nodes.len() as u64) as usize;
        self.clients.push(Client { auto, pending: None, op_id_next: 1, leader_hint, seen: BTreeMap::new() });
        self.clients.len() - 1
    }

    /// Scripted tests: a one-off client sends `op` to `node`. Returns its history index.
    pub fn invoke(&mut self, node: usize, op: KvOp) -> usize {
        let client = self.add_client(false);
        self.clients[client].leader_hint = node;
        self.start_op(client, op)
    }

    /// The result of a history entry (None while pending or after a timeout).
    pub fn result(&self, history: usize) -> Option<KvResult> {
        self.history[history].ret.map(|(_, result)| result)
    }

    fn client_next(&mut self, client: usize) {
        let keys = self.options.keys as u64;
        let key = self.prng.below(keys) as Key;
        let unique = ((client as u64 + 1) << 32) | self.clients[client].op_id_next;
        let op = match self.prng.below(10) {
            0..=3 => KvOp::Put { key, value: unique },
            4..=7 => KvOp::Get { key },
            _ => KvOp::Cas { key, from: self.clients[client].seen.get(&key).copied().unwrap_or(0), to: unique },
        };
        self.start_op(client, op);
    }

    fn start_op(&mut self, client: usize, op: KvOp) -> usize {
        assert!(self.clients[client].pending.is_none());
        let op_id = self.clients[client].op_id_next;
        self.clients[client].op_id_next += 1;
        self.history_clock += 1;
        self.history.push(HistoryOp { client: client as u32, op, invoke: self.history_clock, ret: None });
        let history = self.history.len() - 1;
        self.history_of.insert((client, op_id), history);
        let target = self.clients[client].leader_hint;
        self.clients[client].pending = Some(Pending { op_id, op, history, target });
        let timeout = self.options.client_timeout_us;
        self.schedule(timeout, Event::ClientTimeout { client, op_id });
        self.client_send(client, op_id);
        history
    }

    fn client_send(&mut self, client: usize, op_id: u64) {
        let Some(pending) = &self.clients[client].pending else { return };
        if pending.op_id != op_id {
            return;
        }
        let (node, op) = (pending.target, pending.op);
        let delay = self.random_in(self.options.delay_us);
        self.schedule(delay, Event::Request { node, client, op_id, op });
    }

    fn on_reply(&mut self, client: usize, op_id: u64, reply: Reply) {
        let Some(pending) = &mut self.clients[client].pending else { return };
        if pending.op_id != op_id {
            return;
        }
        match reply {
            Reply::Ok(result) => {
                let Some(pending) = self.clients[client].pending.take() else { return };
                self.history_clock += 1;
                self.history[pending.history].ret = Some((self.history_clock, result));
                self.stats.ops_ok += 1;
                if self.now >= self.options.fault_us && matches!(pending.op, KvOp::Put { .. } | KvOp::Cas { .. }) {
                    self.stats.ops_after_heal += 1;
                }
                let c = &mut self.clients[client];
                c.leader_hint = pending.target;
                match (pending.op, result) {
                    (KvOp::Get { key }, KvResult::Value(value)) => {
                        c.seen.insert(key, value);
                    }
                    (KvOp::Put { key, value }, _) | (KvOp::Cas { key, to: value, .. }, KvResult::Swapped(true)) => {
                        c.seen.insert(key, value);
                    }
                    _ => {}
                }
                self.client_think(client);
            }
            Reply::Redirect(hint) => {
                // No hint: the next node in the client's list.
                let target = match hint {
                    Some(id) => (id - 1) as usize,
                    None => (pending.target + 1) % self.nodes.len(),
                };
                pending.target = target;
                self.clients[client].leader_hint = target;
                let delay = self.random_in((100, 2_000));
                self.schedule(delay, Event::ClientResend { client, op_id });
            }
            Reply::Retry => {
                let delay = self.random_in((5_000, 20_000));
                self.schedule(delay, Event::ClientResend { client, op_id });
            }
        }
    }

    fn on_client_timeout(&mut self, client: usize, op_id: u64) {
        let Some(pending) = &self.clients[client].pending else { return };
        if pending.op_id != op_id {
            return;
        }
        // Maybe committed: the history keeps it without a return.
        self.clients[client].pending = None;
        self.stats.ops_maybe += 1;
        let nodes = self.nodes.len();
        self.clients[client].leader_hint = (self.clients[client].leader_hint + 1) % nodes;
        self.client_think(client);
    }

    fn client_think(&mut self, client: usize) {
        if self.clients[client].auto && self.now < self.options.fault_us + self.options.heal_us {
            let delay = self.random_in((0, 5_000));
            self.schedule(delay, Event::ClientNext { client });
        }
    }

    // ---- faults ----

    fn nemesis(&mut self) -> Result<(), Violation> {
        if !self.faults_on {
            return Ok(());
        }
        let count = self.nodes.len() as u64;
        let choice = self.prng.below(9);
        match choice {
            0 => self.blocked.clear(),
            1 if self.options.partitions => {
                let node = self.prng.below(count) as NodeId + 1;
                self.isolate_id(node);
            }
            2 if self.options.partitions => {
                self.blocked.clear();
                let sides: Vec<bool> = (0..count).map(|_| self.prng.chance(500_000)).collect();
                for a in 0..count {
                    for b in 0..count {
                        if sides[a as usize] != sides[b as usize] {
                            self.blocked.insert((a + 1, b + 1));
                        }
                    }
                }
            }
            3 if self.options.partitions => {
                // Asymmetric: one direction of a few links.
                for _ in 0..self.prng.range(1, 3) {
                    let (a, b) = (self.prng.below(count) + 1, self.prng.below(count) + 1);
                    if a != b {
                        self.blocked.insert((a, b));
                    }
                }
            }
            4 | 5 if self.options.crashes => {
                let node = self.prng.below(count) as usize;
                if self.nodes[node].raft.is_some() && self.nodes[node].started {
                    self.crash(node);
                    let down = self.random_in(self.options.down_us);
                    self.schedule(down, Event::Restart { node });
                }
            }
            7 if self.options.membership_changes => self.change_membership()?,
            8 if self.options.pauses => {
                let node = self.prng.below(count) as usize;
                let us = self.random_in((10_000, 400_000));
                self.pause(node, us);
            }
            6 => {
                // A graceful hand-over, as at shutdown.
                if let Some(leader) = self.leader() {
                    let to = self.prng.below(count) + 1;
                    if let Some(raft) = self.nodes[leader].raft.as_mut() {
                        let _ = raft.transfer_leader(to);
                    }
                    self.drain(leader)?;
                }
            }
            _ => {}
        }
        let delay = self.random_in(self.options.nemesis_us);
        self.schedule(delay, Event::Nemesis);
        Ok(())
    }

    /// One single-server change through the current leader: promote a learner, else shrink back
    /// to the initial size, else add a node that is not a member (a spare or a removed node).
    fn change_membership(&mut self) -> Result<(), Violation> {
        let Some(leader) = self.leader() else { return Ok(()) };
        let Some(raft) = self.nodes[leader].raft.as_ref() else { return Ok(()) };
        let membership = raft.membership().clone();
        let leader_id = raft.id();
        let change = if let Some(&learner) = membership.learners.first() {
            ConfChange::Promote(learner)
        } else if membership.voters.len() > self.options.nodes {
            let others: Vec<NodeId> = membership.voters.iter().copied().filter(|&v| v != leader_id).collect();
            ConfChange::Remove(others[self.prng.below(others.len() as u64) as usize])
        } else {
            let outsiders: Vec<NodeId> = (1..=self.nodes.len() as NodeId).filter(|&id| !membership.is_member(id)).collect();
            if outsiders.is_empty() {
                return Ok(());
            }
            ConfChange::AddLearner(outsiders[self.prng.below(outsiders.len() as u64) as usize])
        };
        let Some(raft) = self.nodes[leader].raft.as_mut() else { return Ok(()) };
        let accepted = raft.propose_conf_change(change).is_ok();
        self.drain(leader)?;
        if accepted {
            self.stats.conf_changes += 1;
            if let ConfChange::AddLearner(id) = change {
                let slot = (id - 1) as usize;
                if !self.nodes[slot].started {
                    self.start_node(slot);
                }
            }
        }
        Ok(())
    }

    fn isolate_id(&mut self, node: NodeId) {
        for other in 1..=self.nodes.len() as NodeId {
            if other != node {
                self.blocked.insert((node, other));
                self.blocked.insert((other, node));
            }
        }
    }

    /// Scripted tests: cut `node` off from every other node, both ways.
    pub fn isolate(&mut self, node: usize) {
        self.isolate_id(node as NodeId + 1);
    }

    pub fn heal_network(&mut self) {
        self.blocked.clear();
    }

    /// Scripted tests: this node's clock ticks every `us` (clock drift).
    pub fn set_tick_us(&mut self, node: usize, us: Micros) {
        self.nodes[node].tick_us = us;
    }

    /// Scripted tests: this node's fdatasync takes `us` (None: the options' random latency).
    pub fn set_sync_latency(&mut self, node: usize, us: Option<Micros>) {
        self.nodes[node].sync_us = us;
    }

    fn heal(&mut self) -> Result<(), Violation> {
        self.faults_on = false;
        self.blocked.clear();
        self.options.loss_ppm = 0;
        self.options.duplicate_ppm = 0;
        for node in 0..self.nodes.len() {
            self.restart(node)?;
        }
        Ok(())
    }

    /// The leader of the highest term among running nodes.
    pub fn leader(&self) -> Option<usize> {
        (0..self.nodes.len())
            .filter_map(|i| self.nodes[i].raft.as_ref().map(|raft| (i, raft)))
            .filter(|(_, raft)| raft.role() == Role::Leader)
            .max_by_key(|(_, raft)| raft.term())
            .map(|(i, _)| i)
    }

    pub fn node(&self, node: usize) -> Option<&RawNode<SimStorage>> {
        self.nodes[node].raft.as_ref()
    }

    pub fn node_mut(&mut self, node: usize) -> Option<&mut RawNode<SimStorage>> {
        self.nodes[node].raft.as_mut()
    }

    /// Scripted tests: `count` ticks of this node's clock at once (to make it campaign now).
    pub fn tick(&mut self, node: usize, count: u32) -> Result<(), Violation> {
        for _ in 0..count {
            let Some(raft) = self.nodes[node].raft.as_mut() else { return Ok(()) };
            raft.tick();
            self.drain(node)?;
        }
        Ok(())
    }

    /// Runs the node's pending `Ready`s after a scripted test called into it.
    pub fn settle(&mut self, node: usize) -> Result<(), Violation> {
        self.drain(node)
    }

    fn trace_nodes(&self) {
        for n in &self.nodes {
            match &n.raft {
                Some(raft) => eprintln!(
                    "node {}: {:?} term {} leader {:?} last {} commit {} applied {} persisted {} snapshot {} {:?}",
                    n.id,
                    raft.role(),
                    raft.term(),
                    raft.leader(),
                    raft.last_index(),
                    raft.commit_index(),
                    raft.applied_index(),
                    raft.persisted_index(),
                    raft.snapshot_index(),
                    raft.membership()
                ),
                None => eprintln!("node {}: down (started {})", n.id, n.started),
            }
        }
    }

    fn check_logs(&self) -> Result<(), Violation> {
        let logs: Vec<(NodeId, &[crate::types::Entry])> = self
            .nodes
            .iter()
            .map(|n| {
                let entries = match (&n.raft, &n.down_disk) {
                    (Some(raft), _) => raft.storage().all_entries(),
                    (None, Some(disk)) => disk.all_entries(),
                    (None, None) => &[],
                };
                (n.id, entries)
            })
            .collect();
        for a in 0..logs.len() {
            for b in a + 1..logs.len() {
                check_log_matching(logs[a], logs[b])?;
            }
        }
        Ok(())
    }
}
