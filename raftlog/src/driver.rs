//! The per-core driver: every Raft group this core holds, written through one store.
//!
//! Each turn: deliver the messages that arrived, take every group's `Ready`, send its
//! `messages` at once, stage its hard state and entries (`DurableStorage::stage`), write every
//! group's records in ONE store batch (one write, durable on completion: RWF_DSYNC), then send
//! the `messages_after_persist` and call `on_persisted` per group, and hand out committed
//! entries. Ticks come from the runtime's timer (`run`), one per elapsed period, caught up
//! after a stall before anything else is handled. No locks: the driver and its groups live on
//! one core.
//!
//! In `run`, a turn does not wait for its write: the next turn steps what arrived meanwhile and
//! submits its own write while the first is in flight (at most `TURNS_IN_FLIGHT_MAX` turns'
//! writes at once, as the store keeps that many batch writes in flight). What waits for a
//! write (after-persist messages, `on_persisted`) is done when it and every earlier write are
//! durable, in turn order.
//!
//! Messages go through a `Transport` (a trait, so `net` TCP can replace the in-process
//! `LocalBus` the tests use).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use engine::Env;
use engine::store::record::{frame_len, place};
use engine::store::{Appended, RaftRecord, Store, StoreError, record::HEADER_BYTES};

use crate::durable::{DurableStorage, Staged, kind_meta, record_of};
use crate::node::{RawNode, Ready};
use crate::storage::Snapshot;
use crate::types::{Entry, GroupId, HardState, Index, Message, NodeId, Payload};

/// Messages waiting for one node; more are dropped (Raft retries whatever matters).
pub const INBOX_MESSAGES_MAX: usize = 65536;
/// Turns per wake-up of `run` before it looks at the timer again.
pub const TURNS_PER_WAKEUP_MAX: usize = 16;
/// Turns whose writes `run` keeps in flight at once: the store's batch writes in flight, so
/// each turn's write can start at once.
pub const TURNS_IN_FLIGHT_MAX: usize = engine::store::WRITES_IN_FLIGHT_MAX;
/// Bytes of key field the store adds to every Raft record (`u16 0`).
const RAFT_KEY_FIELD_BYTES: usize = 2;

/// The network as the driver sees it. Delivery may fail silently: Raft retries.
pub trait Transport {
    fn send(&self, message: Message);
    /// Every message that arrived for `node` since the last call.
    fn take(&self, node: NodeId) -> Vec<Message>;
    fn has_mail(&self, node: NodeId) -> bool;
    /// Wakes the driver's task when mail arrives for `node`.
    fn register(&self, node: NodeId, waker: &Waker);
}

/// An in-process network between drivers on one thread: a queue per node.
#[derive(Default)]
pub struct LocalBus {
    queues: RefCell<HashMap<NodeId, VecDeque<Message>>>,
    wakers: RefCell<HashMap<NodeId, Waker>>,
    /// Nodes cut off: what they send and what is sent to them is dropped.
    down: RefCell<Vec<NodeId>>,
}

impl LocalBus {
    pub fn new() -> Rc<LocalBus> {
        Rc::new(LocalBus::default())
    }

    pub fn set_down(&self, node: NodeId, down: bool) {
        let mut list = self.down.borrow_mut();
        list.retain(|&n| n != node);
        if down {
            list.push(node);
        }
    }
}

impl Transport for Rc<LocalBus> {
    fn take(&self, node: NodeId) -> Vec<Message> {
        self.queues.borrow_mut().get_mut(&node).map(|q| q.drain(..).collect()).unwrap_or_default()
    }

    fn has_mail(&self, node: NodeId) -> bool {
        self.queues.borrow().get(&node).is_some_and(|q| !q.is_empty())
    }

    fn register(&self, node: NodeId, waker: &Waker) {
        self.wakers.borrow_mut().insert(node, waker.clone());
    }

    fn send(&self, message: Message) {
        let down = self.down.borrow();
        if down.contains(&message.from) || down.contains(&message.to) {
            return;
        }
        let to = message.to;
        let mut queues = self.queues.borrow_mut();
        let queue = queues.entry(to).or_default();
        if queue.len() < INBOX_MESSAGES_MAX {
            queue.push_back(message);
        }
        drop(queues);
        if let Some(w) = self.wakers.borrow_mut().remove(&to) {
            w.wake();
        }
    }
}

/// Counters of the driver's work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    pub turns: u64,
    /// Store batches the driver wrote (one per turn with anything to write, unless the turn's
    /// records exceed one batch).
    pub writes: u64,
    pub records: u64,
    pub fetches: u64,
    pub messages_refused: u64,
    /// Turns that submitted their write while an earlier turn's was still in flight (`run`).
    pub turns_beside: u64,
}

/// What a group still owes the network and itself once the turn's write is durable.
struct AfterPersist {
    group: GroupId,
    /// The `Ready` held anything (so another turn may find more to do).
    busy: bool,
    messages: Vec<Message>,
    last: Option<(u64, u64)>,
    /// The hard state this write makes durable, if it carries one.
    hard_state: Option<HardState>,
}

/// A turn whose write is in flight, and what waits for it.
struct TurnInFlight {
    /// The turn's last store batch (the store makes batches durable in order); `None` if the
    /// turn wrote nothing, when only earlier turns' writes are waited for.
    write: Option<Appended>,
    after: Vec<AfterPersist>,
}

pub struct Driver<E: Env, T: Transport> {
    node: NodeId,
    store: Store<E>,
    bus: T,
    groups: BTreeMap<GroupId, RawNode<DurableStorage>>,
    /// Committed entries handed out, per group, for the state machine (the caller drains them).
    applied: BTreeMap<GroupId, Vec<Entry>>,
    /// Snapshots installed from a leader, per group, for the state machine to load before it
    /// applies any entry handed out after them.
    installed: BTreeMap<GroupId, Snapshot>,
    /// The chunks of a snapshot being received, per group.
    receiving: BTreeMap<GroupId, Vec<u8>>,
    stats: DriverStats,
    /// Set when a write failed: the groups' storage shows records the disk may not hold, so the
    /// driver does nothing more; reopen the store and the groups (recovery finds what is there).
    failed: Option<String>,
    /// Each group's hard state as of its last durable write.
    durable_hard: BTreeMap<GroupId, HardState>,
    /// Turns whose writes are in flight, oldest first.
    flights: VecDeque<TurnInFlight>,
    /// At most this many (1 to `TURNS_IN_FLIGHT_MAX`).
    turns_in_flight: usize,
}

impl<E: Env, T: Transport + Clone> Driver<E, T> {
    pub fn new(node: NodeId, store: Store<E>, bus: T) -> Driver<E, T> {
        Driver {
            node,
            store,
            bus,
            groups: BTreeMap::new(),
            applied: BTreeMap::new(),
            installed: BTreeMap::new(),
            receiving: BTreeMap::new(),
            stats: DriverStats::default(),
            failed: None,
            durable_hard: BTreeMap::new(),
            flights: VecDeque::new(),
            turns_in_flight: TURNS_IN_FLIGHT_MAX,
        }
    }

    /// Lets `run` keep at most `n` turns' writes in flight (1 to `TURNS_IN_FLIGHT_MAX`, the
    /// default): one waits for each write before the next turn, as the driver did before; kept
    /// for comparing the two in benchmarks.
    pub fn set_turns_in_flight(&mut self, n: usize) {
        assert!((1..=TURNS_IN_FLIGHT_MAX).contains(&n), "{n} turns in flight");
        self.turns_in_flight = n;
    }

    /// `group`'s hard state as of the last durable write (`None` before the first): what a
    /// crash can no longer take back. Inside `run`'s `each` the node's own `hard_state()` may
    /// be ahead of it (a turn's write comes after `each`).
    pub fn durable_hard_state(&self, group: GroupId) -> Option<HardState> {
        self.durable_hard.get(&group).copied()
    }

    /// Adds a group, its storage rebuilt from the store (what it shows was synced).
    pub async fn add_group(&mut self, config: crate::Config) -> Result<(), StoreError> {
        assert_eq!(config.id, self.node);
        let storage = DurableStorage::open(&self.store, config.group).await?;
        let group = config.group;
        assert!(self.groups.insert(group, RawNode::new(config, storage)).is_none(), "group {group} added twice");
        Ok(())
    }

    pub fn group(&self, group: GroupId) -> Option<&RawNode<DurableStorage>> {
        self.groups.get(&group)
    }

    pub fn group_mut(&mut self, group: GroupId) -> Option<&mut RawNode<DurableStorage>> {
        self.groups.get_mut(&group)
    }

    pub fn store(&self) -> &Store<E> {
        &self.store
    }

    pub fn stats(&self) -> DriverStats {
        self.stats
    }

    /// Committed entries of `group` handed out since the last call. Take `take_installed`
    /// first: these follow the snapshot it returns.
    pub fn take_applied(&mut self, group: GroupId) -> Vec<Entry> {
        self.applied.remove(&group).unwrap_or_default()
    }

    /// A snapshot `group` installed from its leader since the last call: the state machine
    /// replaces its state with it. Entries handed out before it and not taken are dropped (it
    /// covers them).
    pub fn take_installed(&mut self, group: GroupId) -> Option<Snapshot> {
        self.installed.remove(&group)
    }

    /// Compacts `group`'s log through `index`, which the state machine has applied and whose
    /// image there is `data`: the next turn's write records the snapshot and the store drops
    /// the entries it covers. Followers that need them get the snapshot instead. Refused if
    /// `data` does not fit one store record (`DurableStorage::snapshot_bytes_max`).
    pub fn compact(&mut self, group: GroupId, index: Index, data: Payload) -> Result<(), String> {
        let max = DurableStorage::snapshot_bytes_max(&self.store);
        let node = self.groups.get_mut(&group).ok_or_else(|| format!("no group {group}"))?;
        if data.len() > max {
            return Err(format!("group {group}: a snapshot of {} bytes does not fit one store record ({max})", data.len()));
        }
        if index > node.applied_index() || index <= node.snapshot_index() {
            return Err(format!(
                "group {group}: compaction at {index} must be after the snapshot ({}) and applied ({})",
                node.snapshot_index(),
                node.applied_index()
            ));
        }
        let membership = node.membership_at(index);
        node.storage_mut().compact(index, membership, data);
        Ok(())
    }

    /// Graceful shutdown: every group this node leads hands leadership to its most caught-up
    /// voter (`RawNode::transfer_target`), which campaigns as soon as it holds the whole log,
    /// without waiting out an election timeout. Returns (group, to) for each; the caller keeps
    /// running turns until `leads_any` is false (or gives up after an election timeout, when
    /// the core abandons the transfer). Proposals are refused meanwhile.
    pub fn hand_over(&mut self) -> Vec<(GroupId, NodeId)> {
        let mut handed = Vec::new();
        for (&group, node) in &mut self.groups {
            let Some(to) = node.transfer_target() else { continue };
            if node.transfer_leader(to).is_ok() {
                handed.push((group, to));
            }
        }
        handed
    }

    /// Whether this node leads any of its groups.
    pub fn leads_any(&self) -> bool {
        self.groups.values().any(|n| n.role() == crate::Role::Leader)
    }

    pub fn tick(&mut self) {
        for node in self.groups.values_mut() {
            node.tick();
        }
    }

    /// One turn: messages in, every group's `Ready` out, one store write for all of them, then
    /// what waited for durability. Returns whether anything happened. After an error (a failed
    /// write, even ENOSPC) every later turn fails too: drop the driver and reopen.
    pub async fn turn(&mut self) -> Result<bool, StoreError> {
        let busy = self.turn_serving(&mut |_: &mut Self| true).await?;
        self.land_all().await?;
        Ok(busy.expect("an `each` that never stops"))
    }

    /// `turn`, with `each` called between the staging and the write (`run` passes its own), so
    /// entries this turn's messages committed are served (a reply to a client) without waiting
    /// for the write of the next records. The write is left in flight (`land_*` finish it).
    /// `None` once `each` said stop.
    async fn turn_serving(&mut self, each: &mut impl FnMut(&mut Self) -> bool) -> Result<Option<bool>, StoreError> {
        if let Some(cause) = &self.failed {
            return Err(StoreError::Failed { cause: format!("an earlier turn of this driver failed: {cause}") });
        }
        let result: Result<Option<bool>, StoreError> = async {
            while self.flights.len() >= self.turns_in_flight {
                self.land_oldest().await?;
            }
            let after = self.step_and_stage();
            let go_on = each(self);
            let busy = after.iter().any(|a| a.busy);
            let write = self.submit_staged().await?;
            if write.is_some() && self.flights.iter().any(|f| f.write.as_ref().is_some_and(|w| !w.is_durable())) {
                self.stats.turns_beside += 1;
            }
            self.flights.push_back(TurnInFlight { write, after });
            self.land_landed().await?;
            Ok(go_on.then_some(busy))
        }
        .await;
        if let Err(e) = &result {
            self.failed = Some(e.to_string());
        }
        result
    }

    /// Messages in, every group's `Ready` out: messages sent, records staged; returns what
    /// waits for the write.
    fn step_and_stage(&mut self) -> Vec<AfterPersist> {
        self.stats.turns += 1;
        for message in self.bus.take(self.node) {
            let Some(node) = self.groups.get_mut(&message.group) else {
                self.stats.messages_refused += 1;
                continue;
            };
            if node.step(message).is_err() {
                self.stats.messages_refused += 1;
            }
        }
        let mut after = Vec::new();
        for (&group, node) in &mut self.groups {
            if !node.has_ready() {
                continue;
            }
            let mut ready = node.take_ready();
            if let Some(snapshot) = receive_snapshot(group, &mut ready, &mut self.receiving) {
                // It replaces the log (`install` stages the records) and the state machine.
                node.storage_mut().install(snapshot.clone());
                self.applied.remove(&group);
                self.installed.insert(group, snapshot);
            }
            after.push(stage_ready(group, node, ready, &self.bus, &mut self.applied));
        }
        after
    }

    /// Waits for the oldest turn's write (and so every earlier one), then does what waited for it.
    async fn land_oldest(&mut self) -> Result<(), StoreError> {
        let Some(flight) = self.flights.pop_front() else { return Ok(()) };
        if let Some(write) = flight.write {
            write.await?;
        }
        self.persisted(flight.after).await
    }

    /// Lands every turn whose write is already durable, oldest first.
    async fn land_landed(&mut self) -> Result<(), StoreError> {
        while self.flights.front().is_some_and(|f| f.write.as_ref().is_none_or(Appended::is_durable)) {
            self.land_oldest().await?;
        }
        Ok(())
    }

    async fn land_all(&mut self) -> Result<(), StoreError> {
        while !self.flights.is_empty() {
            self.land_oldest().await?;
        }
        Ok(())
    }

    /// What waited for a turn's write, once it is durable: the after-persist messages, the
    /// durable hard states, `on_persisted`, and the fetches groups asked for.
    async fn persisted(&mut self, after: Vec<AfterPersist>) -> Result<(), StoreError> {
        for a in after {
            for message in a.messages {
                self.bus.send(message);
            }
            if let Some(hs) = a.hard_state {
                self.durable_hard.insert(a.group, hs);
            }
            if let Some((index, term)) = a.last {
                self.groups.get_mut(&a.group).expect("a group with a Ready").on_persisted(index, term);
            }
        }
        self.fetch_wanted().await
    }

    /// Submits every group's staged records: one store batch if they fit (the usual case), else
    /// as few full batches as they need, one after another. Returns the last batch's pending
    /// write (the store makes them durable in order), `None` if nothing was staged.
    async fn submit_staged(&mut self) -> Result<Option<Appended>, StoreError> {
        let staged: Vec<(GroupId, Vec<Staged>)> =
            self.groups.iter_mut().filter(|(_, n)| n.storage().has_staged()).map(|(g, n)| (*g, n.storage_mut().take_staged())).collect();
        if staged.is_empty() {
            return Ok(None);
        }
        let metas: Vec<Vec<[u8; 1]>> = staged.iter().map(|(_, list)| list.iter().map(kind_meta).collect()).collect();
        let mut records: Vec<RaftRecord<'_>> = Vec::new();
        for ((group, list), metas) in staged.iter().zip(&metas) {
            records.extend(list.iter().zip(metas).map(|(s, m)| record_of(*group, s, m)));
        }
        let budget = self.store.batch_bytes();
        let mut start = 0;
        let mut last = None;
        while start < records.len() {
            let mut bytes = 0;
            let mut end = start;
            while end < records.len() && end - start < engine::store::BATCH_RECORDS_MAX {
                let frame = frame_len(RAFT_KEY_FIELD_BYTES + payload_len(&records[end]));
                assert!(frame <= budget, "a Raft entry larger than a batch ({} bytes of header)", HEADER_BYTES);
                // Frames pack, with some padding where one would cross a sector it need not.
                let frame_end = place(bytes, frame) + frame;
                if frame_end > budget {
                    break;
                }
                bytes = frame_end;
                end += 1;
            }
            last = Some(self.store.submit_raft(&records[start..end]).await?);
            self.stats.writes += 1;
            self.stats.records += (end - start) as u64;
            start = end;
        }
        Ok(last)
    }

    /// Reads back entries the groups asked for and no longer held in memory.
    async fn fetch_wanted(&mut self) -> Result<(), StoreError> {
        for node in self.groups.values_mut() {
            if node.storage().wants_fetch() {
                node.storage_mut().fetch(&self.store).await?;
                self.stats.fetches += 1;
            }
        }
        Ok(())
    }

    /// The driver's loop: a tick every `tick_period` from the runtime's timer (caught up after
    /// a stall before anything else), turns whenever messages arrive, a tick fired or `each`
    /// left a group with a `Ready`, until quiet. `each` (the place to propose, take applied
    /// entries, read stats) runs after every write, and also within each turn between staging
    /// and the write, so that what the turn committed is served before that write: there a
    /// group's hard state may be ahead of the disk (`durable_hard_state` is what is durable).
    /// It returns false to stop (after the write in progress).
    pub async fn run(&mut self, tick_period: Duration, mut each: impl FnMut(&mut Self) -> bool) -> Result<(), StoreError> {
        let mut next_tick = engine::time::now().saturating_add(tick_period);
        while each(self) {
            let mut sleep = std::pin::pin!(engine::sleep_until(next_tick));
            let (bus, node) = (self.bus.clone(), self.node);
            // What `each` did (a proposal, a ReadIndex) waits in a group's `Ready`, which no
            // message or tick may come to flush: turn at once instead of sleeping until one.
            let ready = self.groups.values().any(|n| n.has_ready());
            let flights = &self.flights;
            let mut parked = false;
            std::future::poll_fn(|cx| {
                let landed = flights.front().is_some_and(|f| f.write.as_ref().is_none_or(|w| w.poll_durable(cx)));
                if ready || landed || bus.has_mail(node) || sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
                bus.register(node, cx.waker());
                parked = true;
                Poll::Pending
            })
            .await;
            if !parked {
                // Work was waiting, so this task did not give the core up: do it now, once per
                // wake-up. Otherwise a loop that always finds work (a transport that keeps
                // reporting mail) never lets the executor reap the ring, and the sockets' and
                // the store's completions, the very messages it waits for, never arrive.
                engine::yield_now().await;
            }
            if let Err(e) = self.land_landed().await {
                self.failed = Some(e.to_string());
                return Err(e);
            }
            let now = engine::time::now();
            while next_tick <= now {
                self.tick();
                next_tick = next_tick.saturating_add(tick_period);
            }
            // Bounded, so a group that keeps reporting work cannot starve the timer.
            for _ in 0..TURNS_PER_WAKEUP_MAX {
                match self.turn_serving(&mut each).await? {
                    None => return self.land_all().await,
                    Some(false) => break,
                    // Busy: another turn at once, after what arrived meanwhile.
                    Some(true) if !each(self) => return self.land_all().await,
                    Some(true) => {}
                }
            }
        }
        self.land_all().await
    }
}

fn payload_len(record: &RaftRecord<'_>) -> usize {
    match record {
        RaftRecord::Entry { meta, data, .. } => meta.len() + data.len(),
        RaftRecord::Truncate { .. } => 0,
        RaftRecord::HardState { .. } => engine::store::raft::HARD_STATE_DATA_BYTES,
        RaftRecord::Compact { meta, data, .. } => meta.len() + data.len(),
    }
}

/// Gathers a `Ready`'s snapshot chunks; once the last arrived, the snapshot they make up.
fn receive_snapshot(group: GroupId, ready: &mut Ready, receiving: &mut BTreeMap<GroupId, Vec<u8>>) -> Option<Snapshot> {
    for chunk in std::mem::take(&mut ready.snapshot_chunks) {
        let file = receiving.entry(group).or_default();
        if chunk.offset == 0 {
            file.clear();
        }
        // The core hands out chunks in order from offset 0 (it checks offsets as they arrive).
        assert_eq!(chunk.offset, file.len() as u64, "group {group}: snapshot chunk out of order");
        file.extend_from_slice(&chunk.data);
    }
    let (meta, membership) = ready.snapshot.take()?;
    let data = receiving.remove(&group).unwrap_or_default();
    Some(Snapshot { meta, membership, data: data.into() })
}

/// Sends a group's `messages`, stages its writes and keeps what must wait for durability.
fn stage_ready<T: Transport>(
    group: GroupId,
    node: &mut RawNode<DurableStorage>,
    ready: Ready,
    bus: &T,
    applied: &mut BTreeMap<GroupId, Vec<Entry>>,
) -> AfterPersist {
    let busy = !ready.messages.is_empty()
        || !ready.messages_after_persist.is_empty()
        || !ready.entries.is_empty()
        || ready.hard_state.is_some()
        || !ready.committed_entries.is_empty()
        || !ready.read_states.is_empty();
    for message in ready.messages {
        bus.send(message);
    }
    let commit = node.commit_index();
    node.storage_mut().stage(ready.hard_state, &ready.entries, commit);
    if !ready.committed_entries.is_empty() {
        applied.entry(group).or_default().extend(ready.committed_entries);
    }
    let last = ready.entries.last().map(|e| (e.index, e.term));
    AfterPersist { group, busy, messages: ready.messages_after_persist, last, hard_state: ready.hard_state }
}
