//! `corestore-bench raft-node`: one replica of a Raft group as its own process, on the engine's
//! runtime (one pinned core), for `corestore-bench raft` and the process tests.
//!
//! It opens the store in `--data`, runs raftlog's `Driver` (one group, `DurableStorage`,
//! `TcpTransport` to the other replicas) and serves clients on `--client-listen` with the
//! protocol in `proto.rs`: a proposal is answered when this node (the leader) applied it, with
//! its index; a follower answers `NotLeader` with the leader it knows. It runs until killed (the
//! bench sends SIGKILL; the parent's death does too, through PR_SET_PDEATHSIG) or stopped:
//! SIGTERM hands its leadership to the most caught-up replica (`Driver::hand_over`), which
//! takes over without waiting out an election timeout, then closes the store (a checkpoint, so
//! the next start-up replays little) and exits; status 0 only if the hand-over happened.
//!
//! Client connections hand proposals to the driver's loop through a bounded queue; the loop
//! proposes everything queued in one `propose` call between turns (so one store write and one
//! AppendEntries per follower carry them all), and answers each when its entry is applied.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
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
use raftlog::{Config, Driver, Message, NodeId, Payload, Role, TcpTransport, Transport};

use super::proto::{self, NodeStatus, Reply, Request};

/// The one Raft group the bench replicates.
pub const GROUP: u64 = 1;
/// Proposals queued for the driver's loop; more are refused (`Error "busy"`), so a flood of
/// clients cannot grow the node's memory. Above the most the bench keeps in flight (1024).
pub const PROPOSALS_QUEUED_MAX: usize = 8192;
/// Client connections served at once; more are closed at accept. Above the most the bench opens
/// (1024 proposers).
pub const CLIENT_CONNECTIONS_MAX: usize = 1536;
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
/// How long a stopping leader waits for its successor before it gives up and exits anyway: the
/// core abandons a transfer after an election timeout (at most 20 ticks), and then the others
/// elect a leader on their own.
const HAND_OVER_TICKS_MAX: u64 = 40;

/// Set by SIGTERM: the node hands its leadership over, closes its store and exits.
static STOP: AtomicBool = AtomicBool::new(false);
/// An eventfd SIGTERM's handler signals, so the core hears of the stop at once
/// (`watch_stop`), not at its next tick.
static STOP_EVENTFD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
    let fd = STOP_EVENTFD.load(Ordering::Relaxed);
    if fd >= 0 {
        let one = 1u64;
        // SAFETY: write(2) is async-signal-safe; 8 bytes from a live u64 to our eventfd.
        let _ = unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
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
    /// Every replica's Raft address, this one's included: `1=127.0.0.1:7001,2=...`.
    #[arg(long)]
    pub peers: String,
    /// Where clients connect.
    #[arg(long)]
    pub client_listen: SocketAddr,
    /// The store's directory (created if missing; an existing store is recovered).
    #[arg(long)]
    pub data: PathBuf,
    /// The cpu this node's core is pinned to.
    #[arg(long, default_value_t = 0)]
    pub cpu: usize,
    /// Period of the Raft tick; the election timeout is 10 to 20 ticks, heartbeats every 2.
    #[arg(long, default_value_t = 10)]
    pub tick_ms: u64,
    /// Batch writes the store keeps in flight, and turns' writes the driver does
    /// (`Store::set_writes_in_flight`, `Driver::set_turns_in_flight`).
    #[arg(long, default_value_t = engine::store::WRITES_IN_FLIGHT_MAX)]
    pub writes_in_flight: usize,
}

pub fn parse_peers(peers: &str) -> Result<Vec<(NodeId, SocketAddr)>, String> {
    let mut out = Vec::new();
    for part in peers.split(',').filter(|p| !p.is_empty()) {
        let (id, addr) = part.split_once('=').ok_or_else(|| format!("--peers: `{part}` is not ID=ADDRESS"))?;
        let id: NodeId = id.parse().map_err(|e| format!("--peers: id `{id}`: {e}"))?;
        let addr: SocketAddr = addr.parse().map_err(|e| format!("--peers: address `{addr}`: {e}"))?;
        if id == 0 || out.iter().any(|(i, _)| *i == id) {
            return Err(format!("--peers: id {id} is zero or repeated"));
        }
        out.push((id, addr));
    }
    Ok(out)
}

pub fn run_node(args: NodeArgs) -> Result<(), String> {
    // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag of this process: if the bench dies
    // without cleaning up, its nodes go with it instead of holding ports and disk.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // SAFETY: plain eventfd creation; blocking, as io_uring reads need (kernel-notes.md). It
    // lives as long as the process.
    STOP_EVENTFD.store(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) }, Ordering::Relaxed);
    // SAFETY: the handler only stores to an atomic and writes to an eventfd, both
    // async-signal-safe.
    unsafe { libc::signal(libc::SIGTERM, on_stop_signal as *const () as libc::sighandler_t) };
    let peers = parse_peers(&args.peers)?;
    let Some(&(_, raft_addr)) = peers.iter().find(|(id, _)| *id == args.id) else {
        return Err(format!("--peers names no address for this node (--id {})", args.id));
    };
    let mut config = RuntimeConfig::with_cpus(vec![args.cpu]);
    config.ring.entries = RING_ENTRIES;
    config.arena = ArenaConfig {
        classes: vec![
            ClassConfig { size_bytes: SECTOR_SIZE, count: 1024 },
            ClassConfig { size_bytes: 64 << 10, count: 16 },
            ClassConfig { size_bytes: BATCH_BYTES, count: BATCH_BUFFERS + 1 },
        ],
    };
    let out = engine::run(config, |core: engine::Core<()>| node_main(core.env.clone(), args.clone(), peers.clone(), raft_addr))
        .map_err(|e| format!("node {}: runtime: {e}", args.id))?;
    out.into_iter().next().unwrap_or(Ok(()))
}

/// What the client side and the driver's loop share on the core.
#[derive(Default)]
struct Shared {
    proposals: RefCell<VecDeque<Proposal>>,
    /// The driver's task, woken when a proposal is queued.
    waker: RefCell<Option<Waker>>,
    status: Cell<NodeStatus>,
    connections: Cell<usize>,
    /// A stop arrived (`watch_stop`) that the driver's loop has not seen yet.
    stop_pending: Cell<bool>,
}

struct Proposal {
    id: u64,
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

async fn node_main(env: LinuxEnv, args: NodeArgs, peers: Vec<(NodeId, SocketAddr)>, raft_addr: SocketAddr) -> Result<(), String> {
    let id = args.id;
    let store_config = StoreConfig { dir: args.data.clone(), segment_bytes: SEGMENT_BYTES, batch_bytes: BATCH_BYTES };
    let (store, _) = Store::open(env.clone(), store_config)
        .await
        .map_err(|e| format!("node {id}: opening the store in {}: {e}", args.data.display()))?;
    store.set_writes_in_flight(args.writes_in_flight.clamp(1, engine::store::WRITES_IN_FLIGHT_MAX));
    let (tcp, _) = TcpTransport::start(env.ring(), id, raft_addr).map_err(|e| format!("node {id}: listening on {raft_addr}: {e}"))?;
    for &(peer, addr) in peers.iter().filter(|(p, _)| *p != id) {
        tcp.add_peer(peer, addr);
    }
    let shared = Rc::new(Shared::default());
    let listener = TcpListener::bind(env.ring(), args.client_listen, LISTEN_BACKLOG_DEFAULT)
        .map_err(|e| format!("node {id}: client listener on {}: {e}", args.client_listen))?;
    engine::spawn(accept_clients(listener, shared.clone(), store.clone()));
    engine::spawn(watch_stop(env.ring().clone(), shared.clone()));
    let voters: Vec<NodeId> = peers.iter().map(|(p, _)| *p).collect();
    let mut driver = Driver::new(id, store.clone(), NodeBus { tcp, shared: shared.clone() });
    driver.set_turns_in_flight(args.writes_in_flight.clamp(1, raftlog::driver::TURNS_IN_FLIGHT_MAX));
    driver
        .add_group(Config::new(id, GROUP, voters, id.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
        .await
        .map_err(|e| format!("node {id}: opening group {GROUP}: {e}"))?;
    let mut waiters: VecDeque<Waiter> = VecDeque::new();
    let mut batch_owners: Vec<(u64, Rc<Conn>)> = Vec::new();
    let tick = Duration::from_millis(args.tick_ms.max(1));
    let mut stopping: Option<Stopping> = None;
    driver
        .run(tick, |d| {
            if stopping.is_none() && STOP.load(Ordering::Relaxed) {
                shared.stop_pending.set(false);
                let handed = d.hand_over();
                let term = d.group(GROUP).map_or(0, |n| n.term());
                let deadline = engine::time::now().saturating_add(tick * HAND_OVER_TICKS_MAX as u32);
                stopping = Some(Stopping { started: engine::time::now(), deadline, term, to: handed.first().map(|h| h.1) });
            }
            serve(d, &shared, &mut waiters, &mut batch_owners, stopping.as_ref().and_then(|s| s.to));
            stopping.as_ref().is_none_or(|s| !s.done(d) && engine::time::now() < s.deadline)
        })
        .await
        .map_err(|e| format!("node {id}: driver: {e}"))?;
    // Only a stop ends `run`.
    let stopping = stopping.expect("run ended without a stop");
    store.close().await.map_err(|e| format!("node {id}: closing the store: {e}"))?;
    let waited = engine::time::now().saturating_duration_since(stopping.started);
    let node = driver.group(GROUP).expect("the group was added");
    match stopping.to {
        None => eprintln!("node {id}: stopped (leading nothing)"),
        Some(to) if stopping.done(&driver) => eprintln!(
            "node {id}: stopped: handed group {GROUP} over to node {to}; node {} leads at term {} ({waited:?} after the stop)",
            node.leader().unwrap_or(0),
            node.term()
        ),
        Some(to) => {
            return Err(format!(
                "node {id}: stopped without handing group {GROUP} over to node {to} within {waited:?} (term {} then, {} now, leader {:?})",
                stopping.term,
                node.term(),
                node.leader()
            ));
        }
    }
    Ok(())
}

/// Waits for SIGTERM's eventfd and wakes the driver's loop, which then sees `STOP`.
async fn watch_stop(ring: Rc<engine::uring::Ring>, shared: Rc<Shared>) {
    let fd = STOP_EVENTFD.load(Ordering::Relaxed);
    if fd < 0 {
        return; // no eventfd: the loop sees the flag at its next tick
    }
    loop {
        // SAFETY: the eventfd is never closed.
        match unsafe { engine::uring::read_eventfd(&ring, fd) }.await {
            Ok(_) => break,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN)) => {}
            Err(e) => {
                eprintln!("raft-node: reading the stop eventfd: {e}; a stop is seen at the next tick");
                return;
            }
        }
    }
    shared.stop_pending.set(true);
    if let Some(w) = shared.waker.borrow_mut().take() {
        w.wake();
    }
}

/// A stop in progress (SIGTERM).
struct Stopping {
    started: engine::time::Instant,
    deadline: engine::time::Instant,
    /// The group's term when the stop began.
    term: u64,
    /// The replica leadership was handed to (`None`: this node led nothing).
    to: Option<NodeId>,
}

impl Stopping {
    /// Whether the node may exit: it led nothing, or another replica leads now.
    fn done(&self, d: &NodeDriver) -> bool {
        let node = d.group(GROUP).expect("the group was added");
        self.to.is_none() || (!d.leads_any() && node.term() > self.term && node.leader().is_some_and(|l| l != node.id()))
    }
}

type NodeDriver = Driver<LinuxEnv, NodeBus>;

/// Between turns: answer what was applied, propose what clients queued, publish the status.
/// `handing_to`: this node is stopping and hands leadership to that replica; proposals are sent
/// there.
fn serve(
    d: &mut NodeDriver,
    shared: &Shared,
    waiters: &mut VecDeque<Waiter>,
    owners: &mut Vec<(u64, Rc<Conn>)>,
    handing_to: Option<NodeId>,
) {
    for entry in d.take_applied(GROUP) {
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
    let node = d.group_mut(GROUP).expect("the group was added");
    let leader = node.leader().unwrap_or(0);
    if node.role() != Role::Leader {
        // Entries of a deposed leader may still commit, or be cut: either way this node will not
        // learn which soon, so the clients hear "not leader" and count nothing.
        for w in waiters.drain(..) {
            w.conn.reply(&Reply::NotLeader { id: w.id, hint: leader });
        }
    }
    let mut queued = shared.proposals.borrow_mut();
    if !queued.is_empty() {
        if let Some(to) = handing_to {
            let hint = if leader == node.id() { to } else { leader };
            for p in queued.drain(..) {
                p.conn.reply(&Reply::NotLeader { id: p.id, hint });
            }
        } else if node.role() == Role::Leader {
            // `propose` takes the payloads by value: one Vec per batch, not per proposal.
            let mut batch = Vec::with_capacity(queued.len());
            owners.clear();
            for p in queued.drain(..) {
                batch.push(p.payload);
                owners.push((p.id, p.conn));
            }
            let term = node.term();
            match node.propose(batch) {
                Ok(range) => {
                    assert_eq!(range.end - range.start, owners.len() as u64, "one index per proposal");
                    for ((id, conn), index) in owners.drain(..).zip(range) {
                        waiters.push_back(Waiter { id, index, term, conn });
                    }
                }
                Err(e) => {
                    let message = format!("refused: {e}");
                    for (id, conn) in owners.drain(..) {
                        conn.reply(&Reply::Error { id, message: message.as_bytes() });
                    }
                }
            }
        } else {
            for p in queued.drain(..) {
                p.conn.reply(&Reply::NotLeader { id: p.id, hint: leader });
            }
        }
    }
    drop(queued);
    let stats = d.store().stats();
    let node = d.group(GROUP).expect("the group was added");
    shared.status.set(NodeStatus {
        id: node.id(),
        is_leader: node.role() == Role::Leader,
        term: node.term(),
        leader: node.leader().unwrap_or(0),
        commit: node.commit_index(),
        applied: node.applied_index(),
        last_index: node.last_index(),
        store_syncs: stats.syncs,
        store_records: stats.records,
        store_write: stats.write_latency,
    });
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
    match request {
        Request::Propose { id, payload } => {
            let mut queued = shared.proposals.borrow_mut();
            if queued.len() >= PROPOSALS_QUEUED_MAX {
                drop(queued);
                conn.reply(&Reply::Error { id, message: b"busy: too many proposals queued" });
                return;
            }
            queued.push_back(Proposal { id, payload: payload.into(), conn: conn.clone() });
            drop(queued);
            if let Some(w) = shared.waker.borrow_mut().take() {
                w.wake();
            }
        }
        Request::Status { id } => conn.reply(&Reply::Status { id, status: Box::new(shared.status.get()) }),
        Request::Read { id, index } => {
            // Only applied entries: those are committed, and a committed entry is never cut.
            if index == 0 || index > shared.status.get().applied {
                conn.reply(&Reply::Error { id, message: b"not applied here" });
                return;
            }
            match store.read_raft_entry(GROUP, index).await {
                Ok(Some((term, object))) => conn.reply(&Reply::Entry { id, index, term, payload: object.data() }),
                Ok(None) => conn.reply(&Reply::Error { id, message: b"not in the store" }),
                Err(e) => conn.reply(&Reply::Error { id, message: format!("read failed: {e}").as_bytes() }),
            }
        }
    }
}
