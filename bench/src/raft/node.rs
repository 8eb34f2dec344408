//! `corestore-bench raft-node`: one replica of the bench's Raft groups as its own process, on
//! the engine's runtime: one pinned core per `--cpus` entry, for `corestore-bench raft` and the
//! process tests.
//!
//! Shared nothing between cores: group `g` (1 to `--groups`) lives on core
//! `proto::core_of(g, cores)` of every replica. Each core opens its own store
//! (`--data/core-N`), runs its own raftlog `Driver` over its groups (one store write and one
//! fdatasync per turn for all of them) with its own `TcpTransport` to the same core of the other
//! replicas, and serves clients on its own port with the protocol in `proto.rs`. A client picks
//! the owning core's port itself; a request for a group of another core is refused with an
//! error naming it (as ScyllaDB's shard-aware port does), so no request crosses cores. A
//! proposal is answered when this node (the group's leader) applied it, with its index; a
//! follower answers `NotLeader` with the leader it knows.
//!
//! It runs until killed (the bench sends SIGKILL; the parent's death does too, through
//! PR_SET_PDEATHSIG) or stopped: SIGTERM makes every core hand the groups it leads to their
//! most caught-up replicas (`Driver::hand_over`), which take over without waiting out an
//! election timeout, then close its store (a checkpoint, so the next start-up replays little);
//! the process exits with status 0 only if every core handed over.
//!
//! Client connections hand proposals to the core's driver loop through a bounded queue; the
//! loop proposes everything queued in one `propose` call per group between turns (so one store
//! write and one AppendEntries per follower carry them all), and answers each when its entry is
//! applied.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::task::{Poll, Waker};
use std::time::Duration;

use engine::arena::{ArenaConfig, ClassConfig};
use engine::store::{Store, StoreConfig};
use engine::{LinuxEnv, RuntimeConfig, SECTOR_SIZE};
use net::{FrameReader, LISTEN_BACKLOG_DEFAULT, TcpListener, TcpStream};
use raftlog::{Config, Driver, GroupId, Message, NodeId, Payload, Role, Storage, TcpTransport, Transport};

use super::proto::{self, NodeStatus, Reply, Request, core_of};

/// Proposals queued for one core's driver loop; more are refused (`Error "busy"`), so a flood
/// of clients cannot grow the node's memory. Above the most the bench keeps in flight (1024).
pub const PROPOSALS_QUEUED_MAX: usize = 8192;
/// Client connections one core serves at once; more are closed at accept. Above the most the
/// bench opens (1024 proposers).
pub const CLIENT_CONNECTIONS_MAX: usize = 1536;
/// Cores one node runs (each a pinned thread with its own store, ring and ports).
pub const NODE_CORES_MAX: usize = 64;
/// Raft groups one node holds.
pub const GROUPS_MAX: u64 = 4096;
/// The ring's submission entries; its op slots (twice as many) bound what is in flight. Each
/// client connection holds up to two ops (a recv, a send): with too few slots idle recvs would
/// take them all and the store's write would wait for a slot that never frees (a deadlock this
/// bench hit at 1024 proposers with the default 256 entries).
const RING_ENTRIES: u32 = 2048;
/// Ops beyond the clients': the peers' connections, the listeners, the store's writes and reads.
const RING_OPS_SPARE: usize = 256;
const _: () = assert!(2 * RING_ENTRIES as usize >= 2 * CLIENT_CONNECTIONS_MAX + RING_OPS_SPARE);
/// A store batch: 1024 entries of 1 KiB (a 4 KiB frame each) in one write.
const BATCH_BYTES: usize = 4 << 20;
const SEGMENT_BYTES: u64 = 1 << 30;
/// The store's batch buffers (one filling, one per write in flight; recovery's read buffer is
/// freed before they are taken).
const BATCH_BUFFERS: usize = engine::store::BATCH_BUFFERS;
/// How long a stopping leader waits for its successors before it gives up and exits anyway:
/// the core abandons a transfer after an election timeout (at most 20 ticks), and then the
/// others elect a leader on their own.
const HAND_OVER_TICKS_MAX: u64 = 40;

/// Set by SIGTERM: every core hands its leadership over, closes its store and ends.
static STOP: AtomicBool = AtomicBool::new(false);
/// One eventfd per core that SIGTERM's handler signals, so each core hears of the stop at once
/// (`watch_stop`), not at its next tick. -1: none.
static STOP_EVENTFDS: [AtomicI32; NODE_CORES_MAX] = [const { AtomicI32::new(-1) }; NODE_CORES_MAX];

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
    for slot in &STOP_EVENTFDS {
        let fd = slot.load(Ordering::Relaxed);
        if fd >= 0 {
            let one = 1u64;
            // SAFETY: write(2) is async-signal-safe; 8 bytes from a live u64 to our eventfd.
            let _ = unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
        }
    }
}

/// Bytes one recv of a connection takes: a few pipelined 1 KiB proposals (a larger frame is
/// gathered over several recvs). Per connection: 1024 proposers' buffers of 64 KiB were 64 MiB
/// of the leader's memory.
const RECV_BUFFER_BYTES: usize = 8 << 10;

#[derive(clap::Args, Clone, Debug)]
pub struct NodeArgs {
    /// This node's id (1, 2, 3).
    #[arg(long)]
    pub id: u64,
    /// Every replica's Raft addresses, this one's included, one per core (core 0 first):
    /// `1=127.0.0.1:7001/127.0.0.1:7002,2=...`. Every replica runs as many cores.
    #[arg(long)]
    pub peers: String,
    /// Where clients connect, one address per core: `127.0.0.1:8001/127.0.0.1:8002`.
    #[arg(long)]
    pub client_listen: String,
    /// The node's directory: core N's store is in `core-N` (created if missing; an existing
    /// store is recovered).
    #[arg(long)]
    pub data: PathBuf,
    /// The cpus the node's cores are pinned to, one core per entry.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub cpus: Vec<usize>,
    /// Raft groups (1 to N), spread round-robin over the cores (`proto::core_of`).
    #[arg(long, default_value_t = 1)]
    pub groups: u64,
    /// Period of the Raft tick; the election timeout is 10 to 20 ticks, heartbeats every 2.
    #[arg(long, default_value_t = 10)]
    pub tick_ms: u64,
    /// Batch writes the store keeps in flight, and turns' writes the driver does
    /// (`Store::set_writes_in_flight`, `Driver::set_turns_in_flight`).
    #[arg(long, default_value_t = engine::store::WRITES_IN_FLIGHT_MAX)]
    pub writes_in_flight: usize,
    /// A group compacts its log into a snapshot of its state machine once this many applied
    /// entries follow the last one (0: never). Entries at or below a snapshot can no longer be
    /// read by index, and a replica that needs them installs the snapshot instead.
    #[arg(long, default_value_t = SNAPSHOT_ENTRIES_DEFAULT)]
    pub snapshot_entries: u64,
}

/// About 18 MiB of 1 KiB entries per group between snapshots. Compacting drops the entries from
/// the store's index at once, on the core: measured in `bench raft`, compacting 2^18 entries
/// stalled the leader long enough to raise the half-peak open loop's p99 from 8-12 ms to 30-36
/// ms, while every 2^14 left it at 9-10 ms. A restart applies at most this much of the log again.
pub const SNAPSHOT_ENTRIES_DEFAULT: u64 = 1 << 14;

/// A group's state machine: how far it applied, and a digest chained over every applied entry.
/// Its snapshot image is those two numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Machine {
    index: u64,
    digest: u64,
}

impl Machine {
    const IMAGE_BYTES: usize = 16;

    fn apply(&mut self, index: u64, payload: &[u8]) {
        assert_eq!(index, self.index + 1, "the driver hands out entries in order, none skipped");
        self.index = index;
        self.digest = xxhash_rust::xxh3::xxh3_64_with_seed(payload, self.digest ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    }

    fn image(&self) -> Vec<u8> {
        [self.index.to_le_bytes(), self.digest.to_le_bytes()].concat()
    }

    /// The state a snapshot image describes (an empty image: nothing applied yet).
    fn from_image(image: &[u8], index: u64) -> Result<Machine, String> {
        if image.is_empty() && index == 0 {
            return Ok(Machine::default());
        }
        let words: Option<(u64, u64)> = (image.len() == Self::IMAGE_BYTES).then(|| {
            let word = |i: usize| u64::from_le_bytes(image[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
            (word(0), word(1))
        });
        match words {
            Some((at, digest)) if at == index => Ok(Machine { index, digest }),
            _ => Err(format!("a snapshot at index {index} holds {} bytes that are not this node's image of it", image.len())),
        }
    }
}

/// `ADDR[/ADDR...]`: one address per core.
pub fn parse_core_addrs(text: &str) -> Result<Vec<SocketAddr>, String> {
    text.split('/').map(|a| a.parse().map_err(|e| format!("address `{a}`: {e}"))).collect()
}

/// The addresses of `ADDR[/ADDR...]` lists, joined back into that form.
pub fn core_addrs_arg(addrs: &[SocketAddr]) -> String {
    addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join("/")
}

/// `--peers`: each replica's id and its addresses, one per core; every replica must list
/// `cores` of them.
pub fn parse_peers(peers: &str, cores: usize) -> Result<Vec<(NodeId, Vec<SocketAddr>)>, String> {
    let mut out: Vec<(NodeId, Vec<SocketAddr>)> = Vec::new();
    for part in peers.split(',').filter(|p| !p.is_empty()) {
        let (id, addrs) = part.split_once('=').ok_or_else(|| format!("--peers: `{part}` is not ID=ADDRESS[/ADDRESS...]"))?;
        let id: NodeId = id.parse().map_err(|e| format!("--peers: id `{id}`: {e}"))?;
        let addrs = parse_core_addrs(addrs).map_err(|e| format!("--peers: node {id}: {e}"))?;
        if id == 0 || out.iter().any(|(i, _)| *i == id) {
            return Err(format!("--peers: id {id} is zero or repeated"));
        }
        if addrs.len() != cores {
            return Err(format!("--peers: node {id} lists {} addresses; every replica runs {cores} cores (--cpus)", addrs.len()));
        }
        out.push((id, addrs));
    }
    Ok(out)
}

/// What every core of the node runs with.
#[derive(Clone)]
struct Plan {
    args: NodeArgs,
    peers: Vec<(NodeId, Vec<SocketAddr>)>,
    clients: Vec<SocketAddr>,
}

impl Plan {
    fn cores(&self) -> usize {
        self.args.cpus.len()
    }
}

pub fn run_node(args: NodeArgs) -> Result<(), String> {
    // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag of this process: if the bench dies
    // without cleaning up, its nodes go with it instead of holding ports and disk.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let cores = args.cpus.len();
    if cores == 0 || cores > NODE_CORES_MAX {
        return Err(format!("--cpus: {cores} cores; 1 to {NODE_CORES_MAX}"));
    }
    if args.groups < cores as u64 || args.groups > GROUPS_MAX {
        return Err(format!("--groups {}: at least one per core ({cores}) and at most {GROUPS_MAX}", args.groups));
    }
    let peers = parse_peers(&args.peers, cores)?;
    if !peers.iter().any(|(id, _)| *id == args.id) {
        return Err(format!("--peers names no address for this node (--id {})", args.id));
    }
    let clients = parse_core_addrs(&args.client_listen).map_err(|e| format!("--client-listen: {e}"))?;
    if clients.len() != cores {
        return Err(format!("--client-listen: {} addresses for {cores} cores", clients.len()));
    }
    for slot in &STOP_EVENTFDS[..cores] {
        // SAFETY: plain eventfd creation; blocking, as io_uring reads need (kernel-notes.md).
        // It lives as long as the process.
        slot.store(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) }, Ordering::Relaxed);
    }
    // SAFETY: the handler only stores to an atomic and writes to eventfds, both
    // async-signal-safe.
    unsafe { libc::signal(libc::SIGTERM, on_stop_signal as *const () as libc::sighandler_t) };
    let mut config = RuntimeConfig::with_cpus(args.cpus.clone());
    config.ring.entries = RING_ENTRIES;
    config.arena = ArenaConfig {
        classes: vec![
            ClassConfig { size_bytes: SECTOR_SIZE, count: 1024 },
            ClassConfig { size_bytes: 64 << 10, count: 16 },
            ClassConfig { size_bytes: BATCH_BYTES, count: BATCH_BUFFERS + 1 },
        ],
    };
    let id = args.id;
    let plan = Plan { args, peers, clients };
    let out = engine::run(config, |core: engine::Core<()>| core_main(core.env.clone(), core.mesh.core(), plan.clone()))
        .map_err(|e| format!("node {id}: runtime: {e}"))?;
    let errors: Vec<String> = out.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() { Ok(()) } else { Err(errors.join("\n")) }
}

/// What the client side and the driver's loop share on a core.
struct Shared {
    /// This core, the node's cores, and its groups.
    core: usize,
    cores: usize,
    groups: u64,
    proposals: RefCell<VecDeque<Proposal>>,
    /// The driver's task, woken when a proposal is queued.
    waker: RefCell<Option<Waker>>,
    /// Each of the core's groups' status, as of the last turn.
    status: RefCell<BTreeMap<GroupId, NodeStatus>>,
    connections: Cell<usize>,
    /// A stop arrived (`watch_stop`) that the driver's loop has not seen yet.
    stop_pending: Cell<bool>,
}

impl Shared {
    /// Why this core does not serve `group`, if it does not.
    fn refuse(&self, group: GroupId) -> Option<String> {
        if group == 0 || group > self.groups {
            return Some(format!("no group {group}: this node runs groups 1 to {}", self.groups));
        }
        let owner = core_of(group, self.cores);
        (owner != self.core).then(|| format!("wrong core: group {group} is on core {owner}, not {}", self.core))
    }
}

struct Proposal {
    id: u64,
    group: GroupId,
    payload: Payload,
    conn: Rc<Conn>,
}

/// A proposal in the log, waiting to be applied.
struct Waiter {
    id: u64,
    index: u64,
    term: u64,
    conn: Rc<Conn>,
}

/// A client connection's replies: encoded frames its writer task sends in batches.
#[derive(Default)]
struct Conn {
    out: RefCell<Vec<u8>>,
    waker: RefCell<Option<Waker>>,
    closed: Cell<bool>,
}

impl Conn {
    fn reply(&self, reply: &Reply<'_>) {
        if self.closed.get() {
            return;
        }
        proto::encode_reply(reply, &mut self.out.borrow_mut());
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

/// The driver's transport: the Raft peers over TCP, and a wake-up when clients queue proposals
/// (they are taken in `run`'s `each`, between turns).
#[derive(Clone)]
struct NodeBus {
    tcp: TcpTransport,
    shared: Rc<Shared>,
}

impl Transport for NodeBus {
    fn send(&self, message: Message) {
        self.tcp.send(message);
    }

    fn take(&self, node: NodeId) -> Vec<Message> {
        self.tcp.take(node)
    }

    fn has_mail(&self, node: NodeId) -> bool {
        self.tcp.has_mail(node) || !self.shared.proposals.borrow().is_empty() || self.shared.stop_pending.get()
    }

    fn register(&self, node: NodeId, waker: &Waker) {
        self.tcp.register(node, waker);
        *self.shared.waker.borrow_mut() = Some(waker.clone());
    }
}

/// One core: its store, its groups' driver, its client port.
async fn core_main(env: LinuxEnv, core: usize, plan: Plan) -> Result<(), String> {
    let args = &plan.args;
    let id = args.id;
    let at = format!("node {id} core {core}");
    let dir = args.data.join(format!("core-{core}"));
    let store_config = StoreConfig { dir: dir.clone(), segment_bytes: SEGMENT_BYTES, batch_bytes: BATCH_BYTES };
    let (store, _) = Store::open(env.clone(), store_config).await.map_err(|e| format!("{at}: opening the store in {}: {e}", dir.display()))?;
    store.set_writes_in_flight(args.writes_in_flight.clamp(1, engine::store::WRITES_IN_FLIGHT_MAX));
    let raft_addr = plan.peers.iter().find(|(p, _)| *p == id).expect("checked in run_node").1[core];
    let (tcp, _) = TcpTransport::start(env.ring(), id, raft_addr).map_err(|e| format!("{at}: listening on {raft_addr}: {e}"))?;
    for (peer, addrs) in plan.peers.iter().filter(|(p, _)| *p != id) {
        tcp.add_peer(*peer, addrs[core]);
    }
    let shared = Rc::new(Shared {
        core,
        cores: plan.cores(),
        groups: args.groups,
        proposals: RefCell::default(),
        waker: RefCell::default(),
        status: RefCell::default(),
        connections: Cell::new(0),
        stop_pending: Cell::new(false),
    });
    let listener = TcpListener::bind(env.ring(), plan.clients[core], LISTEN_BACKLOG_DEFAULT)
        .map_err(|e| format!("{at}: client listener on {}: {e}", plan.clients[core]))?;
    engine::spawn(accept_clients(listener, shared.clone(), store.clone()));
    engine::spawn(watch_stop(env.ring().clone(), core, shared.clone()));
    let voters: Vec<NodeId> = plan.peers.iter().map(|(p, _)| *p).collect();
    let mut driver = Driver::new(id, store.clone(), NodeBus { tcp, shared: shared.clone() });
    driver.set_turns_in_flight(args.writes_in_flight.clamp(1, raftlog::driver::TURNS_IN_FLIGHT_MAX));
    let groups: Vec<GroupId> = (1..=args.groups).filter(|&g| core_of(g, plan.cores()) == core).collect();
    for &group in &groups {
        let seed = id.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(group - 1);
        driver.add_group(Config::new(id, group, voters.clone(), seed)).await.map_err(|e| format!("{at}: opening group {group}: {e}"))?;
    }
    let mut serving = Serving { groups: BTreeMap::new(), snapshot_entries: args.snapshot_entries, failed: None };
    for &group in &groups {
        // The state machine starts from the snapshot the group's log starts after.
        let snapshot = driver.group(group).expect("added").storage().snapshot().map_err(|e| format!("{at}: group {group}: {e:?}"))?;
        let machine = Machine::from_image(&snapshot.data, snapshot.meta.index).map_err(|e| format!("{at}: group {group}: {e}"))?;
        serving.groups.insert(group, Served { machine, installed: 0, waiters: VecDeque::new(), batch: Vec::new() });
    }
    let tick = Duration::from_millis(args.tick_ms.max(1));
    let mut stopping: Option<Stopping> = None;
    driver
        .run(tick, |d| {
            // Cleared on every call, not only when the stop begins: the loop may see `STOP`
            // before `watch_stop` sets this flag, which must not then stay set (the bus would
            // report mail for ever).
            shared.stop_pending.set(false);
            if stopping.is_none() && STOP.load(Ordering::Relaxed) {
                stopping = Some(Stopping::begin(d, tick));
            }
            serving.serve(d, &shared, stopping.as_ref());
            serving.failed.is_none() && stopping.as_ref().is_none_or(|s| !s.done(d) && engine::time::now() < s.deadline)
        })
        .await
        .map_err(|e| format!("{at}: driver: {e}"))?;
    if let Some(why) = serving.failed {
        return Err(format!("{at}: {why}"));
    }
    // Only a stop or a failure ends `run`.
    let stopping = stopping.expect("run ended without a stop");
    store.close().await.map_err(|e| format!("{at}: closing the store: {e}"))?;
    stopping.report(&driver, &at)
}

/// Waits for SIGTERM's eventfd of `core` and wakes the driver's loop, which then sees `STOP`.
async fn watch_stop(ring: Rc<engine::uring::Ring>, core: usize, shared: Rc<Shared>) {
    let fd = STOP_EVENTFDS[core].load(Ordering::Relaxed);
    if fd < 0 {
        return; // no eventfd: the loop sees the flag at its next tick
    }
    loop {
        // SAFETY: the eventfd is never closed.
        match unsafe { engine::uring::read_eventfd(&ring, fd) }.await {
            Ok(_) => break,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN)) => {}
            Err(e) => {
                eprintln!("raft-node core {core}: reading the stop eventfd: {e}; a stop is seen at the next tick");
                return;
            }
        }
    }
    shared.stop_pending.set(true);
    if let Some(w) = shared.waker.borrow_mut().take() {
        w.wake();
    }
}

/// A stop in progress (SIGTERM) on one core.
struct Stopping {
    started: engine::time::Instant,
    deadline: engine::time::Instant,
    /// Each group this core led: the replica it went to, and the group's term when the stop
    /// began.
    handed: Vec<Handed>,
}

struct Handed {
    group: GroupId,
    to: NodeId,
    term: u64,
}

impl Handed {
    /// Whether another replica leads the group now, in a later term.
    fn moved(&self, d: &NodeDriver) -> bool {
        let node = d.group(self.group).expect("a handed group exists");
        node.term() > self.term && node.leader().is_some_and(|l| l != node.id())
    }
}

impl Stopping {
    fn begin(d: &mut NodeDriver, tick: Duration) -> Stopping {
        let now = engine::time::now();
        let handed = d
            .hand_over()
            .into_iter()
            .map(|(group, to)| Handed { group, to, term: d.group(group).expect("a handed group exists").term() })
            .collect();
        Stopping { started: now, deadline: now.saturating_add(tick * HAND_OVER_TICKS_MAX as u32), handed }
    }

    /// The replica `group` was handed to, if this core led it when the stop began.
    fn successor(&self, group: GroupId) -> Option<NodeId> {
        self.handed.iter().find(|h| h.group == group).map(|h| h.to)
    }

    /// Whether the core may end: every group it led is led by another replica in a later term.
    fn done(&self, d: &NodeDriver) -> bool {
        !d.leads_any() && self.handed.iter().all(|h| h.moved(d))
    }

    /// One line per group handed over; an error if one was not.
    fn report(&self, d: &NodeDriver, at: &str) -> Result<(), String> {
        let waited = engine::time::now().saturating_duration_since(self.started);
        if self.handed.is_empty() {
            eprintln!("{at}: stopped (leading nothing)");
            return Ok(());
        }
        if !self.done(d) {
            // The group that did not move (or, if all did, the first: this core still leads
            // a group it could not hand over).
            let h = self.handed.iter().find(|h| !h.moved(d)).unwrap_or(&self.handed[0]);
            let node = d.group(h.group).expect("a handed group exists");
            return Err(format!(
                "{at}: stopped without handing group {} over to node {} within {waited:?} (term {} then, {} now, leader {:?}; driver {:?})",
                h.group,
                h.to,
                h.term,
                node.term(),
                node.leader(),
                d.stats()
            ));
        }
        for h in &self.handed {
            let node = d.group(h.group).expect("a handed group exists");
            eprintln!(
                "{at}: stopped: handed group {} over to node {}; node {} leads at term {} ({waited:?} after the stop)",
                h.group,
                h.to,
                node.leader().unwrap_or(0),
                node.term()
            );
        }
        Ok(())
    }
}

type NodeDriver = Driver<LinuxEnv, NodeBus>;

/// The driver loop's side of the clients and the groups' state machines.
struct Serving {
    /// This core's groups.
    groups: BTreeMap<GroupId, Served>,
    /// `NodeArgs::snapshot_entries`.
    snapshot_entries: u64,
    /// Why the core must stop, if it must.
    failed: Option<String>,
}

/// One group of the core, as the driver loop serves it.
struct Served {
    machine: Machine,
    /// Snapshots installed from a leader since the start.
    installed: u64,
    /// Proposals in the log, waiting to be applied.
    waiters: VecDeque<Waiter>,
    /// Proposals taken from the queue, reused across turns.
    batch: Vec<Proposal>,
}

impl Serving {
    /// Between turns: answer what was applied, propose what clients queued, publish the status.
    fn serve(&mut self, d: &mut NodeDriver, shared: &Shared, stopping: Option<&Stopping>) {
        for (&group, g) in &mut self.groups {
            // An installed snapshot first: the entries handed out follow it.
            if let Some(snapshot) = d.take_installed(group) {
                match Machine::from_image(&snapshot.data, snapshot.meta.index) {
                    Ok(m) => g.machine = m,
                    Err(e) => {
                        // Its state is unknown now: the core stops (`core_main` says why).
                        self.failed.get_or_insert(format!("group {group}: installing the leader's snapshot: {e}"));
                        return;
                    }
                }
                g.installed += 1;
            }
            let entries = d.take_applied(group);
            for entry in &entries {
                g.machine.apply(entry.index, &entry.payload);
            }
            answer_applied(d, group, entries, &mut g.waiters);
            let snapshot_index = d.group(group).expect("the group was added").snapshot_index();
            if self.snapshot_entries > 0
                && g.machine.index >= snapshot_index + self.snapshot_entries
                && let Err(e) = d.compact(group, g.machine.index, g.machine.image().into())
            {
                eprintln!("raft-node: group {group}: compacting through {}: {e}", g.machine.index);
            }
        }
        for p in shared.proposals.borrow_mut().drain(..) {
            self.groups.get_mut(&p.group).expect("queued only for this core's groups").batch.push(p);
        }
        for (&group, g) in &mut self.groups {
            if !g.batch.is_empty() {
                propose(d, group, &mut g.batch, &mut g.waiters, stopping.and_then(|s| s.successor(group)));
            }
        }
        let stats = d.store().stats();
        let mut status = shared.status.borrow_mut();
        for (&group, g) in &self.groups {
            let node = d.group(group).expect("the group was added");
            status.insert(
                group,
                NodeStatus {
                    id: node.id(),
                    is_leader: node.role() == Role::Leader,
                    term: node.term(),
                    leader: node.leader().unwrap_or(0),
                    commit: node.commit_index(),
                    applied: g.machine.index,
                    last_index: node.last_index(),
                    store_syncs: stats.syncs,
                    store_records: stats.records,
                    store_write: stats.write_latency,
                    snapshot_index: node.snapshot_index(),
                    snapshots_installed: g.installed,
                    digest: g.machine.digest,
                },
            );
        }
    }
}

/// Answers the proposals of `group` whose entries (`applied`) were applied, and, if this replica
/// no longer leads, every one still waiting.
fn answer_applied(d: &NodeDriver, group: GroupId, applied: Vec<raftlog::Entry>, waiters: &mut VecDeque<Waiter>) {
    for entry in applied {
        while let Some(w) = waiters.front() {
            if w.index > entry.index {
                break;
            }
            let w = waiters.pop_front().expect("front exists");
            if w.index == entry.index && w.term == entry.term {
                w.conn.reply(&Reply::Committed { id: w.id, index: w.index });
            } else {
                // Another leader's entry took the index: the proposal is lost.
                w.conn.reply(&Reply::Error { id: w.id, message: b"lost: overwritten by a new leader" });
            }
        }
    }
    let node = d.group(group).expect("the group was added");
    if node.role() != Role::Leader {
        // Entries of a deposed leader may still commit, or be cut: either way this node will not
        // learn which soon, so the clients hear "not leader" and count nothing.
        let hint = node.leader().unwrap_or(0);
        for w in waiters.drain(..) {
            w.conn.reply(&Reply::NotLeader { id: w.id, hint });
        }
    }
}

/// Proposes `batch` (drained) to `group` in one call, or refuses it with the leader to go to.
/// `handing_to`: this node is stopping and hands the group to that replica.
fn propose(d: &mut NodeDriver, group: GroupId, batch: &mut Vec<Proposal>, waiters: &mut VecDeque<Waiter>, handing_to: Option<NodeId>) {
    let node = d.group_mut(group).expect("the group was added");
    let leader = node.leader().unwrap_or(0);
    if handing_to.is_some() || node.role() != Role::Leader {
        let hint = match handing_to {
            Some(to) if leader == node.id() => to,
            _ => leader,
        };
        for p in batch.drain(..) {
            p.conn.reply(&Reply::NotLeader { id: p.id, hint });
        }
        return;
    }
    let term = node.term();
    // `propose` takes the payloads by value: one Vec per batch, not per proposal.
    let payloads: Vec<Payload> = batch.iter_mut().map(|p| std::mem::take(&mut p.payload)).collect();
    match node.propose(payloads) {
        Ok(range) => {
            assert_eq!(range.end - range.start, batch.len() as u64, "one index per proposal");
            for (p, index) in batch.drain(..).zip(range) {
                waiters.push_back(Waiter { id: p.id, index, term, conn: p.conn });
            }
        }
        Err(e) => {
            let message = format!("refused: {e}");
            for p in batch.drain(..) {
                p.conn.reply(&Reply::Error { id: p.id, message: message.as_bytes() });
            }
        }
    }
}

async fn accept_clients(listener: TcpListener, shared: Rc<Shared>, store: Store<LinuxEnv>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if shared.connections.get() >= CLIENT_CONNECTIONS_MAX {
                    continue; // dropped: closed
                }
                shared.connections.set(shared.connections.get() + 1);
                let _ = stream.set_nodelay(true);
                let stream = Rc::new(stream);
                let conn = Rc::new(Conn::default());
                engine::spawn(client_writer(stream.clone(), conn.clone()));
                engine::spawn(client_reader(stream, conn, shared.clone(), store.clone()));
            }
            // Out of descriptors or the like: wait for connections to close rather than spin.
            Err(_) => engine::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Sends a connection's replies: everything queued, in one send.
async fn client_writer(stream: Rc<TcpStream>, conn: Rc<Conn>) {
    let mut spare = Vec::new();
    loop {
        let ready = std::future::poll_fn(|cx| {
            if conn.closed.get() {
                return Poll::Ready(false);
            }
            if conn.out.borrow().is_empty() {
                *conn.waker.borrow_mut() = Some(cx.waker().clone());
                return Poll::Pending;
            }
            Poll::Ready(true)
        })
        .await;
        if !ready {
            return;
        }
        // Swap buffers, so replies queue into the spare while this one is in flight.
        let frames = std::mem::replace(&mut *conn.out.borrow_mut(), std::mem::take(&mut spare));
        match stream.send_all(frames).await {
            Ok(mut sent) => {
                sent.clear();
                spare = sent;
            }
            Err(_) => {
                conn.closed.set(true);
                return;
            }
        }
    }
}

/// Reads a connection's requests until it closes or sends garbage.
async fn client_reader(stream: Rc<TcpStream>, conn: Rc<Conn>, shared: Rc<Shared>, store: Store<LinuxEnv>) {
    let mut frames = FrameReader::new(RECV_BUFFER_BYTES);
    while let Some(frame) = frames.next(&stream, proto::frame_len).await {
        let Ok(request) = proto::decode_request(&frame[proto::LENGTH_BYTES..]) else { break };
        handle(request, &conn, &shared, &store).await;
    }
    conn.closed.set(true);
    shared.connections.set(shared.connections.get() - 1);
    if let Some(w) = conn.waker.borrow_mut().take() {
        w.wake();
    }
}

async fn handle(request: Request<'_>, conn: &Rc<Conn>, shared: &Shared, store: &Store<LinuxEnv>) {
    let (id, group) = match request {
        Request::Propose { id, group, .. } | Request::Status { id, group } | Request::Read { id, group, .. } => (id, group),
    };
    if let Some(why) = shared.refuse(group) {
        conn.reply(&Reply::Error { id, message: why.as_bytes() });
        return;
    }
    match request {
        Request::Propose { id, group, payload } => {
            let mut queued = shared.proposals.borrow_mut();
            if queued.len() >= PROPOSALS_QUEUED_MAX {
                drop(queued);
                conn.reply(&Reply::Error { id, message: b"busy: too many proposals queued" });
                return;
            }
            queued.push_back(Proposal { id, group, payload: payload.into(), conn: conn.clone() });
            drop(queued);
            if let Some(w) = shared.waker.borrow_mut().take() {
                w.wake();
            }
        }
        Request::Status { id, group } => {
            // Before the loop's first turn a group has no status yet: it reads as all zeros.
            let status = shared.status.borrow().get(&group).copied().unwrap_or_default();
            conn.reply(&Reply::Status { id, status: Box::new(status) });
        }
        Request::Read { id, group, index } => {
            // Only applied entries: those are committed, and a committed entry is never cut.
            let (applied, snapshot) = shared.status.borrow().get(&group).map_or((0, 0), |s| (s.applied, s.snapshot_index));
            if index == 0 || index > applied {
                conn.reply(&Reply::Error { id, message: b"not applied here" });
                return;
            }
            if index <= snapshot {
                let why = format!("compacted: entry {index} is in the snapshot at {snapshot}");
                conn.reply(&Reply::Error { id, message: why.as_bytes() });
                return;
            }
            match store.read_raft_entry(group, index).await {
                Ok(Some((term, object))) => conn.reply(&Reply::Entry { id, index, term, payload: object.data() }),
                Ok(None) => conn.reply(&Reply::Error { id, message: b"not in the store" }),
                Err(e) => conn.reply(&Reply::Error { id, message: format!("read failed: {e}").as_bytes() }),
            }
        }
    }
}
