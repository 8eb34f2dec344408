//! `RawNode`: one Raft group's replica as a pure state machine. Inputs: `step` (a message),
//! `tick` (a unit of the caller's clock), `propose`, `read_index`, `transfer_leader` and
//! `on_persisted`. Outputs: a `Ready` with the hard state and entries to write, messages to send
//! (some only after that write is durable), committed entries to apply and reads now safe to
//! serve. The core does no I/O and reads no clock or global randomness, so the simulator and the
//! ring driver run the same code.

use crate::config::{APPLY_BATCH_MAX, Config, UNCOMMITTED_ENTRIES_MAX};
use crate::error::{ProposeError, StepError};
use crate::log::RaftLog;
use crate::membership::Membership;
use crate::progress::Progress;
use crate::read_index::ReadQueue;
use crate::storage::Storage;
use crate::types::{
    Body, Entry, EntryKind, GroupId, HardState, Index, Message, NodeId, Payload, ReadState, Role, SnapshotChunk, SnapshotMeta, Term,
};
use engine::rng::Prng;
use std::collections::BTreeMap;
use std::ops::Range;

/// What the driver must do after feeding the node inputs. In this order: write the
/// `snapshot_chunks`; if `snapshot` is set, install the snapshot they make up (it replaces the
/// log and the state machine); write `hard_state` and `entries` (entries replace the log from
/// `entries[0].index` on); send `messages` at once;
/// send `messages_after_persist` only once this write and every earlier one is durable (then
/// call `on_persisted`); apply `committed_entries`; serve `read_states` once applied.
#[derive(Debug, Default)]
pub struct Ready {
    pub hard_state: Option<HardState>,
    pub entries: Vec<Entry>,
    pub messages: Vec<Message>,
    pub messages_after_persist: Vec<Message>,
    pub committed_entries: Vec<Entry>,
    pub read_states: Vec<ReadState>,
    /// ReadIndex contexts that will never complete here (leadership lost): answer "not leader".
    pub reads_dropped: Vec<u64>,
    pub snapshot_chunks: Vec<SnapshotChunk>,
    /// The last chunk arrived: install this snapshot (made of the chunks since offset 0).
    pub snapshot: Option<(SnapshotMeta, Membership)>,
}

pub struct RawNode<S: Storage> {
    pub(crate) config: Config,
    pub(crate) term: Term,
    pub(crate) vote: Option<NodeId>,
    pub(crate) leader: Option<NodeId>,
    pub(crate) role: Role,
    pub(crate) log: RaftLog<S>,
    pub(crate) prng: Prng,
    /// Ticks since the last reset; a follower campaigns at `election_timeout`, a leader checks
    /// its quorum every `config.election_ticks`.
    pub(crate) election_elapsed: u32,
    pub(crate) election_timeout: u32,
    pub(crate) heartbeat_elapsed: u32,
    /// Ticks since this node started: the leader's clock for leases.
    pub(crate) ticks: u64,
    /// No lease reads before this tick (set when TimeoutNow went out).
    pub(crate) lease_blocked_until: u64,
    /// Votes (or pre-votes) received in the current campaign: (voter, granted).
    pub(crate) votes: Vec<(NodeId, bool)>,
    /// The leader's view of each peer (not of itself: its own match is `log.persisted`).
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    pub(crate) messages: Vec<Message>,
    pub(crate) messages_after_persist: Vec<Message>,
    /// The hard state last handed out in a `Ready`.
    pub(crate) hard_state_handed: HardState,
    /// Proposals or a commit advance wait for the next `Ready`, so that everything proposed
    /// between two `Ready`s leaves in one AppendEntries per follower.
    pub(crate) append_pending: bool,
    pub(crate) heartbeat_pending: bool,
    pub(crate) reads: ReadQueue,
    pub(crate) read_states: Vec<ReadState>,
    pub(crate) reads_dropped: Vec<u64>,
    pub(crate) transferee: Option<NodeId>,
    /// A snapshot being received: which one and the next offset expected.
    pub(crate) snapshot_receiving: Option<(SnapshotMeta, u64)>,
    pub(crate) snapshot_chunks: Vec<SnapshotChunk>,
    /// The membership in force: that of the last configuration entry in the log, else of the
    /// snapshot, else the configured one.
    pub(crate) membership: Membership,
    /// Index of the last configuration entry in the log (0: none after the snapshot).
    pub(crate) conf_index: Index,
    /// A received snapshot's membership, until handed out with the snapshot.
    pub(crate) snapshot_membership_pending: Option<Membership>,
    /// The storage's last index once the driver has written what was handed out.
    storage_last_expected: Index,
}

impl<S: Storage> RawNode<S> {
    pub fn new(config: Config, storage: S) -> RawNode<S> {
        config.validate();
        let hard_state = storage.hard_state();
        let log = RaftLog::new(storage);
        // A crash can keep entries of a term whose hard state write was lost (torn tail). Any
        // vote this node sent in that term was synced first, so the durable hard state would
        // show it; adopting the log's term with no vote is therefore safe, and keeps terms in the
        // log non-decreasing if this node later leads.
        let (term, vote) = if log.last_term() > hard_state.term {
            (log.last_term(), None)
        } else {
            (hard_state.term, hard_state.vote)
        };
        let prng = Prng::new(config.seed);
        let storage_last_expected = log.last_index();
        let mut node = RawNode {
            config,
            term,
            vote,
            leader: None,
            role: Role::Follower,
            log,
            prng,
            election_elapsed: 0,
            election_timeout: 0,
            heartbeat_elapsed: 0,
            ticks: 0,
            lease_blocked_until: 0,
            votes: Vec::new(),
            progress: BTreeMap::new(),
            messages: Vec::new(),
            messages_after_persist: Vec::new(),
            hard_state_handed: hard_state,
            append_pending: false,
            heartbeat_pending: false,
            reads: ReadQueue::new(),
            read_states: Vec::new(),
            reads_dropped: Vec::new(),
            transferee: None,
            snapshot_receiving: None,
            snapshot_chunks: Vec::new(),
            membership: Membership::default(),
            conf_index: 0,
            snapshot_membership_pending: None,
            storage_last_expected,
        };
        node.recompute_membership();
        node.become_follower(term, None);
        node
    }

    pub fn id(&self) -> NodeId {
        self.config.id
    }

    pub fn group(&self) -> GroupId {
        self.config.group
    }

    pub fn term(&self) -> Term {
        self.term
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    pub fn vote(&self) -> Option<NodeId> {
        self.vote
    }

    pub fn commit_index(&self) -> Index {
        self.log.committed
    }

    pub fn applied_index(&self) -> Index {
        self.log.applied
    }

    /// Where this node's log starts (its latest snapshot).
    pub fn snapshot_index(&self) -> Index {
        self.log.snapshot_meta().index
    }

    pub fn persisted_index(&self) -> Index {
        self.log.persisted
    }

    pub fn last_index(&self) -> Index {
        self.log.last_index()
    }

    pub fn log_term(&self, index: Index) -> Option<Term> {
        self.log.term(index)
    }

    /// The log as this node sees it (storage plus unstable), for checkers.
    pub fn log_entries(&self, lo: Index, hi: Index) -> Vec<Entry> {
        self.log.entries(lo, hi, usize::MAX).unwrap_or_default()
    }

    pub fn storage(&self) -> &S {
        &self.log.storage
    }

    /// The driver writes each `Ready`'s entries through this before calling in again.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.log.storage
    }

    pub(crate) fn quorum(&self) -> usize {
        self.membership.quorum()
    }

    /// Every other member (voters and learners): the leader replicates to all of them.
    pub(crate) fn peers(&self) -> Vec<NodeId> {
        self.membership.others(self.config.id)
    }

    pub(crate) fn voter_peers(&self) -> Vec<NodeId> {
        self.membership.voters.iter().copied().filter(|&v| v != self.config.id).collect()
    }

    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The contract with the driver: what the last `Ready` handed out is visible in storage.
    fn check_storage(&self) {
        assert!(self.log.storage.last_index() == self.storage_last_expected, "driver did not write the last Ready's entries");
    }

    /// One unit of the caller's clock (the simulator's virtual one, the ring's timer).
    pub fn tick(&mut self) {
        self.check_storage();
        self.ticks += 1;
        match self.role {
            Role::Leader => self.tick_leader(),
            Role::Follower | Role::PreCandidate | Role::Candidate => self.tick_election(),
        }
    }

    /// Appends `payloads` as one batch. Returns their indexes; each is applied once committed,
    /// or replaced if this node loses leadership before that.
    pub fn propose(&mut self, payloads: Vec<Payload>) -> Result<Range<Index>, ProposeError> {
        self.check_storage();
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { leader_hint: self.leader });
        }
        if let Some(to) = self.transferee {
            return Err(ProposeError::Transferring { to });
        }
        let first = self.log.last_index() + 1;
        let uncommitted = self.log.last_index() - self.log.committed + payloads.len() as Index;
        if uncommitted > UNCOMMITTED_ENTRIES_MAX {
            return Err(ProposeError::Busy);
        }
        let term = self.term;
        let entries = payloads
            .into_iter()
            .enumerate()
            .map(|(i, payload)| Entry { term, index: first + i as Index, kind: EntryKind::Normal, payload })
            .collect();
        self.log.append(entries);
        self.append_pending = true;
        Ok(first..self.log.last_index() + 1)
    }

    /// The driver's write of the log through `index` (whose entry had term `term`) is durable.
    pub fn on_persisted(&mut self, index: Index, term: Term) {
        self.check_storage();
        self.log.persisted_to(index, term);
        if self.role == Role::Leader && self.maybe_commit() {
            self.append_pending = true;
        }
    }

    /// A message from the network. Refuses (without changing anything) what cannot be valid.
    pub fn step(&mut self, message: Message) -> Result<(), StepError> {
        self.check_storage();
        self.validate(&message)?;
        if message.term > self.term {
            if !self.on_higher_term(&message) {
                return Ok(());
            }
        } else if message.term < self.term {
            self.on_lower_term(&message);
            return Ok(());
        }
        self.dispatch(message)
    }

    fn dispatch(&mut self, message: Message) -> Result<(), StepError> {
        let from = message.from;
        match message.body {
            Body::PreVote { last_index, last_term } => self.on_vote_request(from, message.term, last_index, last_term, true),
            Body::Vote { last_index, last_term, .. } => self.on_vote_request(from, message.term, last_index, last_term, false),
            Body::PreVoteResponse { granted } => self.on_vote_response(from, message.term, granted, true),
            Body::VoteResponse { granted } => self.on_vote_response(from, message.term, granted, false),
            Body::Append { prev_index, prev_term, entries, commit } => {
                if self.accept_leader(from) {
                    self.on_append(from, prev_index, prev_term, entries, commit);
                }
            }
            Body::Heartbeat { commit, read_seq } => {
                if self.accept_leader(from) {
                    self.on_heartbeat(from, commit, read_seq);
                }
            }
            Body::AppendResponse { index, reject } => {
                if self.role == Role::Leader {
                    self.on_append_response(from, index, reject)?;
                }
            }
            Body::HeartbeatResponse { read_seq } => {
                if self.role == Role::Leader {
                    self.on_heartbeat_response(from, read_seq);
                }
            }
            Body::TimeoutNow => {
                if self.role != Role::Leader {
                    self.campaign(false, true);
                }
            }
            Body::InstallSnapshot { meta, membership, offset, data, done } => {
                if self.accept_leader(from) {
                    self.on_install_snapshot(from, meta, membership, offset, data, done);
                }
            }
            Body::InstallSnapshotResponse { index, offset } => {
                if self.role == Role::Leader {
                    self.on_install_snapshot_response(from, index, offset);
                }
            }
        }
        Ok(())
    }

    fn validate(&self, message: &Message) -> Result<(), StepError> {
        if message.group != self.config.group {
            return Err(StepError::WrongGroup { expected: self.config.group, got: message.group });
        }
        if message.to != self.config.id {
            return Err(StepError::WrongNode { id: self.config.id, to: message.to });
        }
        if message.from == self.config.id || !self.membership.is_member(message.from) {
            return Err(StepError::UnknownSender { from: message.from });
        }
        if let Body::Append { prev_index, prev_term, entries, .. } = &message.body {
            let malformed = |reason| StepError::Malformed { kind: "Append", from: message.from, reason };
            let mut expected_index = prev_index.checked_add(1).ok_or(malformed("prev_index overflows"))?;
            let mut term_floor = *prev_term;
            if *prev_term > message.term {
                return Err(malformed("prev_term above the message term"));
            }
            for entry in entries {
                if entry.index != expected_index {
                    return Err(malformed("entries not contiguous after prev_index"));
                }
                if entry.term < term_floor || entry.term > message.term {
                    return Err(malformed("entry terms not between prev_term and the message term"));
                }
                if entry.kind == EntryKind::ConfChange && Membership::decode(&entry.payload).is_none() {
                    return Err(malformed("invalid membership in a configuration entry"));
                }
                expected_index = expected_index.checked_add(1).ok_or(malformed("index overflows"))?;
                term_floor = entry.term;
            }
        }
        if let Body::InstallSnapshot { meta, membership, offset, data, .. } = &message.body {
            let malformed = |reason| StepError::Malformed { kind: "InstallSnapshot", from: message.from, reason };
            if Membership::decode(&membership.encode()).as_ref() != Some(membership) {
                return Err(malformed("invalid membership"));
            }
            if meta.term > message.term || meta.index == 0 {
                return Err(malformed("snapshot index or term out of range"));
            }
            if data.len() > self.config.snapshot_chunk_bytes || offset.checked_add(data.len() as u64).is_none() {
                return Err(malformed("chunk too large"));
            }
        }
        Ok(())
    }

    /// Returns whether to go on handling the message.
    fn on_higher_term(&mut self, message: &Message) -> bool {
        match message.body {
            Body::PreVote { .. } | Body::Vote { transfer: false, .. } if self.in_lease() => false,
            // A pre-vote is for a term nobody campaigns in yet, and a granted one answers it.
            Body::PreVote { .. } | Body::PreVoteResponse { granted: true } => true,
            Body::Append { .. } | Body::Heartbeat { .. } | Body::TimeoutNow => {
                self.become_follower(message.term, Some(message.from));
                true
            }
            _ => {
                self.become_follower(message.term, None);
                true
            }
        }
    }

    fn on_lower_term(&mut self, message: &Message) {
        match message.body {
            // A deposed leader learns our term from the answer and steps down (with pre-vote or
            // check-quorum, a node cut off never bumped the term that would tell it otherwise).
            Body::Append { .. } | Body::Heartbeat { .. } => {
                self.send(message.from, self.term, Body::AppendResponse { index: 0, reject: None });
            }
            Body::PreVote { .. } => {
                self.send(message.from, self.term, Body::PreVoteResponse { granted: false });
            }
            _ => {}
        }
    }

    /// An Append or Heartbeat in our term comes from its one leader. Returns false if this
    /// node is itself leader of the term (two leaders: only a broken core gets here; the
    /// simulator's checker names it).
    fn accept_leader(&mut self, from: NodeId) -> bool {
        if self.role == Role::Leader {
            return false;
        }
        if self.role != Role::Follower || self.leader != Some(from) {
            self.become_follower(self.term, Some(from));
        }
        self.election_elapsed = 0;
        true
    }

    /// Queues a message; answers that depend on durable state wait for the write.
    pub(crate) fn send(&mut self, to: NodeId, term: Term, body: Body) {
        let bugs = self.config.bugs;
        let after_persist = match body {
            // The candidate's term and self-vote, or the voter's vote, must be durable first.
            Body::Vote { .. } | Body::VoteResponse { .. } => !bugs.vote_before_persist,
            // "I have these entries" is true only once they are durable.
            Body::AppendResponse { .. } => !bugs.append_ack_before_persist,
            // The follower's term must be durable before it vouches for the leader's; a chunk
            // is acknowledged once written.
            Body::HeartbeatResponse { .. } | Body::InstallSnapshotResponse { .. } => true,
            Body::InstallSnapshot { .. } => false,
            Body::PreVote { .. } | Body::PreVoteResponse { .. } | Body::Append { .. } | Body::Heartbeat { .. } | Body::TimeoutNow => false,
        };
        let message = Message { group: self.config.group, from: self.config.id, to, term, body };
        if after_persist {
            self.messages_after_persist.push(message);
        } else {
            self.messages.push(message);
        }
    }

    pub fn hard_state(&self) -> HardState {
        HardState { term: self.term, vote: self.vote }
    }

    pub fn has_ready(&self) -> bool {
        self.append_pending
            || self.heartbeat_pending
            || self.hard_state() != self.hard_state_handed
            || self.log.last_index() != self.storage_last_expected
            || !self.messages.is_empty()
            || !self.messages_after_persist.is_empty()
            || self.log.committed.min(self.log.persisted) > self.log.applied
            || !self.read_states.is_empty()
            || !self.reads_dropped.is_empty()
            || !self.snapshot_chunks.is_empty()
    }

    /// Everything the driver must do now (see `Ready`). Entries handed out must be visible in
    /// storage, and committed entries applied, before the next call into the node.
    pub fn take_ready(&mut self) -> Ready {
        self.check_storage();
        if self.role == Role::Leader && self.append_pending {
            self.broadcast_append();
        }
        if self.role == Role::Leader && self.heartbeat_pending {
            self.broadcast_heartbeat();
        }
        self.append_pending = false;
        self.heartbeat_pending = false;
        let snapshot = self.log.take_snapshot().map(|meta| {
            let membership = self.snapshot_membership_pending.take();
            (meta, membership.unwrap_or_else(|| unreachable!("a restored snapshot has its membership")))
        });
        let hard_state = self.hard_state();
        let hard_state_changed = hard_state != self.hard_state_handed;
        self.hard_state_handed = hard_state;
        let entries = self.log.take_unstable();
        self.storage_last_expected = self.log.expected_storage_last();
        let committed_entries = self.log.next_to_apply(APPLY_BATCH_MAX);
        if let Some(last) = committed_entries.last() {
            self.log.applied = last.index;
        }
        Ready {
            hard_state: hard_state_changed.then_some(hard_state),
            entries,
            messages: std::mem::take(&mut self.messages),
            messages_after_persist: std::mem::take(&mut self.messages_after_persist),
            committed_entries,
            read_states: std::mem::take(&mut self.read_states),
            reads_dropped: std::mem::take(&mut self.reads_dropped),
            snapshot_chunks: std::mem::take(&mut self.snapshot_chunks),
            snapshot,
        }
    }
}
